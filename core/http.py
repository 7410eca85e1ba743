"""ASGI plumbing shared by prefloop's HTTP servers (the labeling app's JSON API, the reward-model
server): no web framework imported, so it lives in the shared bottom."""

from __future__ import annotations

import json

__all__ = ["BodyLimit"]


class BodyLimit:
    """ASGI middleware: a POST/PUT/PATCH body must be JSON (415) of at most ``limit`` bytes
    (413), counted as it streams in (a chunked body has no Content-Length to check); a client
    that goes away before its body is complete gets no answer and leaves no trace in the log."""

    def __init__(self, app, limit: int = 8 << 20):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        size = headers.get("content-length")
        if size is not None and (not (size.isascii() and size.isdigit()) or int(size) > self.limit):
            return await _answer(send, 413, f"the body is over {self.limit >> 20} MiB")
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            return await _answer(send, 415, f"Content-Type {kind or 'missing'}: send application/json")
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                return await _answer(send, 413, f"the body is over {self.limit >> 20} MiB")
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        return await self.app(scope, replay, send)


async def _answer(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
