"""Odds Ratio Preference Optimization (Hong et al. 2024, "ORPO: Monolithic Preference
Optimization without Reference Model") with TRL's experimental ``ORPOTrainer``: one stage, no
reference model. Held-out figures are TRL's (``rewards/accuracies``: the share of pairs whose
chosen response has the larger log-odds; ``log_odds_ratio``, ``nll_loss``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefloop.core.models import load_causal_lm, load_tokenizer

from .configs import lora_config
from .reward import PAIR_COLUMNS

__all__ = ["run"]


def run(ctx) -> tuple[Path, dict[str, Any]]:
    from trl.experimental.orpo import ORPOTrainer

    cfg = ctx.config
    tok = load_tokenizer(ctx.model.path)
    model = load_causal_lm(ctx.model.path)
    peft_config = lora_config(cfg, model) if cfg.use_lora else None
    train = ctx.data["train"].select_columns(PAIR_COLUMNS)
    test = ctx.eval_split()
    trainer = ORPOTrainer(model=model, args=cfg, train_dataset=train,
                          eval_dataset=test.select_columns(PAIR_COLUMNS) if test is not None else None,
                          processing_class=tok, peft_config=peft_config, callbacks=ctx.callbacks())
    result = ctx.fit(trainer)
    summary = ctx.summary(result, train_pairs=len(train))
    if test is not None and len(test):
        summary["eval"] = ctx.evaluate_trainer(trainer, result.global_step)
    final = ctx.save_final(trainer.model.merge_and_unload() if peft_config else trainer.model, tok)
    return final, summary
