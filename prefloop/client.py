"""A small Python client of prefloop's HTTP API (:mod:`prefloop.annotate_app.api`), on httpx.

Example (against a running ``prefloop annotate``)::

    from prefloop.client import Client
    c = Client("http://127.0.0.1:7860", api_key=os.environ["PREFLOOP_API_KEY"])
    c.add_prompts([{"prompt": "Hi?", "responses": ["Hello!", "Go away."], "queue": True}])
    for comparison in c.iter_comparisons(after=0):
        ...
    e = c.create_export("round-3", source="human")
    c.download(e["id"], "train.parquet", "train.parquet")

Every method raises :class:`APIError` (with the HTTP status and the server's message) on a
4xx/5xx answer.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from prefloop.core.errors import PrefloopError

__all__ = ["Client", "APIError"]


class APIError(PrefloopError):
    """The API answered an error: ``status`` and the server's ``detail`` (and ``errors``)."""

    def __init__(self, status: int, detail: str, errors: list | None = None):
        super().__init__(f"HTTP {status}: {detail}")
        self.status, self.detail, self.errors = status, detail, errors or []


class Client:
    """The API at ``base_url`` (the labeling app's address) with ``api_key`` (default
    ``$PREFLOOP_API_KEY``)."""

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 60.0):
        key = api_key or os.environ.get("PREFLOOP_API_KEY", "")
        self.http = httpx.Client(base_url=base_url.rstrip("/") + "/api/v1", timeout=timeout,
                                 headers={"Authorization": f"Bearer {key}"})

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method: str, path: str, **kw) -> Any:
        r = self.http.request(method, path, **kw)
        if r.status_code >= 400:
            try:
                body = r.json()
            except ValueError:
                body = {"detail": r.text[:500]}
            raise APIError(r.status_code, str(body.get("detail")), body.get("errors"))
        return r.json()

    def me(self) -> dict[str, Any]:
        """``{"id", "name", "role"}`` of the key's user."""
        return self._call("GET", "/me")

    def queue(self) -> dict[str, Any]:
        """``{"open_tasks", "max_comparison_id", "you": {...}}``."""
        return self._call("GET", "/queue")

    def add_prompts(self, items: list[dict[str, Any]], source: str = "api") -> list[dict[str, Any]]:
        """Add prompts with responses (and tasks, ``"queue": True``); one result per item,
        ``{"prompt_id", "response_ids", "task_id"}``. Idempotent by content."""
        return self._call("POST", "/prompts", json={"items": items, "source": source})["items"]

    def next_task(self) -> dict[str, Any] | None:
        """Your leased task, or the next one (``None``: nothing left for you): ``task_id``,
        ``prompt`` (messages), ``responses`` (``label``, ``text``) in your random order."""
        return self._call("GET", "/tasks/next")["task"]

    def lease(self, n: int = 10) -> list[dict[str, Any]]:
        """Up to ``n`` tasks leased to you at once (bulk labeling)."""
        return self._call("POST", "/tasks/lease", json={"n": n})["tasks"]

    def label(self, task_id: int, choice: str, *, rationale: str = "", flags: list[str] | None = None,
              strength: str | None = None, edit: str = "", next: bool = False) -> dict[str, Any]:
        """Label a task (``choice``: A, B, tie or both_bad): ``comparison_id`` and, with
        ``next``, your next ``task``."""
        return self._call("POST", f"/tasks/{task_id}/label", json={
            "choice": choice, "rationale": rationale, "flags": flags or [], "strength": strength,
            "edit": edit, "next": next})

    def skip(self, task_id: int) -> dict[str, Any] | None:
        """Skip a task; returns your next one (or ``None``)."""
        return self._call("POST", f"/tasks/{task_id}/skip", json={})["task"]

    def comparisons(self, after: int = 0, limit: int = 100) -> dict[str, Any]:
        """One page: ``{"items": [...], "next_after": id or None}``."""
        return self._call("GET", "/comparisons", params={"after": after, "limit": limit})

    def iter_comparisons(self, after: int = 0, page: int = 100) -> Iterator[dict[str, Any]]:
        """Every comparison after ``after``, following the cursor."""
        while True:
            out = self.comparisons(after, page)
            yield from out["items"]
            if out["next_after"] is None:
                return
            after = out["next_after"]

    def create_export(self, name: str, **filters: Any) -> dict[str, Any]:
        """A pair export under the app's exports root: ``{"id", "n_pairs", "files", ...}``."""
        return self._call("POST", "/exports", json={"name": name, **filters})

    def export(self, export_id: int) -> dict[str, Any]:
        return self._call("GET", f"/exports/{export_id}")

    def download(self, export_id: int, name: str, to: str | Path) -> Path:
        """Download one file of an export to ``to``."""
        r = self.http.get(f"/exports/{export_id}/files/{name}")
        if r.status_code >= 400:
            raise APIError(r.status_code, r.json().get("detail", r.text[:200]))
        Path(to).write_bytes(r.content)
        return Path(to)

    def runs(self, kind: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        return self._call("GET", "/runs", params={k: v for k, v in (("kind", kind), ("status", status)) if v})["items"]

    def start_job(self, command: str, kind: str = "", **options: Any) -> dict[str, Any]:
        """``train KIND``, ``judge MODE`` or ``loop`` (options: ``config``); ``{"pid", "log"}``."""
        return self._call("POST", "/jobs", json={"command": command, "kind": kind, "options": options})

    def add_webhook(self, url: str, events: list[str]) -> dict[str, Any]:
        """Register a webhook: ``{"id", "url", "events", "secret"}`` (the secret only here)."""
        return self._call("POST", "/webhooks", json={"url": url, "events": events})

    def webhook_deliveries(self, webhook_id: int | None = None) -> list[dict[str, Any]]:
        params = {"webhook_id": webhook_id} if webhook_id is not None else {}
        return self._call("GET", "/webhooks/deliveries", params=params)["items"]
