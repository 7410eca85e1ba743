"""``prefloop train ppo``: wires :class:`prefloop.training.ppo.PPOTrainer` to the store.

Prompts are the distinct prompts of the export's train split; the reward model is a finished
``rm`` run (or a path). By default the policy trains LoRA adapters and its reference is the
same backbone with the adapters disabled, and the value function is a head on that backbone;
``use_lora=false`` and ``value_model=separate`` give the classic four models (a separate value
model starts from the reward model when it shares the policy's tokenizer, Huang et al. 2024
detail 4, else from the policy with a new head). The final checkpoint is a plain causal LM
(adapters merged).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from prefloop.core.models import (
    inference_dtype,
    load_causal_lm,
    load_tokenizer,
    resolve_model,
)
from prefloop.store.tracking import MetricsLogger

from .configs import lora_config
from .errors import ConfigError, TrainingError
from .group_rl import prompt_rows
from .ppo import PPOTrainer
from .scoring import normalized_score, reward_scorer

__all__ = ["run", "build_trainer"]


def build_trainer(cfg, policy_path: Path, tok, reward_path, *, second_path=None,
                  log=None, on_save=None, accelerator=None) -> PPOTrainer:
    """The models of a PPO run as ``cfg`` asks (see the module docstring) and its trainer.

    The score function returns the reward model's scores and, with ``second_path``, the second
    reward model's mean as ``reward_second``. ``reward_path``/``second_path``: a
    :class:`~prefloop.core.models.ModelRef` or a path (an ensemble's directory too, see
    :func:`~prefloop.training.scoring.reward_scorer`).
    """
    from transformers import AutoModelForSequenceClassification

    dtype = inference_dtype(cfg.inference_dtype)
    scorer = reward_scorer(reward_path, dtype=dtype)
    second = reward_scorer(second_path, dtype=dtype) if second_path else None
    policy = load_causal_lm(policy_path)
    ref_policy = None
    if cfg.use_lora:
        from peft import get_peft_model

        policy = get_peft_model(policy, lora_config(cfg, policy))
    else:
        ref_policy = load_causal_lm(policy_path, dtype=dtype)
    value_model = None
    if cfg.value_model == "separate":
        same_vocab = scorer.tokenizer.get_vocab() == tok.get_vocab()
        value_model = AutoModelForSequenceClassification.from_pretrained(
            str(scorer.path if same_vocab else policy_path), num_labels=1, dtype=torch.float32)
        value_model.config.pad_token_id = tok.pad_token_id

    rm_score, normalization = normalized_score(scorer, cfg.normalize_reward)

    def score(batch_prompts, responses):
        texts = tok.batch_decode(responses, skip_special_tokens=True)
        rewards = rm_score(list(batch_prompts), texts)
        extra = {"reward_second": float(second.score(list(batch_prompts), texts).mean())} if second else {}
        return rewards, extra

    trainer = PPOTrainer(policy, score, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                         config=cfg, ref_policy=ref_policy, value_model=value_model,
                         accelerator=accelerator, log=log, on_save=on_save)
    trainer.reward_normalization = normalization    # for the run's summary
    return trainer


def _trimmed_prompts(tok, rows, max_tokens: int) -> tuple[list[list[dict]], list[list[int]]]:
    """The prompts cut to ``max_tokens`` by whole turns (:func:`~prefloop.training.data.trim_turns`,
    as the reward model reads them), those that cannot fit left out, and their token ids."""
    from .data import trim_turns

    def ids(messages):
        return tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                       return_dict=True)["input_ids"]

    kept = [t for t in (trim_turns(list(p), lambda m: len(ids(m)), max_tokens) for p in rows) if t is not None]
    if not kept:
        raise TrainingError(f"max_prompt_length {max_tokens}: no prompt's last user turn fits")
    return kept, [ids(p) for p in kept]


def run(ctx) -> tuple[Path, dict[str, Any]]:
    cfg = ctx.config
    if not cfg.reward_model:
        raise ConfigError("ppo needs --reward-model (a finished rm run: run:ID, or a path)")
    rm = resolve_model(cfg.reward_model, ctx.store, require="reward")
    second = resolve_model(cfg.second_reward_model, ctx.store, require="reward") if cfg.second_reward_model else None
    tok = load_tokenizer(ctx.model.path)
    if tok.pad_token_id == tok.eos_token_id:
        raise TrainingError(f"{ctx.model.path}: the tokenizer's pad token equals its EOS token; "
                            "PPO needs them to differ: set a distinct pad_token in the tokenizer")
    tok.padding_side = "left"
    prompts, prompt_ids = _trimmed_prompts(tok, prompt_rows(ctx.data["train"])["prompt"], cfg.max_prompt_length)
    probe = None
    if cfg.probe_prompts and "test" in ctx.data:
        probe_rows = prompt_rows(ctx.data["test"])["prompt"]
        probe = _trimmed_prompts(tok, probe_rows[:cfg.probe_prompts * 2], cfg.max_prompt_length)
        probe = (probe[0][:cfg.probe_prompts], probe[1][:cfg.probe_prompts])
    logger = MetricsLogger(ctx.store, ctx.run.id)
    trainer = build_trainer(cfg, ctx.model.path, tok, rm, second_path=second,
                            log=ctx.progress(logger.log, cfg.max_steps),
                            on_save=lambda path: ctx.store.runs.update(ctx.run.id, checkpoint_path=str(path)))
    history = trainer.train(prompts, prompt_ids, output_dir=ctx.output_dir, resume_from=ctx.resume_from,
                            probe=probe)
    checksums = trainer.parameter_checksums()      # every rank: a collective
    tok.padding_side = "right"
    policy = trainer.unwrapped_policy
    if cfg.use_lora:
        policy = policy.merge_and_unload()
    final = ctx.save_final(policy, tok)
    first, last = (history[0], history[-1]) if history else ({}, {})
    return final, {"iterations": trainer.iteration, "steps": trainer.iteration,
                   "stopped_by_budget": trainer.stopped_by_budget, "model": ctx.model.name,
                   "reward_model": cfg.reward_model, "second_reward_model": cfg.second_reward_model,
                   "value": cfg.value_model, "lora": cfg.use_lora,
                   "reward_normalization": trainer.reward_normalization,
                   "reward_first": first.get("reward"), "reward_last": last.get("reward"),
                   "reward_model_first": first.get("reward_model"),
                   "reward_model_last": last.get("reward_model"),
                   "reward_second_first": first.get("reward_second"), "reward_second_last": last.get("reward_second"),
                   "kl_last": last.get("kl"), "eos_rate_last": last.get("eos_rate"),
                   "probe_reward_model_first": first.get("probe_reward_model"),
                   "probe_reward_model_last": last.get("probe_reward_model"),
                   "probe_reward_second_first": first.get("probe_reward_second"),
                   "probe_reward_second_last": last.get("probe_reward_second"),
                   "prompts": len(prompts), "rank_parameter_checksums": checksums}
