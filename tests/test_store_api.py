"""The typed store API: dedup, tasks and leases, comparisons, judgments, runs."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest

import store
from store import ResponseIn, TaskIn, utcnow

from .conftest import make_pairs

U = [{"role": "user", "content": "Hello?"}]


def test_prompts_are_deduplicated_by_content(db):
    ids = db.add_prompts([U, [{"role": "user", "content": "Other"}], U], dataset="d")
    assert ids[0] == ids[2] != ids[1]
    assert db.add_prompts([U]) == [ids[0]]
    assert db.get_prompt(ids[0]).messages == U


@pytest.mark.parametrize("bad, where", [
    ([], "non-empty"),
    ([{"role": "robot", "content": "x"}], "messages[0].role"),
    ([{"role": "user", "content": 3}], "messages[0].content"),
    ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "end with a user"),
])
def test_bad_prompts_are_refused_with_the_field(db, bad, where):
    with pytest.raises(store.ValidationError, match=where.replace("[", r"\[").replace("]", r"\]")):
        db.add_prompts([bad])


def test_responses_are_deduplicated_per_prompt(db):
    p1, p2 = db.add_prompts([U, [{"role": "user", "content": "Q2"}]])
    ids = db.add_responses([ResponseIn(p1, "same"), ResponseIn(p2, "same"), ResponseIn(p1, "same")])
    assert ids[0] == ids[2] != ids[1]
    with pytest.raises(store.ValidationError, match="do not exist"):
        db.add_responses([ResponseIn(999, "x")])
    with pytest.raises(store.ValidationError, match="empty"):
        db.add_responses([ResponseIn(p1, "  ")])


def test_lease_serves_priority_first_and_never_the_same_task_twice(db):
    (p1, r1), (p2, r2) = make_pairs(db, 2)
    low, high = db.create_tasks([TaskIn(p1, r1, overlap=2, priority=0),
                                 TaskIn(p2, r2, overlap=1, priority=5)])
    a = db.add_annotator("a").id
    b = db.add_annotator("b").id
    c = db.add_annotator("c").id

    lease = db.lease_next_task(a)
    assert lease.task.id == high and [r.id for r in lease.responses] == r2
    assert db.lease_next_task(a).task.id == high  # a reload gives the same lease
    db.record_comparison(p2, [[r2[0]], [r2[1]]], labeler_kind="human", labeler="a",
                         task_id=high, annotator_id=a)
    assert db.lease_next_task(b).task.id == low   # high is full (overlap 1)
    db.record_comparison(p1, [[r1[1]], [r1[0]]], labeler_kind="human", labeler="b",
                         task_id=low, annotator_id=b)
    assert db.lease_next_task(a).task.id == low    # second slot of low
    db.record_comparison(p1, [[r1[1]], [r1[0]]], labeler_kind="human", labeler="a",
                         task_id=low, annotator_id=a)
    assert db.lease_next_task(a) is None            # a has done both
    assert db.lease_next_task(c) is None            # both tasks are full


def test_an_expired_lease_returns_the_task_to_the_queue(db):
    (p, r), = make_pairs(db, 1)
    t, = db.create_tasks([TaskIn(p, r, overlap=1)])
    a, b = db.add_annotator("a").id, db.add_annotator("b").id
    t0 = utcnow()
    assert db.lease_next_task(a, lease_seconds=60, now=t0).task.id == t
    assert db.lease_next_task(b, now=t0 + timedelta(seconds=30)) is None
    assert db.lease_next_task(b, now=t0 + timedelta(seconds=61)).task.id == t
    # a comes back late: the slot is taken, the submission is refused, nothing is recorded
    db.record_comparison(p, [[r[0]], [r[1]]], labeler_kind="human", labeler="b", task_id=t,
                         annotator_id=b, now=t0 + timedelta(seconds=90))
    with pytest.raises(store.LeaseError, match="completed by others"):
        db.record_comparison(p, [[r[0]], [r[1]]], labeler_kind="human", labeler="a", task_id=t,
                             annotator_id=a, now=t0 + timedelta(seconds=95))
    assert len(db.list_comparisons(task_id=t)) == 1


def test_submissions_need_a_lease_and_cover_the_task(db):
    (p, r), = make_pairs(db, 1, k=3)
    t, = db.create_tasks([TaskIn(p, r)])
    a = db.add_annotator("a").id
    with pytest.raises(store.LeaseError, match="no lease"):
        db.record_comparison(p, [[r[0]], [r[1], r[2]]], labeler_kind="human", labeler="a",
                             task_id=t, annotator_id=a)
    db.lease_next_task(a)
    with pytest.raises(store.ValidationError, match="exactly"):
        db.record_comparison(p, [[r[0]], [r[1]]], labeler_kind="human", labeler="a",
                             task_id=t, annotator_id=a)
    cid = db.record_comparison(p, [[r[0]], [r[2], r[1]]], labeler_kind="human", labeler="a",
                               task_id=t, annotator_id=a, flags=["unsafe"], duration_ms=1200)
    c = db.get_comparison(cid)
    assert c.ranking == [[r[0]], sorted([r[1], r[2]])] and c.flags == ["unsafe"]
    with pytest.raises(store.LeaseError, match="'done'"):
        db.record_comparison(p, [[r[0]], [r[1], r[2]]], labeler_kind="human", labeler="a",
                             task_id=t, annotator_id=a)


@pytest.mark.parametrize("ranking, match", [
    ([], "non-empty"), ([[1], []], r"ranking\[1\]"), ([[1], [1]], "twice"), ([["x"]], "integer")])
def test_bad_rankings_are_refused(db, ranking, match):
    (p, r), = make_pairs(db, 1)
    with pytest.raises(store.ValidationError, match=match):
        db.record_comparison(p, ranking, labeler_kind="ai", labeler="j")


def test_a_ranking_must_use_responses_of_its_prompt(db):
    (p1, r1), (p2, r2) = make_pairs(db, 2)
    with pytest.raises(store.ValidationError, match="not responses to prompt"):
        db.record_comparison(p1, [[r1[0]], [r2[0]]], labeler_kind="ai", labeler="j")


def test_skip_and_undo(db):
    (p, r), (p2, r2) = make_pairs(db, 2)
    t1, t2 = db.create_tasks([TaskIn(p, r, priority=1), TaskIn(p2, r2)])
    a = db.add_annotator("a").id
    assert db.lease_next_task(a).task.id == t1
    db.skip_task(t1, a)
    assert db.lease_next_task(a).task.id == t2   # the skipped task is not offered again
    cid = db.record_comparison(p2, [[r2[0]], [r2[1]]], labeler_kind="human", labeler="a",
                               task_id=t2, annotator_id=a)
    assert db.undo_comparison(cid, a) == t2
    assert db.list_comparisons(task_id=t2) == []
    assert db.lease_next_task(a).task.id == t2   # leased again to fix the answer
    cid = db.record_comparison(p2, [[r2[1]], [r2[0]]], labeler_kind="human", labeler="a",
                               task_id=t2, annotator_id=a)
    with pytest.raises(store.LeaseError, match="undo window"):
        db.undo_comparison(cid, a, now=utcnow() + timedelta(minutes=5))


def test_tasks_are_not_duplicated_and_need_two_responses(db):
    (p, r), = make_pairs(db, 1, k=3)
    t1, = db.create_tasks([TaskIn(p, r)])
    assert db.create_tasks([TaskIn(p, list(reversed(r)))]) == [t1]
    with pytest.raises(store.ValidationError, match="at least 2"):
        db.create_tasks([TaskIn(p, r[:1])])
    with pytest.raises(store.ValidationError, match="gold ranking"):
        db.create_tasks([TaskIn(p, r[:2], gold_ranking=[[r[0]], [r[2]]])])


def test_judgments_keep_the_first_row_per_cache_key(db):
    j = store.JudgmentIn(cache_key="k1", judge_model="m", template="pairwise@1",
                         raw_output="A", verdict="A", order="AB", tokens_in=10, tokens_out=1,
                         latency_ms=12.5, meta={"attempts": 1})
    ids = db.record_judgments([j, store.JudgmentIn("k2", "m", "pairwise@1", "B", "B")])
    again = db.record_judgments([store.JudgmentIn("k1", "m", "pairwise@1", "other", "B")])
    assert again == ids[:1]
    got = db.judgments_by_cache_key(["k1", "k2", "k3"])
    assert set(got) == {"k1", "k2"} and got["k1"].raw_output == "A" and got["k1"].meta == {"attempts": 1}


def test_runs_metrics_and_reaping_a_killed_run(db):
    run = db.create_run("rm", {"lr": 1e-5})
    db.add_run_metrics(run.id, [(1, "loss", 0.7), (2, "loss", 0.5), (2, "accuracy", 0.6)])
    assert [m.value for m in db.run_metrics(run.id, "loss")] == [0.7, 0.5]
    done = db.update_run(run.id, status="finished", summary={"accuracy": 0.6})
    assert done.finished_at is not None and done.summary == {"accuracy": 0.6}

    # A run whose process died (SIGKILL) is not left "running" forever.
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    orphan = db.create_run("dpo", {})
    with db.atomic() as con:  # pretend the dead child created it
        con.execute("UPDATE runs SET pid = ? WHERE id = ?", [int(child.stdout), orphan.id])
    assert db.reap_runs() == [orphan.id]
    assert db.get_run(orphan.id).status == "interrupted"
    assert db.reap_runs() == []
    assert db.get_run(run.id).status == "finished"


def test_exports_are_recorded(db):
    e = db.record_export({"source": "human"}, 3, "/x", "ab" * 32, 7)
    assert db.get_export(e.id) == e and e.filters == {"source": "human"}
    with pytest.raises(store.NotFoundError):
        db.get_export(e.id + 1)


def test_annotators(db):
    a = db.add_annotator("ann", "admin", password_hash="$argon2id$...")
    assert "argon2" not in repr(a)
    with pytest.raises(store.ValidationError, match="already exists"):
        db.add_annotator("ann")
    assert db.update_annotator("ann", active=False).active is False
    assert [x.name for x in db.list_annotators()] == ["ann"]


def test_queue_frontier_falls_back_and_sees_new_tasks(db, monkeypatch):
    monkeypatch.setattr(store.Store, "_FRONTIER", 4)
    monkeypatch.setattr(store.Store, "_CANDIDATES", 2)
    made = make_pairs(db, 8)
    ids = db.create_tasks([TaskIn(p, r) for p, r in made[:7]])
    a, b = db.add_annotator("a").id, db.add_annotator("b").id
    for expected in ids[:5]:                    # a walks past the whole frontier
        lease = db.lease_next_task(a)
        assert lease.task.id == expected
        db.skip_task(expected, a)
    assert db.lease_next_task(a).task.id == ids[5]   # found beyond the cached frontier
    assert db.lease_next_task(b).task.id == ids[0]   # b still starts at the head
    urgent, = db.create_tasks([TaskIn(made[7][0], made[7][1], priority=9)])
    db.skip_task(ids[0], b)
    assert db.lease_next_task(b).task.id == urgent   # a new task refreshes the frontier


def test_a_late_submission_is_accepted_while_the_slot_is_free(db):
    (p, r), = make_pairs(db, 1)
    t, = db.create_tasks([TaskIn(p, r)])
    a = db.add_annotator("a").id
    t0 = utcnow()
    db.lease_next_task(a, lease_seconds=1, now=t0)
    cid = db.record_comparison(p, [[r[0]], [r[1]]], labeler_kind="human", labeler="a", task_id=t,
                               annotator_id=a, now=t0 + timedelta(minutes=5))
    assert db.get_comparison(cid).task_id == t
    assert db.list_tasks(open_only=True) == []
