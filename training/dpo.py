"""Direct Preference Optimization (Rafailov et al. 2023) with TRL ``DPOTrainer``; held-out
implicit-reward accuracy and margins (beta * log-ratio of policy to reference). The reference
is the starting model (with LoRA: its adapters disabled) unless ``ref_model`` names another
(iterative DPO keeps its first round's model, :mod:`prefloop.pipelines.onpolicy`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefloop.core.models import load_causal_lm, load_tokenizer, resolve_model

from .configs import lora_config
from .reward import PAIR_COLUMNS

__all__ = ["run"]


def run(ctx) -> tuple[Path, dict[str, Any]]:
    from trl import DPOTrainer

    cfg = ctx.config
    tok = load_tokenizer(ctx.model.path)
    model = load_causal_lm(ctx.model.path)
    peft_config = lora_config(cfg, model) if cfg.use_lora else None
    ref_model = None
    if cfg.ref_model:
        ref_model = load_causal_lm(resolve_model(cfg.ref_model, ctx.store, require="policy").path)
        ref_model.requires_grad_(False)
    train = ctx.data["train"].select_columns(PAIR_COLUMNS)
    test = ctx.eval_split()
    trainer = DPOTrainer(model=model, ref_model=ref_model, args=cfg, train_dataset=train,
                         eval_dataset=test.select_columns(PAIR_COLUMNS) if test is not None else None,
                         processing_class=tok, peft_config=peft_config, callbacks=ctx.callbacks())
    result = ctx.fit(trainer)
    summary = ctx.summary(result, train_pairs=len(train))
    if test is not None and len(test):   # before merging: a LoRA reference is the disabled adapters
        summary["eval"] = ctx.evaluate_trainer(trainer, result.global_step)
    final = ctx.save_final(trainer.model.merge_and_unload() if peft_config else trainer.model, tok)
    return final, summary
