"""Unpaired feedback: ``import --format feedback``, "both bad" labels and pairs exported as
TRL's unpaired rows (``export --format kto``), and ``train kto`` through TRL's KTOTrainer."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from prefloop import store
from prefloop.annotate_app.auth import hash_password
from prefloop.annotate_app.config import AppConfig
from prefloop.annotate_app.services import AppServices
from prefloop.store.export_files import ExportOptions, export_pairs
from prefloop.store.importer import import_file
from prefloop.store.pairs import PairFilters, derive_pairs

from .conftest import make_pairs


def _feedback(tmp_path, rows, name="fb.jsonl"):
    f = tmp_path / name
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f


ROWS = [{"prompt": f"how do I bake bread {i}?", "response": f"knead it {i}", "label": "up",
         "user": "u1", "session": "s1"} for i in range(6)] + \
       [{"messages": [{"role": "user", "content": f"insult me {i}"}], "response": f"you fool {i}",
         "label": False} for i in range(6)]


def test_feedback_imports_as_unpaired_labels_that_pair_exports_ignore(db, tmp_path):
    r = import_file(db, _feedback(tmp_path, ROWS), "feedback", dataset="chat")
    assert r.imported == 12 and r.comparisons_added == 12
    again = import_file(db, _feedback(tmp_path, ROWS), "feedback", dataset="chat")
    assert again.comparisons_added == 0                                 # idempotent
    flags = sorted(c.flags[0] for c in db.comparisons.list())
    assert flags == ["thumbs_down"] * 6 + ["thumbs_up"] * 6
    table, counts = derive_pairs(db, PairFilters())
    assert table.num_rows == 0                                           # no pair from feedback


def test_bad_feedback_lines_name_the_line_and_field_and_write_nothing(db, tmp_path):
    bad = ROWS[:2] + [{"prompt": "p", "response": "r", "label": "maybe"}]
    with pytest.raises(store.InvalidInputError, match=r"fb.jsonl:3: field 'label': expected true/false"):
        import_file(db, _feedback(tmp_path, bad), "feedback")
    with pytest.raises(store.InvalidInputError, match=r"fb.jsonl:1: field 'response': missing"):
        import_file(db, _feedback(tmp_path, [{"prompt": "p", "label": True}]), "feedback")
    assert db.comparisons.list() == [] and db.prompts.list() == []


def test_kto_export_has_feedback_both_bad_and_optionally_pairs(db, tmp_path):
    import_file(db, _feedback(tmp_path, ROWS), "feedback", dataset="chat")
    (pid, rids), = make_pairs(db, 1)
    db.tasks.create([store.TaskIn(pid, rids)])
    db.annotators.add("ann", "annotator", hash_password("correct horse"))
    svc = AppServices(db, AppConfig())
    ann = db.annotators.get("ann")
    svc.labeling.submit_pair(ann, svc.labeling.next_task(ann).task_id, "both_bad")
    pid2, = db.prompts.add([[{"role": "user", "content": "a different question"}]], dataset="toy2")
    rids2 = db.responses.add([store.ResponseIn(pid2, "better"), store.ResponseIn(pid2, "worse")])
    db.comparisons.record(pid2, [[rids2[0]], [rids2[1]]], labeler_kind="human", labeler="x")

    e = export_pairs(db, tmp_path / "kto", PairFilters(), ExportOptions(format="kto"))
    rows = pq.read_table(tmp_path / "kto" / "train.parquet").to_pylist()
    assert e.export.filters["format"] == "kto" and len(rows) == 12 + 2
    assert set(rows[0]) >= {"prompt", "completion", "label", "prompt_id", "response_id", "sources"}
    both_bad = [r for r in rows if r["sources"] == ["both_bad"]]
    assert len(both_bad) == 2 and not any(r["label"] for r in both_bad)
    assert sum(r["label"] for r in rows) == 6
    manifest = json.loads((tmp_path / "kto" / "manifest.json").read_text())
    assert manifest["format"] == "trl-unpaired-preference"

    e2 = export_pairs(db, tmp_path / "kto2", PairFilters(), ExportOptions(format="kto", kto_pairs=True))
    rows2 = pq.read_table(tmp_path / "kto2" / "train.parquet").to_pylist()
    pair_rows = {(r["response_id"], r["label"]) for r in rows2 if r["sources"] == ["pair"]}
    assert pair_rows == {(rids2[0], True), (rids2[1], False)} and e2.export.n_pairs == 16


def test_train_kto_runs_on_feedback_and_both_bad_and_refuses_a_pairs_export(db, tmp_path, tiny_model):
    from prefloop.training import TrainingError
    from prefloop.training.train import train

    import_file(db, _feedback(tmp_path, ROWS), "feedback", dataset="chat")
    e = export_pairs(db, tmp_path / "kto", PairFilters(test_fraction=0.2), ExportOptions(format="kto"))
    r = train(db, "kto", overrides={"model": str(tiny_model), "export_id": e.export.id, "max_steps": 2,
                                   "max_length": 64, "save_steps": 1000, "per_device_train_batch_size": 4})
    assert r.run.status == "finished" and r.run.kind == "kto" and r.run.export_id == e.export.id
    assert r.summary["desirable"] > 0 and r.summary["undesirable"] > 0 and "eval" in r.summary
    (pid, rids), = make_pairs(db, 1)
    db.comparisons.record(pid, [[rids[0]], [rids[1]]], labeler_kind="human", labeler="x")
    pairs = export_pairs(db, tmp_path / "pairs", PairFilters())
    n_runs = len(db.runs.list())
    with pytest.raises(TrainingError, match="holds pairs: train kto needs unpaired labels"):
        train(db, "kto", overrides={"model": str(tiny_model), "export_id": pairs.export.id})
    with pytest.raises(TrainingError, match="holds unpaired labels: train dpo needs pairs"):
        train(db, "dpo", overrides={"model": str(tiny_model), "export_id": e.export.id})
    assert len(db.runs.list()) == n_runs
