"""Run bookkeeping shared by training, judging, generation and evaluation (no torch).

A run is ``running`` while its process lives, then ``finished``, ``failed`` (an exception;
the error is kept in the summary) or ``interrupted`` (Ctrl-C or SIGTERM). A process killed with
SIGKILL cannot write anything; :meth:`prefloop.store.runs.RunsAPI.reap` marks such runs
``interrupted`` later (every ``prefloop runs`` and ``--resume`` calls it), so no run stays
``running`` forever.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefloop import store
from prefloop.core.secrets import redact

__all__ = ["tracked_run", "MetricsLogger", "last_checkpoint", "CHECKPOINT_DONE_FILES"]


class _Interrupted(KeyboardInterrupt):
    """SIGTERM, turned into an interrupt so the run is recorded as ``interrupted``."""


def _on_sigterm(signum, frame):
    raise _Interrupted(f"signal {signum}")


@contextmanager
def tracked_run(s: store.Store, kind: str, config: dict[str, Any], *, export_id: int | None = None,
                parent_run_id: int | None = None, pipeline_run_id: int | None = None,
                resume: store.Run | None = None) -> Iterator[store.Run]:
    """Create (or, with ``resume``, re-claim) a run; mark it failed or interrupted if the
    block raises. The block marks it finished (with its summary) itself.

    ``parent_run_id`` is model lineage (the run whose model this one starts from);
    ``pipeline_run_id`` the demo/loop run that started it. SIGTERM is handled as an
    interrupt while the run is active.
    """
    if resume is not None:
        run = s.runs.update(resume.id, status="running", claim=True)
    else:
        run = s.runs.create(kind, config, export_id=export_id, parent_run_id=parent_run_id,
                            pipeline_run_id=pipeline_run_id)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread
        previous = None
    try:
        yield run
    except KeyboardInterrupt:
        s.runs.update(run.id, status="interrupted")
        raise
    except BaseException as exc:
        s.runs.update(run.id, status="failed", summary={"error": redact(f"{type(exc).__name__}: {exc}")})
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class MetricsLogger:
    """Appends ``(step, name, value)`` metrics of a run to ``run_metrics`` (one store
    transaction per :meth:`log` call, not per value; non-finite values are left out)."""

    def __init__(self, s: store.Store, run_id: int):
        self.store, self.run_id = s, run_id

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        rows = [(int(step), name, float(value)) for name, value in metrics.items()
                if isinstance(value, (int, float)) and not isinstance(value, bool)
                and math.isfinite(value)]
        if rows:
            self.store.runs.add_metrics(self.run_id, rows)


# Written last into a checkpoint dir: by transformers' Trainer, and by our PPO trainer.
CHECKPOINT_DONE_FILES = ("trainer_state.json", "ppo_state.json")


def last_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete ``checkpoint-N`` directory under ``output_dir``, or ``None``.

    A run killed while saving leaves a directory without its state file
    (:data:`CHECKPOINT_DONE_FILES`); such a checkpoint is skipped, and the one before it is used.
    """
    ckpts = [p for p in Path(output_dir).glob("checkpoint-*")
             if p.name.split("-")[-1].isdigit() and any((p / f).exists() for f in CHECKPOINT_DONE_FILES)]
    return max(ckpts, key=lambda p: int(p.name.split("-")[-1]), default=None)
