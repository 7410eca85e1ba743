"""Run lifecycle: a ``runs`` row per job, metrics streamed to ``run_metrics``, final status.

A run is ``running`` while its process lives, then ``finished``, ``failed`` (an exception;
the error is kept in the summary) or ``interrupted`` (Ctrl-C or SIGTERM). A process killed with
SIGKILL cannot write anything; :meth:`store.Store.reap_runs` marks such runs ``interrupted``
later (every ``prefloop runs`` and ``--resume`` calls it), so no run stays ``running`` forever.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import store
from transformers import TrainerCallback

__all__ = ["tracked_run", "StoreMetricsCallback", "MetricsLogger", "last_checkpoint"]


class _Interrupted(KeyboardInterrupt):
    """SIGTERM, turned into an interrupt so the run is recorded as ``interrupted``."""


def _on_sigterm(signum, frame):
    raise _Interrupted(f"signal {signum}")


@contextmanager
def tracked_run(s: store.Store, kind: str, config: dict[str, Any], *, export_id: int | None = None,
                parent_run_id: int | None = None, resume: store.Run | None = None) -> Iterator[store.Run]:
    """Create (or, with ``resume``, re-claim) a run; mark it finished, failed or interrupted.

    SIGTERM is handled as an interrupt while the run is active.
    """
    if resume is not None:
        run = s.update_run(resume.id, status="running", claim=True)
    else:
        run = s.create_run(kind, config, export_id=export_id, parent_run_id=parent_run_id)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread
        previous = None
    try:
        yield run
    except KeyboardInterrupt:
        s.update_run(run.id, status="interrupted")
        raise
    except BaseException as exc:
        s.update_run(run.id, status="failed", summary={"error": f"{type(exc).__name__}: {exc}"})
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class MetricsLogger:
    """Buffers ``(step, name, value)`` metrics and appends them to ``run_metrics`` in batches
    (one store transaction per ``flush``, not per value)."""

    def __init__(self, s: store.Store, run_id: int):
        self.store, self.run_id, self.rows = s, run_id, []

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        for name, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                self.rows.append((int(step), name, float(value)))
        self.flush()

    def flush(self) -> None:
        if self.rows:
            self.store.add_run_metrics(self.run_id, self.rows)
            self.rows = []


class StoreMetricsCallback(TrainerCallback):
    """Streams a ``transformers.Trainer``'s logs to ``run_metrics`` and records each saved
    checkpoint as the run's resume point."""

    def __init__(self, s: store.Store, run_id: int):
        self.store, self.run_id = s, run_id
        self.logger = MetricsLogger(s, run_id)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            self.logger.log(state.global_step, logs)

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            self.store.update_run(self.run_id, checkpoint_path=str(ckpt))


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
