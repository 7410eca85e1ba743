"""A healthy webhook's delivery time with and without a slow receiver on the same event.

Two receivers on loopback subscribe to ``comparison.created``: a healthy one (answers 204 at
once) and, in the second phase, a slow one that answers one byte every ``--byte-seconds`` (2 by
default). The app's sender thread (:class:`prefloop.annotate_app.webhooks.WebhookSender`, its
deadline ``--deadline`` seconds per delivery) delivers ``--events`` events emitted ``--every``
seconds apart; the figure is the time from an event's emission to its arrival at the healthy
receiver (p50, p99, max), without and with the slow receiver.

    python bench/webhook_bench.py [--events 20] [--every 0.5] [--byte-seconds 2] [--deadline 10]
"""

from __future__ import annotations

import argparse
import http.server
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from prefloop import store


def _serve(handler) -> tuple[str, http.server.ThreadingHTTPServer]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{srv.server_address[1]}/hook", srv


def _handlers(byte_seconds: float, arrived: dict[str, float]):
    class Healthy(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length", 0)))
            arrived[self.headers["webhook-id"]] = time.monotonic()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    class Slow(Healthy):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length", 0)))
            try:
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                for _ in range(1000):
                    self.wfile.write(b"X")
                    self.wfile.flush()
                    time.sleep(byte_seconds)
            except OSError:
                pass

    return Healthy, Slow


def run_phase(with_slow: bool, args) -> list[float]:
    from prefloop.annotate_app.webhooks import WebhookSender

    s = store.Store(Path(tempfile.mkdtemp()) / "hooks.duckdb", create=True)
    arrived: dict[str, float] = {}
    healthy_handler, slow_handler = _handlers(args.byte_seconds, arrived)
    healthy, _ = _serve(healthy_handler)
    s.webhooks.add(healthy, ["comparison.created"])
    if with_slow:
        slow, _ = _serve(slow_handler)
        s.webhooks.add(slow, ["comparison.created"])
    sender = WebhookSender(s, poll_seconds=0.2, timeout=args.deadline)
    sender.start()
    emitted: dict[str, float] = {}
    for i in range(args.events):
        s.webhooks.emit("comparison.created", {"n": i})
        emitted_at = time.monotonic()
        hook_ids = {w.id for w in s.webhooks.list() if w.url == healthy}
        for d in s.webhooks.deliveries():
            if d.webhook_id in hook_ids and d.message_id not in emitted:
                emitted[d.message_id] = emitted_at
        time.sleep(args.every)
    deadline = time.monotonic() + args.deadline * 3 + 30
    while len(arrived) < len(emitted) and time.monotonic() < deadline:
        time.sleep(0.1)
    sender.stop()
    return [arrived[m] - t for m, t in emitted.items() if m in arrived]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=20)
    ap.add_argument("--every", type=float, default=0.5)
    ap.add_argument("--byte-seconds", type=float, default=2.0)
    ap.add_argument("--deadline", type=float, default=10.0)
    args = ap.parse_args()
    os.environ.setdefault("PREFLOOP_WEBHOOK_KEY", "bench-webhook-key-0123456789abcdef")
    print(f"{args.events} events, {args.every} s apart; deadline {args.deadline} s per delivery; "
          f"the slow receiver sends a byte every {args.byte_seconds} s")
    for with_slow in (False, True):
        lat = sorted(run_phase(with_slow, args))
        p99 = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))]
        print(f"healthy receiver {'with' if with_slow else 'without'} the slow one: {len(lat)} delivered, "
              f"p50 {statistics.median(lat) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
