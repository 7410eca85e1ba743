"""Rankings -> pairs -> deterministic TRL exports."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest

from prefloop import store
from prefloop.store.export_files import ExportOptions, export_pairs, verify_export
from prefloop.store.importer import import_file
from prefloop.store.pairs import PairFilters, derive_pairs

from .conftest import HH, make_pairs


def _pairs(db, **kw):
    table, counts = derive_pairs(db, PairFilters(**kw))
    rows = table.to_pylist()
    return {(r["chosen_id"], r["rejected_id"]): r for r in rows}, counts


def test_a_ranking_with_ties_yields_pairs_between_groups_only(db):
    (p, (a, b, c)), = make_pairs(db, 1, k=3)
    db.comparisons.record(p, [[a], [b, c]], labeler_kind="human", labeler="x")
    pairs, counts = _pairs(db)
    assert set(pairs) == {(a, b), (a, c)}          # b ~ c is a tie: no pair
    assert counts.n_ties == 1
    row = pairs[(a, b)]
    assert row["chosen"] == [{"role": "assistant", "content": f"answer 0 to {p}"}]
    assert row["prompt"] == [{"role": "user", "content": "question 0"}]


def test_votes_aggregate_across_labelers(db):
    (p, (a, b)), (p2, (c, d)) = make_pairs(db, 2)
    for who, ranking in [("x", [[a], [b]]), ("y", [[a], [b]]), ("z", [[b], [a]])]:
        db.comparisons.record(p, ranking, labeler_kind="human", labeler=who)
    db.comparisons.record(p2, [[c], [d]], labeler_kind="human", labeler="x")
    db.comparisons.record(p2, [[d], [c]], labeler_kind="ai", labeler="judge")
    pairs, counts = _pairs(db)
    assert (pairs[(a, b)]["votes_chosen"], pairs[(a, b)]["votes_rejected"]) == (2, 1)
    assert pairs[(a, b)]["agreement"] == pytest.approx(2 / 3)
    assert len(pairs[(a, b)]["comparison_ids"]) == 3
    assert (c, d) not in pairs and (d, c) not in pairs  # 1 vs 1: a conflict, not exported
    assert counts.n_conflicts == 1
    assert set(_pairs(db, min_agreement=0.7)[0]) == set()
    assert set(_pairs(db, source="ai")[0]) == {(d, c)}
    assert set(_pairs(db, source="human")[0]) == {(a, b), (c, d)}
    assert _pairs(db, source="human")[0][(c, d)]["labeler_kinds"] == ["human"]


def test_dataset_and_since_export_filters(db, tmp_path):
    (p, (a, b)), = make_pairs(db, 1, dataset="one")
    pid = db.prompts.add([[{"role": "user", "content": "other"}]], dataset="two")[0]
    c, d = db.responses.add([store.ResponseIn(pid, "c"), store.ResponseIn(pid, "d")])
    db.comparisons.record(p, [[a], [b]], labeler_kind="human", labeler="x")
    assert set(_pairs(db, dataset="two")[0]) == set()
    first = export_pairs(db, tmp_path / "e1", PairFilters())
    db.comparisons.record(pid, [[c], [d]], labeler_kind="human", labeler="x")
    assert set(_pairs(db, since_export=first.export.id)[0]) == {(c, d)}
    assert set(_pairs(db, dataset="two")[0]) == {(c, d)}


def test_export_is_deterministic_split_by_prompt_and_recorded(db, tmp_path, shared_data):
    import_file(db, HH, "hh")
    f = PairFilters(source="human", test_fraction=0.2, seed=1)
    e1 = export_pairs(db, tmp_path / "a", f)
    e2 = export_pairs(db, tmp_path / "b", f)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files and all((tmp_path / "a" / p).read_bytes() == (tmp_path / "b" / p).read_bytes()
                         for p in files)
    assert e1.export.sha256 == e2.export.sha256 and e1.export.id != e2.export.id
    assert e1.n_train + e1.n_test == 1794 and e1.n_test > 0

    ds = datasets.load_from_disk(str(tmp_path / "a" / "dataset"))
    assert {"prompt", "chosen", "rejected"} <= set(ds["train"].column_names)
    train_prompts = set(ds["train"]["prompt_id"])
    test_prompts = set(ds["test"]["prompt_id"])
    assert train_prompts and test_prompts and not train_prompts & test_prompts
    assert len(test_prompts) == round(0.2 * len(train_prompts | test_prompts))
    assert pq.read_table(tmp_path / "a" / "train.parquet").num_rows == e1.n_train

    rec = db.exports.get(e1.export.id)
    assert rec.n_pairs == 1794 and rec.filters["test_fraction"] == 0.2
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["sha256"] == rec.sha256 and manifest["splits"] == {"train": e1.n_train, "test": e1.n_test}
    assert verify_export(rec) == tmp_path / "a"
    (tmp_path / "a" / "train.parquet").write_bytes(b"tampered")
    with pytest.raises(store.ExportError, match="changed"):
        verify_export(rec)


def test_export_refuses_to_overwrite_and_to_export_nothing(db, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("keep me")
    with pytest.raises(store.ExportError, match="not empty"):
        export_pairs(db, tmp_path / "out")
    with pytest.raises(store.ExportError, match="no pairs match"):
        export_pairs(db, tmp_path / "new")
    assert not (tmp_path / "new").exists() and db.exports.list() == []


def test_shards_split_the_training_prompts_and_share_the_test_split(hh_store, tmp_path):
    a = export_pairs(hh_store, tmp_path / "a", PairFilters(source="human", test_fraction=0.1, shards=2))
    b = export_pairs(hh_store, tmp_path / "b", PairFilters(source="human", test_fraction=0.1,
                                                           shard=1, shards=2))
    read = lambda e, split: set(pq.read_table(Path(e.export.path) / f"{split}.parquet")["prompt_id"].to_pylist())  # noqa: E731
    assert read(a, "test") == read(b, "test") and len(read(a, "test")) == 179
    assert not read(a, "train") & read(b, "train")
    whole = export_pairs(hh_store, tmp_path / "whole", PairFilters(source="human", test_fraction=0.1))
    assert read(a, "train") | read(b, "train") == read(whole, "train")
    assert abs(len(read(a, "train")) - len(read(b, "train"))) <= 1
    assert a.export.n_pairs == a.n_train + a.n_test


def test_openrlhf_and_verl_files_follow_the_engines_schemas(hh_store, tmp_path):
    """OpenRLHF's reward_dataset.preprocess_data with prompt_key/chosen_key/rejected_key and
    apply_chat_template reads prompt (messages) + chosen/rejected (assistant messages) and an
    optional margin; verl's RL parquet has data_source, prompt, ability, reward_model,
    extra_info (pinned from their sources; the engines need GPUs and Ray to install)."""
    import json as _json

    o = export_pairs(hh_store, tmp_path / "o", PairFilters(source="human", test_fraction=0.1),
                     ExportOptions(format="openrlhf"))
    rows = [_json.loads(x) for x in open(tmp_path / "o" / "openrlhf" / "train.jsonl")]
    assert len(rows) == o.n_train and (tmp_path / "o" / "openrlhf" / "test.jsonl").exists()
    r = rows[0]
    assert r["prompt"][-1]["role"] == "user" and [m["role"] for m in r["chosen"]] == ["assistant"]
    assert [m["role"] for m in r["rejected"]] == ["assistant"]
    assert not any("margin" in x for x in rows)     # one vote, no strength: no margin (not 1.0)
    # what OpenRLHF builds: chat_template(prompt + chosen)[len(chat_template(prompt, gen)):]
    from prefloop.core.models import default_model_path, load_tokenizer

    tok = load_tokenizer(default_model_path())
    prompt = tok.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(r["prompt"] + r["chosen"], tokenize=False)
    assert full.startswith(prompt) and r["chosen"][0]["content"] in full[len(prompt):]

    v = export_pairs(hh_store, tmp_path / "v", PairFilters(source="human", test_fraction=0.1),
                     ExportOptions(format="verl"))
    t = pq.read_table(tmp_path / "v" / "verl" / "train.parquet")
    assert set(t.column_names) == {"data_source", "prompt", "ability", "reward_model", "extra_info"}
    first = t.slice(0, 1).to_pylist()[0]
    assert first["data_source"] == "prefloop/harmless-base-test-dev" and first["ability"] == "alignment"
    assert first["reward_model"] == {"style": "model", "ground_truth": ""}
    assert first["extra_info"]["split"] == "train" and first["extra_info"]["index"] == 0
    n_prompts = len(set(pq.read_table(tmp_path / "v" / "train.parquet")["prompt_id"].to_pylist()))
    assert t.num_rows == n_prompts and v.export.filters["format"] == "verl"
    assert hh_store.prompts.get(first["extra_info"]["prompt_id"]).messages == first["prompt"]


def test_rollouts_from_a_cluster_come_back_to_their_prompts_for_labeling(hh_store, tmp_path):
    """verl prompts out, generated responses back in (``import --format rollouts``): the
    responses land on the same prompts (content hash), with their model, ready to queue."""
    import json as _json

    from prefloop.store.importer import import_file

    export_pairs(hh_store, tmp_path / "v", PairFilters(source="human", test_fraction=0.1), ExportOptions(format="verl"))
    rows = pq.read_table(tmp_path / "v" / "verl" / "train.parquet").slice(0, 3).to_pylist()
    f = tmp_path / "rollouts.jsonl"
    f.write_text("".join(_json.dumps({"prompt": r["prompt"], "responses": [f"cluster answer {i}", f"other {i}"],
                                      "model": "policy-step-100", "extra_info": r["extra_info"]}) + "\n"
                         for i, r in enumerate(rows)))
    n_prompts = len(hh_store.prompts.list())
    rep = import_file(hh_store, f, "rollouts")
    assert rep.prompts_added == 0 and rep.responses_added == 6 and rep.comparisons_added == 0
    assert len(hh_store.prompts.list()) == n_prompts
    got = hh_store.responses.for_prompts([rows[0]["extra_info"]["prompt_id"]])[rows[0]["extra_info"]["prompt_id"]]
    assert {r.text for r in got} >= {"cluster answer 0", "other 0"}
    assert {r.model for r in got if r.text.startswith(("cluster", "other"))} == {"policy-step-100"}
