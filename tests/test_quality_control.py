"""Quality control on a planted crowd: a fast random clicker, a labeler who always picks the
response shown first, and an honest one who reads (picks the better answer wherever it is
shown). The first two are flagged with their evidence and, under ``pause``, their queues
close; the honest one is not flagged."""

from __future__ import annotations

import random
import time

import pytest

from prefloop import store
from prefloop.annotate_app.auth import hash_password
from prefloop.annotate_app.config import AppConfig, QualityConfig
from prefloop.annotate_app.services import AppServices
from prefloop.annotate_app.services.quality import quality_reports

FLOOR = 0.15           # seconds: the planted readers wait 0.25 s, the clicker none (a loaded machine
                       # can take 0.1 s to store a label)


def _crowd_store(db: store.Store, n: int = 24) -> None:
    pids = db.prompts.add([[{"role": "user", "content": f"question {i}"}] for i in range(n)], dataset="qc")
    for pid in pids:
        rids = db.responses.add([store.ResponseIn(pid, f"good answer to {pid}"),
                                 store.ResponseIn(pid, f"bad answer to {pid}")])
        db.tasks.create([store.TaskIn(pid, rids, overlap=3)])


def _label(svc: AppServices, user: store.Annotator, policy, wait: float, n: int) -> int:
    done = 0
    for _ in range(n):
        view = svc.labeling.next_task(user)
        if view is None:
            break
        time.sleep(wait)
        svc.labeling.submit_pair(user, view.task_id, policy(view))
        done += 1
    return done


def test_a_planted_crowd_is_flagged_as_expected_and_paused(db):
    _crowd_store(db)
    users = {name: db.annotators.add(name, "annotator", hash_password("password123"))
             for name in ("clicker", "first", "honest")}
    rules = QualityConfig(window=50, min_items=15, min_seconds=FLOOR, max_fast_share=0.5,
                          max_same_share=0.9, pause=True)
    svc = AppServices(db, AppConfig(quality=rules))
    rng = random.Random(0)
    better = lambda v: v.labels[["good" in t for t in v.response_texts].index(True)]  # noqa: E731
    assert _label(svc, users["honest"], better, 0.25, 24) == 24
    clicked = _label(svc, users["clicker"], lambda v: rng.choice(["A", "B"]), 0.0, 24)
    firsts = _label(svc, users["first"], lambda v: "A", 0.25, 24)

    reports = {r.annotator: r for r in quality_reports(db, rules)}
    assert reports["honest"].flags == () and reports["honest"].items == 24
    assert 0.3 < reports["honest"].answers["first shown"] / 24 < 0.7        # the better one, either side
    assert any(f.startswith("fast:") for f in reports["clicker"].flags)
    assert not any(f.startswith("fast:") for f in reports["first"].flags)
    assert any(f.startswith("same answer: 'first shown'") for f in reports["first"].flags)
    # under pause, each queue closed as soon as its flag was raised (after min_items)
    assert clicked == 15 and firsts == 15
    for name in ("clicker", "first"):
        reason = db.annotators.get_by_id(users[name].id).paused_reason
        assert reason and reason.startswith("quality: ") and svc.labeling.next_task(users[name]) is None
    assert db.annotators.get_by_id(users["honest"].id).paused_reason is None
    rows = {r["annotator"]: r for r in svc.admin.quality()}
    assert rows["honest"]["flags"] == "-" and "fast" in rows["clicker"]["flags"]
    assert rows["first"]["most_given"].startswith("first shown 100%")
    # re-enabled, the count starts again: the old evidence no longer pauses them
    svc.admin.reenable("first")
    assert svc.labeling.next_task(users["first"]) is not None


@pytest.mark.parametrize("bad", [{"window": 0}, {"max_same_share": 1.5}, {"min_seconds": -1}, {"pause": "yes"}])
def test_quality_rules_are_checked(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        QualityConfig(**bad)
