"""``prefloop train ppo``: wires :class:`training.ppo.PPOTrainer` to the store.

Prompts are the distinct prompts of the export's train split; the reward model is a finished
``rm`` run (or a path); the value model starts from the reward model when it shares the
policy's tokenizer (Huang et al. 2024, detail 4), else from the policy with a new head.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from prefloop.models import load_causal_lm, load_tokenizer, resolve_model
from prefloop.runs import MetricsLogger

from .errors import ConfigError, TrainingError
from .grpo import prompt_rows
from .ppo import PPOTrainer
from .scoring import RewardScorer

__all__ = ["run"]


def run(ctx) -> tuple[Path, dict[str, Any]]:
    from transformers import AutoModelForSequenceClassification

    cfg = ctx.config
    if not cfg.reward_model:
        raise ConfigError("ppo needs --reward-model (a finished rm run: run:ID, or a path)")
    rm = resolve_model(cfg.reward_model, ctx.store, require="reward")
    tok = load_tokenizer(ctx.model.path)
    if tok.pad_token_id == tok.eos_token_id:
        raise TrainingError(f"{ctx.model.path}: the tokenizer's pad token equals its EOS token; "
                            "PPO needs them to differ: set a distinct pad_token in the tokenizer")
    tok.padding_side = "left"
    policy = load_causal_lm(ctx.model.path)
    ref_policy = load_causal_lm(ctx.model.path)
    scorer = RewardScorer(rm.path, max_length=cfg.max_prompt_length + cfg.max_new_tokens + 32)
    same_vocab = scorer.tokenizer.get_vocab() == tok.get_vocab()
    value_model = AutoModelForSequenceClassification.from_pretrained(
        str(rm.path if same_vocab else ctx.model.path), num_labels=1, dtype=torch.float32)
    value_model.config.pad_token_id = tok.pad_token_id

    prompts = [list(p) for p in prompt_rows(ctx.data["train"])["prompt"]]
    prompt_ids = [tok.apply_chat_template(p, add_generation_prompt=True, tokenize=True,
                                          return_dict=True)["input_ids"][-cfg.max_prompt_length:]
                  for p in prompts]

    def score(batch_prompts, responses):
        texts = tok.batch_decode(responses, skip_special_tokens=True)
        return scorer.score(list(batch_prompts), texts)

    logger = MetricsLogger(ctx.store, ctx.run.id)
    trainer = PPOTrainer(policy, ref_policy, value_model, score, pad_token_id=tok.pad_token_id,
                         eos_token_id=tok.eos_token_id, config=cfg, log=logger.log,
                         on_save=lambda path: ctx.store.runs.update(ctx.run.id, checkpoint_path=str(path)))
    history = trainer.train(prompts, prompt_ids, output_dir=ctx.output_dir, resume_from=ctx.resume_from)
    tok.padding_side = "right"
    final = ctx.save_final(policy, tok)
    first, last = (history[0], history[-1]) if history else ({}, {})
    return final, {"iterations": trainer.iteration, "model": ctx.model.name,
                   "reward_model": cfg.reward_model, "value_init": "reward model" if same_vocab else "policy",
                   "reward_first": first.get("reward"), "reward_last": last.get("reward"),
                   "kl_last": last.get("kl"), "prompts": len(prompts)}
