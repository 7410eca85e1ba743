"""Blind tasks of an evaluation (no model): each compared version gets prompts of its own, so no
annotator meets the baseline's response twice; subsets are taken in turn; identical answers get
no task."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from prefloop import store
from prefloop.pipelines.errors import EvalError
from prefloop.pipelines.eval_config import EvalConfig
from prefloop.pipelines.evaluation import _Plan, _queue_tasks, _Version


def _version(db, key, prompts, same_as_base=()):
    samples = {}
    for p in prompts:
        text = f"base answer {p.id}" if p.id in same_as_base or key == "base" else f"{key} answer {p.id}"
        rid = db.responses.add([store.ResponseIn(p.id, text)])[0]
        samples[p.id] = SimpleNamespace(response_id=rid)
    return _Version(key, key, None, 0, None, samples)


def test_each_version_gets_its_own_prompts_and_both_subsets(db):
    pids = db.prompts.add([[{"role": "user", "content": f"q{i}"}] for i in range(12)], dataset="d")
    prompts = db.prompts.get_many(pids)
    subsets = {p.id: ("harmless" if i < 6 else "benign") for i, p in enumerate(prompts)}
    base = _version(db, "base", prompts)
    a = _version(db, "a", prompts, same_as_base={prompts[0].id})
    b, c = _version(db, "b", prompts), _version(db, "c", prompts)
    plan = _Plan([base, a, b, c], base, prompts, subsets, None, None, None)
    run = db.runs.create("eval", {})
    cfg = EvalConfig(models=("base", "a", "b", "c"), prompts="d", tasks=3)
    ids = _queue_tasks(db, run, cfg, plan)
    tasks = [db.tasks.get(i) for i in ids]
    by_version = {}
    for t in tasks:
        owner = next(v.key for v in (a, b, c) if t.response_ids[0] == v.samples[t.prompt_id].response_id)
        by_version.setdefault(owner, []).append(t.prompt_id)
        assert t.response_ids[1] == base.samples[t.prompt_id].response_id and t.eval_run_id == run.id
    assert sorted(len(v) for v in by_version.values()) == [3, 3, 3]
    prompts_used = [p for v in by_version.values() for p in v]
    assert len(prompts_used) == len(set(prompts_used))            # the baseline's answer shows once
    assert prompts[0].id not in by_version["a"]                   # the same text as the base: no task
    for v in by_version.values():
        assert {subsets[p] for p in v} == {"harmless", "benign"}
    only_c = _queue_tasks(db, db.runs.create("eval", {}), EvalConfig(models=("base", "c"), prompts="d", tasks=12,
                                                                     task_models=("c",)), plan)
    assert len(only_c) == 12
    weighted = _queue_tasks(db, db.runs.create("eval", {}), EvalConfig(
        models=("base", "b", "c"), prompts="d", tasks=12, task_models=("b", "c"), task_weights=(3, 1)), plan)
    owners = [next(v.key for v in (b, c) if db.tasks.get(i).response_ids[0] == v.samples[db.tasks.get(i).prompt_id].response_id)
              for i in weighted]
    assert (owners.count("b"), owners.count("c")) == (9, 3)        # 12 prompts, three to one
    with pytest.raises(EvalError, match="task_weights: expected an integer >= 1 for each of task_models"):
        EvalConfig(models=("base", "b"), prompts="d", task_models=("b",), task_weights=(1, 2))
