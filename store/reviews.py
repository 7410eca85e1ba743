"""Review and adjudication, and the gold record behind qualification.

A task needs a second look when its people disagree, someone flagged it, a gold task was
missed, or an AI label disagrees with people (:class:`ReviewRules`, set in the labeling app's
``app.yaml``). A reviewer then records a decision (``reviews`` row, one per task):

* ``adjudicated``: the final ranking, stored as a comparison of the reviewer (``human``, flag
  ``adjudicated``, no task: it does not count as one of the task's submissions); every
  submission and its labeler stay in the store. ``prefloop export --aggregate adjudicated``
  takes its label for the pairs it covers;
* ``ambiguous``: no defensible answer; the task's pairs are left out of every pair export and
  counted (``n_ambiguous``).

This follows the review stage of Label Studio (reviewer accepts, fixes or rejects annotations)
and Argilla's ``submitted``/``discarded`` response statuses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .comparisons import COMPARISON_SELECT, ComparisonsAPI
from .engine import Engine, fetch_records
from .errors import ValidationError
from .records import Comparison
from .tasks import TasksAPI
from .validation import MAX_TEXT_CHARS, validate_ranking
from .votes import votes_cte

__all__ = ["ReviewsAPI", "ReviewRules", "ReviewItem", "Review", "REVIEW_FLAGS", "DECISIONS"]

#: Submission flags that send a task to review (``both_bad`` is a label, not a flag).
REVIEW_FLAGS = ("unsafe", "unusable", "needs_expert")
DECISIONS = ("adjudicated", "ambiguous")
#: A ranking with its tie groups sorted, as text: equal rankings compare equal.
_RANKING_KEY = "list_transform({r}, lambda g: list_sort(g))::VARCHAR"


@dataclass(frozen=True)
class ReviewRules:
    """Which tasks need review (``app.yaml``: ``review: {min_agreement: 0.75, ...}``).

    Attributes:
        min_agreement: a task with 2+ submissions whose most common ranking has a smaller
            share of them than this (``None``: rule off).
        flags: any submission carries one of :data:`REVIEW_FLAGS`.
        gold_miss: a submission on a gold task differs from the gold ranking.
        ai_disagreement: an AI label (judge, reward model) on the task's responses points the
            other way from people's majority on some pair.
    """

    min_agreement: float | None = 0.75
    flags: bool = True
    gold_miss: bool = True
    ai_disagreement: bool = True

    def __post_init__(self):
        m = self.min_agreement
        if m is not None and (isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 <= m <= 1):
            raise ValueError(f"min_agreement: expected a number in 0..1 or null, found {m!r}")
        for name in ("flags", "gold_miss", "ai_disagreement"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: expected true or false, found {getattr(self, name)!r}")


@dataclass
class ReviewItem:
    """A task in the review queue: ``reasons`` (``agreement``, ``flag``, ``gold_miss``,
    ``ai_disagreement``), its submissions' count and agreement (share of the most common
    ranking), and, from :meth:`ReviewsAPI.item`, the prompt, responses and every label."""

    task_id: int
    prompt_id: int
    response_ids: list[int]
    submissions: int
    agreement: float | None
    reasons: list[str]
    gold_ranking: list[list[int]] | None = None
    labels: list[Comparison] = field(default_factory=list)


@dataclass
class Review:
    """A row of ``reviews``."""

    id: int
    task_id: int
    prompt_id: int
    response_ids: list[int]
    reviewer_id: int
    decision: str
    comparison_id: int | None
    reasons: list[str]
    note: str | None
    created_at: datetime


class ReviewsAPI:
    """``store.reviews``: the review queue, decisions, and annotators' gold records."""

    def __init__(self, engine: Engine, tasks: TasksAPI, comparisons: ComparisonsAPI):
        self.engine, self.tasks, self.comparisons = engine, tasks, comparisons

    def queue(self, rules: ReviewRules | None = None, *, limit: int = 200,
              task_id: int | None = None) -> list[ReviewItem]:
        """Tasks that need review under ``rules`` and have no decision yet, most reasons
        first, then oldest task; evaluation tasks are left out. ``task_id``: only that task
        (reviewed or not), to show why it is (or was) in the queue."""
        rules = rules or ReviewRules()
        flags = list(REVIEW_FLAGS) if rules.flags else []
        with self.engine.atomic() as con:
            con.execute(f"""
                CREATE OR REPLACE TEMP TABLE review_h AS
                SELECT c.id, c.task_id, c.prompt_id, c.ranking, c.flags,
                       {_RANKING_KEY.format(r="c.ranking")} AS rkey
                FROM comparisons c JOIN tasks t ON t.id = c.task_id
                WHERE c.labeler_kind = 'human' AND t.eval_run_id IS NULL
                  AND ($task::BIGINT IS NULL OR c.task_id = $task)""", {"task": task_id})
            con.execute("""
                CREATE OR REPLACE TEMP TABLE review_ai AS
                WITH """ + votes_cte(
                    "SELECT c.id, c.prompt_id, c.ranking FROM comparisons c WHERE c.labeler_kind = 'ai' "
                    "AND c.eval_run_id IS NULL AND c.prompt_id IN (SELECT prompt_id FROM review_h)") + """
                SELECT prompt_id, lo, hi, sum(dir) AS s FROM votes GROUP BY ALL HAVING sum(dir) <> 0""")
            rows = con.execute(f"""
                WITH rk AS (SELECT task_id, rkey, count(*) AS cnt FROM review_h GROUP BY ALL),
                agree AS (SELECT task_id, sum(cnt)::BIGINT AS n, max(cnt) / sum(cnt) AS agreement
                          FROM rk GROUP BY task_id),
                flagged AS (SELECT task_id, bool_or(len(list_intersect(flags, $flags::VARCHAR[])) > 0) AS f
                            FROM review_h GROUP BY task_id),
                gold AS (SELECT h.task_id, bool_or(h.rkey <> {_RANKING_KEY.format(r="t.gold_ranking")}) AS miss
                         FROM review_h h JOIN tasks t ON t.id = h.task_id
                         WHERE t.gold_ranking IS NOT NULL GROUP BY h.task_id),
                {votes_cte("SELECT id, prompt_id, ranking, task_id FROM review_h", carry=["task_id"])},
                hv AS (SELECT task_id, prompt_id, lo, hi, sum(dir) AS s FROM votes GROUP BY ALL),
                ai AS (SELECT DISTINCT hv.task_id FROM hv JOIN review_ai a USING (prompt_id, lo, hi)
                       WHERE hv.s <> 0 AND sign(hv.s) <> sign(a.s)),
                r AS (
                    SELECT a.task_id, a.n, a.agreement,
                           list_filter([
                               CASE WHEN $min_agreement::DOUBLE IS NOT NULL AND a.n >= 2
                                         AND a.agreement < $min_agreement THEN 'agreement' END,
                               CASE WHEN coalesce(f.f, false) THEN 'flag' END,
                               CASE WHEN $gold_miss AND coalesce(g.miss, false) THEN 'gold_miss' END,
                               CASE WHEN $ai AND ai.task_id IS NOT NULL THEN 'ai_disagreement' END],
                               lambda x: x IS NOT NULL) AS reasons
                    FROM agree a LEFT JOIN flagged f USING (task_id) LEFT JOIN gold g USING (task_id)
                    LEFT JOIN ai USING (task_id))
                SELECT r.task_id, t.prompt_id, t.response_ids, r.n, r.agreement, r.reasons, t.gold_ranking
                FROM r JOIN tasks t ON t.id = r.task_id
                WHERE ($task::BIGINT IS NOT NULL OR
                       (len(r.reasons) > 0 AND r.task_id NOT IN (SELECT task_id FROM reviews)))
                ORDER BY len(r.reasons) DESC, r.task_id LIMIT $limit""",
                {"flags": flags, "min_agreement": rules.min_agreement, "gold_miss": rules.gold_miss,
                 "ai": rules.ai_disagreement, "limit": limit, "task": task_id}).fetchall()
            con.execute("DROP TABLE review_h")
            con.execute("DROP TABLE review_ai")
        return [ReviewItem(t, p, list(rids), n, float(a) if a is not None else None, list(reasons), g)
                for t, p, rids, n, a, reasons, g in rows]

    def item(self, task_id: int, rules: ReviewRules | None = None) -> ReviewItem:
        """One task with every label on its responses: the people's submissions, AI labels on
        the same responses, and an earlier decision's comparison.

        Raises:
            NotFoundError: no such task.
        """
        task = self.tasks.get(task_id)
        with self.engine.atomic() as con:
            found = self.queue(rules, task_id=task_id)
            labels = fetch_records(con, Comparison, f"""
                {COMPARISON_SELECT}
                WHERE c.task_id = $task
                   OR (c.prompt_id = $prompt AND c.task_id IS NULL AND c.eval_run_id IS NULL
                       AND list_has_all($rids, flatten(c.ranking)) AND len(flatten(c.ranking)) >= 2)
                ORDER BY c.labeler_kind DESC, c.id""", {"task": task_id, "prompt": task.prompt_id,
                                                       "rids": task.response_ids})
        if found:
            item = found[0]
        else:
            item = ReviewItem(task_id, task.prompt_id, list(task.response_ids), 0, None, [],
                              task.gold_ranking)
        item.labels = labels
        return item

    def decide(self, task_id: int, reviewer_id: int, decision: str, *,
               ranking: list[list[int]] | None = None, note: str | None = None,
               reasons: list[str] | None = None) -> Review:
        """Record a reviewer's decision on a task (a later decision replaces an earlier one,
        whose adjudicated comparison is deleted with it).

        Raises:
            ValidationError: unknown decision; an ``adjudicated`` decision without a ranking
                of exactly the task's responses, or an ``ambiguous`` one with a ranking; a note
                over :data:`MAX_TEXT_CHARS`.
            NotFoundError: no such task.
        """
        if decision not in DECISIONS:
            raise ValidationError(f"decision {decision!r} is not one of {', '.join(DECISIONS)}")
        if note is not None and len(note) > MAX_TEXT_CHARS:
            raise ValidationError(f"note: {len(note)} characters, more than the {MAX_TEXT_CHARS} allowed")
        task = self.tasks.get(task_id)
        if decision == "adjudicated":
            if not ranking:
                raise ValidationError("an adjudicated decision needs the final ranking")
            ranking = validate_ranking(ranking)
            if sorted(r for g in ranking for r in g) != sorted(task.response_ids):
                raise ValidationError(f"the final ranking must rank exactly task {task_id}'s "
                                      f"responses {sorted(task.response_ids)}")
        elif ranking:
            raise ValidationError("an ambiguous decision takes no ranking")
        with self.engine.atomic() as con:
            old = con.execute("SELECT comparison_id FROM reviews WHERE task_id = ?", [task_id]).fetchone()
            if old is not None:
                con.execute("DELETE FROM reviews WHERE task_id = ?", [task_id])
                if old[0] is not None:
                    con.execute("DELETE FROM comparisons WHERE id = ?", [old[0]])
            cid = None
            if decision == "adjudicated":
                cid = self.comparisons.record(task.prompt_id, ranking, labeler_kind="human",
                                              annotator_id=reviewer_id, flags=["adjudicated"],
                                              rationale=(note or "").strip() or None)
            return fetch_records(con, Review, f"""
                INSERT INTO reviews (task_id, prompt_id, response_ids, reviewer_id, decision,
                                     comparison_id, reasons, note)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING {_REVIEW_COLS}""",
                [task_id, task.prompt_id, list(task.response_ids), reviewer_id, decision, cid,
                 list(reasons or []), (note or "").strip() or None])[0]

    def list(self, *, limit: int | None = None) -> list[Review]:
        """Decisions, newest first."""
        with self.engine.atomic() as con:
            return fetch_records(con, Review, f"SELECT {_REVIEW_COLS} FROM reviews ORDER BY id DESC "
                                 f"LIMIT {int(limit) if limit else 'ALL'}")

    def counts(self) -> dict[str, int]:
        """Decisions by kind: ``{"adjudicated": n, "ambiguous": m}``."""
        with self.engine.atomic() as con:
            found = dict(con.execute("SELECT decision, count(*) FROM reviews GROUP BY 1").fetchall())
        return {d: int(found.get(d, 0)) for d in DECISIONS}

    def gold_results(self, annotator_id: int, *, since: datetime | None = None) -> list[bool]:
        """The annotator's submissions on gold tasks, oldest first: ``True`` where the ranking
        equals the gold ranking (ties included), counting those made after ``since``."""
        with self.engine.atomic() as con:
            rows = con.execute(f"""
                SELECT {_RANKING_KEY.format(r="c.ranking")} = {_RANKING_KEY.format(r="t.gold_ranking")}
                FROM comparisons c JOIN tasks t ON t.id = c.task_id
                WHERE c.annotator_id = ? AND t.gold_ranking IS NOT NULL
                  AND (?::TIMESTAMP IS NULL OR c.created_at > ?::TIMESTAMP)
                ORDER BY c.created_at, c.id""", [annotator_id, since, since]).fetchall()
        return [bool(r[0]) for r in rows]

    def gold_tally(self) -> dict[int, tuple[int, int]]:
        """Every annotator's gold record at once: ``{annotator_id: (right, answered)}`` (as
        :meth:`gold_results`, summed)."""
        with self.engine.atomic() as con:
            rows = con.execute(f"""
                SELECT c.annotator_id,
                       count(*) FILTER ({_RANKING_KEY.format(r="c.ranking")} = {_RANKING_KEY.format(r="t.gold_ranking")}),
                       count(*)
                FROM comparisons c JOIN tasks t ON t.id = c.task_id
                WHERE c.annotator_id IS NOT NULL AND t.gold_ranking IS NOT NULL
                GROUP BY c.annotator_id""").fetchall()
        return {a: (int(k), int(n)) for a, k, n in rows}


_REVIEW_COLS = ("id, task_id, prompt_id, response_ids, reviewer_id, decision, comparison_id, reasons, "
                "note, created_at")
