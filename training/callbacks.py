"""The bridge from a ``transformers.Trainer`` to the store's ``run_metrics`` (run bookkeeping
itself, without torch, is :mod:`prefloop.store.tracking`)."""

from __future__ import annotations

from pathlib import Path

from transformers import TrainerCallback

from prefloop import store
from prefloop.store.tracking import MetricsLogger

__all__ = ["StoreMetricsCallback", "TimeBudgetCallback", "over_budget"]


def over_budget(started: float, max_seconds: float | None) -> bool:
    """Whether ``max_seconds`` of wall clock have passed since ``started`` (``time.perf_counter``);
    under several processes, whether any of them says so (every rank then stops at the same
    step, so none waits on a collective the others left)."""
    import time

    if not max_seconds:
        return False
    flag = time.perf_counter() - started >= max_seconds
    from accelerate import PartialState

    state = PartialState()
    if state.num_processes > 1:
        import torch
        from accelerate.utils import reduce

        flag = bool(reduce(torch.tensor([float(flag)], device=state.device), "sum").item() > 0)
    return flag


class TimeBudgetCallback(TrainerCallback):
    """Stops a ``transformers.Trainer`` at the end of the first step after ``max_seconds`` of
    training (a wall-clock budget: ``max_seconds`` in the run configs); the run ends normally
    (evaluated, saved) with ``stopped_by_budget`` in its summary."""

    def __init__(self, max_seconds: float):
        self.max_seconds, self.started, self.stopped = max_seconds, None, False

    def on_train_begin(self, args, state, control, **kwargs):
        import time

        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self.started is not None and over_budget(self.started, self.max_seconds):
            control.should_training_stop = self.stopped = True
        return control


class StoreMetricsCallback(TrainerCallback):
    """Streams a ``transformers.Trainer``'s logs to ``run_metrics`` and records each saved
    checkpoint as the run's resume point (main process only). ``renames`` also logs a metric
    under a second name (TRL's ``rewards/reward_second/mean`` as ``reward_second``)."""

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
