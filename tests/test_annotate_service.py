"""The labeling app's logic, without a browser: tasks, rankings, edits, undo, gold, admin."""

from __future__ import annotations

import pytest

from prefloop import store
from prefloop.annotate_app.auth import (
    authenticate,
    caller,
    hash_password,
    verify_password,
)
from prefloop.annotate_app.config import AppConfig
from prefloop.annotate_app.errors import InvalidSubmission, NotAuthorized
from prefloop.annotate_app.services import AppServices
from prefloop.core.agreement import krippendorff_alpha

from .conftest import make_pairs


@pytest.fixture
def svc(db):
    return AppServices(db, AppConfig(undo_seconds=60))


def _user(db, name, role="annotator"):
    return db.annotators.add(name, role, hash_password("correct horse"))


def test_passwords_are_hashed_and_checked(db):
    a = _user(db, "ann")
    assert a.password_hash.startswith("$argon2id$") and "correct horse" not in a.password_hash
    assert authenticate(db, "ann", "correct horse") and not authenticate(db, "ann", "wrong")
    db.annotators.update("ann", active=False)
    assert not authenticate(db, "ann", "correct horse")
    assert not authenticate(db, "nobody", "correct horse")
    assert verify_password(None, "x") is False
    with pytest.raises(ValueError, match="too short"):
        hash_password("short")


def test_caller_checks_login_and_role(db):
    _user(db, "ann")
    _user(db, "boss", "admin")

    class R:
        def __init__(self, username):
            self.username = username

    assert caller(db, R("ann")).name == "ann"
    assert caller(db, R("boss"), role="admin").name == "boss"
    for request, role in ((None, None), (R(None), None), (R("ghost"), None), (R("ann"), "admin")):
        with pytest.raises(NotAuthorized):
            caller(db, request, role=role)


def test_two_response_task_with_edit_rationale_and_flags(db, svc):
    (p, rids), = make_pairs(db, 1)
    db.tasks.create([store.TaskIn(p, rids)])
    ann = _user(db, "ann")
    view = svc.labeling.next_task(ann)
    assert view.labels == ["A", "B"] and sorted(view.response_ids) == sorted(rids)
    assert svc.labeling.next_task(ann).response_ids == view.response_ids      # stable order on reload
    cid = svc.labeling.submit_pair(ann, view.task_id, "B", rationale="clearer", flags=["needs_expert"],
                          edit="An even better answer.")
    c = db.comparisons.get(cid)
    assert c.ranking == [[view.id_of("B")], [view.id_of("A")]] and c.flags == ["needs_expert"]
    assert c.rationale == "clearer" and c.duration_ms is not None and c.labeler == "ann"
    edits = [r for r in db.responses.for_prompts([p])[p] if r.origin == "human_edit"]
    assert len(edits) == 1 and edits[0].parent_response_id == view.id_of("B")
    edit_cmp = [x for x in db.comparisons.list(labeler="ann") if x.task_id is None]
    assert edit_cmp[0].ranking == [[edits[0].id], [view.id_of("B")]]
    assert svc.labeling.next_task(ann) is None


def test_both_bad_is_a_flag_not_a_ranking(db, svc):
    (p, rids), = make_pairs(db, 1)
    db.tasks.create([store.TaskIn(p, rids)])
    ann = _user(db, "ann")
    cid = svc.labeling.submit_pair(ann, svc.labeling.next_task(ann).task_id, "both_bad")
    c = db.comparisons.get(cid)
    assert c.ranking == [sorted(rids)] and c.flags == ["both_bad"]


def test_ranking_with_ties_and_validation(db, svc):
    (p, rids), = make_pairs(db, 1, k=3)
    db.tasks.create([store.TaskIn(p, rids)])
    ann = _user(db, "ann")
    view = svc.labeling.next_task(ann)
    with pytest.raises(InvalidSubmission, match="every response a rank"):
        svc.labeling.submit_ranks(ann, view.task_id, {"A": 1, "B": 2})
    with pytest.raises(InvalidSubmission, match="without gaps"):
        svc.labeling.submit_ranks(ann, view.task_id, {"A": 1, "B": 3, "C": 3})
    with pytest.raises(InvalidSubmission, match="rank them instead"):
        svc.labeling.submit_pair(ann, view.task_id, "A")
    cid = svc.labeling.submit_ranks(ann, view.task_id, {"A": 2, "B": 1, "C": 2})
    assert db.comparisons.get(cid).ranking == [[view.id_of("B")], sorted([view.id_of("A"), view.id_of("C")])]


