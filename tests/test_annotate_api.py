"""The labeling app's API endpoints: login required, admin actions for admins only, and 16
annotators at once while another process writes AI judgments."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError as ClientAppError
from gradio_client.exceptions import AuthenticationError

from prefloop import store
from prefloop.annotate_app.auth import hash_password
from prefloop.annotate_app.testing import AppServer, GradioSession

from .conftest import ROOT

pytestmark = pytest.mark.model


ADMIN_CALLS = {
    "/admin_refresh": (None, None),
    "/admin_add_tasks": ("", 1, 0, 10),
    "/admin_add_gold": ("", 10),
    "/admin_export": ("exports/x", "all", 0, 0),
    "/admin_start_job": ("train", "rm", "", 1, None),
}


def _seed(db: store.Store, n: int, overlap: int = 1):
    pids = db.prompts.add([[{"role": "user", "content": f"q{i}"}] for i in range(n)], dataset="seed")
    rids = db.responses.add([store.ResponseIn(p, f"{t} {p}") for p in pids for t in ("good", "bad")])
    db.tasks.create([store.TaskIn(p, [rids[2 * i], rids[2 * i + 1]], overlap=overlap)
                     for i, p in enumerate(pids)])
    return pids


@pytest.fixture
def server(db, tmp_path):
    _seed(db, 20)
    db.annotators.add("ann", "annotator", hash_password("password123"))
    db.annotators.add("boss", "admin", hash_password("password123"))
    srv = AppServer(db.path, log=tmp_path / "server.log")
    yield srv
    srv.stop()


def test_nobody_unauthenticated_gets_anything(server):
    import urllib.error
    import urllib.request

    with pytest.raises(AuthenticationError, match="credentials were not provided"):
        Client(server.url, verbose=False)
    for path in ("/config", "/gradio_api/info"):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(server.url + path, timeout=5)
        assert e.value.code in (401, 403)
    with pytest.raises(ValueError, match="Could not login"):
        Client(server.url, auth=("ann", "wrong password"), verbose=False)


def test_an_annotator_cannot_call_admin_handlers(db, server):
    before = (len(db.tasks.list(limit=1000)), len(db.exports.list()), len(db.runs.list()))
    ann = Client(server.url, auth=("ann", "password123"), verbose=False)
    for api_name, args in ADMIN_CALLS.items():
        with pytest.raises(ClientAppError, match="user ann is not an admin"):
            ann.predict(*args, api_name=api_name)
    assert (len(db.tasks.list(limit=1000)), len(db.exports.list()), len(db.runs.list())) == before
    boss = Client(server.url, auth=("boss", "password123"), verbose=False)
    out = boss.predict(None, None, api_name="/admin_refresh")
    assert "Inter-annotator agreement" in out[0]
    db.annotators.update("ann", active=False)   # a disabled user's session is refused too
    with pytest.raises(ClientAppError, match="user ann is disabled"):
        ann.predict(api_name="/load_task")


def test_another_users_session_cannot_use_or_overwrite_its_state(db, server):
    """Gradio's session_hash was not bound to the logged-in user."""
    db.annotators.add("bob", "annotator", hash_password("password123"))
    ann = Client(server.url, auth=("ann", "password123"), verbose=False)
    first = ann.predict(api_name="/load_task")
    bob = Client(server.url, auth=("bob", "password123"), verbose=False)
    bob.session_hash = ann.session_hash                        # bob replays ann's session
    for api_name, args in (("/submit_A", ("", [], "")), ("/skip", ()), ("/undo", ())):
        with pytest.raises(ClientAppError, match="belongs to another user|nothing to undo"):
            bob.predict(*args, api_name=api_name)
    assert db.comparisons.list() == []
    out = ann.predict("", [], "", api_name="/submit_A")       # ann's page is intact
    assert out[STATUS].startswith("Saved") and first[PROMPT] != out[PROMPT]
    assert [c.labeler for c in db.comparisons.list()] == ["ann"]


def test_a_password_change_ends_a_live_session(db, server):
    """A password change ends a session, through the real server and Gradio's login cookie."""
    ann = Client(server.url, auth=("ann", "password123"), verbose=False)
    ann.predict(api_name="/load_task")
    db.annotators.update("ann", password_hash=hash_password("a brand new password"))
    with pytest.raises(ClientAppError, match="password was changed"):
        ann.predict(api_name="/load_task")
    fresh = Client(server.url, auth=("ann", "a brand new password"), verbose=False)
    assert "Task" in fresh.predict(api_name="/load_task")[1]


def test_the_browser_protocol_client_labels_and_is_checked_like_any_caller(db, server):
    """GradioSession (the bench's client: login cookie, queue/join, the queue/data stream) gets a
    task, submits it and gets the next; its events pass the same caller checks."""
    ann = GradioSession(server.url, "ann")
    first = ann.call("load_task")
    out = ann.call("submit_A")
    assert any(isinstance(o, str) and o.startswith("Saved") for o in out)
    assert [c.labeler for c in db.comparisons.list()] == ["ann"]
    assert first[PROMPT + 1] != out[PROMPT + 1]                # the next task (state output first)
    with pytest.raises(RuntimeError, match="user ann is not an admin"):
        ann.call("admin_refresh")
    with pytest.raises(RuntimeError, match="login refused"):
        GradioSession(server.url, "ann", "wrong password")
    ann.close()


