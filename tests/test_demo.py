"""``prefloop demo --quick`` end to end (slow: minutes on 2 cores): every stage runs on the real
shared data, the evaluation uses only test prompts no run trained on, the people column waits
for blind labels, and a second run resumes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from prefloop import store
from prefloop.pipelines.eval_results import EvalSummary

from .conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.model]


@pytest.mark.timeout(2400)
def test_quick_demo_runs_and_resumes(tmp_path, shared_data):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFLOOP_ADMIN_PASSWORD": "demo-password-1",
           "COLUMNS": "120"}
    cmd = [sys.executable, "-m", "prefloop", "demo", "--quick"]
    first = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1500)
    assert first.returncode == 0, first.stderr[-3000:]
    out = " ".join(first.stdout.split())
    assert "prefloop demo summary" in out and "the demo's targets" in out
    assert f"--db {(tmp_path / 'prefloop.duckdb').resolve()} annotate" in out
    assert "waiting for" in out and "blind labels" in out
    assert "demo-password-1" not in first.stdout + first.stderr
    s = store.Store(tmp_path / "prefloop.duckdb")
    runs = {r.kind: r for r in s.runs.list()}
    assert {"demo", "rm", "sft", "dpo", "ppo", "eval", "judge"} <= set(runs)
    assert len(s.runs.list(kind="rm")) == 2                      # the proxy and the second RM
    assert all(r.status == "finished" for r in s.runs.list())
    sft, ppo = runs["sft"], runs["ppo"]
    dpo, control = s.runs.list(kind="dpo")                      # the DPO stage, then the control
    assert dpo.config["model"] == f"run:{sft.id}" and ppo.config["model"] == f"run:{dpo.id}"
    assert control.config["model"] == f"run:{sft.id}"
    assert s.exports.get(control.export_id).filters["random_labels"] is True
    # the evaluation: the base twice (A/A), the random-label control, every stage's policy, on
    # test prompts only; blind tasks on the final policy, the A/A row and the control
    summary = EvalSummary.from_json(runs["eval"].summary)
    assert [r.model for r in summary.rows] == ["smollm2-135m-instruct", "smollm2-135m-instruct#2",
                                               f"run:{control.id}", f"run:{sft.id}", f"run:{dpo.id}",
                                               f"run:{ppo.id}"]
    test = set(s.prompt_sets.ids("test"))
    assert set(runs["eval"].config["prompt_ids"]) <= test and summary.subsets() == ["benign", "harmless"]
    assert s.tasks.eval_progress(runs["eval"].id)[0] > 0
    # DPO learns half A's labels from the SFT policy; PPO scores a fixed probe set every iteration
    assert dpo.export_id == s.runs.get(runs["demo"].id).summary["stages"]["export"]["a"]["export_id"]
    assert dpo.parent_run_id == sft.id
    assert s.runs.metrics(ppo.id, "probe_reward_model")

    def top(run):                                               # every run belongs to the demo
        while run.pipeline_run_id is not None:
            run = s.runs.get(run.pipeline_run_id)
        return run.id
    assert {top(r) for r in s.runs.list()} == {runs["demo"].id}
    assert s.annotators.get("admin").role == "admin"
    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "done earlier" in again.stdout + again.stderr
    assert len(s.runs.list(kind="demo")) == 1
    shown = subprocess.run(cmd + ["--show"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr[-2000:]
    table = " ".join(shown.stdout.split())
    assert all(role in table for role in ("a/a", "random labels", "final")) and "seed-level CI" in table
