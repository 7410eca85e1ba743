"""A fair-ish inter-process turnstile in front of DuckDB's own file lock.

DuckDB refuses a second writer process with an error instead of making it wait, so waiting
processes have to retry; with retries alone, a process that writes in a tight loop re-takes the
lock before pollers notice it was free, and a slower process (an exporter) can starve. Every
unit of work therefore first takes an exclusive ``flock`` on ``<store>.lock``: a blocked
``flock`` sleeps in the kernel and is woken as soon as the holder releases, so waiters get
their turn. DuckDB's lock is still honored (and retried) for processes that open the file
without prefloop.
"""

from __future__ import annotations

import fcntl
import os
import threading

__all__ = ["Turnstile"]


class Turnstile:
    """An exclusive ``flock`` on a sidecar file, with a timeout.

    Not reentrant; within a process, callers serialize on their own lock first.
    """

    def __init__(self, path: str):
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def acquire(self, timeout: float) -> bool:
        """Take the lock, waiting at most ``timeout`` seconds; ``False`` if it timed out."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        # Block in a helper thread so the wait can time out.
        fd, cond, state = self._fd, threading.Condition(), {"got": False, "abandoned": False}

        def wait() -> None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with cond:
                if state["abandoned"]:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)
                else:
                    state["got"] = True
                    cond.notify()

        threading.Thread(target=wait, name="prefloop-turnstile", daemon=True).start()
        with cond:
            cond.wait_for(lambda: state["got"], timeout)
            if not state["got"]:
                # The helper may still get the lock later: give it a descriptor of its own so
                # it cannot release a lock taken through the new one.
                state["abandoned"] = True
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            return state["got"]

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
