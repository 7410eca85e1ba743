"""``prefloop eval`` on tiny models: every view, reuse of samples, A/A, errors, human votes
into the leaderboard, and evaluation labels kept out of training exports."""

from __future__ import annotations

import pytest

from prefloop import store
from prefloop.annotate_app.auth import hash_password
from prefloop.annotate_app.services import AppServices
from prefloop.annotate_app.services.admin import models_table
from prefloop.core.models import DEFAULT_MODEL, ModelNotFoundError
from prefloop.core.stats import leaderboards
from prefloop.pipelines.evaluation import EvalConfig, EvalError, run_eval, with_people
from prefloop.store.pairs import PairFilters, derive_pairs
from prefloop.training.train import train

pytestmark = pytest.mark.model


FAST = {"max_steps": 2, "max_length": 256, "max_eval_pairs": 8, "save_steps": 1000}


@pytest.fixture
def runs(hh_store, tiny_model):
    rm = train(hh_store, "rm", overrides={"model": str(tiny_model), **FAST})
    gold = train(hh_store, "rm", overrides={"model": str(tiny_model), "seed": 7, **FAST,
                                            "export_id": rm.run.export_id})
    dpo = train(hh_store, "dpo", overrides={"model": str(tiny_model), **FAST, "learning_rate": 0.05,
                                             "export_id": rm.run.export_id})   # moves a tiny model
    return rm.run, gold.run, dpo.run


def _cfg(tiny_model, runs, **kw):
    rm, gold, dpo = runs
    return EvalConfig(**{"models": (str(tiny_model), f"run:{dpo.id}"),
                         "prompts": f"export:{rm.export_id}", "limit": 8, "max_prompt_tokens": 512,
                         "reward_model": f"run:{rm.id}", "second_reward_model": f"run:{gold.id}",
                         "judge": "local", "judge_model": str(tiny_model), "max_new_tokens": 8,
                         **kw})


def test_eval_compares_versions_under_every_view_and_reuses_samples(hh_store, tiny_model, runs):
    rm, gold, dpo = runs
    r = run_eval(hh_store, _cfg(tiny_model, runs, tasks=3, overlap=2))
    run = hh_store.runs.get(r.run.id)
    assert run.kind == "eval" and run.status == "finished"
    assert run.config["compared_runs"] == [dpo.id] and run.config["versions"] == [str(tiny_model), f"run:{dpo.id}"]
    base_row, dpo_row = (x.overall for x in r.summary.rows)
    assert base_row.kl == 0.0 and isinstance(dpo_row.kl, float) and base_row.n == 8
    for view in ("proxy", "second_rm"):
        w = dpo_row.view(view).win
        assert w.n == 8 and w.low <= w.rate <= w.high and w.wins + w.ties + w.losses == 8
    j = dpo_row.judge
    assert j.win.n + j.unusable == 8 and 0 <= j.length_controlled.rate <= 1
    assert r.summary.judge["principle"] == "harmless"
    assert hh_store.runs.get(r.run.id).summary["rows"][1]["overall"]["kl"] == dpo_row.kl
    # responses are stored with provenance; eval labels are marked and stay out of exports
    sampled = [x for p in run.config["prompt_ids"] for x in hh_store.responses.for_prompts([p])[p]
               if x.run_id == run.id]
    assert r.summary.responses_sampled == 16 and 8 <= len(sampled) <= 16   # equal texts are one response
    assert {x.model for x in sampled} <= set(run.config["versions"])
    assert hh_store.samples.models() == {str(tiny_model): 8, f"run:{dpo.id}": 8}
    ai = hh_store.comparisons.list(labeler_kind="ai")
    assert ai and all(c.eval_run_id == run.id for c in ai)
    table, _ = derive_pairs(hh_store, PairFilters(source="ai"))
    assert table.num_rows == 0
    assert derive_pairs(hh_store, PairFilters(source="ai", include_eval=True))[0].num_rows > 0
    tasks = [t for t, _, _ in hh_store.tasks.list(limit=1000) if t.eval_run_id == run.id]
    assert len(tasks) == r.summary.tasks <= 3 and all(t.overlap == 2 for t in tasks)
    # the same checkpoint, settings and seed: every sample is reused
    again = run_eval(hh_store, _cfg(tiny_model, runs, judge=None, second_reward_model=None))
    assert again.summary.responses_sampled == 0
    assert [m.overall.proxy.mean for m in again.summary.rows] == pytest.approx(
        [m.overall.proxy.mean for m in r.summary.rows])


