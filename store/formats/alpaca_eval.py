"""AlpacaEval annotations: a JSON list (or JSONL) of pairwise judgments by an AI annotator.

Row: ``{"instruction", "output_1", "generator_1", "output_2", "generator_2", "annotator",
"preference", ...}``. ``preference`` 1 means output_1 won, 2 output_2 won, 1.5 a tie, a value
strictly between 1 and 2 a soft preference (the nearer output wins, with confidence
``|p - 1.5| * 2``), and 0 or null no usable verdict: the responses are kept but no comparison
is recorded (in the shared GPT-4 file, the 16 rows with preference 0 are exactly those whose two
outputs are identical, which are then one response). The ``annotator`` field names the AI labeler (e.g. ``alpaca_eval_gpt4``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .common import FieldError, ImportRecord, Problem, get_str, read_records

__all__ = ["read_alpaca_eval"]


def _preference(obj: dict[str, Any]) -> float | None:
    p = obj.get("preference")
    if p is None:
        return None
    if isinstance(p, str):
        try:
            p = float(p.strip())
        except ValueError:
            raise FieldError("preference", f"expected 0, 1, 2 or a number in [1, 2], found {p!r}") from None
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise FieldError("preference", f"expected a number, found {type(p).__name__}")
    if p == 0:
        return None
    if not 1 <= p <= 2:
        raise FieldError("preference", f"expected 0, 1, 2 or a number in [1, 2], found {p}")
    return float(p)


def _record(n: int, obj: dict[str, Any]) -> ImportRecord:
    instruction = get_str(obj, "instruction")
    out1, out2 = get_str(obj, "output_1"), get_str(obj, "output_2")
    gen1 = obj.get("generator_1")
    gen2 = obj.get("generator_2")
    for name, g in (("generator_1", gen1), ("generator_2", gen2)):
        if g is not None and not isinstance(g, str):
            raise FieldError(name, f"expected a string, found {type(g).__name__}")
    p = _preference(obj)
    if out1 == out2 and p is not None:
        raise FieldError("output_2", "identical to output_1, yet the preference is "
                         f"{obj.get('preference')!r}: nothing to compare", kind="rejected")
    record = ImportRecord(line=n, messages=[{"role": "user", "content": instruction}],
                          responses=[(out1, gen1), (out2, gen2)])
    if p is not None:
        annotator = obj.get("annotator")
        if annotator is not None and not isinstance(annotator, str):
            raise FieldError("annotator", f"expected a string, found {type(annotator).__name__}")
        record.labeler_kind, record.labeler = "ai", annotator or "alpaca-eval"
        if p == 1.5:
            record.ranking = [[0, 1]]
        else:
            record.ranking = [[0], [1]] if p < 1.5 else [[1], [0]]
            if p not in (1.0, 2.0):
                record.confidence = abs(p - 1.5) * 2
    return record


def read_alpaca_eval(path: Path, **_: Any) -> Iterator[ImportRecord | Problem]:
    """Read AlpacaEval annotations; see the module docstring."""
    return read_records(path, _record)
