"""Delivery of webhook events (:mod:`prefloop.store.platform`): a daemon thread of the app
process reads the store's outbox and POSTs each due delivery with the Standard Webhooks
headers, on httpx. A 2xx answer delivers it; anything else (another status, a timeout, a refused
connection) is recorded on the delivery and retried after ``backoff * 4**(attempt - 1)``
seconds (5 s, 20 s, 80 s, ... by default), up to ``attempts`` tries, then it is ``failed``.
Nothing a labeler does waits on it: their transaction only adds rows to the outbox. The thread
wakes when this process queues a delivery, when a retry falls due, and otherwise every
``poll_seconds`` (30: deliveries queued by other processes, e.g. a training run's
``run.finished``), so a store without webhooks is read twice a minute, not continuously.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from prefloop import store
from prefloop.core.secrets import redact
from prefloop.store.platform import sign_webhook

__all__ = ["WebhookSender"]

logger = logging.getLogger(__name__)


class WebhookSender:
    """Delivers due webhook events every ``poll_seconds`` (see the module docstring)."""

    def __init__(self, s: store.Store, *, poll_seconds: float = 30.0, backoff: float = 5.0,
                 attempts: int = 6, timeout: float = 10.0):
        self.store, self.poll, self.backoff, self.attempts, self.timeout = s, poll_seconds, backoff, attempts, timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="prefloop-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        import httpx

        from prefloop.store.platform import QUEUED

        wait = 0.0
        with httpx.Client(timeout=self.timeout, follow_redirects=False) as client:
            while not self._stop.is_set():
                QUEUED.wait(wait)
                QUEUED.clear()
                wait = self.poll
                try:
                    self.deliver_due(client)
                    nxt = self.store.webhooks.next_due()
                    if nxt is not None:
                        wait = min(self.poll, max(0.05, (nxt - store.utcnow()).total_seconds()))
                except store.ValidationError as exc:      # e.g. no $PREFLOOP_WEBHOOK_KEY
                    if str(exc) != self.last_error:
                        logger.error("webhooks: %s", exc)
                    self.last_error = str(exc)
                except Exception:                          # the thread must go on; say why
                    logger.exception("webhooks: delivery round failed")

    def deliver_due(self, client) -> int:
        """One round: every due delivery attempted once; returns how many were attempted."""
        import json

        due = self.store.webhooks.due()
        for d, url, secret in due:
            body = json.dumps(d.payload, separators=(",", ":")).encode()
            ts = int(time.time())
            headers = {"content-type": "application/json", "webhook-id": d.message_id,
                       "webhook-timestamp": str(ts),
                       "webhook-signature": sign_webhook(secret, d.message_id, ts, body)}
            status, error = None, None
            try:
                r = client.post(url, content=body, headers=headers)
                status = r.status_code
                ok = 200 <= status < 300
                if not ok:
                    error = f"HTTP {status}"
            except Exception as exc:                       # recorded on the delivery
                ok, error = False, redact(f"{type(exc).__name__}: {exc}")
            attempt = d.attempts + 1
            retry = None
            if not ok and attempt < self.attempts:
                retry = store.utcnow() + timedelta(seconds=self.backoff * 4 ** (attempt - 1))
            self.store.webhooks.record_attempt(d.id, ok=ok, http_status=status, error=error,
                                               retry_at=retry)
        return len(due)
