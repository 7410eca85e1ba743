"""Unpaired feedback: the thumbs up/down a chat product logs. JSONL (or JSON, Parquet) rows:

``{"prompt": str | "messages": [...], "response": str, "label": true | false | "up" | "down" |
"thumbs_up" | "thumbs_down" | 1 | 0, "user": optional str, "session": optional str}``

Each row becomes the prompt, the response and a one-response comparison flagged
``thumbs_up`` or ``thumbs_down`` (labeler: ``user``, else the dataset; kind ``human``). A
one-response ranking makes no pair, so pair exports are unchanged; ``prefloop export --format
kto`` exports it as TRL's unpaired preference rows (Ethayarajh et al. 2024, "KTO"). ``session``
is read and checked, not stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .common import (
    FieldError,
    ImportRecord,
    Problem,
    get_prompt,
    get_str,
    read_records,
)

__all__ = ["read_feedback", "FEEDBACK_FLAGS", "parse_label"]

#: The comparison flags that carry unpaired feedback.
FEEDBACK_FLAGS = {True: "thumbs_up", False: "thumbs_down"}
_LABELS = {True: True, False: False, "up": True, "down": False,     # 1 and 0 hash as True, False
           "thumbs_up": True, "thumbs_down": False, "true": True, "false": False,
           "good": True, "bad": False}


def parse_label(value: Any) -> bool:
    """``true``/``false``, ``1``/``0``, ``up``/``down``, ``thumbs_up``/``thumbs_down``,
    ``good``/``bad`` (strings case-insensitive) as a bool; raises :class:`FieldError`."""
    key = value.strip().lower() if isinstance(value, str) else value
    if isinstance(key, float) and key in (0.0, 1.0):
        key = int(key)
    try:
        return _LABELS[key]
    except (KeyError, TypeError):
        raise FieldError("label", f"expected true/false, 1/0, up/down or thumbs_up/thumbs_down, "
                                  f"found {value!r}") from None


def _record(n: int, obj: dict[str, Any], labeler: str) -> ImportRecord:
    messages = get_prompt(obj)
    response = get_str(obj, "response")
    if "label" not in obj:
        raise FieldError("label", "missing (required)")
    label = parse_label(obj["label"])
    for name in ("user", "session"):
        if obj.get(name) is not None and not isinstance(obj[name], (str, int)):
            raise FieldError(name, f"expected a string, found {type(obj[name]).__name__}")
    user = str(obj["user"]) if obj.get("user") is not None else labeler
    if not response.strip():
        raise FieldError("response", "is empty", kind="rejected")
    return ImportRecord(line=n, messages=messages, responses=[(response, None)], ranking=[[0]],
                        labeler_kind="human", labeler=user, flags=[FEEDBACK_FLAGS[label]])


def read_feedback(path: Path, *, labeler: str = "feedback", **_: Any) -> Iterator[ImportRecord | Problem]:
    """Read unpaired feedback; see the module docstring."""
    return read_records(path, lambda n, obj: _record(n, obj, labeler))
