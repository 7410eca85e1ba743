"""Recorded prompt sets (train, dev, test): one set per prompt, drawn by a hash of the text,
left out of every training export, and a CLI that names the option in its one-line errors."""

from __future__ import annotations

import pytest

from prefloop import store
from prefloop.pipelines.prompt_sets import PromptSetPlan, PromptSetsError, plan_prompt_sets, record_prompt_sets
from prefloop.store.export_files import export_pairs
from prefloop.store.pairs import PairFilters, derive_pairs


def _labeled(db: store.Store, n: int, dataset: str = "d") -> list[int]:
    pids = db.prompts.add([[{"role": "user", "content": f"question {i}"}] for i in range(n)], dataset=dataset)
    for pid in pids:
        a, b = db.responses.add([store.ResponseIn(pid, f"good {pid}"), store.ResponseIn(pid, f"bad {pid}")])
        db.comparisons.record(pid, [[a], [b]], labeler_kind="human", labeler="crowd")
    return pids


def test_sets_are_drawn_by_text_so_two_stores_agree_and_a_rerun_changes_nothing(tmp_path):
    a, b = store.Store.init(tmp_path / "a.duckdb"), store.Store.init(tmp_path / "b.duckdb")
    _labeled(a, 30)
    b.prompts.add([[{"role": "user", "content": "an unrelated prompt first"}]], dataset="other")
    _labeled(b, 30)
    plan = PromptSetPlan("d", test=5, dev=4, subset="harmless")
    record_prompt_sets(a, plan)
    record_prompt_sets(b, plan)
    texts = {name: {s.prompts.get(i).messages[0]["content"] for i in s.prompt_sets.ids(name)}
             for s in (a, b) for name in ("test",)}
    assert len(texts) == 1        # both stores hold the same test texts, whatever their ids
    assert len(a.prompt_sets.ids("test")) == 5 and len(a.prompt_sets.ids("dev", "harmless")) == 4
    assert len(a.prompt_sets.ids("train")) == 21
    record_prompt_sets(a, plan)
    assert [(c.split, c.prompts) for c in a.prompt_sets.counts()] == [("train", 21), ("dev", 4), ("test", 5)]


def test_a_prompt_never_moves_to_another_set(db):
    _labeled(db, 20)
    record_prompt_sets(db, PromptSetPlan("d", test=5, dev=3))
    before = db.prompt_sets.counts()
    with pytest.raises(PromptSetsError, match=r"--test 6 --dev 3 .*is already in the (dev|train) set"):
        record_prompt_sets(db, PromptSetPlan("d", test=6, dev=3))
    assert db.prompt_sets.counts() == before


def test_too_few_prompts_and_bad_counts_name_the_option(db):
    _labeled(db, 4)
    with pytest.raises(PromptSetsError, match="--test 3 --dev 2: dataset 'd' has 4 prompts, 6 needed"):
        record_prompt_sets(db, PromptSetPlan("d", test=3, dev=2))
    with pytest.raises(PromptSetsError, match="--dev: expected an integer >= 0"):
        PromptSetPlan("d", test=1, dev=-1)
    with pytest.raises(PromptSetsError, match="--dataset 'nope': no prompts"):
        record_prompt_sets(db, PromptSetPlan("nope", test=1))
    assert db.prompt_sets.counts() == []


def test_the_plan_without_train_leaves_the_rest_unassigned(db):
    _labeled(db, 10)
    rows = plan_prompt_sets(db.prompts.list(dataset="d"), PromptSetPlan("d", test=2, dev=1, train=False))
    assert sorted(split for _, split, _ in rows) == ["dev", "test", "test"]


def test_exports_leave_out_dev_and_test_prompts_unless_asked(db, tmp_path):
    _labeled(db, 20)
    record_prompt_sets(db, PromptSetPlan("d", test=4, dev=3))
    held = set(db.prompt_sets.ids("test")) | set(db.prompt_sets.ids("dev"))
    table, counts = derive_pairs(db, PairFilters())
    assert counts.n_held_out == 7 and table.num_rows == 13
    assert not held & set(table["prompt_id"].to_pylist())
    table, counts = derive_pairs(db, PairFilters(include_held_out=True))
    assert counts.n_held_out == 0 and table.num_rows == 20
    r = export_pairs(db, tmp_path / "ex", PairFilters())
    assert r.export.n_pairs == 13


def test_the_random_label_control_swaps_about_half_and_keeps_the_pairs(db):
    _labeled(db, 200)
    clean, _ = derive_pairs(db, PairFilters())
    noisy, counts = derive_pairs(db, PairFilters(random_labels=True, seed=3))
    assert 70 < counts.n_swapped < 130
    good = [t["content"].startswith("good") for t in (m[0] for m in noisy["chosen"].to_pylist())]
    assert sum(not g for g in good) == counts.n_swapped
    pairs = lambda t: sorted(map(frozenset, zip(t["chosen_id"].to_pylist(), t["rejected_id"].to_pylist())))  # noqa: E731
    assert pairs(clean) == pairs(noisy)
    again, c2 = derive_pairs(db, PairFilters(random_labels=True, seed=3))
    assert c2.n_swapped == counts.n_swapped and again["chosen_id"].to_pylist() == noisy["chosen_id"].to_pylist()


def test_set_sources_feed_generation_and_evaluation(db):
    from prefloop.store.sources import prompts_from

    _labeled(db, 12)
    record_prompt_sets(db, PromptSetPlan("d", test=3, dev=2, subset="benign"))
    assert [p.id for p in prompts_from(db, "set:test")] == db.prompt_sets.ids("test")
    assert len(prompts_from(db, "set:dev:benign")) == 2
    with pytest.raises(store.NotFoundError, match="no prompts in 'set:dev:harmless'"):
        prompts_from(db, "set:dev:harmless")
    with pytest.raises(store.ValidationError, match="expected set:SPLIT"):
        prompts_from(db, "set:holdout")


def test_the_cli_records_and_shows_sets_and_refuses_a_move_in_one_line(db, cli):
    _labeled(db, 20)
    db.close()
    ok = cli("--db", db.path, "prompt-sets", "make", "--dataset", "d", "--test", "4", "--dev", "2", "--subset", "harmless")
    assert ok.exit_code == 0 and "harmless" in ok.output
    bad = cli("--db", db.path, "prompt-sets", "make", "--dataset", "d", "--test", "5")
    assert bad.exit_code == 1
    assert bad.output.strip().splitlines()[-1].startswith("Error: --test 5 --dev 0")
    assert "Traceback" not in bad.output
    shown = cli("--db", db.path, "prompt-sets", "show")
    assert "test" in shown.output and "14" in shown.output
