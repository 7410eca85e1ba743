"""Labeling through the JSON API (FastAPI's test client, no server): a blind task with the
responses in the annotator's own order, a label that becomes a human comparison, bulk leases
that each take one label, and clear 4xx answers for bad labels."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from prefloop import store
from prefloop.annotate_app.api import build_api
from prefloop.annotate_app.auth import hash_password
from prefloop.annotate_app.services import AppServices


@pytest.fixture
def api(db):
    keys = {}
    for name, role in (("ann", "annotator"), ("ann2", "annotator")):
        a = db.annotators.add(name, role, hash_password("password123"))
        keys[name] = db.api_keys.create(a.id, name)[1]
    pids = db.prompts.add([[{"role": "user", "content": f"question {i}"}] for i in range(6)], dataset="d")
    for pid in pids:
        rids = db.responses.add([store.ResponseIn(pid, f"model reply {pid}"), store.ResponseIn(pid, f"base reply {pid}")])
        db.tasks.create([store.TaskIn(pid, rids, overlap=1, reason="blind")])
    client = TestClient(build_api(AppServices(db)))

    def call(method, path, key="ann", **kw):
        return client.request(method, "/v1" + path, headers={"Authorization": f"Bearer {keys[key]}"}, **kw)
    return call


def test_a_task_is_blind_and_its_label_is_a_human_comparison(api, db):
    task = api("GET", "/tasks/next").json()["task"]
    assert [r["label"] for r in task["responses"]] == ["A", "B"]
    assert task["prompt"][-1]["content"].startswith("question")
    assert "model" not in task and "response_ids" not in task
    again = api("GET", "/tasks/next").json()["task"]
    assert again["task_id"] == task["task_id"]              # the lease holds until labeled
    picked = next(r for r in task["responses"] if r["text"].startswith("model reply"))
    out = api("POST", f"/tasks/{task['task_id']}/label", json={"choice": picked["label"]}).json()
    c = db.comparisons.get(out["comparison_id"])
    assert c.labeler_kind == "human" and c.labeler == "ann"
    winner = db.responses.get_many([c.ranking[0][0]])[0]
    assert winner.text.startswith("model reply")
    assert out["task"]["task_id"] != task["task_id"]


def test_bulk_leases_are_labeled_one_by_one_and_never_leased_twice(api, db):
    tasks = api("POST", "/tasks/lease", json={"n": 4}).json()["tasks"]
    assert len({t["task_id"] for t in tasks}) == 4
    other = api("POST", "/tasks/lease", key="ann2", json={"n": 10}).json()["tasks"]
    assert {t["task_id"] for t in other}.isdisjoint(t["task_id"] for t in tasks)
    assert len(other) == 2                     # overlap 1: the rest are held by ann
    for t in tasks:
        r = api("POST", f"/tasks/{t['task_id']}/label", json={"choice": "tie", "next": False})
        assert r.status_code == 200 and r.json()["task"] is None
    assert len(db.comparisons.list(labeler_kind="human")) == 4
    assert api("POST", "/tasks/lease", json={"n": 4}).json()["tasks"] == []


@pytest.mark.parametrize("body, status, words", [
    ({"choice": "C"}, 422, "choice 'C'"),
    ({"choice": "A", "flags": ["nonsense"]}, 422, "unknown flags"),
    ({"choice": "tie", "strength": "much"}, 422, "strength"),
    ({}, 422, "field 'choice'"),
])
def test_bad_labels_are_4xx_with_a_message_and_write_nothing(api, db, body, status, words):
    task = api("GET", "/tasks/next").json()["task"]
    r = api("POST", f"/tasks/{task['task_id']}/label", json=body)
    assert r.status_code == status and words in r.json()["detail"]
    assert db.comparisons.list(labeler_kind="human") == []


def test_labeling_a_task_that_is_not_yours_is_refused(api, db):
    mine = api("GET", "/tasks/next").json()["task"]
    r = api("POST", f"/tasks/{mine['task_id']}/label", key="ann2", json={"choice": "A"})
    assert r.status_code == 422 and "not your current task" in r.json()["detail"]
    assert db.comparisons.list(labeler_kind="human") == []
