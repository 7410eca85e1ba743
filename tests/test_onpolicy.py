"""On-policy preference pairs, iterative DPO, rejection-sampling SFT and ORPO on the tiny model,
through a real store; their settings' errors before any run row."""

from __future__ import annotations

import pytest

from prefloop.pipelines.errors import OnPolicyConfigError
from prefloop.pipelines.onpolicy import onpolicy_config, run_onpolicy
from prefloop.store.export_files import export_pairs
from prefloop.store.pairs import PairFilters
from prefloop.training.errors import TrainingError
from prefloop.training.generate import GenParams, generate, reward_labeler
from prefloop.training.train import train

pytestmark = pytest.mark.model

FAST = {"max_steps": 2, "max_length": 256, "max_eval_pairs": 8, "save_steps": 1000}


@pytest.fixture
def rm(hh_store, tiny_model):
    r = train(hh_store, "rm", overrides={"model": str(tiny_model), **FAST})
    return r


def test_generate_labels_best_worst_and_margin_pairs_as_ai_comparisons(hh_store, rm, tiny_model):
    spec = f"run:{rm.run.id}"
    # the reward model's score statistics (for normalize_reward) are recorded beside it
    from prefloop.core.models import resolve_model
    from prefloop.training.scoring import reward_statistics

    stats = reward_statistics(resolve_model(spec, hh_store, require="reward").path)
    assert stats == (rm.summary["score_mean"], rm.summary["score_std"]) and stats[1] > 0
    before = hh_store.comparisons.max_id()
    g = generate(hh_store, str(tiny_model), f"export:{rm.run.export_id}:train", limit=4,
                 params=GenParams(n=3, max_new_tokens=8, batch_size=6), reward_model=spec,
                 pairs="best-worst", label_truncated=True)   # a tiny random model rarely emits EOS
    assert g.run.summary["pairs"] == len(g.comparison_ids) > 0
    comps = [hh_store.comparisons.get(c) for c in g.comparison_ids]
    for c in comps:                      # one comparison per prompt: its best over its worst sample
        assert c.labeler == reward_labeler(spec) and c.labeler_kind == "ai" and len(c.ranking) == 2
        rids = g.response_groups[c.prompt_id]
        assert set(c.ranking[0] + c.ranking[1]) <= set(rids) and 0.5 < c.confidence <= 1
    # only this run's labels are selected, in an export the trainers read
    e = export_pairs(hh_store, hh_store.path.parent / "round", PairFilters(
        source="ai", labeler=reward_labeler(spec), after_comparison_id=before))
    assert e.n_train == len(g.comparison_ids)
    # the same samples again (same seed): their response rows exist already, the labels are new
    again_from = hh_store.comparisons.max_id()
    again = generate(hh_store, str(tiny_model), f"export:{rm.run.export_id}:train", limit=4,
                     params=GenParams(n=3, max_new_tokens=8, batch_size=6), reward_model=spec,
                     pairs="best-worst", label_truncated=True)
    assert again.comparison_ids and again.response_groups == g.response_groups
    e2 = export_pairs(hh_store, hh_store.path.parent / "round2", PairFilters(
        source="ai", labeler=reward_labeler(spec), after_comparison_id=again_from))
    assert e2.n_train == len(again.comparison_ids)
    every = generate(hh_store, str(tiny_model), f"export:{rm.run.export_id}:train", limit=4,
                     params=GenParams(n=3, max_new_tokens=8, batch_size=6, seed=1),
                     reward_model=spec, pairs="all", margin=0.0, label_truncated=True)
    assert len(every.comparison_ids) >= len(g.comparison_ids)
    huge = generate(hh_store, str(tiny_model), f"export:{rm.run.export_id}:train", limit=4,
                    params=GenParams(n=3, max_new_tokens=8, batch_size=6, seed=2),
                    reward_model=spec, pairs="all", margin=1e9, label_truncated=True)
    assert huge.comparison_ids == []
    # by default a sample cut off at max_new_tokens is never a side of a label
    strict = generate(hh_store, str(tiny_model), f"export:{rm.run.export_id}:train", limit=4,
                      params=GenParams(n=3, max_new_tokens=8, batch_size=6, seed=3),
                      reward_model=spec, pairs="all")
    sides = [r for c in strict.comparison_ids for g in hh_store.comparisons.get(c).ranking for r in g]
    assert all(r.gen_params["finished"] for r in hh_store.responses.get_many(sides))
    cut = [r for r in hh_store.responses.get_many([x for v in strict.response_groups.values() for x in v])
           if not r.gen_params["finished"]]
    assert cut and strict.run.summary["prompts_without_two_finished"] >= 1


def test_pairs_need_two_samples_and_a_reward_model_before_any_run(hh_store, rm, tiny_model):
    before = len(hh_store.runs.list())
    with pytest.raises(TrainingError, match="--n 1"):
        generate(hh_store, str(tiny_model), "export:1:train", params=GenParams(n=1),
                 reward_model=f"run:{rm.run.id}", pairs="best-worst")
    with pytest.raises(TrainingError, match="--pairs 'best'"):
        generate(hh_store, str(tiny_model), "export:1:train", reward_model="x", pairs="best")
    with pytest.raises(TrainingError, match="need --reward-model"):
        generate(hh_store, str(tiny_model), "export:1:train", pairs="all")
    assert len(hh_store.runs.list()) == before


