"""Anthropic HH-RLHF transcripts: ``{"chosen": transcript, "rejected": transcript}``.

A transcript is ``"\\n\\nHuman: ...\\n\\nAssistant: ..."`` turns. Chosen and rejected share
every turn but the last Assistant reply; the shared turns become the prompt messages, the two
final replies the responses, and the line a human comparison chosen > rejected.

>>> parse_transcript("\\n\\nHuman: Hi\\n\\nAssistant: Hello!")
[{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Hello!'}]
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..records import Message
from .common import FieldError, ImportRecord, Problem, get_str, read_records

__all__ = ["parse_transcript", "read_hh"]

_TURN = re.compile(r"\n\n(Human|Assistant):")
_ROLE = {"Human": "user", "Assistant": "assistant"}


def parse_transcript(text: str, field: str = "transcript") -> list[Message]:
    """Split an HH transcript into chat messages (contents stripped).

    Raises:
        FieldError: the text does not start with a ``Human:`` turn.
    """
    parts = _TURN.split(text)
    if parts[0].strip() or len(parts) < 3:
        raise FieldError(field, "expected a transcript starting with '\\n\\nHuman:'")
    return [{"role": _ROLE[parts[i]], "content": parts[i + 1].strip()}
            for i in range(1, len(parts), 2)]


_LAST = "\n\nAssistant:"


def _split(transcript: str, field: str) -> tuple[str, str]:
    """``(prompt part, final reply)`` split at the last Assistant turn."""
    if _LAST not in transcript:
        raise FieldError(field, "expected a transcript with at least one '\\n\\nAssistant:' turn")
    head, _, reply = transcript.rpartition(_LAST)
    return head, reply.strip()


def _record(n: int, obj: dict[str, Any], labeler: str) -> ImportRecord:
    head, chosen = _split(get_str(obj, "chosen", allow_empty=True), "chosen")
    head_r, rejected = _split(get_str(obj, "rejected", allow_empty=True), "rejected")
    if head != head_r:
        turn = next((i for i, (a, b) in enumerate(zip(parse_transcript(head, "chosen"),
                                                       parse_transcript(head_r, "rejected")))
                     if a != b), None)
        where = f" (first at turn {turn + 1})" if turn is not None else ""
        raise FieldError("rejected", f"its conversation differs from 'chosen' before the final "
                         f"reply{where}: not two replies to one prompt", kind="rejected")
    prompt = parse_transcript(head, "chosen")
    if prompt[-1]["role"] != "user":
        raise FieldError("chosen", "the final reply does not follow a Human turn", kind="rejected")
    for name, reply in (("chosen", chosen), ("rejected", rejected)):
        if not reply:
            raise FieldError(name, "the final Assistant reply is empty", kind="rejected")
    if chosen == rejected:
        raise FieldError("rejected", "the final reply is identical to 'chosen'", kind="rejected")
    return ImportRecord(line=n, messages=prompt, responses=[(chosen, None), (rejected, None)],
                        ranking=[[0], [1]], labeler_kind="human", labeler=labeler)


def read_hh(path: Path, *, labeler: str = "hh-rlhf", **_: Any) -> Iterator[ImportRecord | Problem]:
    """Read an HH-RLHF JSONL file (optionally gzipped); see the module docstring."""
    return read_records(path, lambda n, obj: _record(n, obj, labeler))
