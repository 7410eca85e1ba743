"""Reward model training: TRL ``RewardTrainer`` (Bradley-Terry loss -log sigmoid(r_c - r_r),
Ouyang et al. 2022) on a sequence-classification head; held-out accuracy, margin and ECE per
dataset and label source (:mod:`training.rm_eval`). With ``label_smoothing`` (``auto``: each
pair's ``p_chosen`` from the export, e.g. Dawid-Skene's posterior; a number: a fixed target,
the conservative Bradley-Terry loss) and ``label_weights`` the loss is the binary
cross-entropy of sigmoid(r_c - r_r) against the soft label, weighted per pair. With
``margin_loss`` the export's ``margin`` (graded preference strength) enters the loss as
-log sigmoid(r_c - r_r - margin) (Llama 2's margin loss, TRL's ``margin`` column).

With ``ensemble=K`` the run trains K members in ``<output_dir>/member-k``, each on its own
bootstrap sample of the training pairs (drawn with replacement, seed ``seed + k``) and with
seed ``seed + k`` (Coste et al. 2024), and saves them as one model: ``final/member-k`` plus
:data:`~prefloop.core.models.ENSEMBLE_MANIFEST`, scored by
:class:`~prefloop.training.scoring.EnsembleScorer`. A resumed ensemble run keeps the members
already in ``final/``. ``max_seconds`` is the whole run's budget, split evenly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefloop.core.models import load_reward_model

from .configs import lora_config, parse_label_smoothing
from .errors import TrainingError
from .rm_eval import grouped_reward_metrics
from .scoring import (
    EnsembleScorer,
    RewardScorer,
    prepare_reward_tokenizer,
    to_reward_rows,
    write_ensemble_manifest,
    write_reward_config,
)

__all__ = ["run", "evaluate_reward_model", "PAIR_COLUMNS", "soft_bradley_terry_loss",
           "soft_label_columns"]

PAIR_COLUMNS = ["prompt", "chosen", "rejected"]


def evaluate_reward_model(scorer: RewardScorer, split) -> dict[str, dict[str, float]]:
    """Grouped metrics of a reward model on a pair split (``all``, ``dataset=...``,
    ``source=human|ai|human+ai``)."""
    prompts = [list(p) for p in split["prompt"]]
    r_c = scorer.score(prompts, [c[0]["content"] for c in split["chosen"]])
    r_r = scorer.score(prompts, [r[0]["content"] for r in split["rejected"]])
    return grouped_reward_metrics(r_c, r_r, {
        "dataset": list(split["dataset"]),
        "source": ["+".join(k) for k in split["labeler_kinds"]]})


def soft_label_columns(cfg, split) -> list[str]:
    """The label columns a run needs beyond :data:`PAIR_COLUMNS`: ``p_chosen`` for
    ``label_smoothing=auto``, ``weight`` for ``label_weights``.

    Raises:
        TrainingError: a bad ``label_smoothing``, or a column the export does not have.
    """
    auto = parse_label_smoothing(cfg.label_smoothing) is None
    need = (["p_chosen"] if auto else []) + (["weight"] if cfg.label_weights else [])
    missing = [c for c in need if c not in split.column_names]
    if missing:
        raise TrainingError(f"label_smoothing/label_weights need the export columns {missing}: "
                            "re-export (prefloop export writes p_chosen and weight; "
                            "--aggregate dawid-skene makes them soft)")
    return need


def soft_bradley_terry_loss(margin, target, weight=None):
    """Binary cross-entropy of ``sigmoid(margin)`` against ``target`` (``[B]`` each; the
    probability that chosen beats rejected), weighted mean over the batch by ``weight``:
    the Bradley-Terry loss on soft labels (target 1 gives TRL's ``-log sigmoid(r_c - r_r)``).
    Returns a scalar in nats."""
    import torch.nn.functional as F

    losses = -(target * F.logsigmoid(margin) + (1 - target) * F.logsigmoid(-margin))
    if weight is None:
        return losses.mean()
    return (weight * losses).sum() / weight.sum().clamp(min=1e-8)


def _soft_trainer(cfg):
    """TRL's ``RewardTrainer`` with soft targets and per-pair weights: the collator carries
    ``p_chosen``/``weight`` and the loss is :func:`soft_bradley_terry_loss`."""
    import torch
    from trl import RewardTrainer
    from trl.trainer.reward_trainer import DataCollatorForPreference

    fixed = parse_label_smoothing(cfg.label_smoothing)

    class SoftCollator(DataCollatorForPreference):
        def torch_call(self, examples):
            out = super().torch_call(examples)
            for key in ("p_chosen", "weight"):
                if key in examples[0]:
                    out[key] = torch.tensor([float(e[key]) for e in examples])
            return out

    class SoftLabelRewardTrainer(RewardTrainer):
        def _set_signature_columns_if_needed(self):
            if self._signature_columns is None:
                self._signature_columns = ["chosen_ids", "rejected_ids", "p_chosen", "weight",
                                           "margin"]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            target, weight = inputs.pop("p_chosen", None), inputs.pop("weight", None)
            _, outputs = super().compute_loss(model, inputs, return_outputs=True)
            r_c, r_r = torch.chunk(outputs.logits.squeeze(-1), chunks=2)
            if target is None:
                target = torch.full_like(r_c, 1.0 - fixed)
            shift = inputs["margin"].to(r_c.dtype) if "margin" in inputs else 0.0
            loss = soft_bradley_terry_loss(r_c - r_r - shift, target.to(r_c.dtype),
                                           None if weight is None else weight.to(r_c.dtype))
            if self.args.center_rewards_coefficient is not None:
                loss = loss + self.args.center_rewards_coefficient * torch.mean((r_c + r_r) ** 2)
            return (loss, outputs) if return_outputs else loss

    return SoftLabelRewardTrainer, SoftCollator


def margin_column(cfg, split):
    """``["margin"]`` when ``cfg.margin_loss`` (the export's graded-strength margins, ``None``
    -> 0.0), else ``[]``.

    Raises:
        TrainingError: ``margin_loss`` on an export without a ``margin`` column.
    """
    if not getattr(cfg, "margin_loss", False):
        return []
    if "margin" not in split.column_names:
        raise TrainingError("margin_loss needs the export column 'margin': re-export (prefloop "
                            "export writes it from the labels' graded strength)")
    return ["margin"]


def _with_margins(split):
    return split.map(lambda r: {"margin": float(r["margin"] or 0.0)})


def _fit_one(ctx, cfg, tok, train, output_dir: Path, callbacks: list, resume_from=None):
    """Train one reward model on ``train`` (rows in the trainer's format); returns
    ``(trainer, TrainOutput)``."""
    from trl import RewardTrainer

    model = load_reward_model(ctx.model.path, tok.pad_token_id)
    peft_config = lora_config(cfg, model, task_type="SEQ_CLS") if cfg.use_lora else None
    extra = [c for c in ("p_chosen", "weight") if c in train.column_names]
    soft = bool(extra) or str(cfg.label_smoothing).strip() not in ("0", "0.0")
    kwargs = {}
    trainer_cls = RewardTrainer
    if soft:
        trainer_cls, collator = _soft_trainer(cfg)
        kwargs["data_collator"] = collator(pad_token_id=tok.pad_token_id)
    args = cfg
    if output_dir != Path(cfg.output_dir):
        import copy

        args = copy.copy(cfg)
        args.output_dir = str(output_dir)
    trainer = trainer_cls(model=model, args=args, train_dataset=train, processing_class=tok,
                          peft_config=peft_config, callbacks=callbacks, **kwargs)
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    return trainer, result


def _merged(trainer, cfg):
    model = trainer.model
    return model.merge_and_unload() if cfg.use_lora else model


def run(ctx) -> tuple[Path, dict[str, Any]]:
    cfg = ctx.config
    tok = prepare_reward_tokenizer(ctx.model.path)
    extra = soft_label_columns(cfg, ctx.data["train"]) + margin_column(cfg, ctx.data["train"])
    train = ctx.data["train"].select_columns(PAIR_COLUMNS + extra)
    if "margin" in extra:
        train = _with_margins(train)
    train = to_reward_rows(train, tok)
    if cfg.ensemble:
        return _run_ensemble(ctx, cfg, tok, train)
    trainer, result = _fit_one(ctx, cfg, tok, train, Path(cfg.output_dir), ctx.callbacks(),
                               ctx.resume_from)
    model = _merged(trainer, cfg)
    final = ctx.save_final(model, tok)
    model.eval()
    # scored at the length it was trained with (what write_reward_config records beside it)
    scorer = RewardScorer(final, model=model, tokenizer=tok, max_length=cfg.max_length,
                          batch_size=cfg.per_device_eval_batch_size)
    stats = score_statistics(scorer, *_calibration_rows(ctx))
    write_reward_config(final, cfg.max_length, stats)
    summary = ctx.summary(result, train_pairs=len(train))
    summary["score_mean"], summary["score_std"] = stats
    test = ctx.eval_split()
    if test is not None and len(test):
        with ctx.timed_eval():
            metrics = evaluate_reward_model(scorer, test)
        summary["eval"] = metrics
        ctx.log_eval(result.global_step, {f"{group}/{name}": value for group, m in metrics.items()
                                          for name, value in m.items()})
    return final, summary


def score_statistics(scorer, prompts: list, responses: list[str]) -> tuple[float, float]:
    """``(mean, population std)`` of ``scorer``'s rewards on the calibration responses (logit
    units): recorded beside the model for ``normalize_reward``."""
    r = scorer.score(prompts, responses)
    return float(r.mean()), float(r.std(unbiased=False))


def _calibration_rows(ctx):
    """Up to 256 (prompt, response) pairs for the members' offsets: the held-out responses,
    else the first training pairs' (both sides)."""
    split = ctx.eval_split()
    if split is None or not len(split):
        split = ctx.data["train"].select(range(min(128, len(ctx.data["train"]))))
    prompts = [list(p) for p in split["prompt"]][:128]
    responses = [c[0]["content"] for c in split["chosen"]][:128] + \
        [r[0]["content"] for r in split["rejected"]][:128]
    return prompts + prompts, responses


def _run_ensemble(ctx, cfg, tok, train) -> tuple[Path, dict[str, Any]]:
    import numpy as np

    from prefloop.core.models import ENSEMBLE_MANIFEST

    from .callbacks import StoreMetricsCallback, TimeBudgetCallback

    k_members, n = cfg.ensemble, len(train)
    final = Path(cfg.output_dir) / "final"
    prompts, responses = _calibration_rows(ctx)
    names, offsets, losses, steps, stopped = [], [], [], 0, False
    for k in range(k_members):
        name, member_final = f"member-{k}", final / f"member-{k}"
        if ctx.main and (member_final / "config.json").exists():    # a resumed run: kept
            model = load_reward_model(member_final, tok.pad_token_id)
            losses.append(None)
        else:
            rng = np.random.default_rng(cfg.seed + k)
            sample = train.select(rng.integers(0, n, n).tolist())     # bootstrap, with replacement
            member_cfg = _member_config(cfg, k)
            callbacks = [StoreMetricsCallback(ctx.store, ctx.run.id)] if ctx.main and k == 0 else []
            budget = TimeBudgetCallback(cfg.max_seconds / k_members) if cfg.max_seconds else None
            if budget:
                callbacks.append(budget)
            member_dir = Path(cfg.output_dir) / name
            trainer, result = _fit_one(ctx, member_cfg, tok, sample, member_dir, callbacks,
                                       last_checkpoint_of(member_dir))
            stopped = stopped or bool(budget and budget.stopped)
            model = _merged(trainer, cfg)
            if ctx.main:
                model.save_pretrained(member_final)
                tok.save_pretrained(member_final)
                write_reward_config(member_final, cfg.max_length)
            losses.append(result.training_loss)
            steps += result.global_step
        model.eval()
        scorer = RewardScorer(member_final, model=model, tokenizer=tok,
                              batch_size=cfg.per_device_eval_batch_size)
        offsets.append(score_statistics(scorer, prompts, responses)[0])
        names.append(name)
        del model, scorer
    if ctx.main:
        write_ensemble_manifest(final, names, offsets, str(cfg.ensemble_aggregate).lower(),
                                float(cfg.uwo_lambda))
        tok.save_pretrained(final)
    summary = {"train_loss": None if None in losses else float(np.mean(losses)),
               "member_train_loss": losses, "steps": steps, "train_pairs": n,
               "ensemble": k_members, "aggregate": cfg.ensemble_aggregate,
               "model": ctx.model.name, "manifest": str(final / ENSEMBLE_MANIFEST)}
    if cfg.max_seconds:
        summary["stopped_by_budget"] = stopped
    test = ctx.eval_split()
    if ctx.main and test is not None and len(test):
        scorer = EnsembleScorer(final, batch_size=cfg.per_device_eval_batch_size)
        with ctx.timed_eval():
            metrics = evaluate_reward_model(scorer, test)
            convs = [list(p) for p in test["prompt"]]
            per_c = scorer.member_scores(convs, [c[0]["content"] for c in test["chosen"]])
            per_r = scorer.member_scores(convs, [r[0]["content"] for r in test["rejected"]])
        summary["eval"] = metrics
        summary["member_accuracy"] = [float(x) for x in (per_c > per_r).float().mean(1)]
        summary["disagreement_mean"] = float(EnsembleScorer.disagreement(per_c, per_r).mean())
        ctx.log_eval(steps, {f"{group}/{name}": value for group, m in metrics.items()
                             for name, value in m.items()})
    return final, summary


def _member_config(cfg, k: int):
    """``cfg`` with member ``k``'s seed (``seed + k``)."""
    import copy

    out = copy.copy(cfg)
    out.seed = cfg.seed + k
    out.data_seed = None if cfg.data_seed is None else cfg.data_seed + k
    return out


def last_checkpoint_of(path: Path):
    """The newest complete checkpoint of a member's directory, or ``None``."""
    from prefloop.store.tracking import last_checkpoint

    return last_checkpoint(path) if path.exists() else None
