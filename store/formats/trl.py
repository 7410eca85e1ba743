"""TRL preference data: ``prompt`` / ``chosen`` / ``rejected``, standard or conversational.

Accepted rows (the formats of TRL's dataset guide):

* standard: ``{"prompt": str, "chosen": str, "rejected": str}``;
* conversational: ``{"prompt": [messages], "chosen": [assistant message],
  "rejected": [assistant message]}``;
* implicit prompt: ``{"chosen": [messages], "rejected": [messages]}`` sharing every turn but the
  last assistant message.

>>> r = _record(1, {"prompt": "2+2?", "chosen": "4", "rejected": "5"}, "human", "demo")
>>> r.messages, r.responses, r.ranking
([{'role': 'user', 'content': '2+2?'}], [('4', None), ('5', None)], [[0], [1]])
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..records import Message
from .common import FieldError, ImportRecord, Problem, get_messages, get_str, read_records

__all__ = ["read_trl"]


def _reply(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if isinstance(value, str):
        return get_str(obj, name)
    messages = get_messages(obj, name, end_with_user=False)
    if len(messages) != 1 or messages[0]["role"] != "assistant":
        raise FieldError(name, f"expected one assistant message, found roles "
                         f"{[m['role'] for m in messages]}")
    if not messages[0]["content"].strip():
        raise FieldError(name, "the assistant message is empty", kind="rejected")
    return messages[0]["content"]


def _implicit(obj: dict[str, Any]) -> tuple[list[Message], str, str]:
    chosen = get_messages(obj, "chosen", end_with_user=False)
    rejected = get_messages(obj, "rejected", end_with_user=False)
    for name, msgs in (("chosen", chosen), ("rejected", rejected)):
        if msgs[-1]["role"] != "assistant" or len(msgs) < 2 or msgs[-2]["role"] != "user":
            raise FieldError(name, "an implicit-prompt conversation must end with a user turn "
                             "followed by the assistant reply")
    if chosen[:-1] != rejected[:-1]:
        raise FieldError("rejected", "its conversation differs from 'chosen' before the final "
                         "reply", kind="rejected")
    for name, msgs in (("chosen", chosen), ("rejected", rejected)):
        if not msgs[-1]["content"].strip():
            raise FieldError(name, "the final assistant reply is empty", kind="rejected")
    return chosen[:-1], chosen[-1]["content"], rejected[-1]["content"]


def _record(n: int, obj: dict[str, Any], labeler_kind: str, labeler: str) -> ImportRecord:
    if "prompt" not in obj or obj["prompt"] is None:
        if isinstance(obj.get("chosen"), list):
            messages, chosen, rejected = _implicit(obj)
        else:
            raise FieldError("prompt", "missing (required unless chosen/rejected are "
                             "conversations that include the prompt)")
    else:
        if isinstance(obj["prompt"], str):
            messages = [{"role": "user", "content": get_str(obj, "prompt")}]
        else:
            messages = get_messages(obj, "prompt", end_with_user=True)
        chosen, rejected = _reply(obj, "chosen"), _reply(obj, "rejected")
    if chosen == rejected:
        raise FieldError("rejected", "identical to 'chosen'", kind="rejected")
    return ImportRecord(line=n, messages=messages, responses=[(chosen, None), (rejected, None)],
                        ranking=[[0], [1]], labeler_kind=labeler_kind, labeler=labeler)


def read_trl(path: Path, *, labeler_kind: str = "human", labeler: str = "trl",
             **_: Any) -> Iterator[ImportRecord | Problem]:
    """Read TRL preference rows from JSONL (optionally gzipped), a JSON array, Parquet, or a
    ``datasets.save_to_disk`` directory; every row becomes a comparison chosen > rejected
    labeled ``labeler_kind`` / ``labeler``."""
    return read_records(path, lambda n, obj: _record(n, obj, labeler_kind, labeler))
