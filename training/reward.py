"""Reward model training: TRL ``RewardTrainer`` (Bradley-Terry loss -log sigmoid(r_c - r_r),
Ouyang et al. 2022) on a sequence-classification head; held-out accuracy, margin and ECE per
dataset and label source (:mod:`training.evaluate`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefloop.models import load_reward_model

from .configs import lora_config
from .evaluate import grouped_reward_metrics
from .scoring import RewardScorer, prepare_reward_tokenizer, to_reward_rows, write_reward_config

__all__ = ["run", "evaluate_reward_model", "PAIR_COLUMNS"]

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


def run(ctx) -> tuple[Path, dict[str, Any]]:
    from trl import RewardTrainer

    cfg = ctx.config
    tok = prepare_reward_tokenizer(ctx.model.path)
    model = load_reward_model(ctx.model.path, tok.pad_token_id)
    train = to_reward_rows(ctx.data["train"].select_columns(PAIR_COLUMNS), tok)
    peft_config = lora_config(cfg, model, task_type="SEQ_CLS") if cfg.use_lora else None
    trainer = RewardTrainer(model=model, args=cfg, train_dataset=train, processing_class=tok,
                            peft_config=peft_config, callbacks=ctx.callbacks())
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
        metrics = evaluate_reward_model(scorer, test)
        summary["eval"] = metrics
        ctx.log_eval(result.global_step, {f"{group}/{name}": value for group, m in metrics.items()
                                          for name, value in m.items()})
    return final, summary
