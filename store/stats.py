"""Counts and agreement figures over the whole store (``prefloop stats``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .db import Store

__all__ = ["StoreStats", "store_stats", "TABLES"]

TABLES = ("prompts", "responses", "annotators", "tasks", "assignments", "comparisons",
          "judgments", "runs", "run_metrics", "exports")


@dataclass
class StoreStats:
    """Row counts per table; prompts and comparisons per dataset and source; human-human
    agreement on pairs labeled by two or more people.

    ``human_agreement`` is pairwise percent agreement (Fleiss-style observed agreement): over
    every pair of responses with n >= 2 human votes (each vote: a > b, b > a or tie), the share
    of agreeing vote pairs, sum_k C(n_k, 2) / sum C(n, 2). ``None`` where no overlap exists.
    """

    tables: dict[str, int]
    prompts_by_dataset: list[dict[str, Any]] = field(default_factory=list)
    comparisons_by_source: list[dict[str, Any]] = field(default_factory=list)
    responses_by_origin: list[dict[str, Any]] = field(default_factory=list)
    overlap_pairs: int = 0
    human_agreement: float | None = None


def store_stats(store: Store) -> StoreStats:
    """Compute :class:`StoreStats` in one read transaction."""
    with store.atomic() as con:
        tables = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
        by_dataset = [dict(zip(("dataset", "source", "prompts"), r)) for r in con.execute(
            "SELECT coalesce(dataset, '-'), coalesce(source, '-'), count(*) FROM prompts "
            "GROUP BY ALL ORDER BY ALL").fetchall()]
        by_source = [dict(zip(("labeler_kind", "labeler", "dataset", "comparisons"), r))
                     for r in con.execute(
            "SELECT c.labeler_kind, c.labeler, coalesce(p.dataset, '-'), count(*) FROM comparisons c "
            "JOIN prompts p ON p.id = c.prompt_id GROUP BY ALL ORDER BY ALL").fetchall()]
        by_origin = [dict(zip(("origin", "model", "responses"), r)) for r in con.execute(
            "SELECT origin, coalesce(model, '-'), count(*) FROM responses GROUP BY ALL "
            "ORDER BY ALL").fetchall()]
        n_pairs, agree, total = con.execute("""
            WITH g AS (SELECT id, unnest(ranking) grp, generate_subscripts(ranking, 1) pos
                       FROM comparisons WHERE labeler_kind = 'human'),
                 i AS (SELECT id, pos, unnest(grp) rid FROM g),
                 v AS (SELECT least(a.rid, b.rid) lo, greatest(a.rid, b.rid) hi,
                              CASE WHEN a.pos = b.pos THEN 0 WHEN a.rid < b.rid THEN 1 ELSE -1 END d
                       FROM i a JOIN i b ON a.id = b.id
                        AND (a.pos < b.pos OR (a.pos = b.pos AND a.rid < b.rid))),
                 k AS (SELECT lo, hi, d, count(*) n FROM v GROUP BY ALL),
                 p AS (SELECT lo, hi, sum(n * (n - 1) / 2) agree, sum(n) n FROM k GROUP BY ALL)
            SELECT count(*), sum(agree), sum(n * (n - 1) / 2) FROM p WHERE n >= 2""").fetchone()
    return StoreStats(tables, by_dataset, by_source, by_origin, n_pairs or 0,
                      (agree / total) if total else None)
