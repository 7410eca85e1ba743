"""PPO on a task whose reward is known: count tokens of a target set in the response."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from prefloop.core.models import load_causal_lm, load_tokenizer
from prefloop.training.configs import PPORunConfig
from prefloop.training.ppo import PPOTrainer

pytestmark = pytest.mark.model


TARGET = set(range(40, 70))  # 30 of ~300 token ids: about 10% of random tokens


def _run(model_dir, kl_coef: float, iterations: int = 30, lora: bool = False):
    tok = load_tokenizer(model_dir)
    policy, ref, value = load_causal_lm(model_dir), None, None
    if lora:      # the default: LoRA adapters, reference = adapters disabled, a shared value head
        from peft import LoraConfig, get_peft_model

        policy = get_peft_model(policy, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
    else:         # the classic four models
        ref = load_causal_lm(model_dir)
        value = AutoModelForSequenceClassification.from_pretrained(str(model_dir), num_labels=1)
        value.config.pad_token_id = tok.pad_token_id

    def score(prompts, responses):
        return torch.tensor([sum(t in TARGET for t in r) / 4.0 for r in responses])

    cfg = PPORunConfig(max_steps=iterations, batch_size=16, mini_batch_size=8, ppo_epochs=4,
                       learning_rate=3e-2 if lora else 3e-3, max_new_tokens=12, temperature=1.0,
                       kl_coef=kl_coef, missing_eos_penalty=0.0, save_steps=0, seed=0)
    prompts = [[{"role": "user", "content": f"say something {i}"}] for i in range(32)]
    ids = [tok.apply_chat_template(m, add_generation_prompt=True, tokenize=True,
                                   return_dict=True)["input_ids"] for m in prompts]
    trainer = PPOTrainer(policy, score, ref_policy=ref, value_model=value,
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, config=cfg)
    return trainer.train(prompts, ids, output_dir="/nonexistent")


@pytest.mark.parametrize("lora", [False, True], ids=["four-models", "lora-shared-value"])
def test_reward_rises_while_the_kl_penalty_bounds_the_drift(tmp_path, lora):
    from prefloop.training.tiny import build_tiny_llama

    # peaked next-token distributions, as a trained model has (at the default init they are
    # nearly uniform, and adapters on the hidden layers alone cannot sharpen them)
    model_dir = build_tiny_llama(tmp_path / "m", vocab_size=300, initializer_range=0.2)
    iterations = 60 if lora else 30
    with_penalty = _run(model_dir, kl_coef=0.05, lora=lora, iterations=iterations)
    assert abs(with_penalty[0]["kl"]) < 1e-4        # the reference is the initial policy
    first = sum(m["reward"] for m in with_penalty[:5]) / 5
    last = sum(m["reward"] for m in with_penalty[-5:]) / 5
    assert last > first + 0.5, (first, last)
    for m in with_penalty:
        assert {"reward", "kl", "entropy", "clipfrac", "approxkl", "value_loss", "policy_loss"} <= set(m)

    free = _run(model_dir, kl_coef=0.0, lora=lora, iterations=iterations)
    kl_penalized = sum(m["kl"] for m in with_penalty[-5:]) / 5
    kl_free = sum(m["kl"] for m in free[-5:]) / 5
    assert kl_penalized < 0.7 * kl_free, (kl_penalized, kl_free)
