"""Supervised fine-tuning with TRL ``SFTTrainer`` on chosen responses (constitutional
revisions and human edits included), loss on completion tokens only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefloop.core.models import load_causal_lm, load_tokenizer

from .configs import lora_config
from .data import sft_rows

__all__ = ["run"]


def run(ctx) -> tuple[Path, dict[str, Any]]:
    from trl import SFTTrainer

    cfg = ctx.config
    tok = load_tokenizer(ctx.model.path)
    model = load_causal_lm(ctx.model.path)
    peft_config = lora_config(cfg, model) if cfg.use_lora else None
    train = sft_rows(ctx.data["train"], tok, cfg.max_length)
    test = ctx.eval_split()
    trainer = SFTTrainer(model=model, args=cfg, train_dataset=train,
                         eval_dataset=sft_rows(test, tok, cfg.max_length) if test is not None else None,
                         processing_class=tok, peft_config=peft_config, callbacks=ctx.callbacks())
    result = ctx.fit(trainer)
    summary = ctx.summary(result, train_rows=len(train))
    if test is not None and len(test):
        summary["eval"] = ctx.evaluate_trainer(trainer, result.global_step)
    final = ctx.save_final(trainer.model.merge_and_unload() if peft_config else trainer.model, tok)
    return final, summary
