"""Group-sampled RL with TRL's trainers: GRPO (Shao et al. 2024, ``GRPOTrainer``) and RLOO
(Ahmadian et al. 2024, "Back to Basics: Revisiting REINFORCE Style Optimization for Learning
from Human Feedback in LLMs", ``RLOOTrainer``). Both sample ``num_generations`` completions per
prompt of the export and score them with reward functions: our reward model
(:class:`training.scoring.RewardScorer`), or any ``(prompts, completions) -> [float]`` callable
(the learnability tests use a trivially learnable one). GRPO's advantage is the reward minus
the group mean over the group's std; RLOO's baseline for each sample is the mean reward of the
other samples of its group. ``use_lora`` trains peft adapters (TRL's ``peft_config``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefloop.core.models import load_causal_lm, load_tokenizer, resolve_model

from .callbacks import StoreMetricsCallback
from .configs import lora_config
from .errors import ConfigError
from .scoring import normalized_score, reward_scorer

__all__ = ["run", "prompt_rows", "build_trainer", "reward_model_function"]

#: The kinds this module trains, and TRL's trainer class of each.
TRAINERS = {"grpo": "GRPOTrainer", "rloo": "RLOOTrainer"}


def reward_model_function(path, name: str, normalize: bool = False) -> Callable[..., list[float]]:
    """A TRL reward function named ``name`` (TRL logs ``rewards/<name>/mean``) scoring
    completions with the reward model at ``path`` (a :class:`~prefloop.core.models.ModelRef`
    or a path; an ensemble aggregates its members, see :func:`~.scoring.reward_scorer`); with
    ``normalize``, in the model's standard units (:func:`~.scoring.normalized`; its statistics,
    or ``None``, are the function's ``normalization`` attribute)."""
    score, normalization = normalized_score(reward_scorer(path), normalize)

    def reward(prompts, completions, **_):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return score([list(p) for p in prompts], texts).tolist()

    reward.__name__ = name
    reward.normalization = normalization
    return reward


def prompt_rows(split):
    """One ``{"prompt": messages}`` row per distinct prompt of a pair split."""
    seen, keep = set(), []
    for i, p in enumerate(split["prompt_id"]):
        if p not in seen:
            seen.add(p)
            keep.append(i)
    return split.select(keep).select_columns(["prompt"])


def build_trainer(kind: str, cfg, model_path: str | Path, reward_funcs: list[Callable], train_dataset,
                  callbacks: list | None = None):
    """TRL's trainer of ``kind`` (``grpo`` or ``rloo``) for the policy at ``model_path``,
    LoRA adapters on it when ``cfg.use_lora``; ``train_dataset`` rows are ``{"prompt": messages}``."""
    import trl

    tok = load_tokenizer(model_path)
    model = load_causal_lm(model_path)
    peft_config = lora_config(cfg, model) if cfg.use_lora else None
    trainer_cls = getattr(trl, TRAINERS[kind])
    return trainer_cls(model=model, reward_funcs=reward_funcs, args=cfg, train_dataset=train_dataset,
                       processing_class=tok, peft_config=peft_config, callbacks=callbacks or [])


def run(ctx) -> tuple[Path, dict[str, Any]]:
    cfg, kind = ctx.config, ctx.run.kind
    if not cfg.reward_model:
        raise ConfigError(f"{kind} needs --reward-model (a finished rm run: run:ID, or a path)")
    funcs = [reward_model_function(resolve_model(cfg.reward_model, ctx.store, require="reward"),
                                   "reward_model", normalize=cfg.normalize_reward)]
    if cfg.second_reward_model:   # logged, never optimized: its weight is 0
        funcs.append(reward_model_function(
            resolve_model(cfg.second_reward_model, ctx.store, require="reward"), "reward_second"))
        cfg.reward_weights = [1.0, 0.0]
    trainer = build_trainer(kind, cfg, ctx.model.path, funcs, prompt_rows(ctx.data["train"]),
                            callbacks=[StoreMetricsCallback(ctx.store, ctx.run.id, renames={
                                "rewards/reward_second/mean": "reward_second",
                                "rewards/reward_model/mean": "reward_model"}),
                                *ctx.callbacks(metrics=False)])
    result = ctx.fit(trainer)
    model = trainer.model.merge_and_unload() if cfg.use_lora else trainer.model
    final = ctx.save_final(model, trainer.processing_class)
    return final, ctx.summary(result, reward_model=cfg.reward_model,
                              reward_normalization=funcs[0].normalization)
