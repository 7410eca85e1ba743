"""Preference pairs to evaluate a reward model on, read strictly: RewardBench's row format
(``prompt``, ``chosen``, ``rejected`` strings and a ``subset``; Lambert et al. 2024) or TRL's
preference rows (standard or conversational, ``prompt`` optional when ``chosen``/``rejected``
are whole conversations), in JSONL (optionally gzipped), a JSON array, Parquet or a
``datasets.save_to_disk`` directory. ``subset`` (or ``dataset``) is an optional string.

Unlike an import, which skips bad rows and reports them, an evaluation file is all or nothing:
the first bad row raises ``InvalidInputError`` naming ``file:line:field``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from ..validation import MAX_TEXT_CHARS
from .common import FieldError, Message, Problem, iter_rows
from .trl import pair_record

__all__ = ["PairRow", "read_pair_file"]


@dataclass(frozen=True, slots=True)
class PairRow:
    """One evaluation pair: ``prompt`` (chat messages ending with a user turn), the
    ``chosen`` and ``rejected`` replies (text), its ``subset`` (or ``None``), and its 1-based
    ``line`` in the file."""

    line: int
    prompt: list[Message]
    chosen: str
    rejected: str
    subset: str | None = None


def _row(n: int, obj: Any) -> PairRow:
    if not isinstance(obj, dict):
        raise FieldError(None, f"expected a JSON object, found {type(obj).__name__}")
    rec = pair_record(n, obj)
    subset = obj.get("subset", obj.get("dataset"))
    if subset is not None and not isinstance(subset, str):
        raise FieldError("subset", f"expected a string, found {type(subset).__name__}")
    (chosen, _), (rejected, _) = rec.responses
    for name, text in (("chosen", chosen), ("rejected", rejected)):
        if len(text) > MAX_TEXT_CHARS:
            raise FieldError(name, f"{len(text)} characters, more than {MAX_TEXT_CHARS}")
    return PairRow(n, rec.messages, chosen, rejected, subset)


def read_pair_file(path: str | Path, *, limit: int | None = None) -> list[PairRow]:
    """Every pair of ``path`` (at most ``limit``).

    Raises:
        InvalidInputError: the file is missing or unreadable, has no pairs, or a row has a
            missing or mistyped field (``file:line:field: reason``; identical chosen and
            rejected replies count as bad).
    """
    p = Path(path)
    if not p.exists():
        raise InvalidInputError(str(p), None, None, "no such file or directory")
    out: list[PairRow] = []
    for item in iter_rows(p):
        if isinstance(item, Problem):
            raise item.error(str(p))
        n, obj = item
        try:
            out.append(_row(n, obj))
        except FieldError as exc:
            raise InvalidInputError(str(p), n, exc.field, exc.reason) from None
        if limit is not None and len(out) >= limit:
            break
    if not out:
        raise InvalidInputError(str(p), None, None, "no pairs (expected rows with prompt, chosen "
                                "and rejected)")
    return out
