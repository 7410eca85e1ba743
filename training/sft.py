"""Supervised fine-tuning with TRL ``SFTTrainer`` on chosen responses (constitutional
revisions and human edits included), loss on completion tokens only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .data import sft_rows

__all__ = ["run"]


def run(ctx) -> tuple[Path, dict[str, Any]]:
    from trl import SFTTrainer

    cfg = ctx.config
    tok, model, peft_config = ctx.policy()
    train = sft_rows(ctx.data["train"], tok, cfg.max_length, max_completion_tokens=cfg.max_completion_tokens,
                     max_rows_per_dataset=cfg.max_rows_per_dataset, seed=cfg.seed)
    test = ctx.eval_split()
    trainer = SFTTrainer(model=model, args=cfg, train_dataset=train,
                         eval_dataset=sft_rows(test, tok, cfg.max_length) if test is not None else None,
                         processing_class=tok, peft_config=peft_config, callbacks=ctx.callbacks())
    result = ctx.fit(trainer)
    return ctx.finish(trainer, result, tok, peft_config, test, train_rows=len(train))
