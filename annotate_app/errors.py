"""Exceptions raised by :mod:`annotate_app`."""

from __future__ import annotations

from prefloop.core.errors import PrefloopError

__all__ = ["AppError", "NotAuthorized", "InvalidSubmission"]


class AppError(PrefloopError):
    """Base class of labeling-app errors the user can fix."""


class NotAuthorized(AppError):
    """The caller is not logged in, is disabled, or lacks the role for this action."""


class InvalidSubmission(AppError):
    """A ranking, flag or edit from the form does not validate (the message says why)."""
