"""Reward model training: TRL ``RewardTrainer`` (Bradley-Terry loss -log sigmoid(r_c - r_r),
Ouyang et al. 2022) on a sequence-classification head; held-out accuracy, margin and ECE per
dataset and label source (:mod:`training.evaluate`). With ``label_smoothing`` (``auto``: each
pair's ``p_chosen`` from the export, e.g. Dawid-Skene's posterior; a number: a fixed target,
the conservative Bradley-Terry loss) and ``label_weights`` the loss is the binary
cross-entropy of sigmoid(r_c - r_r) against the soft label, weighted per pair."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefloop.core.models import load_reward_model

from .configs import lora_config
from .errors import TrainingError
from .rm_eval import grouped_reward_metrics
from .scoring import (
    RewardScorer,
    prepare_reward_tokenizer,
    to_reward_rows,
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
    smoothing = str(cfg.label_smoothing).strip().lower()
    if smoothing != "auto":
        try:
            eps = float(smoothing)
        except ValueError:
            raise TrainingError(f"label_smoothing {cfg.label_smoothing!r}: expected auto or a "
                                "number in [0, 0.5)") from None
        if not 0.0 <= eps < 0.5:
            raise TrainingError(f"label_smoothing {eps}: expected a number in [0, 0.5)")
    need = (["p_chosen"] if smoothing == "auto" else []) + (["weight"] if cfg.label_weights else [])
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

    smoothing = str(cfg.label_smoothing).strip().lower()
    fixed = None if smoothing == "auto" else float(smoothing)

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
                self._signature_columns = ["chosen_ids", "rejected_ids", "p_chosen", "weight"]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            target, weight = inputs.pop("p_chosen", None), inputs.pop("weight", None)
            _, outputs = super().compute_loss(model, inputs, return_outputs=True)
            r_c, r_r = torch.chunk(outputs.logits.squeeze(-1), chunks=2)
            if target is None:
                target = torch.full_like(r_c, 1.0 - fixed)
            loss = soft_bradley_terry_loss(r_c - r_r, target.to(r_c.dtype),
                                           None if weight is None else weight.to(r_c.dtype))
            if self.args.center_rewards_coefficient is not None:
                loss = loss + self.args.center_rewards_coefficient * torch.mean((r_c + r_r) ** 2)
            return (loss, outputs) if return_outputs else loss

    return SoftLabelRewardTrainer, SoftCollator


def run(ctx) -> tuple[Path, dict[str, Any]]:
    from trl import RewardTrainer

    cfg = ctx.config
    tok = prepare_reward_tokenizer(ctx.model.path)
    model = load_reward_model(ctx.model.path, tok.pad_token_id)
    extra = soft_label_columns(cfg, ctx.data["train"])
    soft = bool(extra) or str(cfg.label_smoothing).strip() not in ("0", "0.0")
    train = to_reward_rows(ctx.data["train"].select_columns(PAIR_COLUMNS + extra), tok)
    peft_config = lora_config(cfg, model, task_type="SEQ_CLS") if cfg.use_lora else None
    kwargs = {}
    trainer_cls = RewardTrainer
    if soft:
        trainer_cls, collator = _soft_trainer(cfg)
        kwargs["data_collator"] = collator(pad_token_id=tok.pad_token_id)
    trainer = trainer_cls(model=model, args=cfg, train_dataset=train, processing_class=tok,
                          peft_config=peft_config, callbacks=ctx.callbacks(), **kwargs)
    result = ctx.fit(trainer)
    model = trainer.model
    if peft_config is not None:
        model = model.merge_and_unload()
    final = ctx.save_final(model, tok)
    write_reward_config(final, cfg.max_length)
    summary = ctx.summary(result, train_pairs=len(train))
    test = ctx.eval_split()
    if test is not None and len(test):
        model.eval()
        scorer = RewardScorer(final, model=model, tokenizer=tok,
                              batch_size=cfg.per_device_eval_batch_size)
        with ctx.timed_eval():
            metrics = evaluate_reward_model(scorer, test)
        summary["eval"] = metrics
        ctx.log_eval(result.global_step, {f"{group}/{name}": value for group, m in metrics.items()
                                          for name, value in m.items()})
    return final, summary
