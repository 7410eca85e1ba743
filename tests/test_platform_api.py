"""A platform other tools can drive: the HTTP API (keys, roles, bad input, pagination) on a
real `prefloop annotate` server, webhooks to a real receiver on loopback (signatures, retry
after a 500), and retraining that triggers itself (`prefloop loop --watch`)."""

from __future__ import annotations

import http.server
import json
import threading
import time

import httpx
import pytest

from prefloop import store
from prefloop.annotate_app.auth import hash_password
from prefloop.annotate_app.testing import AppServer
from prefloop.client import APIError, Client
from prefloop.core.signing import verify_webhook

pytestmark = pytest.mark.model        # a server process (Gradio), no model

WEBHOOK_KEY = "test-webhook-key-0123456789abcdef"


@pytest.fixture
def platform(db, tmp_path, monkeypatch):
    """A server with keys for an admin, a reviewer, an annotator and a revoked one; a few
    comparisons recorded; webhook retries fast."""
    monkeypatch.setenv("PREFLOOP_WEBHOOK_KEY", WEBHOOK_KEY)
    keys = {}
    for name, role in (("boss", "admin"), ("rev", "reviewer"), ("ann", "annotator")):
        a = db.annotators.add(name, role, hash_password("password123"))
        keys[role] = db.api_keys.create(a.id, f"{name}'s")[1]
    revoked, keys["revoked"] = db.api_keys.create(db.annotators.get("boss").id, "old")
    db.api_keys.revoke(revoked.id)
    pids = db.prompts.add([[{"role": "user", "content": f"seed {i}"}] for i in range(5)], dataset="seed")
    for pid in pids:
        a, b = db.responses.add([store.ResponseIn(pid, f"good {pid}"), store.ResponseIn(pid, f"bad {pid}")])
        db.comparisons.record(pid, [[a], [b]], labeler_kind="human", labeler="crowd")
    (tmp_path / "app.yaml").write_text("webhook_backoff_seconds: 0.3\nwebhook_attempts: 3\n")
    db.close()
    srv = AppServer(db.path, config=tmp_path / "app.yaml", log=tmp_path / "server.log")
    yield srv, keys
    srv.stop()
    assert "Traceback" not in (tmp_path / "server.log").read_text()


ITEM = {"prompt": "What is DuckDB?", "responses": ["An embedded database.", "A bird."], "queue": True}

#: (method, path, body, the lowest role that may call it)
ENDPOINTS = [
    ("GET", "/api/v1/me", None, "annotator"),
    ("GET", "/api/v1/queue", None, "annotator"),
    ("POST", "/api/v1/prompts", {"items": [ITEM]}, "admin"),
    ("GET", "/api/v1/comparisons?after=0&limit=2", None, "reviewer"),
    ("POST", "/api/v1/exports", {"name": "from-api", "source": "human"}, "admin"),
    ("GET", "/api/v1/runs", None, "reviewer"),
    ("POST", "/api/v1/jobs", {"command": "loop", "kind": "", "options": {"config": "/nonexistent.yaml"}}, "admin"),
    ("GET", "/api/v1/webhooks", None, "admin"),
    ("GET", "/api/v1/webhooks/deliveries", None, "admin"),
]
RANK = ["annotator", "reviewer", "admin"]


def test_every_endpoint_checks_the_key_and_the_role(platform):
    srv, keys = platform
    for method, path, body, lowest in ENDPOINTS:
        def call(key, method=method, path=path, body=body):
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            return httpx.request(method, srv.url + path, json=body, headers=headers, timeout=60)
        assert call(None).status_code == 401, path
        assert call("pfk_1_forged").status_code == 401, path
        assert call(keys["revoked"]).status_code == 401, path
        for role in RANK:
            r = call(keys[role])
            if RANK.index(role) < RANK.index(lowest):
                assert r.status_code == 403 and f"needs the {lowest} role" in r.json()["detail"], (path, role)
            else:
                assert r.status_code == 200, (path, role, r.text)
    assert httpx.get(srv.url + "/api/openapi.json").json()["info"]["title"] == "prefloop API"
    assert httpx.get(srv.url + "/api/docs").status_code == 200