def test_an_a_a_comparison_samples_each_side_with_its_own_seed(hh_store, tiny_model, runs):
    rm, _, _ = runs
    cfg = _cfg(tiny_model, runs, models=(str(tiny_model), str(tiny_model)), limit=24,
               second_reward_model=None, max_new_tokens=12)
    r = run_eval(hh_store, cfg)
    a, b = r.summary.rows
    assert b.model == f"{tiny_model}#2" and a.overall.kl == b.overall.kl == 0.0
    run = hh_store.runs.get(r.run.id)
    sampled = [x for p in run.config["prompt_ids"] for x in hh_store.responses.for_prompts([p])[p]
               if x.run_id == run.id]
    assert len(sampled) > 24                       # different seeds: mostly different responses
    for view in ("proxy", "judge"):
        w = b.overall.view(view).win
        assert w.low <= 0.5 <= w.high, (view, w)


def test_bad_specs_and_empty_prompts_are_one_clear_error_and_write_nothing(hh_store, tiny_model, runs):
    rm, _, dpo = runs
    before = (len(hh_store.runs.list()), len(hh_store.samples.models()), hh_store.prompts.datasets())
    with pytest.raises(ModelNotFoundError, match="not found"):
        run_eval(hh_store, _cfg(tiny_model, runs, models=("no/such/model",)))
    with pytest.raises(ModelNotFoundError, match="is a reward model, but a policy"):
        run_eval(hh_store, _cfg(tiny_model, runs, models=(str(tiny_model), f"run:{rm.id}")))
    ev = hh_store.runs.create("eval", {})
    with pytest.raises(ModelNotFoundError, match="eval run, which makes no model"):
        run_eval(hh_store, _cfg(tiny_model, runs, models=(f"run:{ev.id}",)))
    with pytest.raises(store.NotFoundError, match="no prompts in 'nothing-here'"):
        run_eval(hh_store, _cfg(tiny_model, runs, prompts="nothing-here"))
    with pytest.raises(EvalError, match="baseline"):
        run_eval(hh_store, _cfg(tiny_model, runs, baseline="run:999"))
    from prefloop.judge.errors import JudgeError

    n_responses = len(hh_store.responses.get_many(list(range(1, 100_000))))
    with pytest.raises(JudgeError, match="cannot be reached"):      # a judge that is not there
        run_eval(hh_store, _cfg(tiny_model, runs, judge="openai", judge_model="m",
                                judge_base_url="http://127.0.0.1:9/v1"))
    with pytest.raises(EvalError, match="judge: expected local or openai"):
        _cfg(tiny_model, runs, judge="oracle")
    assert len(hh_store.responses.get_many(list(range(1, 100_000)))) == n_responses
    assert (len(hh_store.runs.list()) - 1, len(hh_store.samples.models()),
            hh_store.prompts.datasets()) == before


def test_people_vote_on_eval_tasks_and_the_leaderboard_rates_them(hh_store, tiny_model, runs):
    rm, _, dpo = runs
    r = run_eval(hh_store, _cfg(tiny_model, runs, judge=None, second_reward_model=None, tasks=4,
                                overlap=2))
    svc = AppServices(hh_store)
    for name in ("ann", "bob"):
        user = hh_store.annotators.add(name, "annotator", hash_password("password123"))
        view = svc.labeling.current_task(user)
        while view is not None:
            dpo_label = next(lab for lab, rid in zip(view.labels, view.response_ids)
                             if hh_store.responses.get_many([rid])[0].model == f"run:{dpo.id}")
            _, view = svc.labeling.submit_and_next(user, view.task_id, choice=dpo_label)
    human = [c for c in hh_store.comparisons.list(labeler_kind="human") if c.task_id is not None]
    assert len(human) == 2 * r.summary.tasks and all(c.eval_run_id == r.run.id for c in human)
    summary, progress = with_people(hh_store, hh_store.runs.get(r.run.id))
    assert progress.waiting == 0 and progress.given == 2 * r.summary.tasks
    people = summary.row(f"run:{dpo.id}").overall.people.win
    assert people.wins == 2 * r.summary.tasks and people.losses == 0 and people.rate > 0.5
    boards = leaderboards(hh_store.samples.model_votes(with_tokens=True), fallback_anchor=DEFAULT_MODEL)
    assert set(boards) == {"human", "all"}
    assert boards["human"].ratings[f"run:{dpo.id}"] > boards["human"].ratings[str(tiny_model)]
    rows = {row["model"]: row for row in models_table(hh_store)}
    assert rows[f"run:{dpo.id}"]["votes"] == 2 * r.summary.tasks
    assert rows[f"run:{dpo.id}"]["kind"] == "dpo" and rows[f"run:{dpo.id}"]["round"] == 1
    assert derive_pairs(hh_store, PairFilters(source="human", dataset="nope-no-such"))[0].num_rows == 0


