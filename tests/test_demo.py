"""``prefloop demo --quick`` end to end (slow: about 5 minutes on 2 cores)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from prefloop import store

from .conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.model]


def test_quick_demo_runs_and_resumes(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFLOOP_ADMIN_PASSWORD": "demo-password-1"}
    cmd = [sys.executable, "-m", "prefloop", "demo", "--quick"]
    first = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "prefloop demo summary" in first.stdout
    assert f"prefloop --db {(tmp_path / 'prefloop.duckdb').resolve()} annotate" in first.stdout
    assert "demo-password-1" not in first.stdout + first.stderr
    s = store.Store(tmp_path / "prefloop.duckdb")
    runs = {r.kind: r for r in s.runs.list()}
    assert {"demo", "rm", "iterative-dpo", "dpo", "generate", "ppo", "eval", "judge"} <= set(runs)
    assert len(s.runs.list(kind="rm")) == 2                      # the proxy and the gold RM
    assert all(r.status == "finished" for r in s.runs.list())
    # the evaluation table ends the summary: base, on-policy DPO and PPO from it, with CIs and KL
    assert "KL nats" in first.stdout and "leaderboard" in first.stdout and "gold LC" in first.stdout
    assert "the demo's targets" in first.stdout and "targets met" in first.stdout
    ppo, dpo = runs["ppo"], runs["dpo"]
    assert ppo.parent_run_id == dpo.id and ppo.config["model"] == f"run:{dpo.id}"  # PPO from the DPO policy
    assert {r["model"] for r in runs["eval"].summary["models"]} >= {
        "smollm2-135m-instruct", f"run:{ppo.id}", f"run:{dpo.id}"}
    # on-policy pairs: AI labels of the proxy RM on the policy's own samples
    gen = runs["generate"]
    assert gen.config["pairs"] == "best-worst" and gen.summary["pairs"] > 0

    def top(run):                                               # every run belongs to the demo
        while run.pipeline_run_id is not None:
            run = s.runs.get(run.pipeline_run_id)
        return run.id
    assert {top(r) for r in s.runs.list()} == {runs["demo"].id}
    assert s.tasks.list(open_only=True) and s.annotators.get("admin").role == "admin"
    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "already finished" in again.stdout
    assert len(s.runs.list(kind="demo")) == 1
