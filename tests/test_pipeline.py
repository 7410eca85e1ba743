"""``prefloop loop`` on tiny models, and the resume mechanics of pipelines."""

from __future__ import annotations

import pytest
import yaml

from prefloop.pipelines.base import Pipeline
from prefloop.pipelines.errors import LoopConfigError
from prefloop.pipelines.loop import load_loop_config, run_loop
from prefloop.pipelines.loop_config import loop_config_from_dict

from .conftest import MT_BENCH

pytestmark = pytest.mark.model


def test_a_pipeline_resumes_after_a_failed_stage(db):
    calls = []

    def ok(name):
        def fn():
            calls.append(name)
            return {"value": name}
        return fn

    def boom():
        raise RuntimeError("disk full")

    p = Pipeline(db, "loop", {"x": 1})
    p.stage("a", "A", ok("a"))
    with pytest.raises(RuntimeError):
        p.stage("b", "B", boom)
    assert db.runs.get(p.run.id).status == "failed"
    again = Pipeline(db, "loop", {"x": 1})
    assert again.run.id == p.run.id
    assert again.stage("a", "A", ok("a2"))["value"] == "a"           # not run twice
    again.stage("b", "B", ok("b"))
    again.finish()
    assert calls == ["a", "b"] and db.runs.get(p.run.id).status == "finished"
    assert Pipeline(db, "loop", {"x": 2}).run.id != p.run.id          # another config: a new run


def test_loop_iteration_on_tiny_models(hh_store, tiny_model, tmp_path):
    from prefloop.store.importer import import_file
    from prefloop.training.train import train

    import_file(hh_store, MT_BENCH, "prompts")
    tiny = str(tiny_model)
    gold = train(hh_store, "rm", overrides={"model": tiny, "max_steps": 1, "max_length": 256,
                                            "max_eval_pairs": 4, "save_steps": 1000}).run
    cfg_path = tmp_path / "loop.yaml"
    cfg_path.write_text(yaml.safe_dump({
        "policy": tiny,
        "export": {"source": "human", "test_fraction": 0.1},
        "rm": {"model": tiny, "max_steps": 2, "max_length": 256, "max_eval_pairs": 8},
        "policy_update": "dpo",
        "dpo": {"max_steps": 2, "max_length": 256, "max_eval_pairs": 4, "learning_rate": 0.05},
        # an impossible bar: the new policy is evaluated, rejected, and not promoted
        "eval": {"limit": 6, "max_new_tokens": 8, "max_prompt_tokens": 512,
                 "second_reward_model": f"run:{gold.id}", "min_second_rm_win_rate": 1.01},
        "generate": {"prompts": "mt-bench", "limit": 3, "n": 2, "max_new_tokens": 8, "tasks": 2},
        "judge": {"modes": ["pairwise"], "backend": "local", "model": tiny, "limit": 2},
    }))
    cfg = load_loop_config(cfg_path)
    stages = run_loop(hh_store, cfg)
    assert list(stages) == ["export", "rm", "dpo", "eval", "generate", "judge", "queue"]
    dpo = hh_store.runs.get(stages["dpo"]["run_id"])
    gen = hh_store.runs.get(stages["generate"]["run_id"])
    judge = hh_store.runs.get(stages["judge"]["pairwise"]["run_id"])
    loop_run = hh_store.runs.list(kind="loop")[-1]
    ev = hh_store.runs.get(stages["eval"]["run_id"])
    assert ev.kind == "eval" and ev.config["compared_runs"] == [dpo.id]
    assert dpo.status == "rejected" and "below min_second_rm_win_rate 1.01" in dpo.summary["rejected"]
    assert stages["eval"]["promoted"] is False and 0 <= stages["eval"]["second_rm_win_rate"] <= 1
    # model lineage: the dpo policy came from a path (no run); it was rejected, so generation
    # used the parent policy (the path) again
    assert dpo.parent_run_id is None and gen.parent_run_id is None and judge.parent_run_id is None
    assert gen.config["model_path"] == tiny
    assert {r.pipeline_run_id for r in (dpo, ev, gen, judge)} == {loop_run.id}
    assert loop_run.status == "finished"
    assert stages["export"]["pairs"] == 1794

    second = run_loop(hh_store, cfg)                 # nothing new labeled since: no training
    assert second["export"]["pairs"] == 0 and "rm" not in second and "dpo" not in second
    assert second["export"]["since_export"] == stages["export"]["export_id"]


