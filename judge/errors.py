"""Exceptions raised by :mod:`judge`; the CLI prints them as one line."""

from __future__ import annotations

from prefloop.core.errors import PrefloopError

__all__ = ["JudgeError", "ConstitutionError", "BackendError"]


class JudgeError(PrefloopError):
    """Base class of judge errors the user can fix."""


class ConstitutionError(JudgeError):
    """A constitution file cannot be read or misses a field (names the file and entry)."""


class BackendError(JudgeError):
    """A judge backend failed after its retries (names the endpoint and the last error)."""
