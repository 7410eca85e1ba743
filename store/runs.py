"""Runs: training, generation, judge, evaluation and pipeline jobs, with lineage and metrics.

``parent_run_id`` is model lineage only (the run whose model this run started from);
``pipeline_run_id`` is the ``demo`` or ``loop`` run that orchestrated it.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from .engine import Engine, fetch_records, registered, to_json
from .errors import NotFoundError, ValidationError
from .records import RUN_KINDS, RUN_STATUSES, Run, RunMetric, utcnow

__all__ = ["RunsAPI"]

_COLS = ("id, kind, config, export_id, parent_run_id, status, started_at, finished_at, "
         "checkpoint_path, summary, pid, host, pipeline_run_id")
_FINAL = ("finished", "failed", "interrupted", "rejected")


class RunsAPI:
    """``store.runs`` and their ``run_metrics``."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def _fetch(self, con, sql: str, params: Any = None) -> list[Run]:
        return fetch_records(con, Run, sql, params, config=json.loads, summary=json.loads)

    def create(self, kind: str, config: dict[str, Any], *, export_id: int | None = None,
               parent_run_id: int | None = None, pipeline_run_id: int | None = None,
               checkpoint_path: str | None = None) -> Run:
        """Start a run owned by this process (status ``running``, pid and host recorded).

        Raises:
            ValidationError: unknown kind.
        """
        if kind not in RUN_KINDS:
            raise ValidationError(f"run kind {kind!r} is not one of {RUN_KINDS}")
        with self.engine.atomic() as con:
            return self._fetch(
                con, f"INSERT INTO runs (kind, config, export_id, parent_run_id, pipeline_run_id, "
                f"status, started_at, checkpoint_path, pid, host) "
                f"VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?) RETURNING {_COLS}",
                [kind, to_json(config), export_id, parent_run_id, pipeline_run_id, utcnow(),
                 checkpoint_path, os.getpid(), socket.gethostname()])[0]

    def update(self, run_id: int, *, status: str | None = None,
               checkpoint_path: str | None = None, summary: dict[str, Any] | None = None,
               claim: bool = False) -> Run:
        """Change a run's status, checkpoint or summary (merged into the existing summary).

        A final status (finished, failed, interrupted, rejected) sets ``finished_at``;
        ``claim`` makes the calling process the run's owner again (``--resume``).

        Raises:
            ValidationError: unknown status.
            NotFoundError: no such run.
        """
        if status is not None and status not in RUN_STATUSES:
            raise ValidationError(f"run status {status!r} is not one of {RUN_STATUSES}")
        with self.engine.atomic() as con:
            run = self.get(run_id)
            merged = {**(run.summary or {}), **(summary or {})}
            con.execute(
                "UPDATE runs SET status = ?, checkpoint_path = ?, summary = ?, finished_at = ?, "
                "pid = ?, host = ? WHERE id = ?",
                [status or run.status, checkpoint_path or run.checkpoint_path,
                 to_json(merged) if merged else None,
                 utcnow() if status in _FINAL else (None if status == "running" else run.finished_at),
                 os.getpid() if claim else run.pid, socket.gethostname() if claim else run.host,
                 run_id])
            if status in ("finished", "failed") and run.status != status:
                from .platform import emit_event

                emit_event(con, f"run.{status}", {"run_id": run_id, "kind": run.kind,
                                                  "status": status, "error": (merged or {}).get("error")})
            return self.get(run_id)

    def get(self, run_id: int) -> Run:
        """The run with this id. Raises :class:`NotFoundError`."""
        with self.engine.atomic() as con:
            found = self._fetch(con, f"SELECT {_COLS} FROM runs WHERE id = ?", [run_id])
        if not found:
            raise NotFoundError(f"no run with id {run_id} (see `prefloop runs list`)")
        return found[0]

    def list(self, *, kind: str | None = None, status: str | None = None,
             pipeline_run_id: int | None = None) -> list[Run]:
        """Runs by id, optionally of one kind, status and/or pipeline run."""
        with self.engine.atomic() as con:
            return self._fetch(
                con, f"SELECT {_COLS} FROM runs WHERE ($kind::VARCHAR IS NULL OR kind = $kind) "
                "AND ($status::VARCHAR IS NULL OR status = $status) "
                "AND ($pipe::BIGINT IS NULL OR pipeline_run_id = $pipe) ORDER BY id",
                {"kind": kind, "status": status, "pipe": pipeline_run_id})

    def reap(self) -> list[int]:
        """Mark ``running`` runs of this host whose process is gone as ``interrupted``.

        A run killed with SIGKILL cannot update its own row; any later command that lists or
        resumes runs calls this. Returns the ids marked.
        """
        host = socket.gethostname()
        dead = [run.id for run in self.list(status="running")
                if run.host == host and run.pid is not None and not _pid_alive(run.pid)]
        for run_id in dead:
            self.update(run_id, status="interrupted")
        return dead

    def add_metrics(self, run_id: int, metrics: Iterable[tuple[int, str, float]]) -> None:
        """Append ``(step, name, value)`` metrics of a run."""
        rows = [(int(s), str(n), float(v)) for s, n, v in metrics]
        if rows:
            batch = pa.table({"run_id": pa.array([run_id] * len(rows), pa.int64()),
                              "step": pa.array([r[0] for r in rows], pa.int64()),
                              "name": [r[1] for r in rows], "value": [r[2] for r in rows]})
            with self.engine.atomic() as con, registered(con, "metric_batch", batch):
                con.execute("INSERT INTO run_metrics SELECT * FROM metric_batch")

    def metrics(self, run_id: int, name: str | None = None) -> list[RunMetric]:
        """Metrics of a run ordered by step, optionally of one name."""
        with self.engine.atomic() as con:
            return fetch_records(
                con, RunMetric, "SELECT run_id, step, name, value FROM run_metrics "
                "WHERE run_id = $run AND ($name::VARCHAR IS NULL OR name = $name) ORDER BY step, name",
                {"run": run_id, "name": name})


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped by its parent) still answers kill(0).
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
