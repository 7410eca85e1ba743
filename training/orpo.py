"""Odds Ratio Preference Optimization (Hong et al. 2024, "ORPO: Monolithic Preference
Optimization without Reference Model") with TRL's experimental ``ORPOTrainer``: one stage, no
reference model. Pairs whose prompt leaves no room for the response under ``max_length`` are
left out (counted in the summary: TRL's experimental trainer truncates responses only). Held-out
figures are TRL's (``rewards/accuracies``: the share of pairs whose
chosen response has the larger log-odds; ``log_odds_ratio``, ``nll_loss``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import TrainingError
from .reward import PAIR_COLUMNS

__all__ = ["run", "MIN_COMPLETION_TOKENS"]

#: Pairs whose chat-formatted prompt leaves fewer tokens than this for the response under
#: ``max_length`` are left out: TRL's experimental ORPO trainer truncates the response only, so
#: such a pair would train on an empty completion (a NaN loss) and unbounded sequence lengths.
MIN_COMPLETION_TOKENS = 16


def _fitting(rows, tok, max_length: int | None):
    """``(rows whose prompt fits, how many were left out)``."""
    if not max_length:
        return rows, 0
    lengths = [len(tok.apply_chat_template(p, add_generation_prompt=True, tokenize=True,
                                           return_dict=True)["input_ids"]) for p in rows["prompt"]]
    keep = [i for i, n in enumerate(lengths) if n + MIN_COMPLETION_TOKENS <= max_length]
    return rows.select(keep), len(rows) - len(keep)


def run(ctx) -> tuple[Path, dict[str, Any]]:
    from trl.experimental.orpo import ORPOTrainer

    cfg = ctx.config
    tok, model, peft_config = ctx.policy()
    train, dropped = _fitting(ctx.data["train"].select_columns(PAIR_COLUMNS), tok, cfg.max_length)
    test = ctx.eval_split()
    if test is not None:
        test, _ = _fitting(test.select_columns(PAIR_COLUMNS), tok, cfg.max_length)
    if not len(train):
        raise TrainingError(f"export {ctx.export.id}: every prompt is longer than max_length "
                            f"{cfg.max_length} tokens (minus {MIN_COMPLETION_TOKENS} for the response); "
                            "raise max_length")
    trainer = ORPOTrainer(model=model, args=cfg, train_dataset=train,
                          eval_dataset=test if test is not None and len(test) else None,
                          processing_class=tok, peft_config=peft_config, callbacks=ctx.callbacks())
    result = ctx.fit(trainer)
    return ctx.finish(trainer, result, tok, peft_config, test, train_pairs=len(train), dropped_long_prompts=dropped)