def test_prompts_are_idempotent_and_bad_items_write_nothing(platform):
    srv, keys = platform
    with Client(srv.url, keys["admin"]) as c:
        before = c.queue()["open_tasks"]
        first = c.add_prompts([ITEM, {"prompt": [{"role": "user", "content": "Hi"}], "responses": ["Hello"]}])
        again = c.add_prompts([ITEM])
        assert again[0] == first[0] and first[0]["task_id"] is not None
        assert c.queue()["open_tasks"] == before + 1                   # the same task, not two
        with pytest.raises(APIError) as bad:
            c.add_prompts([{"prompt": "new one", "responses": ["a", "b"]},
                           {"prompt": [{"role": "robot", "content": "x"}], "responses": ["a"]},
                           {"prompt": "q", "responses": ["same", "same"], "queue": True}])
        assert bad.value.status == 422 and [e["index"] for e in bad.value.errors] == [1, 2]
        assert "role" in bad.value.errors[0]["reason"] and "2 different" in bad.value.errors[1]["reason"]
        with pytest.raises(APIError, match="field 'items.0.prompt'"):
            c.add_prompts([{"responses": ["a"]}])
        with pytest.raises(APIError, match="at most 1000 items"):
            c.add_prompts([{"prompt": f"p{i}", "responses": []} for i in range(1001)])
    h = {"Authorization": f"Bearer {keys['admin']}"}
    assert httpx.post(srv.url + "/api/v1/prompts", content=b"x", headers={**h, "content-type": "text/plain"}).status_code == 415
    assert httpx.post(srv.url + "/api/v1/prompts", content=b"{bad", headers={**h, "content-type": "application/json"}).status_code == 422
    big = b'{"items": [' + b'{"prompt": "' + b"x" * (9 << 20) + b'"}]}'
    assert httpx.post(srv.url + "/api/v1/prompts", content=big, headers={**h, "content-type": "application/json"}).status_code == 413
    with Client(srv.url, keys["admin"]) as c:          # nothing of the bad batch was written:
        assert c.queue()["open_tasks"] == before + 1    # "new one" comes next, its ids fresh
        new = c.add_prompts([{"prompt": "new one", "responses": ["a", "b"]}])[0]
        assert new["prompt_id"] == first[1]["prompt_id"] + 1


def test_comparisons_page_by_cursor(platform):
    srv, keys = platform
    with Client(srv.url, keys["reviewer"]) as c:
        page = c.comparisons(after=0, limit=2)
        assert [x["id"] for x in page["items"]] == [1, 2] and page["next_after"] == 2
        every = list(c.iter_comparisons(after=0, page=2))
        assert [x["id"] for x in every] == [1, 2, 3, 4, 5] and every[0]["labeler"] == "crowd"
        assert c.comparisons(after=5)["items"] == [] and c.comparisons(after=3)["next_after"] is None
        for bad in ({"limit": 0}, {"limit": 5000}, {"after": -1}, {"after": "x"}):
            r = httpx.get(srv.url + "/api/v1/comparisons", params=bad,
                          headers={"Authorization": f"Bearer {keys['reviewer']}"})
            assert r.status_code == 422 and "field" in r.json()["detail"], bad


def test_exports_runs_and_jobs(platform, tmp_path):
    srv, keys = platform
    with Client(srv.url, keys["admin"]) as c:
        e = c.create_export("api-export", source="human", test_fraction=0.0)
        assert e["n_pairs"] == 5 and "train.parquet" in e["files"]
        got = c.download(e["id"], "train.parquet", tmp_path / "train.parquet")
        import pyarrow.parquet as pq
        assert pq.read_table(got).num_rows == 5
        for name in ("../outside", "", "/etc"):
            with pytest.raises(APIError, match="exports root") as err:
                c.create_export(name)
            assert err.value.status == 422
        for name in ("no-such-file.txt", "..%2F..%2F..%2Fapp.yaml"):
            with pytest.raises(APIError) as nf:
                c.download(e["id"], name, tmp_path / "x")
            assert nf.value.status == 404, name
        with pytest.raises(APIError) as nf:
            c.export(999)
        assert nf.value.status == 404 and "no export with id 999" in nf.value.detail
        with pytest.raises(APIError, match="unknown job train bogus"):
            c.start_job("train", "bogus")
        with pytest.raises(APIError, match="needs the option config"):
            c.start_job("loop")
        with pytest.raises(APIError, match="option secret is not allowed"):
            c.start_job("train", "rm", secret="x")
        assert c.start_job("loop", config=str(tmp_path / "missing.yaml"))["pid"] > 0
        assert isinstance(c.runs(kind="rm"), list)