def test_onpolicy_settings_are_checked_with_the_key_named(tiny_model):
    with pytest.raises(OnPolicyConfigError, match="'bogus'"):
        onpolicy_config("iterative-dpo", {"bogus": 1, "export_id": 1, "reward_model": "x"})
    with pytest.raises(OnPolicyConfigError, match="n: expected at least 2"):
        onpolicy_config("iterative-dpo", {"n": 1, "export_id": 1, "reward_model": "x"})
    with pytest.raises(OnPolicyConfigError, match="reward_model"):
        onpolicy_config("rs-sft", {"export_id": 1})
    with pytest.raises(OnPolicyConfigError, match="beta"):        # a trainer field, checked too
        onpolicy_config("iterative-dpo", {"export_id": 1, "reward_model": "x", "beta": "high"})
    with pytest.raises(OnPolicyConfigError, match="labeler"):
        onpolicy_config("iterative-dpo", {"export_id": 1, "labeler": "crowd"})
    cfg = onpolicy_config("iterative-dpo", {"model": str(tiny_model), "export_id": 1,
                                            "reward_model": "x", "beta": 0.2, "max_steps": 3})
    assert cfg.policy == str(tiny_model) and cfg.train == {"beta": 0.2, "max_steps": 3}


def test_an_unreachable_judge_fails_before_any_run_row(hh_store, tiny_model):
    cfg = onpolicy_config("iterative-dpo", {"model": str(tiny_model), "export_id": 1, "labeler": "judge",
                                            "judge_backend": "openai", "judge_model": "m",
                                            "judge_base_url": "http://127.0.0.1:9/v1"})
    before = len(hh_store.runs.list())
    from prefloop.judge.errors import JudgeError

    with pytest.raises(JudgeError, match=r"127\.0\.0\.1:9/v1 cannot be reached"):
        run_onpolicy(hh_store, cfg)
    assert len(hh_store.runs.list()) == before


def test_iterative_dpo_two_rounds_keep_the_first_reference(hh_store, rm, tiny_model):
    cfg = onpolicy_config("iterative-dpo", {
        "model": str(tiny_model), "export_id": rm.run.export_id, "reward_model": f"run:{rm.run.id}",
        "rounds": 2, "prompts_per_round": 4, "n": 3, "max_new_tokens": 8, "max_prompt_tokens": 128,
        "max_steps": 2, "label_truncated": True})
    r = run_onpolicy(hh_store, cfg)
    assert r.run.kind == "iterative-dpo" and r.run.status == "finished" and len(r.rounds) == 2
    first, second = (hh_store.runs.get(x["train_run_id"]) for x in r.rounds)
    assert first.kind == second.kind == "dpo" and second.parent_run_id == first.id
    assert first.config.get("ref_model") is None and second.config["ref_model"] == str(tiny_model)
    gens = [hh_store.runs.get(x["generate_run_id"]) for x in r.rounds]
    assert gens[1].parent_run_id == first.id            # round 2 samples the round-1 policy
    assert gens[1].config["offset"] == 4                # ... on the next prompts
    assert {x.pipeline_run_id for x in (first, second, *gens)} == {r.run.id}
    assert r.policy == f"run:{second.id}"


def test_self_rewarding_labels_name_the_policy(hh_store, rm, tiny_model):
    cfg = onpolicy_config("iterative-dpo", {
        "model": str(tiny_model), "export_id": rm.run.export_id, "labeler": "self", "rounds": 1,
        "prompts_per_round": 3, "n": 2, "max_new_tokens": 6, "max_prompt_tokens": 128,
        "temperature": 1.5, "max_steps": 1})
    try:
        r = run_onpolicy(hh_store, cfg)
    except Exception as exc:             # a random tiny judge may call every pair a tie
        assert "preferred no sample" in str(exc)
        return
    judge = hh_store.runs.get(r.rounds[0]["judge_run_id"])
    assert judge.kind == "judge" and judge.config["mode"] == "rank"
    assert r.rounds[0]["labeler"] == judge.config["judge_model"]


def test_rs_sft_and_orpo_train(hh_store, rm, tiny_model):
    cfg = onpolicy_config("rs-sft", {
        "model": str(tiny_model), "export_id": rm.run.export_id, "reward_model": f"run:{rm.run.id}",
        "rounds": 1, "prompts_per_round": 4, "n": 3, "max_new_tokens": 8, "max_prompt_tokens": 128,
        "max_steps": 2, "label_truncated": True})
    r = run_onpolicy(hh_store, cfg)
    assert hh_store.runs.get(r.rounds[0]["train_run_id"]).kind == "sft" and r.rounds[0]["pairs"] > 0
    orpo = train(hh_store, "orpo", overrides={"model": str(tiny_model), "export_id": rm.run.export_id,
                                              "use_lora": True, **FAST})
    assert orpo.run.kind == "orpo" and orpo.summary["steps"] == 2 and "eval" in orpo.summary
    assert orpo.run.config["learning_rate"] == 1e-04


def test_a_wall_clock_budget_stops_training_early_and_says_so(hh_store, rm, tiny_model):
    dpo = train(hh_store, "dpo", overrides={"model": str(tiny_model), "export_id": rm.run.export_id,
                                            **FAST, "max_steps": 100_000, "max_seconds": 1.0})
    assert dpo.summary["stopped_by_budget"] is True and 1 <= dpo.summary["steps"] < 100_000
    assert dpo.run.status == "finished" and "eval" in dpo.summary      # evaluated and saved as usual
    ppo = train(hh_store, "ppo", overrides={
        "model": str(tiny_model), "reward_model": f"run:{rm.run.id}", "max_steps": 100_000,
        "max_seconds": 1.0, "batch_size": 2, "mini_batch_size": 2, "ppo_epochs": 1,
        "max_new_tokens": 4, "max_prompt_length": 32, "save_steps": 0})
    assert ppo.summary["stopped_by_budget"] is True and 1 <= ppo.summary["iterations"] < 100_000
    with pytest.raises(Exception, match="max_seconds"):
        train(hh_store, "dpo", overrides={"model": str(tiny_model), "max_seconds": -3})
