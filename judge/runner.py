"""The batch runner: bounded concurrency, retries, a cache in ``judgments``, crash safety.

Every judge call has a cache key: sha256 of (judge model, template, principle, order, the
rendered messages). Before calling, the runner looks the key up in ``judgments``; after a
call returns, the judgment is written to the store at once (a writer task batches whatever
finished together into one transaction) before the call counts as done. A re-run, or a
resume after ``kill -9``, therefore repeats no finished call and loses none, and
``judgments.cache_key`` being unique keeps a row per call.

Transient failures (HTTP 429 honoring ``Retry-After``, 5xx, timeouts, connection errors,
unparseable HTTP bodies) are retried with exponential backoff and full jitter; a call that
still fails is reported as failed and not cached, so the next run tries it again. Outputs that
arrive but cannot be parsed are recorded with ``verdict = NULL`` (never dropped, never
guessed).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prefloop import store
from prefloop.core.secrets import redact

from .backends import Completion, JudgeBackend
from .errors import JudgeError

__all__ = ["CallSpec", "JudgeSession", "BatchStats", "cache_key", "is_retryable", "retry_after"]


def cache_key(model: str, template: str, principle: str | None, order: str | None,
              messages: list[dict]) -> str:
    """sha256 hex of the call's identity (inputs, judge model, template, principle, order)."""
    blob = json.dumps([model, template, principle, order, messages], ensure_ascii=False,
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class CallSpec:
    """One judge call: what to send and how to read the answer.

    ``parse(completion) -> (verdict, probability)``; ``verdict`` ``None`` means unparseable.
    ``parse=None``: a free-text call (critique, revision) that has no verdict to parse.
    ``meta`` is stored with the judgment (prompt and response ids, round, ...).
    """

    template: str
    messages: list[dict]
    max_tokens: int
    parse: Callable[[Completion], tuple[str | None, float | None]] | None
    principle: str | None = None
    order: str | None = None
    choices: tuple[str, ...] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    keep_text_as: str | None = None  # "critique": also store the output in judgments.critique


@dataclass
class BatchStats:
    """Totals of a batch: counts, tokens, latency (ms), wall time (s)."""

    calls: int = 0
    cached: int = 0
    failed: int = 0
    unparseable: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    retries: int = 0

    def summary(self) -> dict[str, Any]:
        wall = time.perf_counter() - self.started
        lat = sorted(self.latency_ms)
        return {"calls": self.calls, "cached": self.cached, "failed": self.failed,
                "unparseable": self.unparseable, "retries": self.retries,
                "tokens_in": self.tokens_in, "tokens_out": self.tokens_out,
                "seconds": round(wall, 2), "calls_per_second": round(self.calls / wall, 3) if wall else 0,
                "latency_ms_p50": round(lat[len(lat) // 2], 1) if lat else None,
                "latency_ms_p95": round(lat[int(len(lat) * 0.95)], 1) if lat else None}


def retry_after(exc: BaseException) -> float | None:
    """Seconds from a ``Retry-After`` header on an HTTP error, if any."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    value = headers.get("retry-after") if hasattr(headers, "get") else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _call_errors() -> tuple[type[BaseException], ...]:
    import httpx
    import openai

    return (openai.OpenAIError, httpx.HTTPError, asyncio.TimeoutError, json.JSONDecodeError, JudgeError)


def is_retryable(exc: BaseException) -> bool:
    """429, 5xx, timeouts, connection errors and unreadable response bodies."""
    import openai

    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError, asyncio.TimeoutError,
                        json.JSONDecodeError, openai.APIResponseValidationError)):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    return False


class JudgeSession:
    """Makes cached, retried, persisted judge calls with at most ``concurrency`` in flight.

    Args:
        max_attempts: tries per call (first call + retries).
        linger: seconds the writer waits after a finished call for others to join its store
            transaction (one write per batch instead of per call); it does not wait when no
            other call is in flight.
        base_delay, max_delay: exponential backoff with full jitter, seconds.
        on_done: called after each finished call (progress bars).
    """

    def __init__(self, s: store.Store, backend: JudgeBackend, *, concurrency: int = 4,
                 max_attempts: int = 6, base_delay: float = 0.5, max_delay: float = 20.0,
                 on_done: Callable[[], None] | None = None, linger: float = 0.05):
        self.store, self.backend, self.linger = s, backend, linger
        self.semaphore = asyncio.Semaphore(concurrency)
        self.max_attempts, self.base_delay, self.max_delay = max_attempts, base_delay, max_delay
        self.stats = BatchStats()
        self.on_done = on_done
        self._queue: asyncio.Queue | None = None
        self._writer: asyncio.Task | None = None
        self._known: dict[str, store.Judgment] = {}
        self._checked: set[str] = set()   # keys already looked up in the store
        self._in_flight = 0               # calls between the semaphore and their completion

    async def __aenter__(self) -> JudgeSession:
        self._queue = asyncio.Queue()
        self._writer = asyncio.create_task(self._write_loop())
        return self

    async def __aexit__(self, *exc) -> None:
        await self._queue.put(None)
        await self._writer

    async def _write_loop(self) -> None:
        while True:
            item = await self._queue.get()
            batch = [item]
            if item is not None and self.linger and self._in_flight:  # calls finishing soon share a write
                await asyncio.sleep(self.linger)
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            stop = None in batch
            work = [b for b in batch if b is not None]
            if work:
                try:
                    ids = await asyncio.to_thread(self.store.judgments.record, [j for j, _ in work])
                    for (_, fut), jid in zip(work, ids):
                        fut.set_result(jid)
                except BaseException as exc:  # every waiting call sees the failure
                    for _, fut in work:
                        if not fut.done():
                            fut.set_exception(exc)
            if stop:
                return

    def prefetch(self, keys: list[str]) -> None:
        """Load already recorded judgments for these cache keys (one query per 1000 keys)."""
        for i in range(0, len(keys), 1000):
            self._known.update(self.store.judgments.by_cache_key(keys[i:i + 1000]))
        self._checked.update(keys)

    def key(self, spec: CallSpec) -> str:
        return cache_key(self.backend.model, spec.template, spec.principle, spec.order, spec.messages)

    async def call(self, spec: CallSpec) -> store.Judgment | None:
        """The judgment for ``spec``: cached, or called, persisted and returned; ``None`` if the
        call failed after all retries (not cached; counted in ``stats.failed``)."""
        key = self.key(spec)
        if key not in self._known and key not in self._checked:
            found = await asyncio.to_thread(self.store.judgments.by_cache_key, [key])
            self._known.update(found)
        if key in self._known:
            self.stats.cached += 1
            if self.on_done:
                self.on_done()
            return self._known[key]
        async with self.semaphore:
            self._in_flight += 1
            try:
                completion = await self._complete_with_retries(spec)
            finally:
                self._in_flight -= 1
        if completion is None:
            if self.on_done:
                self.on_done()
            return None
        verdict, prob = spec.parse(completion) if spec.parse else (None, None)
        self.stats.calls += 1
        self.stats.unparseable += verdict is None and spec.parse is not None
        self.stats.tokens_in += completion.tokens_in or 0
        self.stats.tokens_out += completion.tokens_out or 0
        self.stats.latency_ms.append(completion.latency_ms)
        j = store.JudgmentIn(
            cache_key=key, judge_model=self.backend.model, template=spec.template,
            raw_output=completion.text, verdict=verdict, principle=spec.principle, order=spec.order,
            probability=prob, critique=completion.text.strip() if spec.keep_text_as == "critique" else None,
            tokens_in=completion.tokens_in, tokens_out=completion.tokens_out,
            latency_ms=completion.latency_ms, meta=spec.meta or None)
        fut = asyncio.get_running_loop().create_future()
        await self._queue.put((j, fut))
        jid = await fut
        judgment = store.Judgment(id=jid, **{f: getattr(j, f) for f in (
            "cache_key", "judge_model", "template", "raw_output", "verdict", "comparison_id",
            "principle", "order", "probability", "critique", "revision_response_id", "tokens_in",
            "tokens_out", "latency_ms", "meta")})
        self._known[key] = judgment
        if self.on_done:
            self.on_done()
        return judgment

    async def _complete_with_retries(self, spec: CallSpec) -> Completion | None:
        """The backend's completion, retried on transient faults (:func:`is_retryable`); ``None``
        after a call failed for good (an API or transport error, counted in ``stats``). A bug
        in a backend (``TypeError`` and the like) is not a failed call: it propagates."""
        for attempt in range(1, self.max_attempts + 1):
            try:
                return await self.backend.complete(spec.messages, max_tokens=spec.max_tokens,
                                                   choices=spec.choices)
            except _call_errors() as exc:
                if not is_retryable(exc) or attempt == self.max_attempts:
                    self.stats.failed += 1
                    self.stats.errors.append(redact(f"{type(exc).__name__}: {exc}")[:200])
                    return None
                self.stats.retries += 1
                delay = retry_after(exc)
                if delay is None:
                    delay = random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))
                await asyncio.sleep(min(delay, self.max_delay))
        return None