@pytest.mark.parametrize("update", ["iterative-dpo", "kto"])
def test_loop_runs_on_policy_and_unpaired_methods(hh_store, tiny_model, tmp_path, update):
    tiny = str(tiny_model)
    fast = {"max_steps": 1, "max_length": 256, "max_eval_pairs": 4}
    section = ({"rounds": 1, "prompts_per_round": 3, "n": 2, "max_new_tokens": 6,
                "max_prompt_tokens": 128, "label_truncated": True, **fast} if update == "iterative-dpo"
               else {**fast, "per_device_train_batch_size": 2})
    cfg = loop_config_from_dict({
        "policy": tiny, "export": {"source": "human", "test_fraction": 0.1},
        "rm": {"model": tiny, "max_steps": 1, "max_length": 256, "max_eval_pairs": 4},
        "policy_update": update, update: section,
        "eval": {"skip": True}, "generate": {"skip": True}, "judge": {"skip": True}})
    stages = run_loop(hh_store, cfg)
    trained = hh_store.runs.get(stages[update]["run_id"])
    loop_run = hh_store.runs.list(kind="loop")[-1]
    if update == "iterative-dpo":   # the on-policy pipeline run is a stage of the loop; its DPO run of it
        inner = hh_store.runs.get(stages[update]["pipeline_run_id"])
        assert inner.kind == "iterative-dpo" and inner.pipeline_run_id == loop_run.id
        assert trained.kind == "dpo" and trained.pipeline_run_id == inner.id
        assert inner.config["reward_model"] == f"run:{stages['rm']['run_id']}"
    else:                           # KTO read an unpaired export of the same labels
        assert trained.kind == "kto" and hh_store.exports.get(trained.export_id).filters["format"] == "kto"
    assert trained.status == "finished" and loop_run.status == "finished"


def test_loop_config_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("polcy: x\n")
    with pytest.raises(LoopConfigError, match="bad.yaml: unknown keys"):
        load_loop_config(bad)
    bad.write_text("eval: {min_second_rm_win_rate: 0.5}\n")
    with pytest.raises(LoopConfigError, match="needs eval.second_reward_model"):
        load_loop_config(bad)
    for text, match in [("policy_update: rlhf\n", "policy_update: expected one of dpo, ppo, grpo, rloo, "
                         "kto, orpo, iterative-dpo, rs-sft, none"),
                        ("iterative-dpo: {n: 1}\n", "bad.yaml: iterative-dpo: .*n: expected at least 2"),
                        ("iterative-dpo: {bogus: 1}\n", "bad.yaml: iterative-dpo: .*unknown key 'bogus'"),
                        ("rs-sft: {export_id: 3}\n", "bad.yaml: rs-sft.export_id: set by the loop"),
                        ("orpo: {beta: high}\n", "bad.yaml: orpo: .*beta"),
                        ("export: {source: people}\n", "bad.yaml: export: source 'people'"),
                        ("generate: {n: 2, temp: 1}\n", "bad.yaml: generate: unknown keys \\['temp'\\]"),
                        ("eval: {limit: 0}\n", "bad.yaml: eval: limit: expected an integer >= 1"),
                        ("dpo: {max_step: 3}\n", r"bad.yaml: dpo: .*unknown field\(s\) \['max_step'\]"),
                        ("judge: {mode: [pairwise]}\n", "bad.yaml: judge: unknown keys"),
                        ("rm: [1, 2]\n", "bad.yaml: rm: expected a mapping"),
                        ("policy: [\n", "bad.yaml:2:1: not valid YAML")]:
        bad.write_text(text)
        with pytest.raises(LoopConfigError, match=match):
            load_loop_config(bad)
