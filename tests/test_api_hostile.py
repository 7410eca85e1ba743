"""The JSON API under hostile input (FastAPI's test client, no server): malformed keys, integers
out of range, text the store refuses, names that are not names, bodies over the limit however
they are sent, bad webhook URLs. Each answers 4xx with a JSON error, writes nothing, and never
logs a traceback."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from prefloop import store
from prefloop.annotate_app.api import MAX_BODY_BYTES, build_api
from prefloop.annotate_app.auth import hash_password
from prefloop.annotate_app.services import AppServices

BIG = "9" * 40


@pytest.fixture
def api(db, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("PREFLOOP_WEBHOOK_KEY", "test-webhook-key-0123456789abcdef")
    a = db.annotators.add("boss", "admin", hash_password("password123"))
    key = db.api_keys.create(a.id, "boss")[1]
    pid = db.prompts.add([[{"role": "user", "content": "seed"}]], dataset="seed")[0]
    x, y = db.responses.add([store.ResponseIn(pid, "a"), store.ResponseIn(pid, "b")])
    db.comparisons.record(pid, [[x], [y]], labeler_kind="human", labeler="crowd")
    client = TestClient(build_api(AppServices(db)), raise_server_exceptions=False)
    caplog.set_level(logging.INFO)

    def call(method, path, *, auth=key, **kw):
        headers = {"Authorization": f"Bearer {auth}".encode()} if auth else {}
        headers.update(kw.pop("headers", {}))
        return client.request(method, "/v1" + path, headers=headers, **kw)
    yield call
    assert "Traceback" not in caplog.text


def _counts(db):
    return (len(db.prompts.list()), len(db.comparisons.list()), len(db.webhooks.list()), len(db.exports.list()))


@pytest.mark.parametrize("key", ["pfk_\u00b2_x", "pfk_" + "9" * 180 + "_x", "pfk__x", "pfk_1_", "pfk_1_\x00",
                                 "pfk_-1_x", "Bearer", "pfk_１_x"])
def test_malformed_keys_are_401(api, key):
    r = api("GET", "/me", auth=key)
    assert r.status_code == 401 and "API key" in r.json()["detail"]


@pytest.mark.parametrize("method, path", [
    ("GET", f"/comparisons?after={BIG}"), ("GET", "/comparisons?after=-1"), ("GET", "/comparisons?limit=100000"),
    ("GET", f"/exports/{BIG}"), ("DELETE", f"/webhooks/{BIG}"), ("GET", f"/webhooks/deliveries?webhook_id={BIG}"),
    ("GET", "/exports/0"), ("POST", f"/tasks/{BIG}/skip"),
])
def test_integers_out_of_range_are_422(api, db, method, path):
    before = _counts(db)
    r = api(method, path, json={} if method == "POST" else None)
    assert r.status_code == 422 and r.json()["detail"].startswith("field ")
    assert _counts(db) == before


@pytest.mark.parametrize("item, words", [
    ({"prompt": "hi", "responses": ["a", "b"], "priority": 2**31}, "priority"),
    ({"prompt": "hi", "responses": ["a", "b"], "priority": 2**63}, "priority"),
    ({"prompt": "hi", "responses": ["a", "b"], "priority": 10**30}, "priority"),
    ({"prompt": "a\ud800", "responses": ["a", "b"]}, "surrogate"),
    ({"prompt": "hi", "responses": ["a\udfff", "b"]}, "surrogate"),
    ({"prompt": [{"role": "system", "content": "\ud800"}, {"role": "user", "content": "q"}], "responses": ["a"]}, "surrogate"),
    ({"prompt": "   ", "responses": ["a", "b"]}, "final user turn is empty"),
    ({"prompt": "", "responses": ["a", "b"]}, "final user turn is empty"),
    ({"prompt": "hi", "responses": ["a", "b"], "dataset": "d" * 1_000_000}, "dataset"),
    ({"prompt": "hi", "responses": ["a", "b"], "dataset": "a\ud800"}, "items.0.dataset"),
    ({"prompt": "hi", "responses": ["a", "b"], "dataset": "a\nb"}, "control characters"),
    ({"prompt": "nul\x00here", "responses": ["a", "b"]}, "NUL"),
])
def test_bad_prompts_are_422_and_nothing_is_written(api, db, item, words):
    import json

    before = _counts(db)
    body = json.dumps({"items": [item]}, ensure_ascii=True)     # lone surrogates travel escaped
    r = api("POST", "/prompts", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert words in r.text
    assert _counts(db) == before


def test_a_huge_source_is_422(api, db):
    before = _counts(db)
    r = api("POST", "/prompts", json={"items": [{"prompt": "hi", "responses": ["a", "b"]}], "source": "s" * 1_000_000})
    assert r.status_code == 422 and _counts(db) == before


@pytest.mark.parametrize("name", ["a\x00b", "x" * 300, "../outside", "", "ok/" + "y" * 300])
def test_bad_export_names_are_422(api, db, name):
    before = _counts(db)
    r = api("POST", "/exports", json={"name": name})
    assert r.status_code == 422, r.text
    assert _counts(db) == before


@pytest.mark.parametrize("name", ["a\x00b", "z" * 300, "../../etc/passwd"])
def test_bad_export_file_names_are_404(api, db, name):
    e = api("POST", "/exports", json={"name": "ok", "test_fraction": 0.0})
    assert e.status_code == 200, e.text
    from urllib.parse import quote

    r = api("GET", f"/exports/{e.json()['id']}/files/{quote(name)}")
    assert r.status_code == 404, r.text


def test_bodies_over_the_limit_are_413_however_they_are_sent(api, db):
    before = _counts(db)
    chunk = b"x" * (1 << 20)

    def chunked():
        for _ in range((MAX_BODY_BYTES >> 20) + 4):
            yield chunk
    r = api("POST", "/prompts", content=chunked(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    r = api("POST", "/prompts", content=b"x", headers={"Content-Type": "application/json",
                                                        "Content-Length": str(MAX_BODY_BYTES + 1)})
    assert r.status_code == 413
    r = api("POST", "/prompts", content=b"{}", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert _counts(db) == before


@pytest.mark.parametrize("url", ["http://[::1", "http://h:99999/", "http://h:abc/", "http://h/\r\nX-Evil: 1",
                                 "http://a b/", "javascript:alert(1)"])
def test_bad_webhook_urls_are_422(api, db, url):
    r = api("POST", "/webhooks", json={"url": url, "events": ["run.finished"]})
    assert r.status_code == 422 and "webhook url" in r.json()["detail"]
    assert db.webhooks.list() == []


def test_many_copies_of_an_event_are_one(api, db):
    r = api("POST", "/webhooks", json={"url": "http://127.0.0.1:9/h", "events": ["run.finished"] * 20})
    assert r.status_code == 200 and r.json()["events"] == ["run.finished"]
    r = api("POST", "/webhooks", json={"url": "http://127.0.0.1:9/h", "events": ["run.finished"] * 100_000})
    assert r.status_code == 422


def test_the_openapi_schema_documents_every_response(db):
    spec = TestClient(build_api(AppServices(db))).get("/openapi.json").json()
    missing = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            ok = op["responses"].get("200", {}).get("content", {})
            schema = next(iter(ok.values()), {}).get("schema", {}) if ok else {}
            if "files" not in path and "$ref" not in schema:
                missing.append(f"{method.upper()} {path}")
    assert missing == [] and len(spec["paths"]) >= 14


def test_a_client_that_leaves_mid_body_gets_no_answer_and_no_traceback():
    """``Content-Length: 100000``, part of the body, then the client goes away: the body limit
    stops there (no answer, the app never called: no ClientDisconnect traceback in a log)."""
    import asyncio

    from prefloop.core.http import BodyLimit

    called, sent = [], []

    async def app(scope, receive, send):
        called.append(scope)

    messages = iter([{"type": "http.request", "body": b'{"query": ["par', "more_body": True},
                     {"type": "http.disconnect"}])

    async def receive():
        return next(messages)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST",
             "headers": [(b"content-length", b"100000"), (b"content-type", b"application/json")]}
    asyncio.run(BodyLimit(app)(scope, receive, send))
    assert called == [] and sent == []
