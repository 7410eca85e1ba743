"""Label quality: labeler reliability (Dawid-Skene via crowd-kit) on synthetic crowds of known
accuracy, soft and weighted labels in exports, and gating AI labelers by their agreement with
people."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prefloop.core.labels import dawid_skene
from prefloop.store.export_files import export_pairs
from prefloop.store.pairs import PairFilters, derive_pairs
from prefloop.store.records import ResponseIn

ACCURACIES = {"w95": 0.95, "w85": 0.85, "w75": 0.75, "w65": 0.65, "w55": 0.55, "adversary": 0.30}


def _crowd(n_items: int, seed: int) -> tuple[pa.Table, np.ndarray]:
    """Every labeler labels every item; a label is right with the labeler's accuracy."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n_items)
    rows = {"prompt_id": [], "lo": [], "hi": [], "labeler": [], "labeler_kind": [], "label": []}
    for name, acc in ACCURACIES.items():
        right = rng.random(n_items) < acc
        for i in range(n_items):
            rows["prompt_id"].append(i)
            rows["lo"].append(2 * i)
            rows["hi"].append(2 * i + 1)
            rows["labeler"].append(name)
            rows["labeler_kind"].append("human")
            rows["label"].append(int(truth[i] if right[i] else 1 - truth[i]))
    return pa.table(rows), truth


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dawid_skene_ranks_a_synthetic_crowd_and_beats_the_majority(seed):
    votes, truth = _crowd(500, seed)
    posterior, stats = dawid_skene(votes)
    # the estimates rank the labelers as their true accuracies do, the adversary last
    assert [s.labeler for s in stats] == list(ACCURACIES)
    for s in stats:
        assert s.accuracy == pytest.approx(ACCURACIES[s.labeler], abs=0.06)
        assert s.accuracy_low <= s.accuracy <= s.accuracy_high and s.votes == 500
    ds = np.array([posterior[(i, 2 * i, 2 * i + 1)] > 0.5 for i in range(500)]).astype(int)
    df = votes.to_pandas()
    share = df.groupby("prompt_id").label.mean().sort_index().values
    majority = np.where(share == 0.5, np.random.default_rng(seed).integers(0, 2, 500), share > 0.5)
    acc_ds, acc_majority = (ds == truth).mean(), (majority == truth).mean()
    assert acc_ds > acc_majority and acc_ds > 0.95, (acc_ds, acc_majority)


def test_gold_items_anchor_the_estimates_and_report_gold_accuracy():
    votes, truth = _crowd(200, 5)
    gold = {(i, 2 * i, 2 * i + 1): int(truth[i]) for i in range(40)}
    _, stats = dawid_skene(votes, gold)
    by = {s.labeler: s for s in stats}
    assert by["w95"].gold_votes == 40 and by["w95"].gold_accuracy > 0.85
    assert by["adversary"].gold_accuracy < 0.45 and by["adversary"].accuracy < 0.45


def _store_with_crowd(db, n_items: int = 60, seed: int = 0):
    """``n_items`` prompts with two responses, labeled by a careful annotator (0.95), two
    careless ones (0.6), an AI judge that agrees with people and one that contradicts them."""
    rng = np.random.default_rng(seed)
    pids = db.prompts.add([[{"role": "user", "content": f"question {i}"}] for i in range(n_items)],
                          dataset="crowd")
    truth = {}
    for i, pid in enumerate(pids):
        good, bad = db.responses.add([ResponseIn(pid, f"good answer {i}"), ResponseIn(pid, f"bad answer {i}")])
        truth[pid] = (good, bad)
    for name in ("careful", "careless1", "careless2"):
        db.annotators.add(name)
    ann = {a.name: a.id for a in db.annotators.list()}
    labelers = [("careful", 0.95, "human"), ("careless1", 0.6, "human"), ("careless2", 0.6, "human"),
                ("good-judge", 0.9, "ai"), ("contrarian-judge", 0.1, "ai")]
    for name, acc, kind in labelers:
        for pid, (good, bad) in truth.items():
            ranking = [[good], [bad]] if rng.random() < acc else [[bad], [good]]
            if kind == "human":
                db.comparisons.record(pid, ranking, labeler_kind="human", annotator_id=ann[name])
            else:
                db.comparisons.record(pid, ranking, labeler_kind="ai", labeler=name)
    return truth


