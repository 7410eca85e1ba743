"""Direct Preference Optimization (Rafailov et al. 2023) with TRL ``DPOTrainer``; held-out
implicit-reward accuracy and margins (beta * log-ratio of policy to reference). Prompts are cut
by whole turns so that each pair fits ``max_length`` (:func:`~prefloop.training.data.fit_rows`):
no reply is cut short. The reference
is the starting model (with LoRA: its adapters disabled) unless ``ref_model`` names another
(iterative DPO keeps its first round's model, :mod:`prefloop.pipelines.onpolicy`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefloop.core.models import load_causal_lm, resolve_model

from .data import fit_rows
from .reward import PAIR_COLUMNS

__all__ = ["run"]


def run(ctx) -> tuple[Path, dict[str, Any]]:
    from trl import DPOTrainer

    cfg = ctx.config
    tok, model, peft_config = ctx.policy()
    ref_model = None
    if cfg.ref_model:
        ref_model = load_causal_lm(resolve_model(cfg.ref_model, ctx.store, require="policy").path)
        ref_model.requires_grad_(False)
    pairs = ("chosen", "rejected")
    train = fit_rows(ctx.data["train"].select_columns(PAIR_COLUMNS), tok, cfg.max_length, pairs)
    test = ctx.eval_split()
    if test is not None:
        test = fit_rows(test.select_columns(PAIR_COLUMNS), tok, cfg.max_length, pairs)
        test = test if len(test) else None          # no held-out pair fits max_length
    trainer = DPOTrainer(model=model, ref_model=ref_model, args=cfg, train_dataset=train,
                         eval_dataset=test,
                         processing_class=tok, peft_config=peft_config, callbacks=ctx.callbacks())
    result = ctx.fit(trainer)
    return ctx.finish(trainer, result, tok, peft_config, test, train_pairs=len(train))
