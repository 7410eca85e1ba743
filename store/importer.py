"""Import a file into the store: stream, validate, stage, then commit in one transaction.

Records are parsed line by line and staged in the process's in-memory DuckDB (not in the store
file), so a failing file leaves the store unchanged and other processes can keep writing while a
large file is parsed. The commit is a handful of set-based ``INSERT ... SELECT`` statements in a
single transaction: prompts and responses deduplicated by content hash, comparisons by a content
key, so re-importing a file adds nothing.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .db import Store
from .errors import InvalidInputError, ValidationError
from .formats import READERS, Problem
from .formats.common import NORMALIZED, ImportRecord
from .records import LABELER_KINDS
from .validation import MAX_TEXT_CHARS, validate_name

__all__ = ["ImportReport", "import_file", "FORMATS"]

FORMATS = tuple(READERS)
_BATCH = 20_000
_SOURCE = {"hh": "hh-rlhf", "trl": "trl", "alpaca-eval": "alpaca-eval", "prompts": "prompts",
           "feedback": "feedback", "rollouts": "rollouts", "label-studio": "label-studio",
           "argilla": "argilla"}


@dataclass
class ImportReport:
    """What an import did. Every line read is ``imported``, a ``duplicate`` (already in the
    store or earlier in the file) or ``rejected`` (see ``problems`` for line, field, reason)."""

    path: str
    format: str
    dataset: str
    lines_read: int = 0
    imported: int = 0
    duplicates: int = 0
    problems: list[Problem] = field(default_factory=list)
    prompts_added: int = 0
    responses_added: int = 0
    comparisons_added: int = 0
    without_comparison: int = 0
    rejects_path: str | None = None
    seconds: float = 0.0

    @property
    def rejected(self) -> int:
        return len(self.problems)

    def reasons(self) -> list[tuple[str, int, list[int]]]:
        """``(reason, count, first line numbers)`` grouped by field and reason."""
        groups: dict[str, list[int]] = {}
        for p in self.problems:
            key = f"{p.kind}: " + (f"field '{p.field}': " if p.field else "") + _generic(p.reason)
            groups.setdefault(key, []).append(p.line)
        return [(k, len(v), v[:5]) for k, v in sorted(groups.items(), key=lambda kv: -len(kv[1]))]

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "format": self.format, "dataset": self.dataset,
                "lines_read": self.lines_read, "imported": self.imported,
                "duplicates": self.duplicates, "rejected": self.rejected,
                "prompts_added": self.prompts_added, "responses_added": self.responses_added,
                "comparisons_added": self.comparisons_added,
                "without_comparison": self.without_comparison,
                "reasons": [{"reason": r, "count": c, "lines": lines}
                            for r, c, lines in self.reasons()],
                "rejects_path": self.rejects_path, "seconds": round(self.seconds, 3)}


def _generic(reason: str) -> str:
    # Group "(first at turn 4)" / "(column 17)" variants under one reason.
    return reason.split(" (")[0]


def _default_dataset(path: Path, fmt: str) -> str:
    """The file's (or folder's) name without its data suffixes; ``.`` and ``..`` name the
    folder they stand for."""
    name = path.name if path.name not in ("", ".", "..") else path.resolve().name
    for suffix in (".gz", ".jsonl", ".json", ".parquet"):
        name = name.removesuffix(suffix)
    if fmt == "prompts" and path.name.startswith("question") and path.parent.name == "mt-bench":
        return "mt-bench"
    return name


class _Stager:
    """Stages records in the process's in-memory DuckDB, then derives content hashes in SQL.

    Row-wise records are buffered as Python column lists and flushed as Arrow batches of the
    :data:`NORMALIZED` schema; vectorized readers hand over such batches directly.
    """

    def __init__(self, store: Store, tag: str):
        self.store, self.tag = store, tag
        self.cols: dict[str, list] = {name: [] for name in NORMALIZED.names}
        self.n = 0
        with store.engine.scratch() as con:
            con.execute(f"""CREATE TABLE memory.stage_{tag} (seq BIGINT, line BIGINT,
                messages STRUCT(role VARCHAR, content VARCHAR)[],
                responses STRUCT(text VARCHAR, model VARCHAR)[], ranking INTEGER[][],
                labeler_kind VARCHAR, labeler VARCHAR, confidence DOUBLE, flags VARCHAR[])""")

    def add(self, r: ImportRecord) -> None:
        for name, value in (("line", r.line), ("messages", r.messages),
                            ("responses", [{"text": t, "model": m} for t, m in r.responses]),
                            ("ranking", r.ranking), ("labeler_kind", r.labeler_kind),
                            ("labeler", r.labeler), ("confidence", r.confidence),
                            ("flags", r.flags)):
            self.cols[name].append(value)
        if len(self.cols["line"]) >= _BATCH:
            self.flush()

    def add_batch(self, batch: pa.RecordBatch) -> None:
        self.flush()
        self._insert(pa.Table.from_batches([batch], NORMALIZED))

    def flush(self) -> None:
        if self.cols["line"]:
            table = pa.table(self.cols, schema=NORMALIZED)
            for v in self.cols.values():
                v.clear()
            self._insert(table)

    def _insert(self, table: pa.Table) -> None:
        table = table.add_column(0, "seq", pa.array(np.arange(self.n, self.n + table.num_rows)))
        with self.store.engine.scratch() as con:
            con.register("stage_batch", table)
            try:
                con.execute(f"INSERT INTO memory.stage_{self.tag} SELECT * FROM stage_batch")
            finally:
                con.unregister("stage_batch")
        self.n += table.num_rows

    def derive(self) -> None:
        """Hash prompts, responses, records and rankings in SQL (16 bytes of sha256, exactly as
        :func:`store.prompt_hash` and :func:`store.text_hash`) into ``stage_rec_*`` and
        ``stage_resp_*``; runs outside the store lock."""
        t = self.tag
        with self.store.engine.scratch() as con:
            con.execute(f"""
                CREATE TABLE memory.stage_h_{t} AS SELECT *,
                    unhex(sha256(coalesce(list_aggr(list_transform(messages, lambda m:
                        m.role || chr(31) || m.content || chr(30)), 'string_agg', ''), ''))[1:32])
                        AS prompt_hash,
                    list_transform(responses, lambda r: sha256(r.text)) AS hex_hashes
                FROM memory.stage_{t}""")
            con.execute(f"""
                CREATE TABLE memory.stage_rec_{t} AS SELECT seq, line, prompt_hash,
                    to_json(messages)::VARCHAR AS messages, ranking,
                    ranking IS NOT NULL AS has_comparison, labeler_kind, labeler, confidence,
                    coalesce(flags, []::VARCHAR[]) AS flags,
                    unhex(sha256(hex(prompt_hash) || '|' ||
                        coalesce(list_aggr(list_sort(hex_hashes), 'string_agg', '|'), ''))[1:32])
                        AS rec_key,
                    CASE WHEN ranking IS NOT NULL THEN unhex(sha256(concat_ws('|', labeler_kind,
                        labeler, hex(prompt_hash),
                        list_aggr(list_transform(ranking, lambda g: list_aggr(list_sort(
                            list_transform(g, lambda i: hex_hashes[i + 1])), 'string_agg', ',')),
                            'string_agg', '>'),
                        coalesce(confidence::VARCHAR, ''),
                        -- NULL (skipped by concat_ws) without flags: older keys stay the same
                        CASE WHEN len(flags) > 0 THEN list_aggr(list_sort(flags), 'string_agg', ',')
                        END))[1:32]) END AS dedup_key
                FROM memory.stage_h_{t}""")
            con.execute(f"""
                CREATE TABLE memory.stage_resp_{t} AS
                SELECT seq, idx, prompt_hash, r.text AS text, r.model AS model,
                       unhex(hex_hashes[idx][1:32]) AS text_hash
                FROM (SELECT seq, prompt_hash, hex_hashes, unnest(responses) AS r,
                             generate_subscripts(responses, 1) AS idx FROM memory.stage_h_{t})""")
            con.execute(f"DROP TABLE memory.stage_h_{t}")

    def drop(self) -> None:
        with self.store.engine.scratch() as con:
            for name in ("stage", "stage_h", "stage_rec", "stage_resp"):
                con.execute(f"DROP TABLE IF EXISTS memory.{name}_{self.tag}")


def _commit(store: Store, tag: str, source: str, dataset: str, report: ImportReport) -> None:
    rec, resp = f"memory.stage_rec_{tag}", f"memory.stage_resp_{tag}"
    with store.engine.scratch() as con:
        report.without_comparison = con.execute(
            f"SELECT count(*) FROM {rec} WHERE NOT has_comparison").fetchone()[0]
    with store.atomic() as con:
        # Lines whose comparison (or, without one, whose prompt + responses) is new.
        report.imported = con.execute(f"""
            SELECT count(DISTINCT dedup_key) FROM {rec}
            WHERE has_comparison AND dedup_key NOT IN
                (SELECT dedup_key FROM comparisons WHERE dedup_key IS NOT NULL)""").fetchone()[0]
        report.imported += con.execute(f"""
            WITH k AS (SELECT rec_key, any_value(prompt_hash) ph FROM {rec}
                       WHERE NOT has_comparison GROUP BY rec_key),
                 new_resp AS (SELECT DISTINCT s.prompt_hash FROM {resp} s
                       LEFT JOIN prompts p ON p.text_hash = s.prompt_hash
                       LEFT JOIN responses r ON r.prompt_id = p.id AND r.text_hash = s.text_hash
                       WHERE r.id IS NULL)
            SELECT count(*) FROM k WHERE ph NOT IN (SELECT text_hash FROM prompts)
                OR ph IN (SELECT prompt_hash FROM new_resp)""").fetchone()[0]
        report.prompts_added = con.execute(f"""
            INSERT INTO prompts (messages, text_hash, source, dataset)
            SELECT arg_min(messages, seq), prompt_hash, ?, ? FROM {rec}
            WHERE prompt_hash NOT IN (SELECT text_hash FROM prompts)
            GROUP BY prompt_hash ORDER BY min(seq)""", [source, dataset]).fetchone()[0]
        report.responses_added = con.execute(f"""
            INSERT INTO responses (prompt_id, text, text_hash, origin, model)
            SELECT p.id, arg_min(s.text, s.seq), s.text_hash, 'dataset', arg_min(s.model, s.seq)
            FROM {resp} s JOIN prompts p ON p.text_hash = s.prompt_hash
            LEFT JOIN responses r ON r.prompt_id = p.id AND r.text_hash = s.text_hash
            WHERE r.id IS NULL
            GROUP BY p.id, s.text_hash ORDER BY min(s.seq)""").fetchone()[0]
        report.comparisons_added = con.execute(f"""
            INSERT INTO comparisons (prompt_id, ranking, labeler_kind, labeler, confidence, flags,
                                     dedup_key)
            WITH c AS (SELECT * FROM {rec} WHERE has_comparison AND dedup_key NOT IN
                           (SELECT dedup_key FROM comparisons WHERE dedup_key IS NOT NULL)
                       QUALIFY row_number() OVER (PARTITION BY dedup_key ORDER BY seq) = 1),
                 ids AS (SELECT s.seq, list(r.id ORDER BY s.idx) AS ids
                         FROM {resp} s JOIN prompts p ON p.text_hash = s.prompt_hash
                         JOIN responses r ON r.prompt_id = p.id AND r.text_hash = s.text_hash
                         WHERE s.seq IN (SELECT seq FROM c) GROUP BY s.seq)
            SELECT p.id, list_transform(c.ranking, lambda g: list_sort(
                       list_transform(g, lambda i: ids.ids[i + 1]))),
                   c.labeler_kind, c.labeler, c.confidence, c.flags, c.dedup_key
            FROM c JOIN ids ON ids.seq = c.seq JOIN prompts p ON p.text_hash = c.prompt_hash
            ORDER BY c.seq""").fetchone()[0]


def _over_limit(r: ImportRecord) -> Problem | None:
    """A :class:`Problem` naming the first text of ``r`` longer than the store's
    :data:`~prefloop.store.validation.MAX_TEXT_CHARS`, or a labeler name that breaks the store's
    name rules, or ``None`` (the file it names: the record's own, e.g. a folder's
    ``records.json``)."""
    for i, m in enumerate(r.messages):
        if len(m["content"]) > MAX_TEXT_CHARS:
            return Problem(r.line, f"messages[{i}].content", f"{len(m['content'])} characters, more "
                           f"than the store's limit of {MAX_TEXT_CHARS}", file=r.file)
    for i, (text, _) in enumerate(r.responses):
        if len(text) > MAX_TEXT_CHARS:
            return Problem(r.line, f"responses[{i}]", f"{len(text)} characters, more than the "
                           f"store's limit of {MAX_TEXT_CHARS}", file=r.file)
    try:
        validate_name(r.labeler, "labeler")
    except ValidationError as exc:
        return Problem(r.line, "labeler", str(exc).removeprefix("labeler: "), file=r.file)
    return None


def _reader_options(fmt: str, dataset: str, labeler_kind: str | None,
                    labeler: str | None) -> dict[str, Any]:
    """The keyword arguments of format ``fmt``'s reader: who labeled the file."""
    if fmt == "trl":
        return {"labeler_kind": labeler_kind or "human", "labeler": labeler or dataset}
    if fmt == "hh" and labeler:
        return {"labeler": labeler}
    if fmt == "feedback":
        return {"labeler": labeler or dataset}
    return {}


