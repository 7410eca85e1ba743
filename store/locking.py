"""A fair-ish inter-process turnstile in front of DuckDB's own file lock, with a waiter signal.

DuckDB refuses a second writer process with an error instead of making it wait, so waiting
processes have to retry; with retries alone, a process that writes in a tight loop re-takes the
lock before pollers notice it was free, and a slower process (an exporter) can starve. Every
unit of work therefore first takes an exclusive ``flock`` on ``<store>.lock``: a blocked
``flock`` sleeps in the kernel and is woken as soon as the holder releases, so waiters get
their turn. DuckDB's lock is still honored (and retried) for processes that open the file
without prefloop.

A process that has to wait for the turnstile first takes a shared ``flock`` on
``<store>.want`` and keeps it until it gets the turnstile. The holder probes that file
(:meth:`Turnstile.others_waiting`) to learn whether anyone waits, so it can keep the store
attached between units of work while nobody does and give it up as soon as somebody does
(see :mod:`prefloop.store.engine`).
"""

from __future__ import annotations

import fcntl
import os
import threading

__all__ = ["Turnstile"]


def _open(path: str) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


class Turnstile:
    """An exclusive ``flock`` on a sidecar file, with a timeout and a waiter signal.

    Not reentrant; within a process, callers serialize on their own lock first.
    """

    def __init__(self, path: str):
        self.path = path
        self.want_path = path[:-5] + ".want" if path.endswith(".lock") else path + ".want"
        self._fd = _open(path)
        self._want_fd = _open(self.want_path)      # shared while this process waits
        self._probe_fd = _open(self.want_path)     # a separate open file: probes conflict with it

    def acquire(self, timeout: float) -> bool:
        """Take the lock, waiting at most ``timeout`` seconds; ``False`` if it timed out.
        While it waits, the process is visible to the holder's :meth:`others_waiting`."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        fcntl.flock(self._want_fd, fcntl.LOCK_SH)  # a probe holds it exclusively for microseconds
        try:
            return self._wait(timeout)
        finally:
            fcntl.flock(self._want_fd, fcntl.LOCK_UN)

    def _wait(self, timeout: float) -> bool:
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
                self._fd = _open(self.path)
            return state["got"]

    def others_waiting(self) -> bool:
        """Whether another process waits for the turnstile (a few microseconds: one
        non-blocking ``flock``)."""
        try:
            fcntl.flock(self._probe_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(self._probe_fd, fcntl.LOCK_UN)
        return False

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
