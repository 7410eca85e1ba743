"""A real HTTP server speaking the OpenAI chat-completions protocol, for judge tests.

It answers deterministically from the request (the letter is a hash of the messages), counts
requests per message set, and can be told to misbehave: ``faults`` is a list consumed one per
request, each one of ``"429"`` (with ``Retry-After: 0``), ``"500"``, ``"garbage"`` (200 with
a body that is not JSON), ``"slow"`` (sleeps past the client's timeout) or ``None`` (answer);
``echo_key`` answers every completion 401 with the API key in the body (the secrets canary).
``GET /v1/models`` lists ``fake-judge``.
Run it in-process (:meth:`start`) or as a script for other processes:
``python -m tests.judge_server PORT_FILE [DELAY_S]``.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeJudgeServer:
    def __init__(self, delay: float = 0.0, slow_seconds: float = 3.0):
        self.delay, self.slow_seconds = delay, slow_seconds
        self.faults: list[str | None] = []
        self.echo_key = False          # answer every completion 401, echoing the API key
        self.requests: Counter = Counter()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    return self._send(200, json.dumps({"object": "list", "data": [
                        {"id": "fake-judge", "object": "model"}]}).encode())
                self._send(404, b'{"error": {"message": "not found"}}')

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if server.echo_key:        # a careless server: the key in its 401 body
                    auth = self.headers.get("Authorization", "")
                    return self._send(401, json.dumps({"error": {
                        "message": f"invalid key {auth.removeprefix('Bearer ')}"}}).encode())
                key = hashlib.sha256(json.dumps(body["messages"], sort_keys=True).encode()).hexdigest()
                with server.lock:
                    fault = server.faults.pop(0) if server.faults else None
                    server.requests[key] += 1
                if fault == "429":
                    return self._send(429, b'{"error": {"message": "slow down"}}', {"Retry-After": "0"})
                if fault == "500":
                    return self._send(500, b'{"error": {"message": "boom"}}')
                if fault == "garbage":
                    return self._send(200, b"<html>not json")
                if fault == "slow":
                    time.sleep(server.slow_seconds)
                time.sleep(server.delay)
                text = "A" if int(key, 16) % 3 else "B"
                if "Critique request" in body["messages"][-1]["content"]:
                    text = "The response could be kinder."
                elif "Revision request" in body["messages"][-1]["content"]:
                    text = "A kinder response " + key[:8]
                payload = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": text}}],
                           "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}}
                self._send(200, json.dumps(payload).encode())

            def _send(self, code, data, headers=None):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeJudgeServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()


if __name__ == "__main__":
    srv = FakeJudgeServer(delay=float(sys.argv[2]) if len(sys.argv) > 2 else 0.0)
    with open(sys.argv[1], "w") as f:
        f.write(str(srv.port))
    srv.httpd.serve_forever()