@pytest.mark.model   # Dawid-Skene over a synthetic crowd of thousands of votes: 6-8 s
def test_an_export_carries_soft_labels_gates_judges_and_is_deterministic(db, tmp_path):
    truth = _store_with_crowd(db)
    gated = PairFilters(source="all", aggregate="dawid-skene", ai_min_agreement=0.7, ai_min_overlap=30)
    table, counts = derive_pairs(db, gated)
    verdicts = {a["labeler"]: a for a in counts.ai_labelers}
    assert verdicts["good-judge"]["kept"] and not verdicts["contrarian-judge"]["kept"]
    assert verdicts["contrarian-judge"]["overlap"] >= 30 and verdicts["contrarian-judge"]["agreement"] < 0.3
    assert set(table.column_names) >= {"p_chosen", "weight"}
    p = np.array(table["p_chosen"].to_pylist())
    assert ((p > 0.5) & (p <= 1.0)).all()
    right = [truth[r["prompt_id"]][0] == r["chosen_id"] for r in table.select(["prompt_id", "chosen_id"]).to_pylist()]
    assert np.mean(right) > 0.9

    # majority over everyone (the contrarian judge included) is worse than gated Dawid-Skene
    majority, _ = derive_pairs(db, PairFilters(source="all"))
    right_majority = [truth[r["prompt_id"]][0] == r["chosen_id"]
                      for r in majority.select(["prompt_id", "chosen_id"]).to_pylist()]
    assert np.mean(right) * len(right) > np.mean(right_majority) * len(right_majority)

    # confident pairs only: the rest is counted, not silently dropped
    a = export_pairs(db, tmp_path / "a", PairFilters(**{**gated.__dict__, "min_confidence": 0.9}))
    assert a.counts.n_below_confidence > 0 and a.export.n_pairs + a.counts.n_below_confidence == table.num_rows
    assert min(pq.read_table(tmp_path / "a" / "train.parquet")["p_chosen"].to_pylist()) >= 0.9
    assert a.export.filters["aggregate"] == "dawid-skene"
    b = export_pairs(db, tmp_path / "b", PairFilters(**{**gated.__dict__, "min_confidence": 0.9}))
    assert a.export.sha256 == b.export.sha256


def test_adjudicated_falls_back_to_majority_until_reviewers_decide(db):
    _store_with_crowd(db, n_items=10)
    adjudicated, counts = derive_pairs(db, PairFilters(aggregate="adjudicated"))
    majority, _ = derive_pairs(db, PairFilters(aggregate="majority"))
    assert adjudicated.equals(majority)
    assert "adjudicated" in counts.warnings[0]


@pytest.mark.model   # Dawid-Skene over a synthetic crowd of thousands of votes: 6-8 s
def test_labeler_reliability_ranks_people_and_judges_and_measures_length_bias(db, cli):
    _store_with_crowd(db)
    from prefloop.store.reliability import labeler_reliability

    stats = {s.labeler: s for s in labeler_reliability(db)}
    assert set(stats) == {"careful", "careless1", "careless2", "good-judge", "contrarian-judge"}
    assert stats["careful"].accuracy > max(stats["careless1"].accuracy, stats["careless2"].accuracy)
    assert stats["contrarian-judge"].accuracy < 0.3 and stats["contrarian-judge"].kind == "ai"
    # "good answer i" is longer than "bad answer i" by one character: the careful labeler
    # prefers the longer response about as often as it is right
    assert stats["careful"].extra["longer_chosen"] > 0.85
    out = cli("--db", str(db.path), "stats", "--labelers")
    assert out.exit_code == 0, out.output
    assert "careful" in out.output and "contrarian-judge" in out.output and "accuracy" in out.output


def test_soft_bradley_terry_loss_matches_the_hard_loss_and_respects_weights():
    import torch

    from prefloop.training.reward import soft_bradley_terry_loss

    margin = torch.tensor([2.0, -1.0, 0.5])
    hard = -torch.nn.functional.logsigmoid(margin).mean()
    assert soft_bradley_terry_loss(margin, torch.ones(3)) == pytest.approx(float(hard))
    # p = 0.5 is minimized at margin 0; a zero weight removes a pair
    assert soft_bradley_terry_loss(torch.zeros(1), torch.full((1,), 0.5)) < \
        soft_bradley_terry_loss(torch.ones(1), torch.full((1,), 0.5))
    w = torch.tensor([1.0, 0.0, 1.0])
    assert soft_bradley_terry_loss(margin, torch.ones(3), w) == pytest.approx(
        float(-torch.nn.functional.logsigmoid(margin[[0, 2]]).mean()))


def test_a_reward_model_trains_on_soft_weighted_labels_and_bad_settings_are_one_error(db, tmp_path, tiny_model):
    from prefloop.training import TrainingError
    from prefloop.training.train import train

    _store_with_crowd(db, n_items=24)
    e = export_pairs(db, tmp_path / "soft", PairFilters(aggregate="dawid-skene", test_fraction=0.2))
    fast = {"model": str(tiny_model), "export_id": e.export.id, "max_steps": 2, "max_length": 64,
            "save_steps": 1000, "per_device_train_batch_size": 4}
    r = train(db, "rm", overrides={**fast, "label_smoothing": "auto", "label_weights": True})
    assert r.run.status == "finished" and r.summary["eval"]["all"]["n"] > 0
    assert r.summary["train_loss"] > 0
    n_runs = len(db.runs.list())
    with pytest.raises(TrainingError, match="label_smoothing 'often'"):
        train(db, "rm", overrides={**fast, "label_smoothing": "often"})
    assert len(db.runs.list()) <= n_runs + 1
