"""The labeling queue: tasks, leases, overlap, priority and gold items."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import pyarrow as pa

from .engine import Engine, fetch_records, id_list, registered
from .errors import LeaseError, NotFoundError, ValidationError
from .frontier import BUSY_SLOT, QueueFrontier
from .prompts import PromptsAPI, ResponsesAPI
from .records import Assignment, LeasedTask, Task, TaskIn, utcnow
from .validation import validate_count, validate_ranking

__all__ = ["TasksAPI", "QueueReport", "DEFAULT_LEASE_SECONDS"]

DEFAULT_LEASE_SECONDS = 20 * 60
_COLS = ("id, prompt_id, response_ids, overlap, priority, reason, created_at, gold_ranking, "
         "eval_run_id")
_ASSIGNMENT_COLS = "task_id, annotator_id, leased_at, lease_expires_at, state"


@dataclass(frozen=True)
class _Slots:
    """The columns of a task that a submission checks."""

    prompt_id: int
    response_ids: list[int]
    overlap: int
    gold: bool
    eval_run_id: int | None


@dataclass
class QueueReport:
    """What :meth:`TasksAPI.create` did with its input: ``ids`` in input order (new or
    existing); ``created`` new tasks; ``existing`` tasks that were already queued, of which
    ``differing`` asked for another overlap or priority and ``updated`` got it."""

    ids: list[int]
    created: int
    existing: int
    differing: int = 0
    updated: int = 0


class TasksAPI:
    """``store.tasks``: the queue and its leases.

    Rules: a task is shown to ``overlap`` different annotators; a lease expires after
    ``lease_seconds`` so an abandoned task returns to the queue; nobody gets the same task
    twice; higher ``priority`` first, then older. Gold tasks (with a ``gold_ranking``) sit
    outside the normal queue and are served at a gold rate.
    """

    def __init__(self, engine: Engine, prompts: PromptsAPI, responses: ResponsesAPI):
        self.engine, self.prompts, self.responses = engine, prompts, responses
        self.frontier = QueueFrontier(engine)

    # ------------------------------------------------------------------ creating
    def create(self, tasks: Iterable[TaskIn], *, update_existing: bool = False) -> list[int]:
        """Create labeling tasks in one set-based transaction; returns ids in input order.

        A task identical to an existing one (same prompt, same set of responses, both gold or
        both not) is not created again; its existing id is returned (with
        ``update_existing``, it takes the new overlap and priority). :meth:`create_report`
        says how many were new.

        Raises:
            ValidationError: fewer than 2 responses, a response not of the task's prompt,
                overlap < 1, or a gold ranking that does not cover the responses.
        """
        return self.create_report(tasks, update_existing=update_existing).ids

    def create_report(self, tasks: Iterable[TaskIn], *, update_existing: bool = False) -> QueueReport:
        """:meth:`create`, returning a :class:`QueueReport`."""
        rows: dict[str, list] = {k: [] for k in ("idx", "prompt_id", "response_ids", "overlap",
                                                  "priority", "reason", "gold_ranking", "eval_run_id")}
        for i, t in enumerate(tasks):
            rids = list(dict.fromkeys(t.response_ids))
            if len(rids) < 2:
                raise ValidationError(f"task for prompt {t.prompt_id}: needs at least 2 distinct "
                                      f"responses, found {len(rids)}")
            if t.overlap < 1:
                raise ValidationError(f"task for prompt {t.prompt_id}: overlap must be >= 1")
            gold = None
            if t.gold_ranking is not None:
                gold = validate_ranking(t.gold_ranking)
                if sorted(x for g in gold for x in g) != sorted(rids):
                    raise ValidationError(f"task for prompt {t.prompt_id}: the gold ranking must "
                                          f"rank exactly the task's responses {rids}")
            for k, v in zip(rows, (i, t.prompt_id, rids, t.overlap, t.priority, t.reason, gold,
                                   t.eval_run_id)):
                rows[k].append(v)
        if not rows["idx"]:
            return QueueReport([], 0, 0)
        batch = pa.table({**rows, "response_ids": pa.array(rows["response_ids"], pa.list_(pa.int64())),
                          "gold_ranking": pa.array(rows["gold_ranking"],
                                                   pa.list_(pa.list_(pa.int64()))),
                          "eval_run_id": pa.array(rows["eval_run_id"], pa.int64())})
        same = ("t.prompt_id = b.prompt_id AND list_sort(t.response_ids) = list_sort(b.response_ids) "
                "AND (t.gold_ranking IS NULL) = (b.gold_ranking IS NULL)")
        with self.engine.atomic() as con, registered(con, "task_batch", batch):
            bad = con.execute("""
                SELECT b.prompt_id, r.id FROM (SELECT prompt_id, unnest(response_ids) rid
                                               FROM task_batch) b
                LEFT JOIN responses r ON r.id = b.rid
                WHERE r.id IS NULL OR r.prompt_id <> b.prompt_id LIMIT 5""").fetchall()
            if bad:
                raise ValidationError(
                    f"task for prompt {bad[0][0]}: responses do not exist or belong to another "
                    f"prompt ({len(bad)}+ found, e.g. response ids {[b[1] for b in bad]})")
            existing = con.execute(f"""
                SELECT b.idx, min(t.id), any_value(t.overlap <> b.overlap OR t.priority <> b.priority)
                FROM task_batch b JOIN tasks t ON {same} GROUP BY b.idx""").fetchall()
            created = con.execute(f"""
                INSERT INTO tasks (prompt_id, response_ids, overlap, priority, reason, gold_ranking,
                                   eval_run_id)
                SELECT prompt_id, response_ids, overlap, priority, reason, gold_ranking, eval_run_id
                FROM task_batch b WHERE NOT EXISTS (SELECT 1 FROM tasks t WHERE {same})
                QUALIFY row_number() OVER (PARTITION BY prompt_id, list_sort(response_ids),
                                           gold_ranking IS NULL ORDER BY idx) = 1
                ORDER BY idx""").fetchone()[0]
            changed = [(idx, tid) for idx, tid, diff in existing if diff]
            updated = 0
            if update_existing:
                for idx, tid in changed:
                    con.execute("UPDATE tasks SET overlap = ?, priority = ?, completed_at = NULL "
                                "WHERE id = ?", [rows["overlap"][idx], rows["priority"][idx], tid])
                    self._recompute_completion(con, tid, utcnow())
                updated = len(changed)
            ids = con.execute(f"""
                SELECT b.idx, min(t.id) FROM task_batch b JOIN tasks t ON {same}
                GROUP BY b.idx ORDER BY b.idx""").fetchall()
        self.frontier.forget()
        return QueueReport([i for _, i in ids], created, len({tid for _, tid, _ in existing}),
                           len({tid for _, tid in changed}), updated)

    @staticmethod
    def _recompute_completion(con: duckdb.DuckDBPyConnection, task_id: int, now: datetime) -> None:
        con.execute("""
            UPDATE tasks SET completed_at = CASE WHEN (SELECT count(*) FROM assignments
                WHERE task_id = tasks.id AND state = 'done') >= overlap THEN ?::TIMESTAMP END
            WHERE id = ? AND gold_ranking IS NULL""", [now, task_id])

    def _prompt_responses(self, con, dataset, prompt_ids, limit):
        return con.execute(f"""
            SELECT r.prompt_id, list(r.id ORDER BY r.id) FROM responses r
            JOIN prompts p ON p.id = r.prompt_id
            WHERE ($dataset::VARCHAR IS NULL OR p.dataset = $dataset)
              {'' if prompt_ids is None else f'AND r.prompt_id IN ({id_list(prompt_ids)})'}
            GROUP BY r.prompt_id HAVING count(*) >= 2 ORDER BY r.prompt_id LIMIT $limit""",
            {"dataset": dataset, "limit": limit if limit is not None else 2**62}).fetchall()

    def create_for_prompts(self, *, dataset: str | None = None,
                           prompt_ids: Sequence[int] | None = None, k: int | None = None,
                           overlap: int = 1, priority: int = 0, limit: int | None = None,
                           reason: str = "queued by admin",
                           update_existing: bool = False) -> QueueReport:
        """A task per prompt (of ``dataset`` or ``prompt_ids``) with two or more responses,
        ranking all its responses (or its first ``k`` by id); prompts already queued with the
        same responses are reported as existing (and, with ``update_existing``, take the new
        overlap and priority).

        Raises:
            ValidationError: ``limit`` < 0, ``k`` < 2 or ``overlap`` < 1.
        """
        validate_count(limit, "limit")
        validate_count(k, "k", minimum=2)
        validate_count(overlap, "overlap", minimum=1, optional=False)
        with self.engine.atomic() as con:
            rows = self._prompt_responses(con, dataset, prompt_ids, limit)
            return self.create_report([TaskIn(pid, rids[:k] if k else rids, overlap=overlap,
                                              priority=priority, reason=reason) for pid, rids in rows],
                                      update_existing=update_existing)

    def create_gold(self, *, dataset: str | None = None, limit: int | None = None,
                    labeler_kind: str = "human") -> list[int]:
        """Gold tasks from imported comparisons (no task of their own) whose answer is known:
        the task ranks the comparison's responses and carries its ranking as ``gold_ranking``.
        Gold tasks are served at the app's gold rate, outside the normal queue.

        Raises:
            ValidationError: ``limit`` < 0.
        """
        validate_count(limit, "limit")
        with self.engine.atomic() as con:
            rows = con.execute("""
                SELECT c.prompt_id, c.ranking FROM comparisons c JOIN prompts p ON p.id = c.prompt_id
                WHERE c.task_id IS NULL AND c.labeler_kind = $kind AND len(c.ranking) >= 2
                  AND ($dataset::VARCHAR IS NULL OR p.dataset = $dataset)
                ORDER BY c.id LIMIT $limit""",
                {"kind": labeler_kind, "dataset": dataset,
                 "limit": limit if limit is not None else 2**62}).fetchall()
            return self.create([
                TaskIn(pid, [r for g in ranking for r in g], overlap=1, reason="gold",
                       gold_ranking=ranking) for pid, ranking in rows])

    # ------------------------------------------------------------------ reading
    def get(self, task_id: int) -> Task:
        """The task with this id. Raises :class:`NotFoundError`."""
        with self.engine.atomic() as con:
            found = fetch_records(con, Task, f"SELECT {_COLS} FROM tasks WHERE id = ?", [task_id])
        if not found:
            raise NotFoundError(f"no task with id {task_id}")
        return found[0]

    def list(self, *, limit: int = 100, open_only: bool = False,
             now: datetime | None = None) -> list[tuple[Task, int, int]]:
        """The queue, highest priority first: ``(task, n_done, n_leased)`` per task.

        ``open_only`` keeps tasks with fewer done + active leases than their overlap.
        """
        now = now or utcnow()
        with self.engine.atomic() as con:
            cur = con.execute(f"""
                SELECT {', '.join('t.' + c for c in _COLS.split(', '))},
                       coalesce(a.n_done, 0) AS n_done, coalesce(a.n_leased, 0) AS n_leased
                FROM tasks t LEFT JOIN (
                    SELECT task_id, count(*) FILTER (state = 'done') n_done,
                           count(*) FILTER (state = 'leased' AND lease_expires_at > ?) n_leased
                    FROM assignments GROUP BY task_id) a ON a.task_id = t.id
                WHERE NOT ? OR coalesce(a.n_done, 0) + coalesce(a.n_leased, 0) < t.overlap
                ORDER BY t.priority DESC, t.id LIMIT ?""", [now, open_only, limit])
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, r)) for r in cur.fetchall()]
        return [(Task(**{k: r[k] for k in _COLS.split(", ")}), r["n_done"], r["n_leased"])
                for r in rows]

    def count_open(self, now: datetime | None = None) -> int:
        """Tasks (not gold) with a free slot: fewer done + active leases than their overlap."""
        now = now or utcnow()
        with self.engine.atomic() as con:
            return con.execute(f"""
                SELECT count(*) FROM tasks t LEFT JOIN (
                    SELECT task_id, count(*) FILTER ({BUSY_SLOT}) n
                    FROM assignments GROUP BY task_id) a ON a.task_id = t.id
                WHERE t.gold_ranking IS NULL AND t.completed_at IS NULL
                  AND coalesce(a.n, 0) < t.overlap""", [now]).fetchone()[0]

    def eval_progress(self, eval_run_id: int) -> tuple[int, int, int]:
        """An evaluation's blind tasks: ``(tasks, labels asked for (the sum of overlaps), labels
        given)``."""
        with self.engine.atomic() as con:
            return con.execute("""
                SELECT count(*), coalesce(sum(t.overlap), 0),
                       coalesce(sum(least(t.overlap, (SELECT count(*) FROM assignments a
                                                      WHERE a.task_id = t.id AND a.state = 'done'))), 0)
                FROM tasks t WHERE t.eval_run_id = ?""", [eval_run_id]).fetchall()[0]

    def assignments(self, *, annotator_id: int | None = None,
                    task_id: int | None = None) -> list[Assignment]:
        """Assignments of one annotator and/or one task."""
        with self.engine.atomic() as con:
            return fetch_records(
                con, Assignment, f"SELECT {_ASSIGNMENT_COLS} FROM assignments "
                "WHERE ($a::BIGINT IS NULL OR annotator_id = $a) AND ($t::BIGINT IS NULL OR task_id = $t) "
                "ORDER BY task_id, annotator_id", {"a": annotator_id, "t": task_id})

    # ------------------------------------------------------------------ leasing
    def lease_next(self, annotator_id: int, *, lease_seconds: float = DEFAULT_LEASE_SECONDS,
                   now: datetime | None = None, gold_rate: float = 0.0,
                   rng: random.Random | None = None, gold_only: bool = False) -> LeasedTask | None:
        """Lease the next task for an annotator, or return ``None`` if the queue has none.

        Rules: an annotator's unexpired lease is returned again (a page reload shows the same
        task); otherwise the highest-priority task (then the oldest) is leased whose done +
        unexpired leases are fewer than its ``overlap`` and which this annotator has not done or
        skipped. An expired lease frees its slot for others; the lease lasts ``lease_seconds``.

        Gold tasks (with a ``gold_ranking``) are outside the normal queue: with probability
        ``gold_rate`` the annotator gets a gold task they have not seen yet instead; with
        ``gold_only`` (qualification) only gold tasks are leased.
        """
        now = now or utcnow()
        expires = now + timedelta(seconds=lease_seconds)
        with self.engine.atomic() as con:
            row = con.execute(
                "SELECT task_id FROM assignments WHERE annotator_id = ? AND state = 'leased' "
                "AND lease_expires_at > ? ORDER BY leased_at LIMIT 1", [annotator_id, now]).fetchone()
            if row is None:
                if gold_only or (gold_rate > 0 and (rng or random).random() < gold_rate):
                    row = self._next_gold_id(con, annotator_id)
                if row is None and not gold_only:
                    row = self.frontier.next_task_id(con, annotator_id, now)
                if row is None:
                    return None
                self._lease(con, row[0], annotator_id, now, expires)
                return self._leased_task(con, row[0], annotator_id,
                                         Assignment(row[0], annotator_id, now, expires, "leased"))
            return self._leased_task(con, row[0], annotator_id)

    def lease_many(self, annotator_id: int, n: int, *, lease_seconds: float = DEFAULT_LEASE_SECONDS,
                   now: datetime | None = None, gold_rate: float = 0.0,
                   rng: random.Random | None = None, gold_only: bool = False) -> list[LeasedTask]:
        """Up to ``n`` tasks leased to the annotator at once (bulk labeling through the API, as
        Argilla's annotators take a page of records): their unexpired leases first, then new
        ones by the rules of :meth:`lease_next` (gold tasks at ``gold_rate``), in one
        transaction. Each lease is submitted or skipped on its own."""
        now = now or utcnow()
        expires = now + timedelta(seconds=lease_seconds)
        out: list[LeasedTask] = []
        with self.engine.atomic() as con:
            held = con.execute(
                "SELECT task_id FROM assignments WHERE annotator_id = ? AND state = 'leased' "
                "AND lease_expires_at > ? ORDER BY leased_at, task_id LIMIT ?", [annotator_id, now, n]).fetchall()
            out += [self._leased_task(con, r[0], annotator_id) for r in held]
            while len(out) < n:
                row = None
                if gold_only or (gold_rate > 0 and (rng or random).random() < gold_rate):
                    row = self._next_gold_id(con, annotator_id)
                if row is None and not gold_only:
                    row = self.frontier.next_task_id(con, annotator_id, now)
                if row is None:
                    break
                self._lease(con, row[0], annotator_id, now, expires)
                out.append(self._leased_task(con, row[0], annotator_id,
                                             Assignment(row[0], annotator_id, now, expires, "leased")))
        return out

    @staticmethod
    def _next_gold_id(con, annotator_id: int) -> tuple[int] | None:
        return con.execute("""
            SELECT id FROM tasks WHERE gold_ranking IS NOT NULL AND id NOT IN
                (SELECT task_id FROM assignments WHERE annotator_id = ?)
            ORDER BY hash(id + ?) LIMIT 1""", [annotator_id, annotator_id]).fetchone()

    @staticmethod
    def _lease(con, task_id: int, annotator_id: int, now: datetime, expires: datetime) -> None:
        con.execute("""
            INSERT INTO assignments VALUES (?, ?, ?, ?, 'leased')
            ON CONFLICT (task_id, annotator_id) DO UPDATE SET
                leased_at = excluded.leased_at, lease_expires_at = excluded.lease_expires_at,
                state = 'leased'""", [task_id, annotator_id, now, expires])

    def _leased_task(self, con: duckdb.DuckDBPyConnection, task_id: int, annotator_id: int,
                     assignment: Assignment | None = None) -> LeasedTask:
        """The task, its prompt and responses (``assignment``: the lease just written, else
        read back)."""
        task = fetch_records(con, Task, f"SELECT {_COLS} FROM tasks WHERE id = ?", [task_id])[0]
        a = assignment or fetch_records(con, Assignment, f"SELECT {_ASSIGNMENT_COLS} FROM assignments "
                                        "WHERE task_id = ? AND annotator_id = ?", [task_id, annotator_id])[0]
        return LeasedTask(task, self.prompts.get(task.prompt_id),
                          self.responses.get_many(task.response_ids), a)

    def skip(self, task_id: int, annotator_id: int) -> None:
        """Give a leased task back: it will not be offered to this annotator again.

        Raises:
            LeaseError: the annotator holds no lease on the task.
        """
        with self.engine.atomic() as con:
            n = con.execute("UPDATE assignments SET state = 'skipped' WHERE task_id = ? AND "
                            "annotator_id = ? AND state = 'leased'",
                            [task_id, annotator_id]).fetchone()[0]
            if n != 1:
                raise LeaseError(f"annotator {annotator_id} holds no lease on task {task_id}")

    def complete_assignment(self, con: duckdb.DuckDBPyConnection, task_id: int,
                            annotator_id: int | None, prompt_id: int, response_ids: list[int],
                            now: datetime) -> int | None:
        """Inside a comparison's transaction: check the submitter's lease on ``task_id`` and
        mark it done; the task completes when ``overlap`` assignments are done. Returns the
        task's ``eval_run_id`` (the comparison inherits it).

        Raises:
            NotFoundError: no such task.
            ValidationError: the ranking does not cover exactly the task's responses.
            LeaseError: no lease, already done, or the task was completed by others.
        """
        found = fetch_records(con, _Slots, "SELECT prompt_id, response_ids, overlap, gold_ranking "
                              "IS NOT NULL AS gold, eval_run_id FROM tasks WHERE id = ?", [task_id])
        if not found:
            raise NotFoundError(f"no task with id {task_id}")
        task = found[0]
        if task.prompt_id != prompt_id or sorted(task.response_ids) != sorted(response_ids):
            raise ValidationError(f"task {task_id}: the ranking must rank exactly responses "
                                  f"{sorted(task.response_ids)} of prompt {task.prompt_id}")
        if annotator_id is None:
            raise LeaseError(f"task {task_id}: a submission needs the annotator's id")
        a = con.execute("SELECT state FROM assignments WHERE task_id = ? AND annotator_id = ?",
                        [task_id, annotator_id]).fetchone()
        if a is None or a[0] not in ("leased", "expired"):
            state = "no lease" if a is None else f"state {a[0]!r}"
            raise LeaseError(f"task {task_id}: annotator {annotator_id} has {state}; "
                             "lease the task before submitting")
        if not task.gold:  # gold tasks are answered by everyone: no overlap limit
            others = con.execute(
                f"SELECT count(*) FROM assignments WHERE task_id = ? AND annotator_id <> ? AND ({BUSY_SLOT})",
                [task_id, annotator_id, now]).fetchone()[0]
            if others >= task.overlap:
                raise LeaseError(f"task {task_id}: your lease expired and the task was completed "
                                 "by others; take the next task")
        con.execute("UPDATE assignments SET state = 'done' WHERE task_id = ? AND annotator_id = ?",
                    [task_id, annotator_id])
        if not task.gold:
            done = con.execute("SELECT count(*) FROM assignments WHERE task_id = ? AND state = 'done'",
                               [task_id]).fetchone()[0]
            if done >= task.overlap:
                con.execute("UPDATE tasks SET completed_at = ? WHERE id = ?", [now, task_id])
                from .platform import emit_event

                emit_event(con, "task.completed", {"task_id": task_id, "prompt_id": prompt_id})
        return task.eval_run_id

    def reopen(self, con: duckdb.DuckDBPyConnection, task_id: int, annotator_id: int,
               now: datetime, lease_seconds: float) -> None:
        """Inside an undo's transaction: the task is open again and leased back to the
        annotator who withdrew their submission."""
        con.execute("UPDATE tasks SET completed_at = NULL WHERE id = ?", [task_id])
        self.frontier.forget()
        con.execute("UPDATE assignments SET state = 'leased', leased_at = ?, "
                    "lease_expires_at = ? WHERE task_id = ? AND annotator_id = ?",
                    [now, now + timedelta(seconds=lease_seconds), task_id, annotator_id])
