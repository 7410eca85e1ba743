"""Quality control on a planted crowd: a fast random clicker, a labeler who always picks the
response shown first, a contrarian who reads but picks the worse answer (caught by the gold
items: attention pairs with an obvious answer), and an honest one who reads (picks the better
answer wherever it is shown). The first three are flagged with their evidence and, under
``pause``, their queues close; the honest one is not flagged."""

from __future__ import annotations

import dataclasses
import json
import random
import time

import pytest

from prefloop import store
from prefloop.annotate_app.auth import hash_password
from prefloop.annotate_app.config import AppConfig, QualityConfig
from prefloop.annotate_app.services import AppServices
from prefloop.annotate_app.services.quality import quality_reports

from .test_annotate_browser import SHOTS, browser, login, serve  # noqa: F401  (browser: a fixture)

FLOOR = 0.15           # seconds: the planted readers wait 0.25 s, the clicker none (a loaded machine
                       # can take 0.1 s to store a label)
RULES = QualityConfig(window=50, min_items=15, min_seconds=FLOOR, max_fast_share=0.5,
                      max_same_share=0.9, pause=True)
GOLD_RATE = 0.5


def _crowd_store(db: store.Store, n: int = 24, gold_every: int = 3) -> None:
    """``n`` pairs (a good and a bad answer), every ``gold_every``-th a gold item (good > bad)."""
    pids = db.prompts.add([[{"role": "user", "content": f"question {i}"}] for i in range(n)], dataset="qc")
    for i, pid in enumerate(pids):
        rids = db.responses.add([store.ResponseIn(pid, f"good answer to {pid}"),
                                 store.ResponseIn(pid, f"bad answer to {pid}")])
        gold = [[rids[0]], [rids[1]]] if i % gold_every == 0 else None
        db.tasks.create([store.TaskIn(pid, rids, overlap=4, gold_ranking=gold)])


def _better(view) -> str:
    return view.labels[["good" in t for t in view.response_texts].index(True)]


def _worse(view) -> str:
    return view.labels[["bad" in t for t in view.response_texts].index(True)]


def plant_crowd(db: store.Store, rules: QualityConfig = RULES) -> tuple[AppServices, dict[str, store.Annotator], dict[str, int]]:
    """The four planted labelers label the crowd store; returns the services, the users and how
    many items each labeled before their queue closed."""
    _crowd_store(db)
    users = {name: db.annotators.add(name, "annotator", hash_password("password123"))
             for name in ("clicker", "first", "contrarian", "honest")}
    svc = AppServices(db, AppConfig(quality=rules, gold_rate=GOLD_RATE))
    rng = random.Random(0)
    done = {"honest": _label(svc, users["honest"], _better, 0.25, 30),
            "clicker": _label(svc, users["clicker"], lambda v: rng.choice(["A", "B"]), 0.0, 24),
            "first": _label(svc, users["first"], lambda v: "A", 0.25, 24),
            "contrarian": _label(svc, users["contrarian"], _worse, 0.25, 24)}
    return svc, users, done


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
    rules = RULES
    svc, users, done = plant_crowd(db, rules)
    n = done["honest"]
    assert n >= 16                     # every pair, and the gold items the gold rate served

    reports = {r.annotator: r for r in quality_reports(db, rules)}
    assert reports["honest"].flags == () and reports["honest"].items == n
    assert 0.15 < reports["honest"].answers["first shown"] / n < 0.85       # the better one, either side
    # the clicker is caught by the time floor or, when random clicks miss 5 gold items first, by gold
    assert reports["clicker"].fast_share == 1.0 and reports["clicker"].flags
    assert any(f.startswith(("fast:", "gold:")) for f in reports["clicker"].flags), reports
    assert not any(f.startswith("fast:") for f in reports["first"].flags)
    assert reports["first"].answers == {"first shown": done["first"]}       # the evidence
    assert any(f.startswith(("same answer: 'first shown'", "gold:")) for f in reports["first"].flags)
    assert reports["contrarian"].flags and all(f.startswith("gold: 0 of") for f in reports["contrarian"].flags)
    assert reports["honest"].gold_right == reports["honest"].gold_items == n - 16
    # under pause, each queue closed as soon as its flag was raised (after min_items; gold after 5)
    assert done["clicker"] <= 15 and done["first"] <= 15 and done["contrarian"] < 24
    for name in ("clicker", "first", "contrarian"):
        reason = db.annotators.get_by_id(users[name].id).paused_reason
        assert reason and reason.startswith("quality: ") and svc.labeling.next_task(users[name]) is None
    assert db.annotators.get_by_id(users["honest"].id).paused_reason is None
    rows = {r["annotator"]: r for r in svc.admin.quality()}
    assert rows["honest"]["flags"] == "-" and rows["clicker"]["flags"] != "-"
    assert rows["first"]["most_given"].startswith("first shown 100%")
    # re-enabled, the count starts again: the old evidence no longer pauses them
    svc.admin.reenable("first")
    assert svc.labeling.next_task(users["first"]) is not None


@pytest.mark.parametrize("bad", [{"window": 0}, {"max_same_share": 1.5}, {"min_seconds": -1}, {"pause": "yes"}])
def test_quality_rules_are_checked(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        QualityConfig(**bad)


#: The same rules as the app's config file (YAML, of which JSON is a subset).
QUALITY_YAML = json.dumps({"gold_rate": GOLD_RATE, "quality": dataclasses.asdict(RULES)}) + "\n"


@pytest.mark.browser
def test_the_admin_sees_the_planted_crowd_flagged_in_a_browser(db, tmp_path, browser):  # noqa: F811
    """The planted crowd as the admin page shows it: three labelers flagged with their evidence
    and paused, the honest one not."""
    db.annotators.add("boss", "admin", hash_password("password123"))
    plant_crowd(db)
    server = serve(db, tmp_path, QUALITY_YAML)
    try:
        admin = login(browser, server.url, "boss")
        admin.get_by_role("tab", name="Admin").click()
        admin.wait_for_function("document.querySelector('#pf-agreement').innerText.includes('Quality flags')",
                                timeout=20_000)
        summary = admin.inner_text("#pf-agreement")
        admin.get_by_text("People: roles, qualification, pauses").click()
        admin.wait_for_function("document.querySelector('#pf-quality') && "
                                "document.querySelector('#pf-quality').innerText.includes('contrarian')",
                                timeout=20_000)
        admin.wait_for_timeout(300)
        admin.locator("#pf-quality").scroll_into_view_if_needed()
        admin.screenshot(path=str(SHOTS / "admin_quality.png"), full_page=True)
        cells = [c.strip() for c in admin.inner_text("#pf-quality").split("\n") if c.strip()]
        people = admin.inner_text("#pf-people")
    finally:
        server.stop()
    assert "clicker" in summary and "first" in summary and "contrarian" in summary and "honest" not in summary
    rows = {name: cells[cells.index(name):cells.index(name) + 7] for name in ("clicker", "first", "contrarian", "honest")}
    assert rows["first"][4] == "first shown 100%" and rows["contrarian"][5].startswith("0 of")
    assert rows["clicker"][3] == "100%" and rows["clicker"][6].startswith(("fast:", "gold:"))   # under the floor
    right, of = rows["honest"][5].split(" of ")
    assert rows["honest"][6] == "-" and right == of                        # every gold item right
    assert people.count("quality:") == 3                  # the three flagged are paused, with the reason