class Receiver(http.server.BaseHTTPRequestHandler):
    """A webhook receiver on loopback: answers 500 to the first delivery, 200 afterwards."""

    got: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        Receiver.got.append((dict(self.headers), body))
        self.send_response(500 if len(Receiver.got) == 1 else 200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_webhooks_are_signed_and_retried_after_a_500(platform):
    srv, keys = platform
    Receiver.got = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    try:
        with Client(srv.url, keys["admin"]) as c:
            with pytest.raises(APIError, match="expected some of"):
                c.add_webhook(url, ["label.made"])
            with pytest.raises(APIError, match="http:// or https://"):
                c.add_webhook("file:///etc/passwd", ["export.created"])
            hook = c.add_webhook(url, ["export.created"])
            assert hook["secret"].startswith("whsec_") and "secret" not in json.dumps(c._call("GET", "/webhooks"))
            t0 = time.monotonic()
            c.create_export("hooked", source="human")          # submit returns before delivery
            assert time.monotonic() - t0 < 5
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(Receiver.got) < 2:
                time.sleep(0.2)
            assert len(Receiver.got) == 2                        # 500, then the retry
            (h1, b1), (h2, b2) = Receiver.got
            assert h1["webhook-id"] == h2["webhook-id"] and b1 == b2
            assert verify_webhook(hook["secret"], h2, b2)
            assert not verify_webhook(hook["secret"], h2, b2.replace(b"hooked", b"hacked"))
            assert not verify_webhook("whsec_" + "A" * 32, h2, b2)
            assert json.loads(b2)["type"] == "export.created" and json.loads(b2)["data"]["n_pairs"] == 5
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                d = c.webhook_deliveries(hook["id"])
                if d and d[0]["status"] == "delivered":
                    break
                time.sleep(0.2)
            assert d[0]["status"] == "delivered" and d[0]["attempts"] == 2 and d[0]["last_status"] == 200
    finally:
        httpd.shutdown()


def test_api_keys_from_the_cli_are_shown_once_and_stored_hashed(db, cli):
    db.annotators.add("boss", "admin", hash_password("password123"))
    db.close()
    out = cli("--db", db.path, "users", "key", "create", "boss", "--label", "ci")
    assert out.exit_code == 0, out.output
    text = out.output.strip().splitlines()[-1]
    assert text.startswith("pfk_1_")
    raw = store.Store(db.path)
    import duckdb

    raw.close()
    con = duckdb.connect(str(db.path), read_only=True)
    stored = [str(v) for row in con.execute("SELECT * FROM api_keys").fetchall() for v in row]
    con.close()
    assert text not in " ".join(stored) and text.split("_", 2)[2] not in " ".join(stored)
    listed = cli("--db", db.path, "users", "key", "list")
    assert "pfk_1_" in listed.output and text not in listed.output
    assert store.Store(db.path).api_keys.authenticate(text).name == "boss"
    assert cli("--db", db.path, "users", "key", "revoke", "1").exit_code == 0
    assert store.Store(db.path).api_keys.authenticate(text) is None
    bad = cli("--db", db.path, "webhooks", "add", "http://x/", "--events", "export.created")
    assert bad.exit_code != 0 and "PREFLOOP_WEBHOOK_KEY" in bad.output


def test_events_are_queued_in_the_writers_transaction(db, monkeypatch):
    monkeypatch.setenv("PREFLOOP_WEBHOOK_KEY", WEBHOOK_KEY)
    hook, _ = db.webhooks.add("http://127.0.0.1:9/", ["comparison.created", "run.failed", "task.completed"])
    pid = db.prompts.add([[{"role": "user", "content": "q"}]])[0]
    a, b = db.responses.add([store.ResponseIn(pid, "a"), store.ResponseIn(pid, "b")])
    db.comparisons.record(pid, [[a], [b]], labeler_kind="human", labeler="x")
    run = db.runs.create("rm", {})
    db.runs.update(run.id, status="failed", summary={"error": "boom"})
    db.runs.update(run.id, status="failed")                   # no second event
    events = [d.event for d in reversed(db.webhooks.deliveries(hook.id))]
    assert events == ["comparison.created", "run.failed"]
    assert db.webhooks.deliveries(hook.id)[0].payload["data"] == {
        "run_id": run.id, "kind": "rm", "status": "failed", "error": "boom"}
    from prefloop.annotate_app.config import AppConfig
    from prefloop.annotate_app.services.admin import AdminService

    shown = AdminService(db, AppConfig()).webhook_deliveries()     # the admin page's table
    assert [(r["url"], r["event"], r["status"], r["attempts"]) for r in shown] == [
        ("http://127.0.0.1:9/", "run.failed", "pending", 0),
        ("http://127.0.0.1:9/", "comparison.created", "pending", 0)]


def _watch_config(tmp_path, new_labels: int, min_interval: str = "0s", rm: str = "skip: true"):
    from prefloop.pipelines.loop_config import load_loop_config

    f = tmp_path / "loop.yaml"
    f.write_text(f"policy_update: none\nrm: {{{rm}}}\neval: {{skip: true}}\ngenerate: {{skip: true}}\n"
                 f"judge: {{skip: true}}\nexport: {{source: human, test_fraction: 0.0}}\n"
                 f"trigger: {{new_labels: {new_labels}, min_interval: {min_interval}}}\n")
    return load_loop_config(f)


def _label(db, n: int, tag: str):
    for i in range(n):
        pid = db.prompts.add([[{"role": "user", "content": f"{tag} {i}"}]])[0]
        a, b = db.responses.add([store.ResponseIn(pid, f"a {tag}{i}"), store.ResponseIn(pid, f"b {tag}{i}")])
        db.comparisons.record(pid, [[a], [b]], labeler_kind="human", labeler="crowd")


def test_a_watch_starts_an_iteration_after_n_new_labels(db, tmp_path):
    from prefloop.pipelines.errors import LoopConfigError
    from prefloop.pipelines.watch import WatchError, trigger_progress, watch

    cfg = _watch_config(tmp_path, 3)
    _label(db, 2, "first")
    assert trigger_progress(db, cfg) | {"seconds_since_last": None} == {
        "new_labels": 2, "needed": 3, "after_comparison_id": 0, "seconds_since_last": None,
        "min_interval": 0.0, "due": False}
    _label(db, 1, "second")
    assert trigger_progress(db, cfg)["due"]
    assert watch(db, cfg, poll_seconds=0.01, max_iterations=1) == 1
    loop = db.runs.list(kind="loop")[-1]
    assert loop.status == "finished" and loop.summary["trigger"]["new_labels"] == 3
    assert loop.summary["labels_at_start"] == 3
    p = trigger_progress(db, cfg)
    assert (p["new_labels"], p["due"]) == (0, False)
    # a minimum interval holds the next one back even with enough labels
    _label(db, 3, "third")
    from prefloop.annotate_app.config import AppConfig
    from prefloop.annotate_app.services.admin import AdminService
    from prefloop.annotate_app.views.admin import trigger_markdown

    shown = AdminService(db, AppConfig()).retraining_trigger()     # the admin page's progress line
    assert (shown["loop_run"], shown["new_labels"], shown["needed"], shown["after_comparison_id"]) == (
        loop.id, 3, 3, 3)
    assert trigger_markdown(shown).startswith(f"**Retraining trigger:** 3 of 3 new human labels since "
                                              f"loop iteration {loop.id} (finished")
    assert not trigger_progress(db, _watch_config(tmp_path, 3, "1h"))["due"]
    # a failed iteration stops the watch with its error, and the next watch refuses to go on
    bad = _watch_config(tmp_path, 1, rm="model: /nonexistent/model, max_steps: 1")
    with pytest.raises(WatchError, match="failed: .*nonexistent"):
        watch(db, bad, poll_seconds=0.01, max_iterations=1)
    with pytest.raises(WatchError, match="is failed"):
        watch(db, bad, poll_seconds=0.01, max_iterations=1)
    with pytest.raises(LoopConfigError, match="trigger.min_interval"):
        _watch_config(tmp_path, 1, "soon")
    with pytest.raises(LoopConfigError, match="new_labels"):
        _watch_config(tmp_path, 0)
