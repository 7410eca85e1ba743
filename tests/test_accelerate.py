"""Training under ``accelerate launch --multi_gpu --num_processes 2`` on CPU (gloo): only rank 0 touches the
store (one run row, one metrics row per step and name), the run finishes, and after PPO's
steps both ranks hold identical weights (slow)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest

from prefloop import store
from prefloop.store.export_files import export_pairs
from prefloop.store.pairs import PairFilters

from .conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.model]


def _launch(db: store.Store, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    # on a machine without CUDA, --multi_gpu is accelerate's torchrun launcher; prefloop makes
    # the processes gloo data parallel (accelerate's --cpu with 2 processes needs mpirun)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "-m", "prefloop", "--db", str(db.path), "train", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def _one_row_per_step_and_name(db: store.Store, run_id: int) -> None:
    counts = Counter((m.step, m.name) for m in db.runs.metrics(run_id))
    assert counts and max(counts.values()) == 1, counts.most_common(3)


def test_rm_and_ppo_under_two_processes_write_one_run_each(hh_store, tiny_model, tmp_path):
    e = export_pairs(hh_store, tmp_path / "e", PairFilters(source="human", test_fraction=0.05))
    common = ["--model", str(tiny_model), "--export", str(e.export.id)]
    rm = _launch(hh_store, "rm", *common, "--max-steps", "3", "--set", "max_length=128",
                 "--set", "max_eval_pairs=8", "--set", "logging_steps=1",
                 "--set", "per_device_train_batch_size=2")
    assert rm.returncode == 0, rm.stderr[-3000:]
    runs = hh_store.runs.list(kind="rm")
    assert len(runs) == 1 and runs[0].status == "finished" and runs[0].summary["processes"] == 2
    _one_row_per_step_and_name(hh_store, runs[0].id)
    assert rm.stdout.count("finished in") == 1                 # rank 0 alone reports

    ppo = _launch(hh_store, "ppo", *common, "--reward-model", f"run:{runs[0].id}", "--max-steps", "2",
                  "--set", "batch_size=2", "--set", "mini_batch_size=2", "--set", "ppo_epochs=1",
                  "--set", "max_new_tokens=8", "--set", "max_prompt_length=64")
    assert ppo.returncode == 0, ppo.stderr[-3000:]
    ppo_runs = hh_store.runs.list(kind="ppo")
    assert len(ppo_runs) == 1 and ppo_runs[0].status == "finished"
    assert ppo_runs[0].parent_run_id is None and ppo_runs[0].summary["iterations"] == 2
    _one_row_per_step_and_name(hh_store, ppo_runs[0].id)
    assert {m.step for m in hh_store.runs.metrics(ppo_runs[0].id) if m.name == "kl"} == {1, 2}
    sums = ppo_runs[0].summary["rank_parameter_checksums"]       # after the PPO steps, both ranks
    assert len(sums) == 2 and sums[0] == sums[1], sums           # hold identical weights
