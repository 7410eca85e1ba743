"""Prompts for generation: JSONL rows with ``prompt`` (str), ``messages`` (chat messages ending
with a user turn) or MT-Bench questions (``{"question_id", "category", "turns": [str, ...]}``,
of which the first turn is taken)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .common import (
    FieldError,
    ImportRecord,
    Problem,
    get_messages,
    get_str,
    read_records,
)

__all__ = ["read_prompts"]


def _record(n: int, obj: dict[str, Any]) -> ImportRecord:
    if "messages" in obj:
        return ImportRecord(line=n, messages=get_messages(obj, "messages", end_with_user=True))
    if "prompt" in obj:
        return ImportRecord(line=n, messages=[{"role": "user", "content": get_str(obj, "prompt")}])
    if "turns" in obj:
        turns = obj["turns"]
        if not isinstance(turns, list) or not turns:
            raise FieldError("turns", "expected a non-empty list of strings")
        if not isinstance(turns[0], str):
            raise FieldError("turns[0]", f"expected a string, found {type(turns[0]).__name__}")
        if not turns[0].strip():
            raise FieldError("turns[0]", "is empty", kind="rejected")
        return ImportRecord(line=n, messages=[{"role": "user", "content": turns[0]}])
    raise FieldError("prompt", "missing: a row needs 'prompt', 'messages' or MT-Bench 'turns'")


def read_prompts(path: Path, **_: Any) -> Iterator[ImportRecord | Problem]:
    """Read prompts (no responses, no comparisons); see the module docstring."""
    return read_records(path, _record)
