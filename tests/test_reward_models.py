"""Reward models users can trust: `prefloop eval rm` on any pair set (RewardBench scoring
pinned), ensembles (mean / worst case / uncertainty-weighted) through every place an RM is
used, and their bad input."""

from __future__ import annotations

import json

import pytest
import torch

from prefloop.core.models import AggregationError, ModelNotFoundError, resolve_model
from prefloop.pipelines.errors import EvalError
from prefloop.pipelines.reward_eval import run_rm_eval
from prefloop.store.errors import InvalidInputError
from prefloop.training.configs import load_config
from prefloop.training.errors import ConfigError
from prefloop.training.rm_eval import rewardbench_scores
from prefloop.training.scoring import EnsembleScorer, reward_scorer
from prefloop.training.train import train

from .conftest import MT_BENCH

FAST = {"max_steps": 2, "max_length": 256, "max_eval_pairs": 16, "save_steps": 1000}


def test_rewardbench_weighting_matches_a_hand_computed_example():
    # Chat: (1.0*100 + 0.5*28) / 128; Chat Hard: (0*37 + 1*100) / 137; Reasoning: math-prm
    # weighs 984 (not its 447 pairs) against hep-go's 164; "mine" (unknown) by its own n.
    acc = {"alpacaeval-easy": 1.0, "mt-bench-easy": 0.5, "mt-bench-hard": 0.0,
           "llmbar-natural": 1.0, "math-prm": 0.25, "hep-go": 0.75, "mine": 0.6}
    r = rewardbench_scores(acc, {"mine": 10, "math-prm": 447})
    assert r["sections"]["Chat"] == pytest.approx(114 / 128)
    assert r["sections"]["Chat Hard"] == pytest.approx(100 / 137)
    assert r["sections"]["Reasoning"] == pytest.approx((0.25 * 984 + 0.75 * 164) / 1148)
    assert r["sections"]["Other"] == pytest.approx(0.6)
    assert "Safety" not in r["sections"]
    assert r["score"] == pytest.approx((114 / 128 + 100 / 137 + 369 / 1148 + 0.6) / 4)


def test_ensemble_settings_are_checked_in_one_line():
    with pytest.raises(ConfigError, match="ensemble: expected K >= 2"):
        load_config("rm", overrides={"ensemble": 1})
    with pytest.raises(ConfigError, match="ensemble_aggregate 'median'"):
        load_config("rm", overrides={"ensemble": 2, "ensemble_aggregate": "median"})
    with pytest.raises(ConfigError, match="uwo_lambda"):
        load_config("rm", overrides={"ensemble": 2, "uwo_lambda": -1})
    assert load_config("rm", overrides={"ensemble": 3}).ensemble == 3


def test_ensemble_aggregations_on_known_member_rewards():
    e = EnsembleScorer.__new__(EnsembleScorer)
    per = torch.tensor([[1.0, 0.0], [3.0, 0.0]])            # (K=2, N=2)
    for agg, lam, want in (("mean", 1.0, [2.0, 0.0]), ("wco", 1.0, [1.0, 0.0]),
                           ("uwo", 0.5, [1.5, 0.0])):        # std of (1, 3) is 1
        e.aggregate, e.uwo_lambda = agg, lam
        assert e.combine(per).tolist() == pytest.approx(want)
    assert EnsembleScorer.disagreement(per, torch.zeros(2, 2)).tolist() == pytest.approx([1.0, 0.0])


def _rewardbench_file(tmp_path, rows):
    f = tmp_path / "rb.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f


RB_ROWS = [{"prompt": f"question {i}?", "chosen": f"a careful answer {i}", "rejected": f"no {i}",
            "subset": ["alpacaeval-easy", "math-prm", "mine"][i % 3], "id": i} for i in range(9)]


