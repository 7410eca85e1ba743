"""Best-of-n labels from sampled responses: the chosen side is always a finished sample; the
others (finished or cut off) are what it was preferred over."""

from __future__ import annotations

from prefloop import store
from prefloop.training.generate import _label_best, reward_labeler


def _samples(db: store.Store, texts: list[str]) -> tuple[int, list[int]]:
    pid = db.prompts.add([[{"role": "user", "content": "how do I boil an egg?"}]], dataset="t")[0]
    ids = db.responses.add([store.ResponseIn(pid, t, origin="model", model="m") for t in texts])
    return pid, ids


def test_the_best_finished_sample_is_chosen_over_every_other_even_a_better_scored_cut_off_one(db):
    pid, (cut, good, worse) = _samples(db, ["Boil water, then (cut off", "Boil it 9 minutes.", "Eggs."])
    rewards = {cut: 2.0, good: 1.0, worse: -1.0}
    [cid] = _label_best(db, 1, {pid: [cut, good, worse]}, {pid: [good, worse]}, rewards, "run:4")
    c = db.comparisons.get(cid)
    assert c.ranking[0] == [good] and sorted(c.ranking[1]) == sorted([cut, worse])
    assert c.labeler == reward_labeler("run:4") and c.labeler_kind == "ai"
    assert abs(c.confidence - 1 / (1 + 2.718281828 ** 1.0)) < 1e-6     # it scored below the cut one


def test_a_prompt_without_a_finished_sample_or_with_one_sample_gets_no_label(db):
    pid, (a, b) = _samples(db, ["cut one (", "cut two ("])
    assert _label_best(db, 1, {pid: [a, b]}, {pid: []}, {a: 1.0, b: 0.0}, "run:4") == []
    pid2, (only,) = _samples(db, ["Alone, finished."])
    assert _label_best(db, 2, {pid2: [only]}, {pid2: [only]}, {only: 1.0}, "run:4") == []
