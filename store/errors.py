"""Exceptions raised by :mod:`prefloop.store` (subclasses of :class:`PrefloopError`).

Only the CLI turns these into one-line user messages; library code raises them with a message
that says what was found, what is required, and how to fix it.
"""

from __future__ import annotations

from prefloop.core.errors import PrefloopError

__all__ = [
    "StoreError",
    "StoreNotFoundError",
    "StoreBusyError",
    "SchemaError",
    "NotFoundError",
    "ValidationError",
    "PromptSetConflictError",
    "LeaseError",
    "ConversationError",
    "InvalidInputError",
    "ExportError",
]


class StoreError(PrefloopError):
    """Base class of every error raised by the store."""


class StoreNotFoundError(StoreError):
    """The store file does not exist (run ``prefloop init``)."""


class StoreBusyError(StoreError):
    """Another process held the store's write lock for longer than the allowed wait."""


class SchemaError(StoreError):
    """The store was written by a newer prefloop, or its schema is damaged."""


class NotFoundError(StoreError):
    """A row named by id or name does not exist."""


class ValidationError(StoreError):
    """A record passed to the store API breaks a rule of the data model."""


class PromptSetConflictError(ValidationError):
    """A prompt would join a second recorded prompt set (train, dev, test): a test set may
    never overlap the prompts that trained a model or chose its settings."""


class ConversationError(StoreError):
    """A conversation cannot take this turn: its last turn is not ranked yet, or it is full."""


class LeaseError(StoreError):
    """A task submission or skip does not match a lease held by the caller."""


class InvalidInputError(StoreError):
    """An import file has a line that cannot be read; names the file, line and field.

    Attributes:
        path: the input file.
        line: 1-based line number (for JSON arrays: the line where the element starts), or
            ``None`` for errors about the whole file.
        field: the field at fault (``"chosen"``, ``"messages[1].role"``) or ``None``.
        reason: what was found and what was required.
    """

    def __init__(self, path: str, line: int | None, field: str | None, reason: str):
        self.path, self.line, self.field, self.reason = path, line, field, reason
        where = path if line is None else f"{path}:{line}"
        what = f"field '{field}': {reason}" if field else reason
        super().__init__(f"{where}: {what}")


class ExportError(StoreError):
    """An export cannot be written (output exists, no pairs match, bad filter)."""
