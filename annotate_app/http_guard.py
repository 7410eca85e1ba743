"""What the labeling app's HTTP layer adds to Gradio's (an ASGI middleware, no Gradio patching):

* login cookies are sent with ``SameSite=Lax`` (Gradio sends its secure cookie with
  ``SameSite=None``, which lets other sites' requests carry it); the app config's
  ``cookie_samesite`` may ask for ``strict`` (or, documented as unsafe, ``none``);
* a queue join naming an event the app does not have (an unknown ``fn_index``) answers 422 with
  a message instead of Gradio's 500.

Sessions issued before a password change are ended by :class:`~prefloop.annotate_app.auth.SessionGuard`
through :class:`IssuedTokens`, which records each login token as Gradio issues it.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["HttpGuard", "IssuedTokens"]

_SAMESITE = re.compile(rb"samesite=[a-z]+", re.IGNORECASE)


class IssuedTokens(dict):
    """Gradio's ``app.tokens`` (token -> user name), telling ``on_issue(token, user)`` of each
    token as Gradio's login route issues it."""

    def __init__(self, on_issue, *args: Any):
        super().__init__(*args)
        self.on_issue = on_issue

    def __setitem__(self, token: str, username: str) -> None:
        self.on_issue(token, username)
        super().__setitem__(token, username)


class HttpGuard:
    """The ASGI middleware of the module docstring; ``fns`` is the Blocks' event table
    (``demo.fns``), read at request time."""

    def __init__(self, app, *, fns: dict, samesite: str = "lax"):
        self.app, self.fns, self.samesite = app, fns, samesite.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["method"] == "POST" and scope["path"].endswith("/queue/join"):
            body, more = b"", True
            while more:
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
            problem = self._unknown_event(body)
            if problem:
                payload = json.dumps({"detail": problem}).encode()
                await send({"type": "http.response.start", "status": 422, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
                await send({"type": "http.response.body", "body": payload})
                return
            replayed = [False]

            async def receive_again():
                if not replayed[0]:
                    replayed[0] = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()
            return await self.app(scope, receive_again, self._cookies(send))
        return await self.app(scope, receive, self._cookies(send))

    def _unknown_event(self, body: bytes) -> str | None:
        try:
            data = json.loads(body or b"{}")
        except (ValueError, RecursionError):
            return "the body is not JSON"
        if not isinstance(data, dict):
            return "expected a JSON object"
        fn = data.get("fn_index")
        if fn is not None and (isinstance(fn, bool) or not isinstance(fn, int) or fn not in self.fns):
            return f"fn_index {fn!r}: no such event in this app"
        return None

    def _cookies(self, send):
        async def send_with_samesite(message):
            if message["type"] == "http.response.start":
                headers = []
                for k, v in message.get("headers", []):
                    if k.lower() == b"set-cookie":
                        v = (_SAMESITE.sub(b"samesite=" + self.samesite, v) if _SAMESITE.search(v)
                             else v + b"; samesite=" + self.samesite)
                    headers.append((k, v))
                message = {**message, "headers": headers}
            await send(message)
        return send_with_samesite
