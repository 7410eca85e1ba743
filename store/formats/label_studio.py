"""Label Studio JSON exports of pairwise LLM tasks (Label Studio's "Human preference collection
for RLHF" and pairwise templates: ``<Pairwise name="..." toName="answer1,answer2"/>``).

A task (one element of the exported JSON list) is ``{"id", "data": {"prompt": str, "answer1":
str, "answer2": str}, "annotations": [...]}`` (``text1``/``text2`` are read too, as the plain
pairwise template names them). Each annotation that was not cancelled becomes one human
comparison by ``label-studio:<completed_by>`` (an id, or the user's email when the export
expanded it): a ``pairwise`` result with ``value.selected`` ``left`` (the first answer won) or
``right``, or a ``choices`` result whose choice names an answer (``answer1``/``answer2``,
``A``/``B``, ``left``/``right``, ``Answer 1``/``Answer 2``; ``tie`` for a tie). Predictions
(model pre-labels) are not labels and are left out. A task without annotations adds its prompt
and answers only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .common import FieldError, ImportRecord, Problem, get_str, iter_rows

__all__ = ["read_label_studio", "CHOICE_WORDS"]

#: Choice values (lower case, spaces removed) -> the winning answer's index, or None (a tie).
CHOICE_WORDS = {"answer1": 0, "a": 0, "left": 0, "1": 0, "answer2": 1, "b": 1, "right": 1, "2": 1,
                "tie": None, "equal": None}


def _texts(data: dict[str, Any]) -> tuple[str, str, str]:
    if not isinstance(data, dict):
        raise FieldError("data", f"expected an object, found {type(data).__name__}")
    first, second = ("answer1", "answer2") if "answer1" in data else ("text1", "text2")
    return get_str(data, "prompt"), get_str(data, first), get_str(data, second)


def _winner(result: list[Any], where: str) -> tuple[bool, int | None] | None:
    """``(found, winner index or None for a tie)`` of an annotation's result, or ``None`` when
    it holds no preference."""
    if not isinstance(result, list):
        raise FieldError(f"{where}.result", f"expected a list, found {type(result).__name__}")
    for j, r in enumerate(result):
        if not isinstance(r, dict) or not isinstance(r.get("value"), dict):
            raise FieldError(f"{where}.result[{j}]", "expected an object with a value")
        kind, value = r.get("type"), r["value"]
        if kind == "pairwise":
            side = value.get("selected")
            if side not in ("left", "right"):
                raise FieldError(f"{where}.result[{j}].value.selected",
                                 f"expected left or right, found {side!r}")
            return True, 0 if side == "left" else 1
        if kind == "choices":
            choices = value.get("choices")
            if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], str):
                raise FieldError(f"{where}.result[{j}].value.choices", "expected one choice")
            word = choices[0].strip().lower().replace(" ", "")
            if word not in CHOICE_WORDS:
                raise FieldError(f"{where}.result[{j}].value.choices",
                                 f"{choices[0]!r} names neither answer (expected e.g. answer1, "
                                 "answer2 or tie)")
            return True, CHOICE_WORDS[word]
    return None


def _records(n: int, task: Any) -> list[ImportRecord]:
    if not isinstance(task, dict):
        raise FieldError(None, f"expected a task object, found {type(task).__name__}")
    prompt, a, b = _texts(task.get("data"))
    messages = [{"role": "user", "content": prompt}]
    annotations = task.get("annotations") or []
    if not isinstance(annotations, list):
        raise FieldError("annotations", f"expected a list, found {type(annotations).__name__}")
    out = []
    for i, ann in enumerate(annotations):
        if not isinstance(ann, dict):
            raise FieldError(f"annotations[{i}]", "expected an object")
        cancelled = ann.get("was_cancelled", False)
        if not isinstance(cancelled, bool):
            raise FieldError(f"annotations[{i}].was_cancelled", f"expected true or false, found {cancelled!r}")
        if cancelled:
            continue
        who = ann.get("completed_by")
        if isinstance(who, dict):
            who = who.get("email") or who.get("id")
        if who is None or isinstance(who, (list, dict, bool)):
            raise FieldError(f"annotations[{i}].completed_by", "expected the annotator's id or email")
        pref = _winner(ann.get("result"), f"annotations[{i}]")
        if pref is None:
            continue
        if a == b:
            raise FieldError("data", "the two answers are identical: nothing to compare", kind="rejected")
        _, win = pref
        ranking = [[0, 1]] if win is None else [[win], [1 - win]]
        out.append(ImportRecord(line=n, messages=messages, responses=[(a, None), (b, None)],
                                ranking=ranking, labeler_kind="human",
                                labeler=f"label-studio:{who}"))
    return out or [ImportRecord(line=n, messages=messages, responses=[(a, None), (b, None)])]


def read_label_studio(path: Path, **_: Any) -> Iterator[ImportRecord | Problem]:
    """Read a Label Studio JSON (or JSONL) export; see the module docstring."""
    import json

    for item in iter_rows(path):
        if isinstance(item, Problem):
            yield item
            continue
        n, obj = item
        try:
            yield from _records(n, obj)
        except FieldError as exc:
            yield Problem(n, exc.field, exc.reason, exc.kind,
                          raw=json.dumps(obj, ensure_ascii=False, default=str)[:2000])