def test_skip_and_undo(db, svc):
    made = make_pairs(db, 2)
    db.tasks.create([store.TaskIn(p, r, priority=2 - i) for i, (p, r) in enumerate(made)])
    ann = _user(db, "ann")
    first = svc.labeling.next_task(ann)
    svc.labeling.skip(ann, first.task_id)
    second = svc.labeling.next_task(ann)
    assert second.task_id != first.task_id
    cid = svc.labeling.submit_pair(ann, second.task_id, "A")
    assert svc.labeling.next_task(ann) is None
    assert svc.labeling.undo(ann, cid) == second.task_id
    assert svc.labeling.next_task(ann).task_id == second.task_id
    other = _user(db, "other")
    with pytest.raises(store.LeaseError):
        svc.labeling.undo(other, cid)


def test_a_submission_must_be_for_the_current_task(db, svc):
    made = make_pairs(db, 2)
    t1, t2 = db.tasks.create([store.TaskIn(p, r) for p, r in made])
    ann = _user(db, "ann")
    assert svc.labeling.next_task(ann).task_id == t1
    with pytest.raises(InvalidSubmission, match="not your current task"):
        svc.labeling.submit_pair(ann, t2, "A")


def test_gold_items_score_annotators(db):
    made = make_pairs(db, 3)
    for p, (a, b) in made:
        db.comparisons.record(p, [[a], [b]], labeler_kind="human", labeler="dataset")
    gold = db.tasks.create_gold()
    assert len(gold) == 3 and db.tasks.list(open_only=True) != []
    svc = AppServices(db, AppConfig(gold_rate=1.0))
    ann = _user(db, "ann")
    answers = []
    for _ in range(3):
        view = svc.labeling.next_task(ann)
        assert view.gold
        truth = db.tasks.get(view.task_id).gold_ranking[0][0]
        right = len(answers) < 2                               # right twice, then wrong
        label = view.labels[view.response_ids.index(truth)] if right else \
            view.labels[1 - view.response_ids.index(truth)]
        svc.labeling.submit_pair(ann, view.task_id, label)
        answers.append(right)
    row = [r for r in svc.admin.dashboard()["annotators"] if r["annotator"] == "ann"][0]
    assert row["gold_answered"] == 3 and row["gold_accuracy"] == pytest.approx(2 / 3, abs=1e-3)


def test_admin_dashboard_counts_and_agreement(db, svc):
    (p, rids), = make_pairs(db, 1)
    db.tasks.create([store.TaskIn(p, rids, overlap=2)])
    a, b = _user(db, "a"), _user(db, "b")
    for u in (a, b):
        v = svc.labeling.next_task(u)
        svc.labeling.submit_pair(u, v.task_id, v.labels[v.response_ids.index(rids[0])])
    board = svc.admin.dashboard()
    assert {r["annotator"]: r["total"] for r in board["annotators"]} == {"a": 1, "b": 1}
    assert board["datasets"][0]["completed"] == 1
    assert board["agreement"]["pairwise_agreement"] == 1.0
    assert board["agreement"]["units_with_overlap"] == 1
    assert svc.admin.queue() == []
    r = svc.admin.add_tasks(dataset=None, overlap=1, priority=0, limit=None)      # already queued
    assert (r.created, r.existing, r.differing, r.updated) == (0, 1, 1, 0)
    r = svc.admin.add_tasks(dataset=None, overlap=3, priority=5, limit=None, update=True)
    assert (r.created, r.existing, r.updated) == (0, 1, 1)
    assert (db.tasks.get(r.ids[0]).overlap, db.tasks.get(r.ids[0]).priority) == (3, 5)
    assert [t.id for t, _, _ in db.tasks.list(open_only=True)] == r.ids      # a free slot again
    with pytest.raises(InvalidSubmission):
        svc.jobs.start("train", "rm; rm -rf /", {})
    with pytest.raises(InvalidSubmission, match="not allowed"):
        svc.jobs.start("train", "rm", {"output_dir": "/etc"})


def test_krippendorff_alpha_perfect_and_chance():
    assert krippendorff_alpha([[1, 1], [-1, -1], [0, 0]]) == pytest.approx(1.0)
    assert krippendorff_alpha([[1, -1], [-1, 1]]) < 0
