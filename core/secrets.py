"""Secrets never reach a stored, logged or printed text: :func:`redact` replaces every secret
prefloop knows of (the judge API keys and admin password in the environment, and any value
registered at run time) with ``[redacted]``.

The store's failure summaries, the judge's failed-call errors, the pipelines' stage errors and
the CLI's one-line errors all pass through it.

>>> import os
>>> os.environ["PREFLOOP_JUDGE_API_KEY"] = "sk-test-0123456789"
>>> redact("401: invalid key sk-test-0123456789 for this org")
'401: invalid key [redacted] for this org'
"""

from __future__ import annotations

import os
import threading

__all__ = ["SECRET_ENV_VARS", "register_secret", "redact"]

#: Environment variables whose values are secrets wherever they appear.
SECRET_ENV_VARS = ("PREFLOOP_JUDGE_API_KEY", "OPENAI_API_KEY", "PREFLOOP_ADMIN_PASSWORD",
                   "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
_MIN_LENGTH = 6        # shorter values (placeholders such as "EMPTY") would redact ordinary words
_registered: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Treat ``value`` (a password read from a file, a token) as a secret from now on."""
    if value and len(value) >= _MIN_LENGTH:
        with _lock:
            _registered.add(value)


def redact(text: object) -> str:
    """``str(text)`` with every known secret replaced by ``[redacted]`` (longest first, so a
    secret that contains another is hidden whole)."""
    out = str(text)
    with _lock:
        secrets = set(_registered)
    secrets |= {v for k in SECRET_ENV_VARS if len(v := os.environ.get(k, "")) >= _MIN_LENGTH}
    for s in sorted(secrets, key=len, reverse=True):
        if s in out:
            out = out.replace(s, "[redacted]")
    return out
