"""TRL preference data: ``prompt`` / ``chosen`` / ``rejected``, standard or conversational.

Accepted rows (the formats of TRL's dataset guide):

* standard: ``{"prompt": str, "chosen": str, "rejected": str}``;
* conversational: ``{"prompt": [messages], "chosen": [assistant message],
  "rejected": [assistant message]}``;
* implicit prompt: ``{"chosen": [messages], "rejected": [messages]}`` sharing every turn but the
  last assistant message.

>>> r = pair_record(1, {"prompt": "2+2?", "chosen": "4", "rejected": "5"}, "human", "demo")
>>> r.messages, r.responses, r.ranking
([{'role': 'user', 'content': '2+2?'}], [('4', None), ('5', None)], [[0], [1]])
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InvalidInputError
from ..records import Message
from ..validation import MAX_TEXT_CHARS
from .common import (
    MESSAGE,
    NORMALIZED,
    RESPONSE,
    FieldError,
    ImportRecord,
    Problem,
    get_messages,
    get_str,
    is_columnar,
    iter_arrow_batches,
    read_records,
)

__all__ = ["read_trl", "pair_record"]


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


def pair_record(n: int, obj: dict[str, Any], labeler_kind: str = "human", labeler: str = "trl") -> ImportRecord:
    """One TRL preference row as an :class:`ImportRecord` (see the module docstring); raises
    :class:`FieldError`."""
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


def _standard_batches(path: Path, labeler_kind: str, labeler: str
                      ) -> Iterator[pa.RecordBatch | ImportRecord | Problem]:
    """Vectorized reading of standard (all-string) columnar rows: clean rows become one
    normalized batch per input batch; the others go through :func:`pair_record` one by one, which
    reports them exactly as the row-wise path would."""
    for first, batch in iter_arrow_batches(path):
        cols = [batch.column(name) for name in ("prompt", "chosen", "rejected")]
        ok = pc.and_(pc.and_(_filled(cols[0]), _filled(cols[1])),
                     pc.and_(_filled(cols[2]), pc.not_equal(cols[1], cols[2])))
        for col in cols:        # over the store's text limit: the row-wise path names it
            ok = pc.and_(ok, pc.less_equal(pc.utf8_length(col), MAX_TEXT_CHARS))
        ok = pc.fill_null(ok, False)
        good = batch.filter(ok)
        n = good.num_rows
        if n:
            lines = pc.add(pc.indices_nonzero(ok), first).cast(pa.int64())
            prompt, chosen, rejected = (good.column(k) for k in ("prompt", "chosen", "rejected"))
            two = pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32))
            texts = pc.take(pa.concat_arrays([chosen, rejected]),
                            pa.array(np.arange(2 * n).reshape(2, n).T.ravel()))
            yield pa.RecordBatch.from_arrays([
                lines,
                pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)),
                                         pa.StructArray.from_arrays(
                                             [pa.array(["user"] * n), prompt],
                                             fields=list(MESSAGE))),
                pa.ListArray.from_arrays(two, pa.StructArray.from_arrays(
                    [texts, pa.nulls(2 * n, pa.string())], fields=list(RESPONSE))),
                pa.ListArray.from_arrays(two, pa.ListArray.from_arrays(
                    pa.array(np.arange(2 * n + 1, dtype=np.int32)),
                    pa.array(np.tile(np.array([0, 1], dtype=np.int32), n)))),
                pa.array([labeler_kind] * n), pa.array([labeler] * n), pa.nulls(n, pa.float64()),
                pa.nulls(n, pa.list_(pa.string())),
            ], schema=NORMALIZED)
        if n < batch.num_rows:
            bad = pc.indices_nonzero(pc.invert(ok)).to_pylist()
            rows = batch.take(pa.array(bad)).to_pylist()
            yield from read_records(path, lambda i, obj: pair_record(i, obj, labeler_kind, labeler),
                                    rows=((first + i, obj) for i, obj in zip(bad, rows)))


def _filled(col: pa.Array) -> pa.Array:
    return pc.not_equal(pc.utf8_trim_whitespace(col), "")


def _is_standard(path: Path) -> bool:
    if not is_columnar(path) or not path.exists():
        return False
    if path.is_dir():
        first = next(iter_arrow_batches(path, 1), None)
        schema = first[1].schema if first else None
    else:
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InvalidInputError(str(path), None, None, f"not a Parquet file, or a truncated "
                                    f"one: {exc}") from None
    return schema is not None and all(
        name in schema.names and pa.types.is_string(schema.field(name).type)
        for name in ("prompt", "chosen", "rejected"))


def read_trl(path: Path, *, labeler_kind: str = "human", labeler: str = "trl",
             **_: Any) -> Iterator[ImportRecord | Problem | pa.RecordBatch]:
    """Read TRL preference rows from JSONL (optionally gzipped), a JSON array, Parquet, or a
    ``datasets.save_to_disk`` directory; every row becomes a comparison chosen > rejected
    labeled ``labeler_kind`` / ``labeler``. Standard-format Parquet and datasets are read
    vectorized (batches of the normalized schema); everything else row by row."""
    if _is_standard(path):
        return _standard_batches(path, labeler_kind, labeler)
    return read_records(path, lambda n, obj: pair_record(n, obj, labeler_kind, labeler))
