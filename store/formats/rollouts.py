"""Responses generated elsewhere (an OpenRLHF or verl cluster), back for labeling. JSONL,
JSON or Parquet rows:

``{"prompt": str | [messages] | "messages": [...], "response": str | "responses": [str, ...],
"model": optional str}``

``prompt`` may be the message list of a ``prefloop export --format verl`` row (its
``extra_info`` is accepted and ignored: the prompt's content hash finds the store's prompt
again). Each row adds the prompt (if new) and its responses with their ``model``, without a
comparison; ``prefloop tasks add`` queues them for people, ``prefloop judge run`` for judges.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .common import FieldError, ImportRecord, Problem, get_prompt, get_str, read_records

__all__ = ["read_rollouts"]


def _record(n: int, obj: dict[str, Any]) -> ImportRecord:
    messages = get_prompt(obj)
    if "responses" in obj:
        texts = obj["responses"]
        if not isinstance(texts, list) or not texts:
            raise FieldError("responses", "expected a non-empty list of strings")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise FieldError(f"responses[{i}]", f"expected a string, found {type(t).__name__}")
    else:
        texts = [get_str(obj, "response")]
    model = obj.get("model")
    if model is not None and not isinstance(model, str):
        raise FieldError("model", f"expected a string, found {type(model).__name__}")
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise FieldError("response", "is empty", kind="rejected")
    return ImportRecord(line=n, messages=messages, responses=[(t, model) for t in texts])


def read_rollouts(path: Path, **_: Any) -> Iterator[ImportRecord | Problem]:
    """Read generated responses (no comparisons); see the module docstring."""
    return read_records(path, _record)
