"""Counts and agreement figures over the whole store (``prefloop stats``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from .db import Store
from .records import utcnow
from .votes import LABELER_JOIN, LABELER_SQL, votes_cte

__all__ = ["StoreStats", "store_stats", "TABLES", "annotator_progress", "labeling_dashboard", "recent_submissions",
           "task_rankings", "labeling_activity", "ratings_summary", "ai_labelers",
           "labels_since_last_loop"]

TABLES = ("prompts", "responses", "annotators", "tasks", "assignments", "comparisons",
          "judgments", "runs", "run_metrics", "exports", "reviews", "ratings")


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


def ai_labelers(store: Store) -> list[str]:
    """Names of the AI labelers with comparisons in the store, sorted."""
    return sorted({r["labeler"] for r in store_stats(store).comparisons_by_source
                   if r["labeler_kind"] == "ai"})


def store_stats(store: Store) -> StoreStats:
    """Compute :class:`StoreStats` in one read transaction."""
    with store.atomic() as con:
        tables = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
        by_dataset = [dict(zip(("dataset", "source", "prompts"), r)) for r in con.execute(
            "SELECT coalesce(dataset, '-'), coalesce(source, '-'), count(*) FROM prompts "
            "GROUP BY ALL ORDER BY ALL").fetchall()]
        by_source = [dict(zip(("labeler_kind", "labeler", "dataset", "comparisons"), r))
                     for r in con.execute(
            f"SELECT c.labeler_kind, {LABELER_SQL}, coalesce(p.dataset, '-'), count(*) FROM comparisons c "
            f"JOIN prompts p ON p.id = c.prompt_id {LABELER_JOIN} GROUP BY ALL ORDER BY ALL").fetchall()]
        by_origin = [dict(zip(("origin", "model", "responses"), r)) for r in con.execute(
            "SELECT origin, coalesce(model, '-'), count(*) FROM responses GROUP BY ALL "
            "ORDER BY ALL").fetchall()]
        n_pairs, agree, total = con.execute(f"""
            WITH {votes_cte("SELECT id, prompt_id, ranking FROM comparisons WHERE labeler_kind = 'human'")},
                 k AS (SELECT lo, hi, dir, count(*) n FROM votes GROUP BY ALL),
                 p AS (SELECT lo, hi, sum(n * (n - 1) / 2) agree, sum(n) n FROM k GROUP BY ALL)
            SELECT count(*), sum(agree), sum(n * (n - 1) / 2) FROM p WHERE n >= 2""").fetchone()
    return StoreStats(tables, by_dataset, by_source, by_origin, n_pairs or 0,
                      (agree / total) if total else None)


def annotator_progress(store: Store, annotator_id: int, now=None) -> dict[str, int]:
    """``{"today": n, "total": n, "left": n}``: an annotator's task submissions (today = since
    00:00 UTC), and the tasks still open to them (a free slot, not done, skipped or leased by
    them; the one on screen counts)."""
    from .frontier import BUSY_SLOT

    now = now or utcnow()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    with store.atomic() as con:
        today, total = con.execute(
            "SELECT count(*) FILTER (created_at >= ?), count(*) FROM comparisons "
            "WHERE annotator_id = ? AND task_id IS NOT NULL", [midnight, annotator_id]).fetchone()
        left = con.execute(f"""
            WITH busy AS (SELECT task_id, count(*) FILTER ({BUSY_SLOT}) AS n,
                                 bool_or(annotator_id = ? AND state IN ('done', 'skipped')) AS mine,
                                 bool_or(annotator_id = ? AND state = 'leased' AND lease_expires_at > ?) AS held
                          FROM assignments GROUP BY task_id)
            SELECT count(*) FROM tasks t LEFT JOIN busy b ON b.task_id = t.id
            WHERE t.completed_at IS NULL AND t.gold_ranking IS NULL AND NOT coalesce(b.mine, false)
              AND (coalesce(b.n, 0) < t.overlap OR coalesce(b.held, false))""",
            [now, annotator_id, annotator_id, now]).fetchone()[0]
    return {"today": today, "total": total, "left": left}


def labeling_dashboard(store: Store, now=None) -> dict[str, list[dict[str, Any]]]:
    """Tables for the admin view.

    * ``annotators``: per annotator, submissions total / today / last hour, skips, median
      seconds per task, gold answered and gold accuracy (share of gold pairs ordered as the
      gold ranking orders them);
    * ``datasets``: per dataset, tasks, completed tasks, open tasks, submissions.
    """
    now = now or utcnow()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    with store.atomic() as con:
        annotators = con.execute("""
            WITH subs AS (SELECT c.annotator_id, c.created_at, c.duration_ms, c.ranking, t.gold_ranking
                          FROM comparisons c JOIN tasks t ON t.id = c.task_id
                          WHERE c.annotator_id IS NOT NULL),
                 skips AS (SELECT annotator_id, count(*) n FROM assignments
                           WHERE state = 'skipped' GROUP BY annotator_id)
            SELECT n.name, n.role, n.active,
                   count(s.annotator_id) AS total,
                   count(s.annotator_id) FILTER (s.created_at >= ?) AS today,
                   count(s.annotator_id) FILTER (s.created_at >= ? - INTERVAL 1 HOUR) AS last_hour,
                   coalesce(any_value(k.n), 0) AS skipped,
                   median(s.duration_ms) / 1000.0 AS median_seconds,
                   count(s.gold_ranking) AS gold_answered
            FROM annotators n LEFT JOIN subs s ON s.annotator_id = n.id
            LEFT JOIN skips k ON k.annotator_id = n.id
            GROUP BY n.id, n.name, n.role, n.active ORDER BY n.name""", [midnight, now]).fetchall()
        gold = con.execute("""
            SELECT n.name, c.ranking, t.gold_ranking FROM comparisons c JOIN tasks t
            ON t.id = c.task_id JOIN annotators n ON n.id = c.annotator_id
            WHERE t.gold_ranking IS NOT NULL""").fetchall()
        datasets = con.execute("""
            WITH sub AS (SELECT task_id, count(*) n FROM comparisons WHERE task_id IS NOT NULL
                         GROUP BY task_id)
            SELECT coalesce(p.dataset, '-'), count(*), count(t.completed_at),
                   count(*) FILTER (t.completed_at IS NULL AND t.gold_ranking IS NULL),
                   coalesce(sum(sub.n), 0)
            FROM tasks t JOIN prompts p ON p.id = t.prompt_id LEFT JOIN sub ON sub.task_id = t.id
            GROUP BY ALL ORDER BY ALL""").fetchall()
    accuracy: dict[str, list[float]] = {}
    for labeler, ranking, gold_ranking in gold:
        accuracy.setdefault(labeler, []).append(_pair_accuracy(ranking, gold_ranking))
    rows = []
    for name, role, active, total, today, hour, skipped, median_s, gold_n in annotators:
        acc = accuracy.get(name)
        rows.append({"annotator": name, "role": role, "active": active, "total": total,
                     "today": today, "last_hour": hour, "skipped": skipped,
                     "median_seconds": None if median_s is None else round(median_s, 1),
                     "gold_answered": gold_n,
                     "gold_accuracy": None if not acc else round(sum(acc) / len(acc), 3)})
    ds = [dict(zip(("dataset", "tasks", "completed", "open", "submissions"), r)) for r in datasets]
    return {"annotators": rows, "datasets": ds}


def _pair_accuracy(ranking: list[list[int]], gold: list[list[int]]) -> float:
    """Share of response pairs that ``ranking`` orders as ``gold`` does (ties included)."""
    pos = {r: i for i, g in enumerate(ranking) for r in g}
    gpos = {r: i for i, g in enumerate(gold) for r in g}
    ids = sorted(gpos)
    pairs = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1:]]
    sign = lambda x: (x > 0) - (x < 0)  # noqa: E731
    same = sum(sign(pos[a] - pos[b]) == sign(gpos[a] - gpos[b]) for a, b in pairs)
    return same / len(pairs) if pairs else 1.0


def task_rankings(store: Store) -> list[tuple[int, str, list[list[int]]]]:
    """``(task_id, annotator, ranking)`` of every labeling-app task submission (for agreement)."""
    with store.atomic() as con:
        return [tuple(r) for r in con.execute(
            "SELECT c.task_id, n.name, c.ranking FROM comparisons c JOIN annotators n "
            "ON n.id = c.annotator_id WHERE c.task_id IS NOT NULL ORDER BY c.task_id, n.name").fetchall()]


def labeling_activity(store: Store, *, hours: int = 48, now=None) -> dict[str, list[dict[str, Any]]]:
    """The admin page's plots, per hour (UTC) over the last ``hours``:

    * ``submissions``: ``{hour, submissions}``, task submissions by people;
    * ``agreement``: ``{hour, agreement, pairs}``, the share of agreeing pairs of submissions
      (same ranking, ties sorted) among those on one task, by the hour of the later one;
    * ``burndown``: ``{hour, open}``, tasks not yet complete at the end of each hour
      (created minus completed, cumulative; gold and evaluation tasks included), from the hour
      before the first task (empty without tasks).

    Hours without data are left out of ``submissions`` and ``agreement``.
    """
    now = now or utcnow()
    start = now - timedelta(hours=hours)
    key = "list_transform(ranking, lambda g: list_sort(g))::VARCHAR"
    with store.atomic() as con:
        subs = [{"hour": h, "submissions": n} for h, n in con.execute("""
            SELECT date_trunc('hour', created_at) h, count(*) FROM comparisons
            WHERE task_id IS NOT NULL AND labeler_kind = 'human' AND created_at >= ?
            GROUP BY 1 ORDER BY 1""", [start]).fetchall()]
        agree = [{"hour": h, "agreement": a, "pairs": n} for h, a, n in con.execute(f"""
            WITH c AS (SELECT id, task_id, created_at, {key} AS k FROM comparisons
                       WHERE task_id IS NOT NULL AND labeler_kind = 'human')
            SELECT date_trunc('hour', b.created_at) h, avg(CASE WHEN a.k = b.k THEN 1.0 ELSE 0.0 END),
                   count(*)
            FROM c a JOIN c b ON a.task_id = b.task_id AND a.id < b.id
            WHERE b.created_at >= ? GROUP BY 1 ORDER BY 1""", [start]).fetchall()]
        first = con.execute("SELECT min(created_at) FROM tasks").fetchone()[0]
        burn = [] if first is None else [{"hour": h, "open": n} for h, n in con.execute("""
            WITH hrs AS (SELECT unnest(generate_series(date_trunc('hour', ?::TIMESTAMP),
                                                       date_trunc('hour', ?::TIMESTAMP),
                                                       INTERVAL 1 HOUR)) AS h)
            SELECT h, (SELECT count(*) FROM tasks t WHERE t.created_at < h + INTERVAL 1 HOUR
                         AND (t.completed_at IS NULL OR t.completed_at >= h + INTERVAL 1 HOUR))
            FROM hrs ORDER BY h""", [max(start, first - timedelta(hours=1)), now]).fetchall()]
    return {"submissions": subs, "agreement": agree, "burndown": burn}


def ratings_summary(store: Store) -> list[dict[str, Any]]:
    """Per-response ratings by dataset and aspect: ``{dataset, aspect, scale, ratings,
    responses, mean, sd}`` (people's and AI's together)."""
    with store.atomic() as con:
        rows = con.execute("""
            SELECT coalesce(p.dataset, '-'), r.aspect, r.scale, count(*), count(DISTINCT r.response_id),
                   avg(r.value), stddev_samp(r.value)
            FROM ratings r JOIN prompts p ON p.id = r.prompt_id GROUP BY ALL ORDER BY ALL""").fetchall()
    return [{"dataset": d, "aspect": a, "scale": sc, "ratings": n, "responses": nr,
             "mean": round(m, 3), "sd": None if sd is None else round(sd, 3)}
            for d, a, sc, n, nr, m, sd in rows]


def labels_since_last_loop(s: Store, now: Any = None) -> dict[str, Any]:
    """What a retraining trigger counts (``prefloop loop --watch``, the admin page): the human
    labels (evaluation labels left out) recorded after the newest loop iteration's
    ``labels_at_start`` (all of them before the first iteration). Returns ``{"loop_run",
    "status", "after_comparison_id", "new_labels", "seconds_since_last"}`` (``loop_run``,
    ``status`` and ``seconds_since_last`` are ``None`` before the first iteration)."""
    loops = s.runs.list(kind="loop")
    last = loops[-1] if loops else None
    after = int((last.summary or {}).get("labels_at_start", 0)) if last else 0
    since = None
    if last is not None and last.started_at is not None:
        since = ((now or utcnow()) - last.started_at).total_seconds()
    return {"loop_run": last.id if last else None, "status": last.status if last else None,
            "after_comparison_id": after,
            "new_labels": s.comparisons.count_after(after, labeler_kind="human"),
            "seconds_since_last": since}


def recent_submissions(store: Store, window: int, annotator_id: int | None = None,
                       since=None) -> list[dict[str, Any]]:
    """Each annotator's last ``window`` task submissions (or only ``annotator_id``'s, made at
    or after ``since``), newest first: ``{annotator_id, annotator, task_id, response_ids (the
    task's, stored order), ranking, flags, duration_ms, gold_ranking}`` (``gold_ranking``
    ``None`` unless a gold task)."""
    where = "AND c.annotator_id = ?" if annotator_id is not None else ""
    where += " AND c.created_at >= ?" if since is not None else ""
    with store.atomic() as con:
        rows = con.execute(f"""
            SELECT c.annotator_id, n.name, c.task_id, t.response_ids, c.ranking, c.flags, c.duration_ms,
                   t.gold_ranking
            FROM comparisons c JOIN tasks t ON t.id = c.task_id JOIN annotators n ON n.id = c.annotator_id
            WHERE c.annotator_id IS NOT NULL {where}
            QUALIFY row_number() OVER (PARTITION BY c.annotator_id ORDER BY c.created_at DESC, c.id DESC) <= ?
            ORDER BY n.name, c.created_at DESC, c.id DESC""",
            [*([annotator_id] if annotator_id is not None else []), *([since] if since is not None else []),
             window]).fetchall()
    keys = ("annotator_id", "annotator", "task_id", "response_ids", "ranking", "flags", "duration_ms",
            "gold_ranking")
    return [dict(zip(keys, r)) for r in rows]