@pytest.mark.model
def test_an_ensemble_trains_as_one_run_and_is_scored_everywhere(hh_store, tiny_model, tmp_path):
    r = train(hh_store, "rm", overrides={"model": str(tiny_model), "ensemble": 2, **FAST})
    run = hh_store.runs.get(r.run.id)
    assert run.status == "finished" and run.summary["ensemble"] == 2
    assert len(run.summary["member_accuracy"]) == 2 and run.summary["disagreement_mean"] > 0
    ref = resolve_model(f"run:{run.id}@wco", hh_store, require="reward")
    assert ref.is_ensemble and ref.aggregate == "wco"
    assert json.loads((r.final_dir / "prefloop_ensemble.json").read_text())["members"] == ["member-0", "member-1"]
    # members differ (own seed and bootstrap sample), and the aggregations order as they must
    sc = reward_scorer(ref)
    conv = [[{"role": "user", "content": "hello?"}]] * 3
    per = sc.member_scores(conv, ["hi", "hello there", "go away"])
    assert not torch.allclose(per[0], per[1])
    assert torch.allclose(sc.score(conv, ["hi", "hello there", "go away"]), per.min(0).values)
    mean = reward_scorer(resolve_model(f"run:{run.id}@mean", hh_store)).score(conv, ["hi", "hello there", "go away"])
    assert torch.all(mean >= per.min(0).values - 1e-6)
    # eval rm: held-out split, ensemble figures, and a RewardBench-format file
    ev = run_rm_eval(hh_store, f"run:{run.id}@uwo=0.5", f"export:{run.export_id}", limit=16)
    assert ev.run.kind == "eval-rm" and ev.run.status == "finished" and ev.summary["n"] == 16
    assert ev.summary["ci_low"] <= ev.summary["accuracy"] <= ev.summary["ci_high"]
    assert ev.summary["aggregate"] == "uwo" and len(ev.summary["member_accuracy"]) == 2
    lb = ev.summary["length_bias"]
    assert lb["chosen_longer"]["n"] + lb["chosen_shorter"]["n"] <= 16
    rb = run_rm_eval(hh_store, f"run:{run.id}", str(_rewardbench_file(tmp_path, RB_ROWS)))
    assert set(rb.summary["groups"]) == {"alpacaeval-easy", "math-prm", "mine"}
    acc = {g: m["accuracy"] for g, m in rb.summary["groups"].items()}
    assert rb.summary["rewardbench"] == rewardbench_scores(acc, {g: 3 for g in acc})
    # generate: an ensemble's disagreement orders the queue
    from prefloop.training.generate import GenParams, generate

    g = generate(hh_store, str(tiny_model), str(MT_BENCH), limit=3, n_tasks=3,
                 params=GenParams(n=3, max_new_tokens=6, batch_size=9), reward_model=f"run:{run.id}")
    reasons = [t.reason for t, _, _ in hh_store.tasks.list()]
    assert len(reasons) == len(g.task_ids) > 0 and all("ensemble disagreement" in x for x in reasons)
    spreads = [float(x.split("disagreement ")[1].split(" ")[0]) for x in reasons]
    assert spreads == sorted(spreads, reverse=True)
    # PPO against the ensemble (worst case)
    ppo = train(hh_store, "ppo", overrides={
        "model": str(tiny_model), "reward_model": f"run:{run.id}@wco", "max_steps": 1,
        "batch_size": 4, "mini_batch_size": 2, "ppo_epochs": 1, "max_new_tokens": 6,
        "max_prompt_length": 64})
    assert ppo.run.status == "finished" and ppo.summary["reward_model"].endswith("@wco")
    # policy evaluation with the ensemble as the proxy RM
    from prefloop.pipelines.evaluation import EvalConfig, run_eval

    ev2 = run_eval(hh_store, EvalConfig(models=(str(tiny_model), str(tiny_model)),
                                        prompts=f"export:{run.export_id}", limit=3, judge=None,
                                        max_new_tokens=6, reward_model=f"run:{run.id}@uwo"))
    assert ev2.run.status == "finished" and ev2.summary.reward_model.endswith("@uwo")
    # an aggregation on one reward model, or an unknown one: one line each
    single = train(hh_store, "rm", overrides={"model": str(tiny_model), **FAST,
                                              "export_id": run.export_id})
    with pytest.raises(ModelNotFoundError, match="not an ensemble"):
        resolve_model(f"run:{single.run.id}@wco", hh_store)
    with pytest.raises(AggregationError, match="expected mean, wco, uwo"):
        resolve_model(f"run:{run.id}@median", hh_store)


def test_bad_pair_files_name_file_line_and_field_and_write_nothing(db, tmp_path):
    bad = [({"prompt": "q", "chosen": "a"}, "field 'rejected': missing"),
           ({"prompt": "q", "chosen": 3, "rejected": "b"}, "field 'chosen'"),
           ({"prompt": "q", "chosen": "a", "rejected": "b", "subset": 7}, "field 'subset'"),
           ({"prompt": "q", "chosen": "a", "rejected": "a"}, "identical")]
    for row, message in bad:
        f = _rewardbench_file(tmp_path, [RB_ROWS[0], row])
        with pytest.raises(InvalidInputError, match=rf"rb.jsonl:2: .*{message}"):
            run_rm_eval(db, str(tmp_path), str(f)) if False else \
                __import__("prefloop.pipelines.reward_eval", fromlist=["x"]).load_eval_pairs(db, str(f))
    with pytest.raises(EvalError, match="expected export:ID"):
        __import__("prefloop.pipelines.reward_eval", fromlist=["x"]).load_eval_pairs(db, "nowhere")
    assert db.runs.list() == []


@pytest.mark.model
def test_graded_strength_reaches_the_reward_models_margin_loss(db, tiny_model, tmp_path):
    """Labels with a strength export a margin; margin_loss trains with it (TRL's margin
    column); an export without the column is one clear error."""
    from prefloop import store
    from prefloop.store.export_files import export_pairs
    from prefloop.store.pairs import PairFilters
    from prefloop.training.data import load_pairs

    for i in range(12):
        pid = db.prompts.add([[{"role": "user", "content": f"question {i}?"}]], dataset="g")[0]
        a, b = db.responses.add([store.ResponseIn(pid, f"a helpful answer {i}"), store.ResponseIn(pid, f"no {i}")])
        db.comparisons.record(pid, [[a], [b]], labeler_kind="human", labeler="crowd",
                              strength=None if i % 3 == 0 else store.STRENGTHS[i % 4])
    e = export_pairs(db, tmp_path / "e", PairFilters(test_fraction=0.0)).export
    margins = load_pairs(e)["train"]["margin"]
    assert margins.count(None) == 4                                   # i = 0, 3, 6, 9: no strength
    assert sorted(round(m, 6) for m in margins if m is not None) == sorted(
        round(m, 6) for m in [2 / 3, 1 / 3, 1.0, 2 / 3, 0.0, 1.0, 1 / 3, 0.0])
    r = train(db, "rm", overrides={"model": str(tiny_model), "export_id": e.id, "margin_loss": True,
                                   **FAST})
    assert r.run.status == "finished"
    with pytest.raises(store.ValidationError, match="strength 'huge'"):
        db.comparisons.record(1, [[1], [2]], labeler_kind="human", labeler="x", strength="huge")
