"""The whole training path on the embedded SmolLM2-135M-Instruct (slow: minutes on CPU)."""

from __future__ import annotations

import pytest

from prefloop.core.models import DEFAULT_MODEL
from prefloop.training.generate import GenParams, generate
from prefloop.training.train import train

from .conftest import MT_BENCH

pytestmark = [pytest.mark.slow, pytest.mark.model]


def test_rm_dpo_ppo_generate_on_smollm2(hh_store):
    common = {"max_length": 384, "max_eval_pairs": 16}
    rm = train(hh_store, "rm", overrides={"model": DEFAULT_MODEL, "max_steps": 4, **common})
    assert rm.run.status == "finished" and rm.summary["eval"]["all"]["n"] == 16
    dpo = train(hh_store, "dpo", overrides={"model": DEFAULT_MODEL, "max_steps": 3,
                                             "export_id": rm.run.export_id, **common})
    assert dpo.run.status == "finished" and "rewards/accuracies" in dpo.summary["eval"]
    ppo = train(hh_store, "ppo", overrides={
        "model": f"run:{dpo.run.id}", "reward_model": f"run:{rm.run.id}", "max_steps": 2,
        "batch_size": 2, "mini_batch_size": 2, "ppo_epochs": 1, "max_new_tokens": 16,
        "max_prompt_length": 128, "export_id": rm.run.export_id})
    assert ppo.run.parent_run_id == dpo.run.id and ppo.summary["iterations"] == 2
    gen = generate(hh_store, f"run:{ppo.run.id}", str(MT_BENCH), limit=2,
                   params=GenParams(n=2, max_new_tokens=16), reward_model=f"run:{rm.run.id}",
                   n_tasks=2)
    assert gen.n_responses >= 2 and gen.run.parent_run_id == ppo.run.id
    assert len(hh_store.tasks.list()) == len(gen.task_ids) >= 1


#: Iterations within which the "sorry" rate must rise (bench/lr_sweep.py: see the README).
SORRY_ITERATIONS = 12


def test_ppo_learns_the_sorry_reward_on_smollm2_at_its_defaults(shared_data, tmp_path):
    """The check that found the old defaults flat (KL within +-0.02 nats and no trend
    over 17 iterations at lr 3e-6): +1 when the response contains "sorry", 8 rollouts of 24
    tokens per iteration on HH-RLHF prompts, every other setting at PPORunConfig's defaults."""
    from peft import get_peft_model

    from prefloop import store
    from prefloop.core.models import default_model_path, load_causal_lm, load_tokenizer
    from prefloop.store.importer import import_file
    from prefloop.store.sources import prompts_from
    from prefloop.training.configs import PPORunConfig, lora_config
    from prefloop.training.ppo import PPOTrainer
    from prefloop.training.toy_rewards import ContainsWord

    from .conftest import HH

    s = store.Store(tmp_path / "s.duckdb", create=True)
    import_file(s, HH, "hh")
    prompts = [p.messages for p in prompts_from(s, "harmless-base-test-dev", limit=96)]
    model = default_model_path()
    tok = load_tokenizer(model)
    tok.padding_side = "left"
    cfg = PPORunConfig(max_steps=SORRY_ITERATIONS, batch_size=8, mini_batch_size=4, max_new_tokens=24,
                       save_steps=0, max_prompt_length=128)
    policy = load_causal_lm(model)
    policy = get_peft_model(policy, lora_config(cfg, policy))
    ids = [tok.apply_chat_template(p, add_generation_prompt=True, tokenize=True,
                                   return_dict=True)["input_ids"][-128:] for p in prompts]
    trainer = PPOTrainer(policy, ContainsWord("sorry", decode=lambda x: tok.decode(x, skip_special_tokens=True)),
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, config=cfg)
    hist = trainer.train(prompts, ids, output_dir="/nonexistent")
    base = hist[0]["reward_model"]                    # sampled before any update
    last = sum(h["reward_model"] for h in hist[-3:]) / 3
    assert last >= base + 0.25, (base, [round(h["reward_model"], 2) for h in hist])
    # nats per response: bounded, but not yet within the 5 nats practitioners hold PPO to. The
    # sweep's run ended at 4.0 (5.6 at its peak), this test's first run at 10.9 over the last
    # three iterations; at lr 1e-3 the sweep passed 11 with the responses halved. Holding the
    # default to 5 nats (a KL controller, or a lower rate) is open work of the learning issue.
    assert sum(h["kl"] for h in hist[-3:]) / 3 < 20.0
