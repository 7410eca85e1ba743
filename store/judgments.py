"""Judgments: one row per judge call, so every AI label is auditable."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import pyarrow as pa

from .engine import Engine, fetch_records, registered, to_json
from .records import Judgment, JudgmentIn

__all__ = ["JudgmentsAPI"]

_COLS = ('id, cache_key, judge_model, template, raw_output, verdict, comparison_id, principle, '
         '"order", probability, critique, revision_response_id, tokens_in, tokens_out, latency_ms, '
         'meta, created_at')
_SCHEMA = pa.schema([
    ("cache_key", pa.string()), ("judge_model", pa.string()), ("template", pa.string()),
    ("raw_output", pa.string()), ("verdict", pa.string()), ("comparison_id", pa.int64()),
    ("principle", pa.string()), ("order", pa.string()), ("probability", pa.float64()),
    ("critique", pa.string()), ("revision_response_id", pa.int64()), ("tokens_in", pa.int64()),
    ("tokens_out", pa.int64()), ("latency_ms", pa.float64()), ("meta", pa.string())])


class JudgmentsAPI:
    """``store.judgments``, keyed by ``cache_key`` (inputs, model, template, principle,
    order): a re-run never calls a judge twice for the same inputs."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def record(self, judgments: Iterable[JudgmentIn]) -> list[int]:
        """Record judge calls; a ``cache_key`` already present keeps its first row.

        Returns the ids (new or existing) in input order.
        """
        items = list(judgments)
        if not items:
            return []
        batch = pa.table({name: [to_json(j.meta) if name == "meta" else getattr(j, name)
                                 for j in items] for name in _SCHEMA.names}, schema=_SCHEMA)
        with self.engine.atomic() as con, registered(con, "judgment_batch", batch):
            con.execute(
                'INSERT INTO judgments (cache_key, judge_model, template, raw_output, verdict, '
                'comparison_id, principle, "order", probability, critique, revision_response_id, '
                'tokens_in, tokens_out, latency_ms, meta) SELECT * FROM judgment_batch '
                'WHERE cache_key NOT IN (SELECT cache_key FROM judgments) '
                'QUALIFY row_number() OVER (PARTITION BY cache_key) = 1')
            ids = dict(con.execute("SELECT cache_key, id FROM judgments WHERE cache_key IN "
                                   "(SELECT unnest(?))", [[j.cache_key for j in items]]).fetchall())
        return [ids[j.cache_key] for j in items]

    def by_cache_key(self, cache_keys: Sequence[str]) -> dict[str, Judgment]:
        """The recorded judgments among these cache keys, keyed by cache key."""
        with self.engine.atomic() as con:
            found = fetch_records(con, Judgment, f"SELECT {_COLS} FROM judgments WHERE cache_key IN "
                                  "(SELECT unnest(?))", [list(cache_keys)], meta=json.loads)
        return {j.cache_key: j for j in found}

    def link_revision(self, judgment_id: int, response_id: int) -> None:
        """Record the response a revision judgment produced."""
        with self.engine.atomic() as con:
            con.execute("UPDATE judgments SET revision_response_id = ? WHERE id = ?",
                        [response_id, judgment_id])

    def link_to_comparison(self, judgment_ids: Sequence[int], comparison_id: int) -> None:
        """Point judgments at the comparison they produced."""
        with self.engine.atomic() as con:
            con.execute("UPDATE judgments SET comparison_id = ? WHERE id IN (SELECT unnest(?))",
                        [comparison_id, list(judgment_ids)])

    def list(self, *, judge_model: str | None = None, template: str | None = None,
             limit: int | None = None) -> list[Judgment]:
        """Judgments by id, optionally of one judge model and/or template."""
        with self.engine.atomic() as con:
            return fetch_records(
                con, Judgment, f"SELECT {_COLS} FROM judgments WHERE "
                "($model::VARCHAR IS NULL OR judge_model = $model) "
                "AND ($template::VARCHAR IS NULL OR template = $template) ORDER BY id LIMIT $limit",
                {"model": judge_model, "template": template,
                 "limit": limit if limit is not None else 2**62}, meta=json.loads)
