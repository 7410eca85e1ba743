"""The typed store API: dedup, tasks and leases, comparisons, judgments, runs."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest

from prefloop import store
from prefloop.store import ResponseIn, TaskIn, utcnow
from prefloop.store.frontier import QueueFrontier

from .conftest import make_pairs

U = [{"role": "user", "content": "Hello?"}]


def test_prompts_are_deduplicated_by_content(db):
    ids = db.prompts.add([U, [{"role": "user", "content": "Other"}], U], dataset="d")
    assert ids[0] == ids[2] != ids[1]
    assert db.prompts.add([U]) == [ids[0]]
    assert db.prompts.get(ids[0]).messages == U


@pytest.mark.parametrize("bad, where", [
    ([], "non-empty"),
    ([{"role": "robot", "content": "x"}], "messages[0].role"),
    ([{"role": "user", "content": 3}], "messages[0].content"),
    ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "end with a user"),
])
def test_bad_prompts_are_refused_with_the_field(db, bad, where):
    with pytest.raises(store.ValidationError, match=where.replace("[", r"\[").replace("]", r"\]")):
        db.prompts.add([bad])


def test_responses_are_deduplicated_per_prompt(db):
    p1, p2 = db.prompts.add([U, [{"role": "user", "content": "Q2"}]])
    ids = db.responses.add([ResponseIn(p1, "same"), ResponseIn(p2, "same"), ResponseIn(p1, "same")])
    assert ids[0] == ids[2] != ids[1]
    with pytest.raises(store.ValidationError, match="do not exist"):
        db.responses.add([ResponseIn(999, "x")])
    with pytest.raises(store.ValidationError, match="empty"):
        db.responses.add([ResponseIn(p1, "  ")])


def test_lease_serves_priority_first_and_never_the_same_task_twice(db):
    (p1, r1), (p2, r2) = make_pairs(db, 2)
    low, high = db.tasks.create([TaskIn(p1, r1, overlap=2, priority=0),
                                 TaskIn(p2, r2, overlap=1, priority=5)])
    a = db.annotators.add("a").id
    b = db.annotators.add("b").id
    c = db.annotators.add("c").id

    lease = db.tasks.lease_next(a)
    assert lease.task.id == high and [r.id for r in lease.responses] == r2
    assert db.tasks.lease_next(a).task.id == high  # a reload gives the same lease
    db.comparisons.record(p2, [[r2[0]], [r2[1]]], labeler_kind="human", labeler="a",
                         task_id=high, annotator_id=a)
    assert db.tasks.lease_next(b).task.id == low   # high is full (overlap 1)
    db.comparisons.record(p1, [[r1[1]], [r1[0]]], labeler_kind="human", labeler="b",
                         task_id=low, annotator_id=b)
    assert db.tasks.lease_next(a).task.id == low    # second slot of low
    db.comparisons.record(p1, [[r1[1]], [r1[0]]], labeler_kind="human", labeler="a",
                         task_id=low, annotator_id=a)
    assert db.tasks.lease_next(a) is None            # a has done both
    assert db.tasks.lease_next(c) is None            # both tasks are full


def test_an_expired_lease_returns_the_task_to_the_queue(db):
    (p, r), = make_pairs(db, 1)
    t, = db.tasks.create([TaskIn(p, r, overlap=1)])
    a, b = db.annotators.add("a").id, db.annotators.add("b").id
    t0 = utcnow()
    assert db.tasks.lease_next(a, lease_seconds=60, now=t0).task.id == t
    assert db.tasks.lease_next(b, now=t0 + timedelta(seconds=30)) is None
    assert db.tasks.lease_next(b, now=t0 + timedelta(seconds=61)).task.id == t
    # a comes back late: the slot is taken, the submission is refused, nothing is recorded
    db.comparisons.record(p, [[r[0]], [r[1]]], labeler_kind="human", labeler="b", task_id=t,
                         annotator_id=b, now=t0 + timedelta(seconds=90))
    with pytest.raises(store.LeaseError, match="completed by others"):
        db.comparisons.record(p, [[r[0]], [r[1]]], labeler_kind="human", labeler="a", task_id=t,
                             annotator_id=a, now=t0 + timedelta(seconds=95))
    assert len(db.comparisons.list(task_id=t)) == 1


def test_submissions_need_a_lease_and_cover_the_task(db):
    (p, r), = make_pairs(db, 1, k=3)
    t, = db.tasks.create([TaskIn(p, r)])
    a = db.annotators.add("a").id
    with pytest.raises(store.LeaseError, match="no lease"):
        db.comparisons.record(p, [[r[0]], [r[1], r[2]]], labeler_kind="human", labeler="a",
                             task_id=t, annotator_id=a)
    db.tasks.lease_next(a)
    with pytest.raises(store.ValidationError, match="exactly"):
        db.comparisons.record(p, [[r[0]], [r[1]]], labeler_kind="human", labeler="a",
                             task_id=t, annotator_id=a)
    cid = db.comparisons.record(p, [[r[0]], [r[2], r[1]]], labeler_kind="human", labeler="a",
                               task_id=t, annotator_id=a, flags=["unsafe"], duration_ms=1200)
    c = db.comparisons.get(cid)
    assert c.ranking == [[r[0]], sorted([r[1], r[2]])] and c.flags == ["unsafe"]
    with pytest.raises(store.LeaseError, match="'done'"):
        db.comparisons.record(p, [[r[0]], [r[1], r[2]]], labeler_kind="human", labeler="a",
                             task_id=t, annotator_id=a)


@pytest.mark.parametrize("ranking, match", [
    ([], "non-empty"), ([[1], []], r"ranking\[1\]"), ([[1], [1]], "twice"), ([["x"]], "integer")])
def test_bad_rankings_are_refused(db, ranking, match):
    (p, r), = make_pairs(db, 1)
    with pytest.raises(store.ValidationError, match=match):
        db.comparisons.record(p, ranking, labeler_kind="ai", labeler="j")


def test_a_ranking_must_use_responses_of_its_prompt(db):
    (p1, r1), (p2, r2) = make_pairs(db, 2)
    with pytest.raises(store.ValidationError, match="not responses to prompt"):
        db.comparisons.record(p1, [[r1[0]], [r2[0]]], labeler_kind="ai", labeler="j")


def test_skip_and_undo(db):
    (p, r), (p2, r2) = make_pairs(db, 2)
    t1, t2 = db.tasks.create([TaskIn(p, r, priority=1), TaskIn(p2, r2)])
    a = db.annotators.add("a").id
    assert db.tasks.lease_next(a).task.id == t1
    db.tasks.skip(t1, a)
    assert db.tasks.lease_next(a).task.id == t2   # the skipped task is not offered again
    cid = db.comparisons.record(p2, [[r2[0]], [r2[1]]], labeler_kind="human", labeler="a",
                               task_id=t2, annotator_id=a)
    assert db.comparisons.undo(cid, a) == t2
    assert db.comparisons.list(task_id=t2) == []
    assert db.tasks.lease_next(a).task.id == t2   # leased again to fix the answer
    cid = db.comparisons.record(p2, [[r2[1]], [r2[0]]], labeler_kind="human", labeler="a",
                               task_id=t2, annotator_id=a)
    with pytest.raises(store.LeaseError, match="undo window"):
        db.comparisons.undo(cid, a, now=utcnow() + timedelta(minutes=5))


def test_tasks_are_not_duplicated_and_need_two_responses(db):
    (p, r), = make_pairs(db, 1, k=3)
    t1, = db.tasks.create([TaskIn(p, r)])
    assert db.tasks.create([TaskIn(p, list(reversed(r)))]) == [t1]
    with pytest.raises(store.ValidationError, match="at least 2"):
        db.tasks.create([TaskIn(p, r[:1])])
    with pytest.raises(store.ValidationError, match="gold ranking"):
        db.tasks.create([TaskIn(p, r[:2], gold_ranking=[[r[0]], [r[2]]])])


def test_judgments_keep_the_first_row_per_cache_key(db):
    j = store.JudgmentIn(cache_key="k1", judge_model="m", template="pairwise@1",
                         raw_output="A", verdict="A", order="AB", tokens_in=10, tokens_out=1,
                         latency_ms=12.5, meta={"attempts": 1})
    ids = db.judgments.record([j, store.JudgmentIn("k2", "m", "pairwise@1", "B", "B")])
    again = db.judgments.record([store.JudgmentIn("k1", "m", "pairwise@1", "other", "B")])
    assert again == ids[:1]
    got = db.judgments.by_cache_key(["k1", "k2", "k3"])
    assert set(got) == {"k1", "k2"} and got["k1"].raw_output == "A" and got["k1"].meta == {"attempts": 1}


def test_runs_metrics_and_reaping_a_killed_run(db):
    run = db.runs.create("rm", {"lr": 1e-5})
    db.runs.add_metrics(run.id, [(1, "loss", 0.7), (2, "loss", 0.5), (2, "accuracy", 0.6)])
    assert [m.value for m in db.runs.metrics(run.id, "loss")] == [0.7, 0.5]
    done = db.runs.update(run.id, status="finished", summary={"accuracy": 0.6})
    assert done.finished_at is not None and done.summary == {"accuracy": 0.6}

    # A run whose process died (SIGKILL) is not left "running" forever.
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    orphan = db.runs.create("dpo", {})
    with db.atomic() as con:  # pretend the dead child created it
        con.execute("UPDATE runs SET pid = ? WHERE id = ?", [int(child.stdout), orphan.id])
    assert db.runs.reap() == [orphan.id]
    assert db.runs.get(orphan.id).status == "interrupted"
    assert db.runs.reap() == []
    assert db.runs.get(run.id).status == "finished"


def test_exports_are_recorded(db):
    e = db.exports.record({"source": "human"}, 3, "/x", "ab" * 32, 7)
    assert db.exports.get(e.id) == e and e.filters == {"source": "human"}
    with pytest.raises(store.NotFoundError):
        db.exports.get(e.id + 1)


def test_annotators(db):
    a = db.annotators.add("ann", "admin", password_hash="$argon2id$...")
    assert "argon2" not in repr(a)
    with pytest.raises(store.ValidationError, match="already exists"):
        db.annotators.add("ann")
    assert db.annotators.update("ann", active=False).active is False
    assert [x.name for x in db.annotators.list()] == ["ann"]


def test_queue_frontier_falls_back_and_sees_new_tasks(db, monkeypatch):
    monkeypatch.setattr(QueueFrontier, "SIZE", 4)
    monkeypatch.setattr(QueueFrontier, "CANDIDATES", 2)
    made = make_pairs(db, 8)
    ids = db.tasks.create([TaskIn(p, r) for p, r in made[:7]])
    a, b = db.annotators.add("a").id, db.annotators.add("b").id
    for expected in ids[:5]:                    # a walks past the whole frontier
        lease = db.tasks.lease_next(a)
        assert lease.task.id == expected
        db.tasks.skip(expected, a)
    assert db.tasks.lease_next(a).task.id == ids[5]   # found beyond the cached frontier
    assert db.tasks.lease_next(b).task.id == ids[0]   # b still starts at the head
    urgent, = db.tasks.create([TaskIn(made[7][0], made[7][1], priority=9)])
    db.tasks.skip(ids[0], b)
    assert db.tasks.lease_next(b).task.id == urgent   # a new task refreshes the frontier


def test_a_late_submission_is_accepted_while_the_slot_is_free(db):
    (p, r), = make_pairs(db, 1)
    t, = db.tasks.create([TaskIn(p, r)])
    a = db.annotators.add("a").id
    t0 = utcnow()
    db.tasks.lease_next(a, lease_seconds=1, now=t0)
    cid = db.comparisons.record(p, [[r[0]], [r[1]]], labeler_kind="human", labeler="a", task_id=t,
                               annotator_id=a, now=t0 + timedelta(minutes=5))
    assert db.comparisons.get(cid).task_id == t
    assert db.tasks.list(open_only=True) == []
