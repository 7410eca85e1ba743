"""The queue head, kept per process: which open task an annotator leases next.

Ordering all open tasks costs a scan of ``tasks``, so :class:`QueueFrontier` keeps the first
open task ids in queue order in the engine's cache; :class:`~prefloop.store.tasks.TasksAPI`
asks it for the next task inside its lease transaction.
"""

from __future__ import annotations

import time
from datetime import datetime

import duckdb

from .engine import Engine, id_list

__all__ = ["QueueFrontier", "BUSY_SLOT"]

#: An assignment that holds one of a task's ``overlap`` slots: done, or leased and not yet
#: expired (one ``?`` parameter: now). Counted ``FILTER (...)`` per task everywhere a free slot
#: is looked for.
BUSY_SLOT = "state = 'done' OR (state = 'leased' AND lease_expires_at > ?)"
#: An annotator's own assignment that keeps a task from being offered to them again: done,
#: skipped, or leased to them and not yet expired (one ``?`` parameter: now).
_MINE = "(state IN ('done', 'skipped') OR (state = 'leased' AND lease_expires_at > ?))"
_KEY = "frontier"


class QueueFrontier:
    """The first :attr:`SIZE` open task ids of the queue (priority, then age) with their overlap,
    cached in ``engine.cache``; candidates are checked :attr:`CANDIDATES` at a time; the cache
    is refreshed after :attr:`TTL` seconds."""

    SIZE = 512
    CANDIDATES = 64
    TTL = 30.0

    def __init__(self, engine: Engine):
        self.engine = engine

    def forget(self) -> None:
        """Drop the cached frontier (a task reopened: the order may have changed)."""
        self.engine.cache.pop(_KEY, None)

    def next_task_id(self, con: duckdb.DuckDBPyConnection, annotator_id: int,
                      now: datetime) -> tuple[int] | None:
        """The queue head for this annotator, or ``None``.

        Ordering all open tasks costs a scan of ``tasks`` (about 7-15 ms at 1M tasks), so the
        process keeps a frontier: the first 512 open task ids in queue order with their
        overlap, refreshed when tasks were added (``max(id)`` changed), after 30 s, or when it
        has nothing left for this annotator. While the store stayed attached since the last
        lease (:attr:`Engine.generation` unchanged: no other process wrote), the frontier is
        trusted and only ``assignments`` is read; otherwise the candidates are checked against
        ``tasks`` too. Either way slots are counted inside the transaction, so the cache can at
        most delay a reordering, never lease a full task.
        """
        cache = self.engine.cache
        generation = self.engine.generation
        fr = cache.get(_KEY)
        refreshed = False
        if fr is None or time.monotonic() - fr["at"] > self.TTL:
            fr = self._refresh_frontier(con)
            refreshed = True
        elif fr["generation"] != generation:
            if con.execute("SELECT coalesce(max(id), 0) FROM tasks").fetchone()[0] != fr["max_id"]:
                fr = self._refresh_frontier(con)
                refreshed = True
        while True:
            found = self._scan_frontier(con, fr, annotator_id, now,
                                        trusted=fr["generation"] == generation)
            fr["generation"] = generation
            if found is not None or fr["complete"]:
                return found
            if refreshed:
                break
            fr = self._refresh_frontier(con)
            refreshed = True
        # More than 512 open tasks and none of the first 512 is for this annotator.
        return con.execute(f"""
            WITH busy AS (SELECT task_id,
                                 count(*) FILTER ({BUSY_SLOT}) AS n,
                                 bool_or(annotator_id = ? AND {_MINE}) AS mine
                          FROM assignments GROUP BY task_id)
            SELECT t.id FROM tasks t LEFT JOIN busy b ON b.task_id = t.id
            WHERE t.completed_at IS NULL AND t.gold_ranking IS NULL AND coalesce(b.n, 0) < t.overlap
              AND NOT coalesce(b.mine, false)
            ORDER BY t.priority DESC, t.id LIMIT 1""", [now, annotator_id, now]).fetchone()

    def _refresh_frontier(self, con: duckdb.DuckDBPyConnection) -> dict:
        rows = con.execute(
            "SELECT id, overlap FROM tasks WHERE completed_at IS NULL AND gold_ranking IS NULL "
            "ORDER BY priority DESC, id LIMIT ?", [self.SIZE]).fetchall()
        max_id = con.execute("SELECT coalesce(max(id), 0) FROM tasks").fetchone()[0]
        fr = {"ids": [r[0] for r in rows], "overlap": {r[0]: r[1] for r in rows},
              "complete": len(rows) < self.SIZE, "max_id": max_id, "at": time.monotonic(),
              "generation": self.engine.generation}
        self.engine.cache[_KEY] = fr
        return fr

    def _scan_frontier(self, con: duckdb.DuckDBPyConnection, fr: dict, annotator_id: int,
                       now: datetime, *, trusted: bool = False) -> tuple[int] | None:
        """First frontier task with a free slot that this annotator has not done or skipped;
        completed tasks met on the way leave the frontier. ``trusted``: the frontier's overlaps
        are current (no other process wrote since), so only ``assignments`` is read."""
        pos = 0
        while pos < len(fr["ids"]):
            cand = fr["ids"][pos:pos + self.CANDIDATES]
            ids = id_list(cand)  # integers: inlined so DuckDB prunes
            busy = f"""
                SELECT task_id,
                       count(*) FILTER ({BUSY_SLOT}) AS n,
                       count(*) FILTER (state = 'done') AS done,
                       bool_or(annotator_id = ? AND {_MINE}) AS mine
                FROM assignments WHERE task_id IN ({ids}) GROUP BY task_id"""
            if trusted:
                found = {r[0]: r[1:] for r in con.execute(busy, [now, annotator_id, now]).fetchall()}
                status = {}
                for i in cand:
                    n, done, mine = found.get(i, (0, 0, False))
                    status[i] = (done >= fr["overlap"][i], n < fr["overlap"][i] and not mine)
            else:
                rows = con.execute(f"""
                    SELECT t.id, t.overlap, t.completed_at IS NOT NULL,
                           coalesce(b.n, 0) < t.overlap AND NOT coalesce(b.mine, false)
                    FROM (SELECT id, overlap, completed_at FROM tasks WHERE id IN ({ids})) t
                    LEFT JOIN ({busy}) b ON b.task_id = t.id""", [now, annotator_id, now]).fetchall()
                status = {r[0]: (r[2], r[3]) for r in rows}
                fr["overlap"].update({r[0]: r[1] for r in rows})
            gone = {i for i in cand if status.get(i, (True, False))[0]}
            for task_id in cand:
                if task_id not in gone and status[task_id][1]:
                    fr["ids"] = [i for i in fr["ids"] if i not in gone]
                    return (task_id,)
            fr["ids"] = [i for i in fr["ids"] if i not in gone]
            pos += len(cand) - len(gone)
        return None
