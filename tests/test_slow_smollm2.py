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
