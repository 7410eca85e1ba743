"""Helpers for tests and benches (no torch): a free port, a real ``prefloop annotate`` server
process started and stopped by pid, and a client that speaks the app's browser protocol."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import httpx

__all__ = ["free_port", "AppServer", "GradioSession"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AppServer:
    """``python -m prefloop --db DB annotate --port P`` in a subprocess; stopped by pid.

    Raises:
        RuntimeError: the server exited or did not answer within 90 s (see ``log``).
    """

    def __init__(self, db: Path, config: Path | None = None, log: Path | None = None,
                 extra_args: list[str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "prefloop", "--db", str(db), "annotate", "--port", str(self.port)]
        if config:
            cmd += ["--config", str(config)]
        cmd += extra_args or []
        self.log = open(log or os.devnull, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/", timeout=2)
                return
            except urllib.error.HTTPError:
                return                      # 401 before login: the server is up
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"annotate server exited with {self.proc.returncode}") from None
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("annotate server did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


class GradioSession:
    """One logged-in browser session spoken over HTTP, as Gradio's own JS client does it:
    ``POST /login`` (the session cookie), then per event ``POST /gradio_api/queue/join`` and the
    ``GET /gradio_api/queue/data`` event stream (SSE) until the event's ``process_completed``.
    No rendering and no client-side polling: what a browser waits for, minus the DOM update.
    ``gr.State`` inputs are sent as null: the server keeps them per session.
    ``bench/annotate_bench.py`` times the app with it.

    Raises:
        RuntimeError: the login was refused, or an event failed (with the server's message) or
            got no result.
        httpx.HTTPError: the server did not answer or answered an HTTP error.
    """

    def __init__(self, url: str, user: str, password: str = "password123"):
        self.http = httpx.Client(base_url=url, timeout=120)
        if self.http.post("/login", data={"username": user, "password": password}).status_code != 200:
            raise RuntimeError(f"login refused for {user}")
        cfg = self.http.get("/config").raise_for_status().json()
        self.deps = {d.get("api_name"): d for d in cfg["dependencies"]}
        self.kinds = {c["id"]: c["type"] for c in cfg["components"]}
        self.session = uuid.uuid4().hex[:11]

    def call(self, api_name: str, *values) -> list:
        """Run the event ``api_name`` with ``values`` for its non-state inputs, in order (the
        rest blank: ``""`` for a textbox, ``[]`` for a checkbox group, else null); returns its
        output values, state outputs included (as null)."""
        dep = self.deps[api_name]
        given, data = list(values), []
        for cid in dep["inputs"]:
            kind = self.kinds[cid]
            data.append(None if kind == "state" else given.pop(0) if given
                        else {"textbox": "", "checkboxgroup": []}.get(kind))
        r = self.http.post("/gradio_api/queue/join", json={
            "data": data, "event_data": None, "fn_index": dep["id"], "session_hash": self.session,
            "trigger_id": dep["targets"][0][0] if dep["targets"] else None}).raise_for_status()
        event_id = r.json()["event_id"]
        with self.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": self.session}) as resp:
            for line in resp.iter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed" and msg.get("event_id") == event_id:
                    if not msg.get("success"):
                        raise RuntimeError(f"{api_name}: {msg.get('output', {}).get('error')}")
                    return msg["output"]["data"]
        raise RuntimeError(f"{api_name}: the event stream closed without a result")

    def close(self) -> None:
        self.http.close()
