"""Helpers for tests and benches (no torch): a free port, and a real ``prefloop annotate``
server process started and stopped by pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["free_port", "AppServer"]


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
                    raise RuntimeError(f"annotate server exited with {self.proc.returncode}")
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
