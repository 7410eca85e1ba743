"""Supervised fine-tuning with TRL ``SFTTrainer`` on chosen responses (constitutional
revisions and human edits included), loss on completion tokens only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .data import sft_rows
from .models import load_causal_lm, load_tokenizer

__all__ = ["run"]


def run(ctx) -> tuple[Path, dict[str, Any]]:
    from trl import SFTTrainer

    cfg = ctx.config
    tok = load_tokenizer(ctx.model.path)
    model = load_causal_lm(ctx.model.path)
    train = sft_rows(ctx.data["train"])
    test = ctx.eval_split()
    trainer = SFTTrainer(model=model, args=cfg, train_dataset=train,
                         eval_dataset=sft_rows(test) if test is not None else None,
                         processing_class=tok, callbacks=ctx.callbacks())
    result = trainer.train(resume_from_checkpoint=str(ctx.resume_from) if ctx.resume_from else None)
    final = ctx.output_dir / "final"
    trainer.model.save_pretrained(final)
    tok.save_pretrained(final)
    summary: dict[str, Any] = {"train_loss": result.training_loss, "steps": result.global_step,
                               "train_rows": len(train), "model": ctx.model.name}
    if test is not None and len(test):
        summary["eval"] = {k.removeprefix("eval_"): v for k, v in trainer.evaluate().items()
                           if isinstance(v, (int, float))}
    return final, summary