def _check_rejects_path(rejects: Path) -> None:
    """Checked before anything is read or committed, so that a bad rejects path cannot fail
    after the rows are in. Raises InvalidInputError naming the path."""
    if not rejects.resolve().parent.is_dir():
        raise InvalidInputError(str(rejects), None, None, "the rejects file's directory does not exist")
    if rejects.is_dir():
        raise InvalidInputError(str(rejects), None, None, "the rejects path is a directory")


def _write_rejects(path: Path, problems: list) -> None:
    """One JSON line ``{"line", "kind", "field", "reason", "raw"}`` per line not imported."""
    with open(path, "w", encoding="utf-8") as f:
        for p in problems:
            f.write(json.dumps({"line": p.line, "kind": p.kind, "field": p.field,
                                "reason": p.reason, "raw": p.raw}, ensure_ascii=False) + "\n")


def import_file(store: Store, path: str | Path, fmt: str, *, dataset: str | None = None,
                skip_invalid: bool = False, rejects_path: str | Path | None = None,
                labeler_kind: str | None = None, labeler: str | None = None,
                progress: Callable[[int], None] | None = None) -> ImportReport:
    """Import one file in format ``fmt`` (one of :data:`FORMATS`) into ``store``.

    Args:
        dataset: the dataset name given to new prompts (default: derived from the file name).
        skip_invalid: skip unreadable lines instead of failing the import.
        rejects_path: write every line not imported (invalid or rejected) as JSONL
            ``{"line", "kind", "field", "reason", "raw"}``; defaults to
            ``./<file name>.rejects.jsonl`` when ``skip_invalid`` skipped something (checked
            before anything is imported: a directory that does not exist is an error).
        labeler_kind, labeler: who labeled a TRL file (default ``human`` and the dataset name).
        progress: called with the number of lines read so far, every few thousand lines.

    Returns:
        an :class:`ImportReport`.

    Raises:
        InvalidInputError: a line cannot be read (without ``skip_invalid``), or the whole file
            is unusable (missing, empty, truncated gzip); the store is unchanged.
        StoreBusyError: another process held the store's lock for too long.
    """
    if fmt not in READERS:
        raise ValidationError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if labeler_kind is not None and labeler_kind not in LABELER_KINDS:
        raise ValidationError(f"labeler kind {labeler_kind!r} is not one of {LABELER_KINDS}")
    path = Path(path)
    t0 = time.perf_counter()
    dataset = dataset or _default_dataset(path, fmt)
    opts = _reader_options(fmt, dataset, labeler_kind, labeler)
    report = ImportReport(str(path), fmt, dataset)
    rejects = Path(rejects_path) if rejects_path else Path(f"{path.name}.rejects.jsonl")
    if rejects_path or skip_invalid:
        _check_rejects_path(rejects)
    stager = _Stager(store, uuid.uuid4().hex[:12])
    try:
        for item in READERS[fmt](path, **opts):
            report.lines_read += 1
            if progress and report.lines_read % 5000 == 0:
                progress(report.lines_read)
            if isinstance(item, pa.RecordBatch):
                report.lines_read += item.num_rows - 1
                stager.add_batch(item)
                continue
            if not isinstance(item, Problem):
                item = _over_limit(item) or item      # one text limit on every path in
            if isinstance(item, Problem):
                if item.kind == "invalid" and not skip_invalid:
                    raise item.error(str(path))
                report.problems.append(item)
                continue
            stager.add(item)
        if progress:
            progress(report.lines_read)
        stager.flush()
        if stager.n:
            stager.derive()
            _commit(store, stager.tag, _SOURCE[fmt], report.dataset, report)
        report.duplicates = stager.n - report.imported
    finally:
        stager.drop()
    if report.problems and (rejects_path or skip_invalid):
        _write_rejects(rejects, report.problems)
        report.rejects_path = str(rejects)
    report.seconds = time.perf_counter() - t0
    return report
