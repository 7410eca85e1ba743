"""Reading import files line by line, with problems that name the file, line and field.

A reader yields :class:`ImportRecord` (a usable prompt with optional responses and ranking) or
:class:`Problem` for each input line. Problems come in two kinds:

* ``invalid``: the line cannot be read as the format says (malformed JSON, invalid UTF-8, a
  missing or mistyped field). By default the whole import fails on the first one; with
  ``--skip-invalid`` the line is skipped and written to the rejects file.
* ``rejected``: the line is well-formed but is not a usable record (HH transcripts whose
  conversations differ before the last reply, an empty reply, identical chosen and rejected).
  It is skipped and reported with its reason; the import goes on.

Errors about the whole file (missing, empty, truncated gzip) raise :class:`InvalidInputError`.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import InvalidInputError, ValidationError
from ..records import Message
from ..validation import validate_messages

__all__ = ["ImportRecord", "Problem", "iter_rows", "iter_text_lines", "read_records",
           "iter_arrow_batches", "is_columnar", "FieldError", "get_str", "get_messages", "get_prompt",
           "NORMALIZED"]

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
RESPONSE = pa.struct([("text", pa.string()), ("model", pa.string())])
#: Schema of staged records: what :class:`ImportRecord` holds, as Arrow columns. Vectorized
#: readers yield ``pa.RecordBatch`` of this schema instead of one record per row.
NORMALIZED = pa.schema([
    ("line", pa.int64()),
    ("messages", pa.list_(MESSAGE)),
    ("responses", pa.list_(RESPONSE)),
    ("ranking", pa.list_(pa.list_(pa.int32()))),
    ("labeler_kind", pa.string()),
    ("labeler", pa.string()),
    ("confidence", pa.float64()),
    ("flags", pa.list_(pa.string())),
])


@dataclass(slots=True)
class ImportRecord:
    """One usable input record.

    Attributes:
        line: 1-based line (JSONL), starting line (JSON array) or row (Parquet, datasets).
        messages: the prompt conversation, ending with a user turn.
        responses: ``(text, model)`` per response; ``model`` is the generator or ``None``.
        ranking: tie groups of indices into ``responses``, best first; ``None`` records the
            prompt and responses without a comparison.
        labeler_kind, labeler, confidence: provenance of the ranking.
        flags: flags of the comparison (``thumbs_up``/``thumbs_down`` on a one-response
            ranking: unpaired feedback; ``both_bad``).
        file: the file it was read from, when not the imported path (a folder's file).
    """

    line: int
    messages: list[Message]
    responses: list[tuple[str, str | None]] = field(default_factory=list)
    ranking: list[list[int]] | None = None
    labeler_kind: str | None = None
    labeler: str | None = None
    confidence: float | None = None
    flags: list[str] | None = None
    file: str | None = None


@dataclass(slots=True)
class Problem:
    """A line that was not imported: ``kind`` is ``invalid`` or ``rejected`` (see module doc)."""

    line: int
    field: str | None
    reason: str
    kind: str = "invalid"
    raw: str | None = None
    file: str | None = None     # the file it is in, when not the imported path (a folder's file)

    def error(self, path: str) -> InvalidInputError:
        return InvalidInputError(self.file or path, self.line, self.field, self.reason)


class FieldError(Exception):
    """Raised by the field helpers; the reader turns it into a :class:`Problem`."""

    def __init__(self, field: str | None, reason: str, kind: str = "invalid"):
        super().__init__(reason)
        self.field, self.reason, self.kind = field, reason, kind


def get_str(obj: dict[str, Any], name: str, *, allow_empty: bool = False) -> str:
    """``obj[name]`` as a string; raises :class:`FieldError` if missing or not a string."""
    if name not in obj or obj[name] is None:
        raise FieldError(name, "missing (required)")
    value = obj[name]
    if not isinstance(value, str):
        raise FieldError(name, f"expected a string, found {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise FieldError(name, "is empty", kind="rejected")
    return value


def get_prompt(obj: dict[str, Any]) -> list[Message]:
    """A row's prompt as chat messages: ``messages`` (a message list), else ``prompt`` (a
    string, or a message list as verl and TRL's conversational rows have it); raises
    :class:`FieldError`."""
    if "messages" in obj:
        return get_messages(obj, "messages", end_with_user=True)
    if isinstance(obj.get("prompt"), list):
        return get_messages(obj, "prompt", end_with_user=True)
    return [{"role": "user", "content": get_str(obj, "prompt")}]


def get_messages(obj: dict[str, Any], name: str, *, end_with_user: bool) -> list[Message]:
    """``obj[name]`` as validated chat messages; raises :class:`FieldError`."""
    if name not in obj or obj[name] is None:
        raise FieldError(name, "missing (required)")
    try:
        return validate_messages(obj[name], field_name=name, end_with_user=end_with_user)
    except ValidationError as exc:
        sub, _, reason = str(exc).partition(": ")
        raise FieldError(sub, reason) from None


def read_records(path: Path, make_record: Callable[[int, Any], ImportRecord],
                 rows: Iterator[tuple[int, Any] | Problem] | None = None
                 ) -> Iterator[ImportRecord | Problem]:
    """Apply ``make_record(line, object)`` to each row of ``path`` (see :func:`iter_rows`), or
    to ``rows`` if given; a :class:`FieldError` it raises becomes a :class:`Problem` carrying
    the raw row."""
    for item in iter_rows(path) if rows is None else rows:
        if isinstance(item, Problem):
            yield item
            continue
        n, obj = item
        try:
            if not isinstance(obj, dict):
                raise FieldError(None, f"expected a JSON object, found {type(obj).__name__}")
            yield make_record(n, obj)
        except FieldError as exc:
            yield Problem(n, exc.field, exc.reason, exc.kind,
                          raw=json.dumps(obj, ensure_ascii=False, default=str))


def check_regular(path: Path) -> None:
    """Refuse at once what cannot be read twice from the start: the readers open a file once
    to sniff it (gzip magic, JSON array or lines) and again to read it.

    Raises:
        InvalidInputError: missing, or not a regular file or a directory (a FIFO, a device, a
            process substitution such as ``<(cat x)``).
    """
    try:
        exists, regular = path.exists(), path.is_file() or path.is_dir()
    except OSError as exc:             # e.g. a path part over 255 bytes: ENAMETOOLONG
        raise InvalidInputError(str(path)[:300], None, None, f"cannot be read: {exc.strerror or exc}") from None
    if not exists:
        raise InvalidInputError(str(path), None, None, "file does not exist")
    if not regular:
        raise InvalidInputError(str(path), None, None, "not a regular file (a pipe, FIFO, device or "
                                "process substitution): save the data to a file and import that")


def _open_binary(path: Path):
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


#: The longest line (JSONL) and the largest JSON array file an import reads, in bytes: past
#: them the import fails with a clear error instead of growing memory without bound.
MAX_LINE_BYTES = 64 << 20
MAX_JSON_BYTES = 2 << 30


def iter_text_lines(path: Path) -> Iterator[tuple[int, str | None, bytes]]:
    """Yield ``(line_number, text, raw_bytes)`` for each non-blank line of a (gzipped) file.

    ``text`` is ``None`` when the line is not valid UTF-8 (the caller reports it).

    Raises:
        InvalidInputError: the file is missing, empty, or a truncated/corrupt gzip stream.
    """
    spath = str(path)
    check_regular(path)
    n = 0
    seen_any = False
    try:
        with _open_binary(path) as f:
            for n, raw in enumerate(iter(lambda: f.readline(MAX_LINE_BYTES + 1), b""), start=1):
                if len(raw) > MAX_LINE_BYTES:
                    raise InvalidInputError(spath, n, None, f"line longer than "
                                            f"{MAX_LINE_BYTES >> 20} MiB: not a JSONL file?")
                if not raw.strip():
                    continue
                seen_any = True
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    text = None
                yield n, text, raw
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise InvalidInputError(spath, n + 1, None,
                                f"the gzip stream is truncated or corrupt ({exc}); "
                                "re-download or re-compress the file") from exc
    if not seen_any:
        raise InvalidInputError(spath, None, None, "file is empty: expected at least one record")


def _utf8_problem(n: int, raw: bytes) -> Problem:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Problem(n, None, f"invalid UTF-8 at byte {exc.start} of the line",
                       raw=raw.decode("utf-8", "replace"))
    raise AssertionError("line decodes")


#: A JSON string escape of a UTF-16 surrogate (``\ud800`` .. ``\udfff``): a lone one is not text.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def parse_json(text: str) -> Any:
    """``json.loads`` whose failures are all :class:`FieldError`: malformed JSON, nesting too
    deep (RecursionError), an integer of more than 4300 digits (ValueError), a lone UTF-16
    surrogate (not encodable as UTF-8, so not storable)."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FieldError(None, f"malformed JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise FieldError(None, "malformed JSON: nested too deeply") from None
    except ValueError as exc:                     # int digits limit and the like
        raise FieldError(None, f"malformed JSON: {exc}") from None
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(obj, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise FieldError(None, f"a lone UTF-16 surrogate ({exc.object[exc.start]!a}) is not "
                                   "text") from None
    return obj


def _iter_jsonl(path: Path) -> Iterator[tuple[int, Any] | Problem]:
    for n, text, raw in iter_text_lines(path):
        if text is None:
            yield _utf8_problem(n, raw)
            continue
        if n == 1 and text.startswith("\ufeff"):         # a UTF-8 byte order mark
            text = text[1:]
        try:
            yield n, parse_json(text)
        except FieldError as exc:
            yield Problem(n, None, exc.reason, raw=text.rstrip("\r\n"))


def _iter_json_array(path: Path) -> Iterator[tuple[int, Any] | Problem]:
    """Elements of a top-level JSON array with the line where each starts."""
    spath = str(path)
    try:
        with _open_binary(path) as f:
            data = f.read(MAX_JSON_BYTES + 1)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise InvalidInputError(spath, None, None, f"the gzip stream is truncated or corrupt "
                                f"({exc}); re-download or re-compress the file") from None
    if len(data) > MAX_JSON_BYTES:
        raise InvalidInputError(spath, None, None, f"larger than {MAX_JSON_BYTES >> 30} GiB: "
                                "split it, or use JSONL or Parquet")
    if data.startswith(b"\xef\xbb\xbf"):                 # a UTF-8 byte order mark
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InvalidInputError(spath, line, None, f"invalid UTF-8 at byte {exc.start}") from None
    decoder = json.JSONDecoder()
    first = True
    pos = text.index("[") + 1
    line = text.count("\n", 0, pos) + 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            if text[pos] == "\n":
                line += 1
            pos += 1
        if pos >= len(text):
            raise InvalidInputError(spath, line, None, "malformed JSON: the array is not closed "
                                    "(is the file truncated?)")
        if text[pos] == "]":
            if first:
                raise InvalidInputError(spath, None, None, "file is empty: expected at least "
                                        "one record")
            rest = text[pos + 1:]
            if rest.strip():               # a second array (or anything) after the first
                extra = line + rest[:len(rest) - len(rest.lstrip())].count("\n")
                raise InvalidInputError(spath, extra, None, "content after the JSON array's closing "
                                        "]: one array per file (or one object per line: JSONL)")
            return
        first = False
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            # Inside an array nothing after a broken element can be trusted: stop here.
            raise InvalidInputError(spath, exc.lineno, None,
                                    f"malformed JSON: {exc.msg} (column {exc.colno})") from None
        except RecursionError:
            raise InvalidInputError(spath, line, None, "malformed JSON: nested too deeply") from None
        except ValueError as exc:
            raise InvalidInputError(spath, line, None, f"malformed JSON: {exc}") from None
        if _SURROGATE_ESCAPE.search(text, pos, end):
            try:
                json.dumps(obj, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                yield Problem(line, None, "a lone UTF-16 surrogate is not text",
                              raw=text[pos:end])
                line += text.count("\n", pos, end)
                pos = end
                continue
        yield line, obj
        line += text.count("\n", pos, end)
        pos = end


def is_columnar(path: Path) -> bool:
    """True for a Parquet file or a ``datasets.save_to_disk`` directory."""
    return path.is_dir() or path.suffix == ".parquet"


def iter_arrow_batches(path: Path, batch_size: int = 65536) -> Iterator[tuple[int, pa.RecordBatch]]:
    """``(first_row, batch)`` of a Parquet file or a saved ``datasets`` directory (all splits,
    rows numbered from 1 across splits).

    Raises:
        InvalidInputError: the file or dataset has no rows, or the directory is not a dataset.
    """
    if path.is_dir():
        if not (path / "dataset_info.json").exists() and not (path / "dataset_dict.json").exists():
            raise InvalidInputError(str(path), None, None, "a directory must be a dataset saved "
                                    "with datasets.save_to_disk (no dataset_info.json found)")
        import datasets

        try:
            ds = datasets.load_from_disk(str(path))
        except (OSError, ValueError) as exc:         # incl. json errors in dataset_info.json
            raise InvalidInputError(str(path), None, None, f"not a readable saved dataset: "
                                    f"{str(exc).splitlines()[0]}") from None
        tables = [split.data.table for split in
                  (ds.values() if isinstance(ds, datasets.DatasetDict) else [ds])]
        batches = (b for t in tables for b in t.to_batches(max_chunksize=batch_size))
    else:
        import pyarrow.parquet as pq

        try:
            batches = pq.ParquetFile(path).iter_batches(batch_size=batch_size)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InvalidInputError(str(path), None, None, f"not a Parquet file, or a truncated "
                                    f"one: {exc}") from None
    row = 1
    for batch in batches:
        if batch.num_rows:
            yield row, batch
            row += batch.num_rows
    if row == 1:
        raise InvalidInputError(str(path), None, None, "no rows: expected at least one record")


def _iter_columnar(path: Path) -> Iterator[tuple[int, Any]]:
    for first, batch in iter_arrow_batches(path, 8192):
        for i, obj in enumerate(batch.to_pylist()):
            yield first + i, obj


def iter_rows(path: Path) -> Iterator[tuple[int, Any] | Problem]:
    """Yield ``(line, object)`` or :class:`Problem` for each record of a JSONL (optionally
    gzipped), JSON-array, Parquet file or ``datasets.save_to_disk`` directory.

    Raises:
        InvalidInputError: for problems with the whole file.
    """
    check_regular(path)
    if is_columnar(path):
        yield from _iter_columnar(path)
        return
    with _open_binary(path) as f:
        try:
            head = f.read(4096)
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise InvalidInputError(str(path), 1, None,
                                    f"the gzip stream is truncated or corrupt ({exc})") from exc
    if head.startswith(b"\xef\xbb\xbf"):            # a byte order mark, then maybe whitespace
        head = head[3:]
    head = head.lstrip()
    if head.startswith(b"["):
        yield from _iter_json_array(path)
    else:
        yield from _iter_jsonl(path)
