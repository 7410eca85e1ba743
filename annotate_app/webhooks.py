"""Delivery of webhook events (:mod:`prefloop.store.platform`): a daemon thread of the app
process reads the store's outbox and POSTs each due delivery with the Standard Webhooks
headers, on httpx's async client. A 2xx answer delivers it; anything else (another status, a timeout, a refused
connection) is recorded on the delivery and retried after ``backoff * 4**(attempt - 1)``
seconds (5 s, 20 s, 80 s, ... by default), up to ``attempts`` tries, then it is ``failed``.
Nothing a labeler does waits on it: their transaction only adds rows to the outbox. The thread
wakes when this process queues a delivery, when a retry falls due, and otherwise every
``poll_seconds`` (30: deliveries queued by other processes, e.g. a training run's
``run.finished``), so a store without webhooks is read twice a minute, not continuously.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from datetime import timedelta

from prefloop import store
from prefloop.core.secrets import redact
from prefloop.core.signing import SigningKeyError, sign_webhook

__all__ = ["WebhookSender"]

logger = logging.getLogger(__name__)


class WebhookSender:
    """Delivers due webhook events every ``poll_seconds`` (see the module docstring). Each
    receiver (URL) gets its deliveries in order, receivers side by side, and each delivery has a
    deadline of ``timeout`` seconds for the whole exchange (a receiver that trickles its answer
    byte by byte is cut off there, and a slow receiver never delays another)."""

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
        asyncio.run(self._loop())

    async def _loop(self) -> None:
        import httpx

        from prefloop.store.platform import QUEUED

        wait = 0.0
        busy: dict[str, asyncio.Task] = {}        # a receiver's deliveries in flight
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
            while not self._stop.is_set():
                await asyncio.to_thread(QUEUED.wait, wait)
                QUEUED.clear()
                wait = self.poll
                try:
                    self._dispatch(client, busy)
                    nxt = self.store.webhooks.next_due()
                    if nxt is not None:
                        wait = min(self.poll, max(0.05, (nxt - store.utcnow()).total_seconds()))
                    if busy:                       # come back soon for what waits behind them
                        wait = min(wait, 0.2)
                except (store.ValidationError, SigningKeyError) as exc:      # e.g. no $PREFLOOP_WEBHOOK_KEY
                    if str(exc) != self.last_error:
                        logger.error("webhooks: %s", exc)
                    self.last_error = str(exc)
                except Exception:                          # the thread must go on; say why
                    logger.exception("webhooks: delivery round failed")
            await asyncio.gather(*busy.values(), return_exceptions=True)

    def _dispatch(self, client, busy: dict[str, asyncio.Task]) -> list[asyncio.Task]:
        """Start delivering the due deliveries of every receiver that is not busy, one task per
        receiver (its deliveries in order); a busy receiver's due deliveries stay pending until
        it is free. Never waits: a slow receiver holds only its own task."""
        for url in [u for u, t in busy.items() if t.done()]:
            busy.pop(url)
        by_url: dict[str, list] = {}
        for d, url, secret in self.store.webhooks.due():
            if url not in busy:
                by_url.setdefault(url, []).append((d, secret))
        started = []
        for url, items in by_url.items():
            busy[url] = asyncio.create_task(self._deliver_to(client, url, items))
            started.append(busy[url])
        return started

    async def deliver_due(self, client) -> int:
        """One round, awaited (tests and benchmarks): every due delivery attempted once, each
        receiver's in order and the receivers side by side (``client``: an
        ``httpx.AsyncClient``); returns how many were attempted."""
        n = len(self.store.webhooks.due())
        await asyncio.gather(*self._dispatch(client, {}))
        return n

    async def _deliver_to(self, client, url: str, items: list) -> None:
        for d, secret in items:
            ok, status, error = await self._post(client, url, d, secret)
            attempt = d.attempts + 1
            retry = None
            if not ok and attempt < self.attempts:
                retry = store.utcnow() + timedelta(seconds=self.backoff * 4 ** (attempt - 1))
            self.store.webhooks.record_attempt(d.id, ok=ok, http_status=status, error=error, retry_at=retry)

    async def _post(self, client, url: str, d, secret: str) -> tuple[bool, int | None, str | None]:
        """One attempt within the deadline: ``(delivered, HTTP status, error)``."""
        body = json.dumps(d.payload, separators=(",", ":")).encode()
        ts = int(time.time())
        headers = {"content-type": "application/json", "webhook-id": d.message_id,
                   "webhook-timestamp": str(ts), "webhook-signature": sign_webhook(secret, d.message_id, ts, body)}
        try:
            r = await asyncio.wait_for(client.post(url, content=body, headers=headers), self.timeout)
        except TimeoutError:
            return False, None, f"no complete answer within the {self.timeout:g} s deadline"
        except Exception as exc:                           # recorded on the delivery
            return False, None, redact(f"{type(exc).__name__}: {exc}")
        ok = 200 <= r.status_code < 300
        return ok, r.status_code, None if ok else f"HTTP {r.status_code}"
