"""Argilla 2.x datasets saved with ``rg.Dataset.to_disk(path)``: a folder holding
``records.json`` and ``.argilla/settings.json`` (and ``.argilla/dataset.json``), as
``argilla.datasets._io._disk.DiskImportExportMixin`` writes them.

Pinned from Argilla's own code (``argilla/src/argilla``: ``records/_io/_json.py`` dumps
``GenericIO.to_list(records, flatten=False)``, i.e. one ``Record.to_dict()`` per record):

* ``records.json``: a JSON array of ``{"id", "fields": {name: value}, "metadata", "suggestions":
  {question: {"value", "score", "agent"}}, "responses": {question: [{"value", "user_id"[,
  "status"]}]}, "vectors", "_server_id"}``;
* ``.argilla/settings.json``: ``Settings.serialize()``: ``{"fields": [{"name", "settings":
  {"type": "text"|"chat"|...}}], "questions": [{"name", "settings": {"type": "ranking" |
  "label_selection" | ..., "options": [{"value", "text"}]}}], ...}``.

The preference is the first ``ranking`` question (its value: the option values in rank order,
best first; the server's raw form ``[{"value", "rank"}]`` is read too, equal ranks a tie), else
the first ``label_selection`` question (its value names the best response, or a tie). Each
option names a response field (``response1``) or a position (``A``/``B``, ``1``/``2``,
``left``/``right``; ``tie``, ``equal`` and ``both`` are ties). Without ``settings.json`` (a bare
``records.json``) the question is the first whose values are lists (ranking) or strings (label).
The prompt is the field named ``prompt``, ``instruction``, ``question``, ``input``, ``messages``
or ``chat`` (a text, or a chat field's message list), else the first field that is not a
response. Every response of a user (``status`` absent or ``submitted``; drafts and discarded
ones are left out) becomes one human comparison by ``argilla:<user_id>``. Suggestions (model
pre-labels) are not labels and are left out. A problem's "line" is the record's 1-based
position in ``records.json`` (Argilla writes the whole array on one line).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from .common import FieldError, ImportRecord, Problem, get_prompt, iter_rows, parse_json
from .label_studio import CHOICE_WORDS

__all__ = ["read_argilla", "argilla_records_path", "POSITION_WORDS"]

RECORDS = "records.json"
SETTINGS = Path(".argilla") / "settings.json"
PROMPT_FIELDS = ("prompt", "instruction", "question", "input", "messages", "chat")
#: Option values (lower case, without spaces, ``_`` or ``-``) that name a position, or a tie
#: (None): Label Studio's choice words and a few more.
POSITION_WORDS = {**CHOICE_WORDS, "first": 0, "response1": 0, "second": 1, "response2": 1,
                  "c": 2, "3": 2, "response3": 2, "d": 3, "4": 3, "response4": 3,
                  "both": None, "same": None}


def argilla_records_path(path: Path) -> Path:
    """The ``records.json`` of a ``to_disk`` folder (``path`` itself when it is a file)."""
    return path / RECORDS if path.is_dir() else path


def _load_settings(path: Path) -> dict[str, Any] | None:
    root = path if path.is_dir() else path.parent
    f = root / SETTINGS
    if not f.is_file():
        return None
    try:
        settings = parse_json(f.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidInputError(str(f), None, None, f"not Argilla settings JSON ({exc})") from None
    except FieldError as exc:
        raise InvalidInputError(str(f), None, None, f"not Argilla settings JSON ({exc.reason})") from None
    if not isinstance(settings, dict) or not isinstance(settings.get("questions", []), list) \
            or not isinstance(settings.get("fields", []), list):
        raise InvalidInputError(str(f), None, "questions", "expected Argilla's settings object "
                                "with fields and questions lists")
    for i, entry in enumerate(settings.get("fields", [])):
        if isinstance(entry, dict) and not isinstance(entry.get("name"), str):
            raise InvalidInputError(str(f), None, f"fields[{i}].name", "expected the field's name, a string")
    for i, q in enumerate(settings.get("questions", [])):
        if not isinstance(q, dict):
            continue
        if not isinstance(q.get("name"), str):
            raise InvalidInputError(str(f), None, f"questions[{i}].name", "expected the question's name, a string")
        qs = q.get("settings")
        if qs is not None and (not isinstance(qs, dict) or not isinstance(qs.get("options") or [], list)):
            raise InvalidInputError(str(f), None, f"questions[{i}].settings.options",
                                    "expected a list of options ({value, text} objects)")
    return settings


class _Schema:
    """Which question holds the preference and which fields hold the prompt and responses."""

    def __init__(self, settings: dict[str, Any] | None, settings_path: str):
        self.fields: list[str] | None = None
        self.question: str | None = None
        self.kind: str | None = None          # "ranking" | "label"
        self.options: list[str] = []
        if settings is None:
            return
        self.fields = [f.get("name") for f in settings.get("fields", []) if isinstance(f, dict)]
        for kind, wanted in (("ranking", "ranking"), ("label", "label_selection")):
            for q in settings.get("questions", []):
                s = q.get("settings", {}) if isinstance(q, dict) else {}
                if isinstance(s, dict) and s.get("type") == wanted:
                    self.question, self.kind = q.get("name"), kind
                    self.options = [o.get("value") for o in s.get("options") or []
                                    if isinstance(o, dict)]
                    return
        raise InvalidInputError(settings_path, None, "questions",
                                "no ranking or label_selection question: nothing holds a preference")

    def infer(self, responses: dict[str, Any]) -> None:
        """Without settings: the first question whose values are lists (ranking) or strings."""
        for kind, typ in (("ranking", list), ("label", str)):
            for name, answers in responses.items():
                if isinstance(answers, list) and answers and isinstance(answers[0], dict) \
                        and isinstance(answers[0].get("value"), typ):
                    self.question, self.kind = name, kind
                    return

    def prompt_and_responses(self, fields: dict[str, Any]) -> tuple[str, list[str]]:
        names = [n for n in (self.fields or list(fields)) if n in fields]
        named = [o for o in self.options if o in names]
        prompt = next((n for n in PROMPT_FIELDS if n in names and n not in named), None)
        if prompt is None:
            prompt = next((n for n in names if n not in named), None)
        if prompt is None:
            raise FieldError("fields", "no prompt field (expected e.g. 'prompt' or 'instruction')")
        answers = named if len(named) >= 2 else [n for n in names if n != prompt]
        if len(answers) < 2:
            raise FieldError("fields", f"expected at least two response fields besides "
                             f"{prompt!r}, found {answers}")
        return prompt, answers


def _index(value: Any, answers: list[str], where: str) -> int | None:
    """The response index an option value names, or None for a tie."""
    if not isinstance(value, str):
        raise FieldError(where, f"expected an option value, found {type(value).__name__}")
    if value in answers:
        return answers.index(value)
    word = value.strip().lower().replace(" ", "").replace("_", "").replace("-", "")
    if word not in POSITION_WORDS:
        raise FieldError(where, f"option {value!r} names no response field ({', '.join(answers)}) "
                         "and no position (A/B, 1/2, left/right, tie)")
    i = POSITION_WORDS[word]
    if i is not None and i >= len(answers):
        raise FieldError(where, f"option {value!r} names response {i + 1} of {len(answers)}")
    return i


def _ranking(kind: str, value: Any, answers: list[str], where: str) -> list[list[int]]:
    if kind == "label":
        win = _index(value, answers, where)
        n = len(answers)
        return [list(range(n))] if win is None else [[win], [i for i in range(n) if i != win]]
    if not isinstance(value, list) or not value:
        raise FieldError(where, "expected the ranked option values, best first")
    if all(isinstance(v, dict) for v in value):        # the server's [{"value", "rank"}]
        groups: dict[Any, list[int]] = {}
        for j, v in enumerate(value):
            rank = v.get("rank", j + 1)
            if isinstance(rank, bool) or not isinstance(rank, int):
                raise FieldError(f"{where}[{j}].rank", f"expected an integer, found {rank!r}")
            groups.setdefault(rank, []).append(_index(v.get("value"), answers, f"{where}[{j}].value"))
        ranking = [groups[r] for r in sorted(groups)]
    else:
        ranking = [[_index(v, answers, f"{where}[{j}]")] for j, v in enumerate(value)]
    flat = [i for g in ranking for i in g]
    if None in flat:
        raise FieldError(where, "a ranking cannot hold a tie option")
    if sorted(flat) != list(range(len(answers))):
        raise FieldError(where, f"expected each of the {len(answers)} responses "
                         f"({', '.join(answers)}) ranked once")
    return ranking


def _records(n: int, rec: Any, schema: _Schema) -> list[ImportRecord]:
    if not isinstance(rec, dict):
        raise FieldError(None, f"expected a record object, found {type(rec).__name__}")
    fields, responses = rec.get("fields"), rec.get("responses") or {}
    if not isinstance(fields, dict):
        raise FieldError("fields", "expected an object of field values")
    if not isinstance(responses, dict):
        raise FieldError("responses", "expected an object of responses by question")
    if schema.question is None:
        schema.infer(responses)
    prompt_field, answer_fields = schema.prompt_and_responses(fields)
    messages = get_prompt({"prompt": fields[prompt_field]})
    texts = []
    for name in answer_fields:
        text = fields[name]
        if not isinstance(text, str) or not text.strip():
            raise FieldError(f"fields.{name}", "expected a response text", kind="rejected"
                             if isinstance(text, str) or text is None else "invalid")
        texts.append(text)
    base = ImportRecord(line=n, messages=messages, responses=[(t, None) for t in texts])
    answers = responses.get(schema.question) if schema.question else None
    if not answers:
        return [base]
    if not isinstance(answers, list):
        raise FieldError(f"responses.{schema.question}", "expected a list of user responses")
    if len(set(texts)) < len(texts):
        raise FieldError("fields", "two responses are identical: nothing to compare", kind="rejected")
    out = []
    for j, a in enumerate(answers):
        where = f"responses.{schema.question}[{j}]"
        if not isinstance(a, dict):
            raise FieldError(where, "expected an object with value and user_id")
        if a.get("status") not in (None, "submitted"):
            continue
        user = a.get("user_id")
        if not isinstance(user, str) or not user:
            raise FieldError(f"{where}.user_id", "expected the user's id")
        out.append(ImportRecord(
            line=n, messages=messages, responses=base.responses, labeler_kind="human",
            labeler=f"argilla:{user}",
            ranking=_ranking(schema.kind or "ranking", a.get("value"), answer_fields, f"{where}.value")))
    return out or [base]


def read_argilla(path: Path, **_: Any) -> Iterator[ImportRecord | Problem]:
    """Read an Argilla 2.x ``to_disk`` folder (or its ``records.json``); see the module docstring.

    Raises:
        InvalidInputError: no ``records.json``, unreadable settings, or no preference question.
    """
    records = argilla_records_path(path)
    if not records.is_file():
        raise InvalidInputError(str(records), None, None, "not found: expected the folder "
                                "rg.Dataset.to_disk wrote (records.json, .argilla/settings.json)")
    root = path if path.is_dir() else path.parent
    schema = _Schema(_load_settings(path), str(root / SETTINGS))
    for pos, item in enumerate(iter_rows(records), 1):
        if isinstance(item, Problem):
            item.file = str(records)
            yield item
            continue
        _, obj = item
        try:
            for rec in _records(pos, obj, schema):
                rec.file = str(records)
                yield rec
        except FieldError as exc:
            yield Problem(pos, exc.field, exc.reason, exc.kind, file=str(records),
                          raw=json.dumps(obj, ensure_ascii=False, default=str)[:2000])
