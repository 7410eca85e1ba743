"""Every RL method learns a trivially learnable reward at its defaults, and did not at the old
ones (the brief's rule: a test that would also pass on a policy that never moves is no test).

The policy is a tiny random Llama whose next-token distributions are peaked, as a trained
model's are (``initializer_range`` 0.5); the reward is the count of target tokens (30 of
the ~300 ids: about 1.2 of 12 sampled tokens at the start). Each method runs with its
config's defaults (LoRA on the top half of the layers, the LoRA learning rate, the KL
penalty) except the batch shape; then the same run with the old default learning rate (full
fine-tuning's, which every LoRA config used to carry) shows a policy that does not move.
The SmolLM2 versions of these checks (the "sorry" reward) are ``bench/lr_sweep.py``.
"""

from __future__ import annotations

import tempfile

import pytest

pytestmark = pytest.mark.model

TARGET = range(40, 70)
PROMPTS = [[{"role": "user", "content": f"say something {i}"}] for i in range(64)]


@pytest.fixture(scope="module")
def peaked_model(tmp_path_factory):
    from prefloop.training.tiny import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("peaked") / "m", vocab_size=300, initializer_range=0.5)


def _mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs)


def _ppo(model_dir, iterations: int, **overrides) -> list[dict]:
    from peft import get_peft_model

    from prefloop.core.models import load_causal_lm, load_tokenizer
    from prefloop.training.configs import PPORunConfig, lora_config
    from prefloop.training.ppo import PPOTrainer
    from prefloop.training.toy_rewards import TargetTokens

    tok = load_tokenizer(model_dir)
    cfg = PPORunConfig(max_steps=iterations, batch_size=16, mini_batch_size=8, max_new_tokens=12,
                       temperature=1.0, missing_eos_penalty=0.0, save_steps=0, seed=0, **overrides)
    policy = load_causal_lm(model_dir)
    policy = get_peft_model(policy, lora_config(cfg, policy))
    ids = [tok.apply_chat_template(m, add_generation_prompt=True, tokenize=True,
                                   return_dict=True)["input_ids"] for m in PROMPTS]
    trainer = PPOTrainer(policy, TargetTokens(TARGET), pad_token_id=tok.pad_token_id,
                         eos_token_id=tok.eos_token_id, config=cfg)
    return trainer.train(PROMPTS, ids, output_dir="/nonexistent")


def test_ppo_learns_at_its_defaults_and_did_not_at_the_old_learning_rate(peaked_model):
    from prefloop.training.configs import PPORunConfig

    assert PPORunConfig().use_lora and PPORunConfig().learning_rate == 3e-4
    hist = _ppo(peaked_model, 80)
    base, last = _mean(h["reward"] for h in hist[:5]), _mean(h["reward"] for h in hist[-5:])
    kl = _mean(h["kl"] for h in hist[-5:])
    assert last > 1.8 * base and last > base + 1.0, (base, last)     # within 80 iterations
    # the KL penalty was worth paying: its price (kl_coef * KL) is below the reward gained, and
    # KL stays bounded (nats per 12-token response; a runaway policy reaches 20+)
    assert PPORunConfig().kl_coef * kl < last - base and kl < 16.0, (base, last, kl)
    assert abs(hist[0]["kl"]) < 1e-4                                  # the reference is the start
    old = _ppo(peaked_model, 80, learning_rate=3e-6)                  # the old default
    old_last = _mean(h["reward"] for h in old[-5:])
    assert old_last < base + 0.5 and abs(_mean(h["kl"] for h in old[-5:])) < 0.05, (base, old_last)


def test_a_batch_without_reward_signal_updates_only_the_value_function(peaked_model):
    """Every response scores the same: whitening would turn the KL term and the discounted
    EOS penalty into advantages as large as real ones; the policy must not move."""
    from peft import get_peft_model

    from prefloop.core.models import load_causal_lm, load_tokenizer
    from prefloop.training.configs import PPORunConfig, lora_config
    from prefloop.training.ppo import PPOTrainer

    tok = load_tokenizer(peaked_model)
    cfg = PPORunConfig(max_steps=3, batch_size=8, mini_batch_size=4, max_new_tokens=12, save_steps=0,
                       missing_eos_penalty=0.0)
    policy = load_causal_lm(peaked_model)
    policy = get_peft_model(policy, lora_config(cfg, policy))
    ids = [tok.apply_chat_template(m, add_generation_prompt=True, tokenize=True,
                                   return_dict=True)["input_ids"] for m in PROMPTS[:8]]
    trainer = PPOTrainer(policy, lambda p, r: [0.5] * len(r), pad_token_id=tok.pad_token_id,
                         eos_token_id=tok.eos_token_id, config=cfg)
    before = [p.detach().clone() for n, p in trainer.policy.named_parameters() if "lora_" in n]
    hist = trainer.train(PROMPTS[:8], ids, output_dir="/nonexistent")
    after = [p.detach() for n, p in trainer.policy.named_parameters() if "lora_" in n]
    assert all(h["no_signal"] == 1.0 for h in hist)
    assert all((a == b).all() for a, b in zip(after, before))         # the policy did not move
    assert all(abs(h["kl"]) < 1e-5 for h in hist)
    assert hist[-1]["value_loss"] < hist[0]["value_loss"]             # the value function learned


def _group(kind: str, model_dir, steps: int, **overrides) -> list[dict]:
    from datasets import Dataset

    from prefloop.training.configs import GRPORunConfig, RLOORunConfig
    from prefloop.training.group_rl import build_trainer
    from prefloop.training.toy_rewards import TargetTokens

    cls = {"grpo": GRPORunConfig, "rloo": RLOORunConfig}[kind]
    cfg = cls(output_dir=tempfile.mkdtemp(), max_steps=steps, per_device_train_batch_size=16,
              max_completion_length=12, temperature=1.0, logging_steps=1, save_strategy="no",
              report_to="none", seed=0, **overrides)
    trainer = build_trainer(kind, cfg, model_dir, [TargetTokens(TARGET).trl_reward()],
                            Dataset.from_list([{"prompt": p} for p in PROMPTS]))
    trainer.train()
    return [x for x in trainer.state.log_history if "reward" in x]


@pytest.mark.parametrize("kind", ["grpo", "rloo"])
def test_grpo_and_rloo_learn_at_their_defaults_and_did_not_at_the_old_ones(peaked_model, kind):
    from prefloop.training.configs import CONFIGS

    cfg = CONFIGS[kind](output_dir=tempfile.mkdtemp())
    assert cfg.use_lora and cfg.beta > 0
    hist = _group(kind, peaked_model, 240)       # one update per step: PPO makes 8 per iteration
    base, last = _mean(h["reward"] for h in hist[:20]), _mean(h["reward"] for h in hist[-20:])
    assert last > 1.5 * base and last > base + 0.6, (base, last)      # within 240 steps
    assert _mean(h["kl"] for h in hist[-20:]) < 2.0                   # bounded by beta
    old = _group(kind, peaked_model, 120, use_lora=False, learning_rate=1e-6)   # the old defaults
    assert _mean(h["reward"] for h in old[-20:]) < base + 0.4
