"""The bridge from a ``transformers.Trainer`` to the store's ``run_metrics`` (run bookkeeping
itself, without torch, is :mod:`prefloop.store.tracking`)."""

from __future__ import annotations

from pathlib import Path

from transformers import TrainerCallback

from prefloop import store
from prefloop.store.tracking import MetricsLogger

__all__ = ["StoreMetricsCallback"]


class StoreMetricsCallback(TrainerCallback):
    """Streams a ``transformers.Trainer``'s logs to ``run_metrics`` and records each saved
    checkpoint as the run's resume point (main process only). ``renames`` also logs a metric
    under a second name (TRL's ``rewards/reward_gold/mean`` as ``reward_gold``)."""

    def __init__(self, s: store.Store, run_id: int, renames: dict[str, str] | None = None):
        self.store, self.run_id, self.renames = s, run_id, renames or {}
        self.logger = MetricsLogger(s, run_id)
        self._step, self._seen = -1, set()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            extra = {new: logs[old] for old, new in self.renames.items() if old in logs}
            step = state.global_step
            if step != self._step:
                self._step, self._seen = step, set()
            # the Trainer's end-of-training log repeats the last step's `epoch`: one row per
            # (step, name)
            fresh = {k: v for k, v in {**logs, **extra}.items() if k not in self._seen}
            self._seen |= set(fresh)
            self.logger.log(step, fresh)

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            self.store.runs.update(self.run_id, checkpoint_path=str(ckpt))
