"""Exceptions raised by :mod:`annotate_app`."""

from __future__ import annotations

from prefloop.core.errors import PrefloopError

__all__ = ["AppError", "NotAuthorized", "InvalidSubmission", "InvalidItems"]


class AppError(PrefloopError):
    """Base class of labeling-app errors the user can fix."""


class NotAuthorized(AppError):
    """The caller is not logged in, is disabled, or lacks the role for this action."""


class InvalidSubmission(AppError):
    """A ranking, flag or edit from the form does not validate (the message says why)."""


class InvalidItems(InvalidSubmission):
    """Some items of a batch do not validate: ``errors`` holds ``{"index", "reason"}`` per bad
    item (nothing of the batch was written)."""

    def __init__(self, errors: list[dict], total: int):
        super().__init__(f"{len(errors)} of {total} items are invalid; nothing was written")
        self.errors = errors
