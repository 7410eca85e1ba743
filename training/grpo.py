"""GRPO (Shao et al. 2024) with TRL ``GRPOTrainer``: groups of ``num_generations`` samples per
prompt of the export, rewarded by our reward model (:class:`training.scoring.RewardScorer`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefloop.core.models import load_causal_lm, load_tokenizer, resolve_model

from .callbacks import StoreMetricsCallback
from .errors import ConfigError
from .scoring import RewardScorer

__all__ = ["run", "prompt_rows"]


def _scoring(path, name: str):
    """A TRL reward function named ``name`` (TRL logs ``rewards/<name>/mean``) scoring
    completions with the reward model at ``path``."""
    scorer = RewardScorer(path)

    def reward(prompts, completions, **_):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return scorer.score([list(p) for p in prompts], texts).tolist()

    reward.__name__ = name
    return reward


def prompt_rows(split):
    """One ``{"prompt": messages}`` row per distinct prompt of a pair split."""
    seen, keep = set(), []
    for i, p in enumerate(split["prompt_id"]):
        if p not in seen:
            seen.add(p)
            keep.append(i)
    return split.select(keep).select_columns(["prompt"])


def run(ctx) -> tuple[Path, dict[str, Any]]:
    from trl import GRPOTrainer

    cfg = ctx.config
    if not cfg.reward_model:
        raise ConfigError("grpo needs --reward-model (a finished rm run: run:ID, or a path)")
    funcs = [_scoring(resolve_model(cfg.reward_model, ctx.store, require="reward").path, "reward_model")]
    if cfg.gold_reward_model:   # logged, never optimized: its weight is 0
        funcs.append(_scoring(resolve_model(cfg.gold_reward_model, ctx.store, require="reward").path,
                              "reward_gold"))
        cfg.reward_weights = [1.0, 0.0]
    tok = load_tokenizer(ctx.model.path)
    trainer = GRPOTrainer(model=load_causal_lm(ctx.model.path), reward_funcs=funcs,
                          args=cfg, train_dataset=prompt_rows(ctx.data["train"]),
                          processing_class=tok,
                          callbacks=[StoreMetricsCallback(ctx.store, ctx.run.id, renames={
                              "rewards/reward_gold/mean": "reward_gold",
                              "rewards/reward_model/mean": "reward_model"})])
    result = ctx.fit(trainer)
    final = ctx.save_final(trainer.model, tok)
    return final, ctx.summary(result, reward_model=cfg.reward_model)