def test_gold_tasks_look_like_any_other(db, tmp_path):
    """The progress line used to say "Task 14 (gold)", so annotators knew."""
    pids = db.prompts.add([[{"role": "user", "content": f"g{i}"}] for i in range(3)], dataset="g")
    rids = db.responses.add([store.ResponseIn(p, f"{t} {p}") for p in pids for t in ("good", "bad")])
    db.tasks.create([store.TaskIn(p, [rids[2 * i], rids[2 * i + 1]],
                                  gold_ranking=[[rids[2 * i]], [rids[2 * i + 1]]])
                     for i, p in enumerate(pids)])
    db.annotators.add("ann", "annotator", hash_password("password123"))
    cfg = tmp_path / "app.yaml"
    cfg.write_text("gold_rate: 1.0\n")
    srv = AppServer(db.path, config=cfg, log=tmp_path / "server.log")
    try:
        out = Client(srv.url, auth=("ann", "password123"), verbose=False).predict(api_name="/load_task")
    finally:
        srv.stop()
    assert "Task " in out[1] and "gold" not in json.dumps(out).lower()
    assert [a.task_id for a in db.tasks.assignments(annotator_id=db.annotators.get("ann").id)]


SOAK = float(os.environ.get("PREFLOOP_APP_SOAK_SECONDS", "60"))
PROMPT, STATUS = 2, 3   # positions in the API outputs (who, progress, prompt, status, ...)


@pytest.mark.soak
def test_sixteen_annotators_and_a_judge_process_at_once(db, tmp_path):
    _seed(db, 3000, overlap=2)
    names = [f"a{i:02d}" for i in range(16)]
    for n in names:
        db.annotators.add(n, "annotator", hash_password("password123"))
    srv = AppServer(db.path, log=tmp_path / "server.log")
    judge = subprocess.Popen([sys.executable, "-m", "tests.workers_app", str(db.path), str(SOAK)],
                             cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    saved: Counter = Counter()
    errors: list[str] = []
    deadline = time.monotonic() + SOAK

    def annotate(name: str) -> None:
        try:
            # latency is bench/annotate_bench.py's; here: nothing lost or doubled under load
            c = Client(srv.url, auth=(name, "password123"), verbose=False, httpx_kwargs={"timeout": 120})
            out = c.predict(api_name="/load_task")
            while time.monotonic() < deadline:
                if "Nothing to label" in out[PROMPT]:
                    break
                out = c.predict("", [], "", api_name="/submit_A")
                assert out[STATUS].startswith("Saved"), out[STATUS]
                saved[name] += 1
        except Exception as exc:  # every error a user would have seen
            errors.append(f"{name}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=annotate, args=(n,)) for n in names]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(SOAK + 120)
        out, err = judge.communicate(timeout=SOAK + 120)
    finally:
        srv.stop()
    assert not errors, errors[:3]
    assert judge.returncode == 0, err[-2000:]
    human = db.comparisons.list(labeler_kind="human")
    per_task = Counter(c.task_id for c in human)
    assert max(per_task.values()) <= 2                                   # never beyond overlap
    assert len({(c.task_id, c.labeler) for c in human}) == len(human)    # no duplicate
    assert Counter(c.labeler for c in human) == saved                    # none lost
    assert sum(saved.values()) > 16
    written = json.loads(out.strip().splitlines()[-1])["judgments"]
    assert written >= SOAK * 2 and len(db.judgments.list()) == written
    print(f"{sum(saved.values())} submissions by 16 annotators and {written} judgments in {SOAK:.0f} s")


def test_cookies_are_samesite_lax_an_unknown_event_is_4xx_and_old_tokens_end(db, server):
    """Gradio's SameSite=None cookie, its 500 on an unknown fn_index, and a
    login token obtained before a password change but first used after it."""
    import httpx

    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = c.post("/login", data={"username": "ann", "password": "password123"})
        assert r.status_code == 200
        cookies = r.headers.get_list("set-cookie")
        assert cookies and all("samesite=lax" in x.lower() for x in cookies)
        assert not any("samesite=none" in x.lower() for x in cookies)
        bad = c.post("/gradio_api/queue/join", json={"fn_index": 99999, "data": [],
                                                     "session_hash": "abc", "trigger_id": None})
        assert bad.status_code == 422 and "no such event" in bad.json()["detail"]
    # a second login whose token is never used before the password changes
    unused = GradioSession(server.url, "ann")
    db.annotators.update("ann", password_hash=hash_password("a brand new password"))
    with pytest.raises(RuntimeError, match="password was changed"):
        unused.call("load_task")
    unused.close()