def test_generation_logprobs_match_the_teacher_forced_pass_kl_rests_on(tiny_model):
    """KL(policy || reference) subtracts a teacher-forced reference pass from the log-probs
    recorded while sampling; with the policy as its own reference the two must agree, for
    prompts of different lengths (left padding) and several samples per prompt."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prefloop.training.generate import (
        GenParams,
        response_logprobs,
        sample_responses,
    )

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    prompts = [[{"role": "user", "content": "hi"}],
               [{"role": "user", "content": "a much longer question about baking bread at home"}]]
    samples = sample_responses(model, tok, prompts, GenParams(n=2, max_new_tokens=12, temperature=0.7,
                                                              top_p=1.0, batch_size=4, seed=3))
    flat = [(p, x) for p, xs in zip(prompts, samples) for x in xs]
    forced = response_logprobs(model, tok, [p for p, _ in flat], [x.token_ids for _, x in flat],
                               temperature=0.7, batch_size=3)
    assert len(forced) == 4 and any(len(x.token_ids) > 1 for _, x in flat)
    for (_, x), lp in zip(flat, forced):
        assert lp == pytest.approx(x.logprob, abs=1e-3)


def test_a_policy_that_trained_on_the_eval_prompts_is_refused_before_anything_is_written(hh_store, tiny_model, runs):
    rm, _, dpo = runs
    before = len(hh_store.runs.list())
    with pytest.raises(EvalError, match=rf"--prompts export:{rm.export_id}:train: 8 of its prompts are in export "
                                        rf"{rm.export_id}, which dpo run {dpo.id}"):
        run_eval(hh_store, _cfg(tiny_model, runs, prompts=f"export:{rm.export_id}:train"))
    assert len(hh_store.runs.list()) == before and hh_store.samples.models() == {}


def test_subsets_are_reported_apart_with_refusal_rates_and_people_wait(hh_store, tiny_model, runs, cli):
    from prefloop.pipelines.prompt_sets import PromptSetPlan, record_prompt_sets

    rm, _, dpo = runs
    held = hh_store.prompt_sets  # the export's test prompts become the recorded test set
    test_ids = sorted(__import__("prefloop.store.sources", fromlist=["x"]).export_prompt_ids(hh_store, rm.export_id, "test"))
    held.assign([(pid, "test", "harmless" if i % 2 else "benign") for i, pid in enumerate(test_ids)], rule="t")
    r = run_eval(hh_store, _cfg(tiny_model, runs, prompts="set:test", judge=None, tasks=3, overlap=1))
    row = r.summary.row(f"run:{dpo.id}")
    assert set(row.subsets) == {"harmless", "benign"}
    assert sum(x.n for x in row.subsets.values()) == row.overall.n == 8
    assert 0.0 <= row.overall.refusal_rate <= 1.0
    summary, progress = with_people(hh_store, r.run)
    assert progress.tasks == r.summary.tasks and progress.waiting == r.summary.tasks
    hh_store.close()
    shown = cli("--db", hh_store.path, "eval", "show", str(r.run.id))
    assert shown.exit_code == 0 and "harmless prompts" in shown.output
    assert f"people: 0 of {r.summary.tasks} blind labels given" in " ".join(shown.output.split())
    assert record_prompt_sets and PromptSetPlan        # the CLI path below uses the same sets
    quiet = run_eval(hh_store, _cfg(tiny_model, runs, prompts="set:test", judge=None, second_reward_model=None))
    hh_store.close()
    bad = cli("--db", hh_store.path, "eval", "show", str(quiet.run.id), "--people")
    assert bad.exit_code == 1 and f"--people: eval run {quiet.run.id} queued no blind tasks" in bad.output
