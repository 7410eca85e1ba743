"""Webhook deliveries: a receiver that trickles its answer is cut off at the deadline and never
delays a healthy receiver of the same event; bad URLs are refused before anything is stored."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time

import httpx
import pytest

from prefloop import store
from prefloop.annotate_app.webhooks import WebhookSender

KEY = "test-webhook-key-0123456789abcdef"


class _Slow(http.server.BaseHTTPRequestHandler):
    """Answers one byte every 0.5 s, forever (until the client goes away)."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        try:
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            for _ in range(200):
                self.wfile.write(b"X")
                self.wfile.flush()
                time.sleep(0.5)
        except OSError:
            pass

    def log_message(self, *args):
        pass


class _Healthy(http.server.BaseHTTPRequestHandler):
    arrived: list[float] = []

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        _Healthy.arrived.append(time.monotonic())
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def _serve(handler) -> str:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{srv.server_address[1]}/hook"


def test_a_slow_receiver_neither_delays_a_healthy_one_nor_holds_the_sender(db, monkeypatch):
    monkeypatch.setenv("PREFLOOP_WEBHOOK_KEY", KEY)
    slow, healthy = _serve(_Slow), _serve(_Healthy)
    db.webhooks.add(slow, ["run.finished"])
    db.webhooks.add(healthy, ["run.finished"])

    async def one_round(sender):
        async with httpx.AsyncClient(timeout=sender.timeout) as client:
            return await sender.deliver_due(client)

    times = []
    for i in range(5):
        _Healthy.arrived.clear()
        db.webhooks.emit("run.finished", {"run": i})
        sender = WebhookSender(db, timeout=1.5)
        t0 = time.monotonic()
        assert asyncio.run(one_round(sender)) >= 2
        round_seconds = time.monotonic() - t0
        times.append(_Healthy.arrived[0] - t0)
        assert round_seconds < 4.5                  # the slow one was cut off at its deadline (1.5 s)
    assert max(times) < 0.5, times                  # the healthy one never waited for the slow one
    by_url = {w.id: w.url for w in db.webhooks.list()}
    slow_tries = [d for d in db.webhooks.deliveries() if by_url[d.webhook_id] == slow]
    assert slow_tries and all("deadline" in (d.last_error or "") for d in slow_tries)
    healthy_tries = [d for d in db.webhooks.deliveries() if by_url[d.webhook_id] == healthy]
    assert all(d.status == "delivered" for d in healthy_tries)


@pytest.mark.parametrize("url", ["http://[::1", "http://h:99999/", "http://h:abc/", "http://a b/x",
                                 "http://h/\r\nX-Evil: 1", "ftp://h/x", "http:///x", "x" * 3000])
def test_bad_webhook_urls_are_refused_and_nothing_is_stored(db, url):
    with pytest.raises(store.ValidationError, match="webhook url"):
        db.webhooks.add(url, ["run.finished"])
    assert db.webhooks.list() == []


def test_repeated_events_are_stored_once(db, monkeypatch):
    monkeypatch.setenv("PREFLOOP_WEBHOOK_KEY", KEY)
    w, _ = db.webhooks.add("http://127.0.0.1:9/hook", ["run.finished"] * 100_000)
    assert w.events == ["run.finished"]


def test_the_cli_refuses_a_bad_url_in_one_line(db, cli, monkeypatch):
    monkeypatch.setenv("PREFLOOP_WEBHOOK_KEY", KEY)
    db.close()
    r = cli("--db", db.path, "webhooks", "add", "http://[::1", "--events", "run.finished")
    assert r.exit_code == 1 and r.output.strip().startswith("Error: webhook url 'http://[::1'")
    assert "Traceback" not in r.output

