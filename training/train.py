"""``prefloop train KIND``: one entry point for every training method.

Steps: reap dead runs; resolve (or resume) the run's config, export and model; create the run
row; train with the method's module; evaluate on the held-out split; save ``final/``; record
the summary and status. The method modules (:mod:`training.reward`, :mod:`training.dpo`,
:mod:`training.sft`, :mod:`training.group_rl` (GRPO and RLOO), :mod:`training.ppo_run`) each expose
``run(ctx) -> (final_dir, summary)``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefloop import store
from prefloop.core.models import ModelRef, resolve_model
from prefloop.store.tracking import MetricsLogger, last_checkpoint, tracked_run

from .callbacks import StoreMetricsCallback, TimeBudgetCallback
from .configs import config_to_dict, load_config
from .data import load_pairs, resolve_export, runs_dir
from .errors import TrainingError

__all__ = ["RunContext", "TrainResult", "train", "find_resumable"]

logger = logging.getLogger(__name__)


@dataclass
class RunContext:
    """Everything a method module needs for one run."""

    store: store.Store
    run: store.Run
    config: Any
    export: store.Export
    data: Any                      # datasets.DatasetDict with "train" (and "test")
    model: ModelRef
    output_dir: Path
    resume_from: Path | None
    main: bool = True              # False on the other ranks of a multi-process run: no store
    eval_seconds: float = 0.0      # time spent evaluating on the held-out split

    def timed_eval(self):
        """A context manager adding its duration to :attr:`eval_seconds`."""
        from contextlib import contextmanager

        @contextmanager
        def timer():
            t0 = time.perf_counter()
            try:
                yield
            finally:
                self.eval_seconds += time.perf_counter() - t0
        return timer()

    def callbacks(self, metrics: bool = True) -> list:
        """The Trainer callbacks of this run: the store's metrics (main process; ``metrics``)
        and, with ``config.max_seconds``, the wall-clock budget (every process)."""
        out = [StoreMetricsCallback(self.store, self.run.id)] if self.main and metrics else []
        if getattr(self.config, "max_seconds", None):
            self.budget = TimeBudgetCallback(self.config.max_seconds)
            out.append(self.budget)
        return out

    def progress(self, log, total: int):
        """Wrap an ``(iteration, metrics)`` logger so each iteration also logs a line with its
        reward, KL and time (our PPO: TRL's trainers show their own progress bars); the CLI
        prints the ``prefloop`` loggers' INFO lines."""
        import time

        start = [time.perf_counter()]

        def step(it: int, metrics: dict[str, float]) -> None:
            if not self.main:
                return
            log(it, metrics)
            now = time.perf_counter()
            shown = [f"{k} {metrics[k]:.3f}" for k in ("reward", "reward_model", "reward_second", "kl",
                                                       "eos_rate") if k in metrics]
            logger.info("  %s %d/%d: %s (%.1f s)", self.run.kind, it, total, ", ".join(shown), now - start[0])
            start[0] = now
        return step

    def eval_split(self):
        """The held-out split, capped at ``config.max_eval_pairs`` rows, or ``None``."""
        if "test" not in self.data:
            return None
        test = self.data["test"]
        return test.select(range(min(len(test), self.config.max_eval_pairs)))

    def policy(self):
        """The starting policy of a TRL preference/SFT trainer: ``(tokenizer, model,
        peft_config)``, the last ``None`` without ``config.use_lora``."""
        from prefloop.core.models import load_causal_lm, load_tokenizer

        from .configs import lora_config

        tok = load_tokenizer(self.model.path)
        model = load_causal_lm(self.model.path)
        return tok, model, lora_config(self.config, model) if self.config.use_lora else None

    def finish(self, trainer, result, tok, peft_config, test, **extra: Any) -> tuple[Path, dict[str, Any]]:
        """After a TRL trainer's fit: the summary (:meth:`summary` with ``extra``, and the
        held-out figures when ``test`` has rows; before merging, since a LoRA reference is the
        disabled adapters) and the final model saved (LoRA merged): ``(final_dir, summary)``."""
        summary = self.summary(result, **extra)
        if test is not None and len(test):
            summary["eval"] = self.evaluate_trainer(trainer, result.global_step)
        final = self.save_final(trainer.model.merge_and_unload() if peft_config else trainer.model, tok)
        return final, summary

    def fit(self, trainer) -> Any:
        """``trainer.train()``, from the last checkpoint when resuming; returns TRL's
        ``TrainOutput`` (``training_loss``, ``global_step``)."""
        return trainer.train(resume_from_checkpoint=str(self.resume_from) if self.resume_from else None)

    def save_final(self, model, tokenizer) -> Path:
        """Save the trained model and its tokenizer to ``<output_dir>/final`` and return it."""
        final = self.output_dir / "final"
        if self.main:
            model.save_pretrained(final)
            tokenizer.save_pretrained(final)
        _barrier()
        return final

    def summary(self, result, **extra: Any) -> dict[str, Any]:
        """The run summary's common part: training loss, steps and model name, plus ``extra``
        (and ``stopped_by_budget`` when ``max_seconds`` ended training)."""
        out = {"train_loss": result.training_loss, "steps": result.global_step,
               **extra, "model": self.model.name}
        budget = getattr(self, "budget", None)
        if budget is not None:
            out["stopped_by_budget"] = budget.stopped
        return out

    def log_eval(self, step: int, metrics: dict[str, float]) -> None:
        """Held-out metrics into ``run_metrics`` as ``eval/<name>`` at ``step`` (main process)."""
        if self.main:
            MetricsLogger(self.store, self.run.id).log(step, {f"eval/{k}": v for k, v in metrics.items()})

    def evaluate_trainer(self, trainer, step: int) -> dict[str, float]:
        """``trainer.evaluate()`` numbers with the ``eval_`` prefix dropped, also logged."""
        with self.timed_eval():
            raw = trainer.evaluate()
        metrics = {k.removeprefix("eval_"): v for k, v in raw.items() if isinstance(v, (int, float))}
        self.log_eval(step, metrics)
        return metrics


@dataclass
class TrainResult:
    """One finished training run: its row, the final checkpoint's folder, the run's summary
    (as stored, JSON) and the wall clock (seconds). The properties read the summary's figures
    that every method reports, typed, so callers never walk the JSON."""

    run: store.Run
    final_dir: Path
    summary: dict[str, Any]
    seconds: float

    @property
    def steps(self) -> int:
        """Optimizer steps (PPO: iterations)."""
        return int(self.summary.get("steps", self.summary.get("iterations", 0)))

    @property
    def train_loss(self) -> float | None:
        return self.summary.get("train_loss")

    @property
    def n_train(self) -> int | None:
        """Training rows: pairs (RM, DPO, ORPO), rows (SFT), labels (KTO) or prompts (RL)."""
        for key in ("train_pairs", "train_rows", "train_labels", "train_prompts"):
            if key in self.summary:
                return int(self.summary[key])
        return None

    @property
    def eval_metrics(self) -> dict[str, float]:
        """The held-out figures: a reward model's ``accuracy`` and ``n`` (pairs) over all
        held-out pairs; a preference method's TRL eval metrics (``rewards/accuracies``...)."""
        ev = self.summary.get("eval") or {}
        return dict(ev.get("all", ev)) if isinstance(ev, dict) else {}

    @property
    def eval_accuracy(self) -> float | None:
        """Held-out pairwise accuracy: the reward model's, or the implicit reward's (DPO)."""
        ev = self.eval_metrics
        return ev.get("accuracy", ev.get("rewards/accuracies"))


def _method(kind: str):
    from . import dpo, group_rl, kto, orpo, ppo_run, reward, sft

    return {"rm": reward, "dpo": dpo, "sft": sft, "grpo": group_rl, "rloo": group_rl, "ppo": ppo_run,
            "kto": kto, "orpo": orpo}[kind]


def find_resumable(s: store.Store, kind: str, run_id: int | None = None) -> store.Run:
    """The run to resume: ``run_id``, or the newest interrupted/failed run of ``kind``.

    Raises:
        TrainingError: no such run, or it is still running or already finished.
    """
    s.runs.reap()
    if run_id is not None:
        run = s.runs.get(run_id)
    else:
        candidates = [r for r in s.runs.list(kind=kind) if r.status in ("interrupted", "failed")]
        if not candidates:
            raise TrainingError(f"no interrupted or failed {kind} run to resume "
                                "(see `prefloop runs list`)")
        run = candidates[-1]
    if run.kind != kind:
        raise TrainingError(f"run {run.id} is a {run.kind} run, not {kind}")
    if run.status == "running":
        raise TrainingError(f"run {run.id} is still running (pid {run.pid} on {run.host})")
    if run.status == "finished":
        raise TrainingError(f"run {run.id} already finished; start a new run instead")
    return run


def train(s: store.Store, kind: str, *, config: Any | None = None, config_path: str | Path | None = None,
          overrides: dict[str, Any] | None = None, resume: bool = False,
          resume_run_id: int | None = None, pipeline_run_id: int | None = None) -> TrainResult:
    """Train one model of ``kind`` (:data:`prefloop.core.kinds.TRAIN_KINDS`) and record it as a
    run. The on-policy methods (iterative DPO, rejection-sampling SFT) are pipelines of such
    runs: :mod:`prefloop.pipelines.onpolicy`.

    The config: ``config``, a typed config of ``kind`` built by the caller
    (:data:`prefloop.training.configs.CONFIGS`, e.g. ``DPORunConfig(model=..., export_id=3)``),
    or one built from ``config_path`` (YAML/JSON) with ``overrides`` on top (the CLI's way in).
    With ``resume``/``resume_run_id`` the run's saved config is used, with ``overrides`` on top
    (e.g. a new ``max_steps``), and training continues from its last checkpoint.

    Raises:
        TrainingError, store.StoreError: bad config, model, export or resume target.
        ConfigError: ``config`` is not ``kind``'s config class, or comes with a path or overrides.
    """
    if config is not None:
        overrides = _typed_overrides(kind, config, config_path, overrides)
    rank, world = _world()
    if world > 1:
        _distributed_state()
    if rank != 0:
        return _train_follower(kind)
    t0 = time.perf_counter()
    try:
        resume_run, config, export, model, data = _prepare(s, kind, config_path, overrides,
                                                           resume, resume_run_id)
    except BaseException as exc:
        if world > 1:                       # the other ranks wait for the plan: tell them
            _broadcast({"error": f"{type(exc).__name__}: {exc}"})
        raise
    with tracked_run(s, kind, config_to_dict(config), export_id=export.id,
                     parent_run_id=model.run_id, pipeline_run_id=pipeline_run_id,
                     resume=resume_run) as run:
        output_dir = Path(config.output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        resume_from = last_checkpoint(output_dir) if resume_run else None
        ctx = RunContext(s, run, config, export, data, model, output_dir, resume_from)
        if world > 1:
            _broadcast({"config": _portable_config(s, config), "export": export, "model": model,
                        "run_id": run.id, "output_dir": str(output_dir),
                        "resume_from": None if resume_from is None else str(resume_from)})
        final_dir, summary = _method(kind).run(ctx)
        seconds = time.perf_counter() - t0
        summary = {**summary, "output_dir": str(output_dir), "seconds": round(seconds, 1),
                   "eval_seconds": round(ctx.eval_seconds, 1),
                   "eval_share": round(ctx.eval_seconds / seconds, 3) if seconds else 0.0,
                   "processes": world}
        run = s.runs.update(run.id, status="finished", checkpoint_path=str(final_dir), summary=summary)
    return TrainResult(run, Path(final_dir), summary, time.perf_counter() - t0)


def _typed_overrides(kind: str, config, config_path, overrides) -> dict[str, Any]:
    """A caller's typed config as the fields :func:`load_config` rebuilds it from (the same
    path a resumed run's saved config takes), after checking it is ``kind``'s."""
    from .configs import CONFIGS, ConfigError, config_to_dict

    if config_path is not None or overrides:
        raise ConfigError("train: give a typed config, or a config file and overrides, not both")
    if type(config) is not CONFIGS.get(kind):
        raise ConfigError(f"train {kind}: expected a {CONFIGS[kind].__name__ if kind in CONFIGS else kind} "
                          f"config, found {type(config).__name__}")
    fields = config_to_dict(config)
    if fields.get("output_dir") == CONFIGS[kind]().output_dir:     # TRL's placeholder: ours applies
        fields.pop("output_dir")
    return fields


def run_config(kind: str, **fields):
    """``kind``'s typed config (:data:`~prefloop.training.configs.CONFIGS`) from keyword
    fields, for :func:`train`'s ``config``. Raises ConfigError: unknown kind or field."""
    from .configs import CONFIGS, ConfigError

    if kind not in CONFIGS:
        raise ConfigError(f"unknown training kind {kind!r}: expected one of {', '.join(CONFIGS)}")
    try:
        return CONFIGS[kind](**fields)
    except TypeError as exc:
        raise ConfigError(f"config for {kind}: {exc}") from None


def _prepare(s: store.Store, kind: str, config_path, overrides, resume: bool, resume_run_id):
    """Config, export, model and data of a run (rank 0), checked before any run row exists:
    ``(resume_run, config, export, model, data)``."""
    s.runs.reap()
    resume_run = None
    if resume or resume_run_id is not None:
        resume_run = find_resumable(s, kind, resume_run_id)
        config = load_config(kind, overrides={**resume_run.config, **(overrides or {})})
        export = s.exports.get(resume_run.export_id)
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid() % 10000:04d}"
        config = load_config(kind, config_path, overrides,
                             default_output_dir=runs_dir(s) / f"{kind}-{stamp}")
    # every model spec is checked before anything is written (an export, a run row)
    model = resolve_model(config.model, s, require=None if kind == "rm" else "policy")
    for field, require in (("reward_model", "reward"), ("second_reward_model", "reward"),
                           ("ref_model", "policy")):
        if getattr(config, field, None):
            resolve_model(getattr(config, field), s, require=require)
    if resume_run is None:
        export = resolve_export(s, config.export_id, source=config.source, dataset=config.dataset,
                                min_agreement=config.min_agreement,
                                test_fraction=config.test_fraction,
                                format="kto" if kind == "kto" else "pairs")
        config.export_id = export.id
    unpaired = (export.filters or {}).get("format") == "kto"
    if unpaired != (kind == "kto"):
        raise TrainingError(f"export {export.id} holds {'unpaired labels' if unpaired else 'pairs'}: "
                            f"train {kind} needs {'pairs' if kind != 'kto' else 'unpaired labels'} "
                            f"(prefloop export{' --format kto' if kind == 'kto' else ''})")
    data = load_pairs(export)
    _cap_train(data, config)
    if kind == "kto":
        from .kto import check_unpaired

        check_unpaired(export.id, data["train"], config)
    return resume_run, config, export, model, data


def _cap_train(data, config) -> None:
    """At most ``config.max_train_pairs`` training rows, the same ones on every rank (seed 0)."""
    if config.max_train_pairs and len(data["train"]) > config.max_train_pairs:
        data["train"] = data["train"].shuffle(seed=0).select(range(config.max_train_pairs))


def _world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process under ``accelerate launch`` / torchrun (their
    ``RANK`` and ``WORLD_SIZE``), else ``(0, 1)``."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def _distributed_state():
    """accelerate's process state, set up first (before any trainer does) so that on a
    machine without CUDA a multi-process launch (torchrun, ``accelerate launch --multi_gpu``)
    becomes gloo data parallelism (``MULTI_CPU``) rather than N unrelated processes."""
    import torch
    from accelerate import PartialState

    if not torch.cuda.is_available():
        # TrainingArguments re-creates the state from this (it resets what we set up)
        os.environ.setdefault("ACCELERATE_USE_CPU", "true")
    return PartialState(cpu=not torch.cuda.is_available())


def _broadcast(payload: Any = None) -> Any:
    """Rank 0's ``payload`` on every rank (``torch.distributed`` through accelerate's state)."""
    from accelerate.utils import broadcast_object_list

    _distributed_state()
    box = [payload]
    broadcast_object_list(box, from_process=0)
    return box[0]


def _barrier() -> None:
    if _world()[1] > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()


def _portable_config(s: store.Store, config) -> dict[str, Any]:
    """The config as the other ranks need it: reward-model and reference specs (``run:ID``)
    resolved to paths, since those ranks never open the store."""
    out = config_to_dict(config)
    for field, require in (("reward_model", "reward"), ("second_reward_model", "reward"),
                           ("ref_model", "policy")):
        spec = out.get(field)
        if spec:
            out[field] = resolve_model(spec, s, require=require).spec
    return out


def _train_follower(kind: str) -> TrainResult:
    """A rank other than 0: wait for rank 0's plan (config, export, model, run id), train
    the same way with no store (metrics, checkpoints and the run row are rank 0's), return.

    Raises:
        TrainingError: rank 0 failed before training.
    """
    from types import SimpleNamespace

    t0 = time.perf_counter()
    plan = _broadcast()
    if "error" in plan:
        raise TrainingError(f"rank 0 failed before training: {plan['error']}")
    config = load_config(kind, overrides=plan["config"])
    export, model = plan["export"], plan["model"]
    data = load_pairs(export)
    _cap_train(data, config)
    run = SimpleNamespace(id=plan["run_id"], kind=kind)
    resume_from = Path(plan["resume_from"]) if plan["resume_from"] else None
    ctx = RunContext(None, run, config, export, data, model, Path(plan["output_dir"]), resume_from,
                     main=False)
    final_dir, summary = _method(kind).run(ctx)
    return TrainResult(run, Path(final_dir), summary, time.perf_counter() - t0)
