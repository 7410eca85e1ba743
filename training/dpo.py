"""Direct Preference Optimization (Rafailov et al. 2023) with TRL ``DPOTrainer``; held-out
implicit-reward accuracy and margins (beta * log-ratio of policy to reference)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .models import load_causal_lm, load_tokenizer
from .reward import PAIR_COLUMNS
from .runs import MetricsLogger

__all__ = ["run"]


def run(ctx) -> tuple[Path, dict[str, Any]]:
    from trl import DPOTrainer

    cfg = ctx.config
    tok = load_tokenizer(ctx.model.path)
    model = load_causal_lm(ctx.model.path)
    train = ctx.data["train"].select_columns(PAIR_COLUMNS)
    test = ctx.eval_split()
    trainer = DPOTrainer(model=model, args=cfg, train_dataset=train,
                         eval_dataset=test.select_columns(PAIR_COLUMNS) if test is not None else None,
                         processing_class=tok, callbacks=ctx.callbacks())
    result = trainer.train(resume_from_checkpoint=str(ctx.resume_from) if ctx.resume_from else None)
    final = ctx.output_dir / "final"
    trainer.model.save_pretrained(final)
    tok.save_pretrained(final)
    summary: dict[str, Any] = {"train_loss": result.training_loss, "steps": result.global_step,
                               "train_pairs": len(train), "model": ctx.model.name}
    if test is not None and len(test):
        metrics = trainer.evaluate()
        summary["eval"] = {k.removeprefix("eval_"): v for k, v in metrics.items()
                           if isinstance(v, (int, float))}
        MetricsLogger(ctx.store, ctx.run.id).log(result.global_step, {
            f"eval/{k}": v for k, v in summary["eval"].items()})
    return final, summary
