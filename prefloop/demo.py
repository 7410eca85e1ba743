"""``prefloop demo``: the whole cycle on real data and the embedded SmolLM2, in one command.

Stages (each recorded; re-running resumes): import the shared HH-RLHF, AlpacaEval and
MT-Bench files -> export the human HH pairs with a held-out split -> reward model (MiniLM,
bounded steps) -> DPO on SmolLM2 -> PPO with that reward model -> new responses to MT-Bench
prompts -> a constitutional judge batch (pairwise and critique, local backend) on them and on
HH pairs people labeled -> queue the most uncertain pairs and make sure an admin can log in ->
a summary table.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from prefloop import store
from prefloop.store.importer import import_file
from prefloop.store.pairs import PairFilters, export_pairs

from .pipeline import Pipeline

__all__ = ["DemoPlan", "FULL", "QUICK", "run_demo", "shared_data_dir"]


@dataclass(frozen=True)
class DemoPlan:
    """Budgets of each stage (steps, lengths, counts); :data:`FULL` fits in 20 minutes and
    :data:`QUICK` in 5 on 2 CPU cores."""

    rm_steps: int
    rm_max_length: int
    rm_batch: int
    dpo_steps: int
    dpo_max_length: int
    eval_pairs: int
    ppo_steps: int
    ppo_batch: int
    ppo_new_tokens: int
    gen_prompts: int
    gen_n: int
    gen_new_tokens: int
    judge_hh_pairs: int
    critique_responses: int
    critique_tokens: int
    tasks: int


FULL = DemoPlan(rm_steps=80, rm_max_length=256, rm_batch=8, dpo_steps=16, dpo_max_length=256,
                eval_pairs=48, ppo_steps=4, ppo_batch=4, ppo_new_tokens=32, gen_prompts=10, gen_n=4,
                gen_new_tokens=96, judge_hh_pairs=16, critique_responses=4, critique_tokens=96,
                tasks=10)
QUICK = DemoPlan(rm_steps=12, rm_max_length=192, rm_batch=8, dpo_steps=4, dpo_max_length=192,
                 eval_pairs=16, ppo_steps=2, ppo_batch=2, ppo_new_tokens=16, gen_prompts=4, gen_n=2,
                 gen_new_tokens=32, judge_hh_pairs=6, critique_responses=2, critique_tokens=48, tasks=4)

HH = "hh-rlhf/harmless-base-test-dev.jsonl.gz"
ALPACA = "alpaca-eval/alpaca-7b_vs_text-davinci-003_gpt4-judge.json"
MT_BENCH = "mt-bench/question.jsonl"
HH_DATASET = "harmless-base-test-dev"


def shared_data_dir(explicit: str | Path | None = None) -> Path:
    """``explicit``, ``$PREFLOOP_SHARED_DATA``, or ``shared/data`` beside the project checkout.

    Raises:
        store.InvalidInputError: none of them holds the HH-RLHF file.
    """
    candidates = [Path(explicit)] if explicit else []
    if os.environ.get("PREFLOOP_SHARED_DATA"):
        candidates.append(Path(os.environ["PREFLOOP_SHARED_DATA"]))
    here = Path(__file__).resolve().parent.parent
    candidates += [here.parent / "shared" / "data", Path.cwd().parent / "shared" / "data",
                   Path.cwd() / "shared" / "data"]
    for c in candidates:
        if (c / HH).exists():
            return c
    raise store.InvalidInputError(str(candidates[0] if candidates else "shared/data"), None, None,
                                  "the shared data (hh-rlhf, alpaca-eval, mt-bench) was not found; "
                                  "pass --data DIR or set PREFLOOP_SHARED_DATA")


def run_demo(s: store.Store, *, quick: bool = False, data: str | Path | None = None,
             fresh: bool = False, console: Console | None = None) -> dict[str, Any]:
    """Run (or resume) the demo on store ``s``; returns the summary dict also printed."""
    from prefloop.judge.agreement import judge_agreement
    from prefloop.judge.backends import make_backend
    from prefloop.judge.batch import run_batch
    from prefloop.models import DEFAULT_MODEL, default_model_path
    from prefloop.training.generate import GenParams, generate
    from prefloop.training.train import train

    console = console or Console()
    plan = QUICK if quick else FULL
    data_dir = shared_data_dir(data)
    config = {"demo": "quick" if quick else "full", "plan": asdict(plan)}
    pipe = Pipeline(s, "demo", config, resume=not fresh, reuse_finished=not fresh, console=console)
    if pipe.already_finished:
        console.print("This demo already finished; its summary follows (use --fresh to run it again).")
    demo_id = pipe.run.id

    def imports():
        out = {}
        for name, rel, fmt in (("hh", HH, "hh"), ("alpaca_eval", ALPACA, "alpaca-eval"),
                               ("mt_bench", MT_BENCH, "prompts")):
            r = import_file(s, data_dir / rel, fmt)
            console.print(f"  {rel}: {r.lines_read} lines, {r.imported} imported, "
                          f"{r.duplicates} duplicates, {r.rejected} rejected")
            out[name] = {"lines": r.lines_read, "imported": r.imported, "rejected": r.rejected}
        return out

    def export():
        out = s.path.resolve().parent / "runs" / f"demo-{demo_id}-export"
        r = export_pairs(s, out, PairFilters(source="human", dataset=HH_DATASET, test_fraction=0.1),
                         overwrite=True)
        console.print(f"  export {r.export.id}: {r.n_train} train / {r.n_test} held-out human pairs")
        return {"export_id": r.export.id, "train": r.n_train, "test": r.n_test}

    def convert():
        path = default_model_path()
        return {"path": str(path)}

    pipe.stage("import", "1. Import HH-RLHF (human), AlpacaEval (AI) and MT-Bench prompts", imports)
    ex = pipe.stage("export", "   Export human HH pairs with a held-out split", export)
    pipe.stage("model", f"   Embedded model {DEFAULT_MODEL} (converted once, then cached)", convert)
    export_id = ex["export_id"]

    def rm():
        r = train(s, "rm", overrides={
            "model": "minilm", "export_id": export_id, "max_steps": plan.rm_steps,
            "max_train_pairs": plan.rm_steps * plan.rm_batch,
            "max_length": plan.rm_max_length, "per_device_train_batch_size": plan.rm_batch,
            "learning_rate": 5e-5, "max_eval_pairs": plan.eval_pairs, "save_steps": 10_000,
            "logging_steps": 5}, pipeline_run_id=demo_id)
        ev = r.summary.get("eval", {}).get("all", {})
        return {"run_id": r.run.id, "accuracy": ev.get("accuracy"), "ece": ev.get("ece"),
                "margin": ev.get("margin"), "eval_pairs": ev.get("n"), "steps": r.summary["steps"]}

    def dpo():
        r = train(s, "dpo", overrides={
            "model": DEFAULT_MODEL, "export_id": export_id, "max_steps": plan.dpo_steps,
            "max_train_pairs": plan.dpo_steps * 2,
            "max_length": plan.dpo_max_length, "max_eval_pairs": plan.eval_pairs,
            "save_steps": 10_000, "logging_steps": 2}, pipeline_run_id=demo_id)
        ev = r.summary.get("eval", {})
        return {"run_id": r.run.id, "implicit_reward_accuracy": ev.get("rewards/accuracies"),
                "implicit_reward_margin": ev.get("rewards/margins"), "steps": r.summary["steps"]}

    rm_res = pipe.stage("rm", "2. Reward model (MiniLM, Bradley-Terry) on human pairs", rm)
    dpo_res = pipe.stage("dpo", f"3. DPO on {DEFAULT_MODEL}", dpo)

    def ppo():
        r = train(s, "ppo", overrides={
            "model": f"run:{dpo_res['run_id']}", "reward_model": f"run:{rm_res['run_id']}",
            "export_id": export_id, "max_steps": plan.ppo_steps, "batch_size": plan.ppo_batch,
            "max_train_pairs": 200,
            "mini_batch_size": max(1, plan.ppo_batch // 2), "ppo_epochs": 2,
            "max_new_tokens": plan.ppo_new_tokens, "max_prompt_length": 192, "save_steps": 10_000},
            pipeline_run_id=demo_id)
        metrics = s.runs.metrics(r.run.id)
        last = {m.name: m.value for m in metrics if m.step == r.summary["iterations"]}
        return {"run_id": r.run.id, "reward_first": r.summary["reward_first"],
                "reward_last": r.summary["reward_last"], "kl_last": r.summary["kl_last"],
                "entropy": last.get("entropy"), "iterations": r.summary["iterations"]}

    ppo_res = pipe.stage("ppo", "4. PPO with the reward model", ppo)

    def gen():
        r = generate(s, f"run:{ppo_res['run_id']}", "mt-bench", limit=plan.gen_prompts,
                     params=GenParams(n=plan.gen_n, max_new_tokens=plan.gen_new_tokens, batch_size=16),
                     reward_model=f"run:{rm_res['run_id']}", select="uncertain", n_tasks=plan.tasks,
                     pipeline_run_id=demo_id)
        return {"run_id": r.run.id, "responses": r.n_responses, "prompts": r.n_prompts,
                "tasks": len(r.task_ids), "tokens_per_second": r.tokens_per_second,
                "mean_reward": r.mean_reward}

    gen_res = pipe.stage("generate", "5. New responses to MT-Bench prompts from the PPO policy", gen)

    def judging():
        backend = make_backend("local", store=s)
        out = {}
        for name, mode, source, dataset, limit in (
                ("new_pairs", "pairwise", "tasks", "mt-bench", plan.tasks),
                ("critique", "critique", "tasks", "mt-bench", max(1, plan.critique_responses // 2)),
                ("hh_pairs", "pairwise", "human", HH_DATASET, plan.judge_hh_pairs)):
            r = run_batch(s, mode, backend, source=source, dataset=dataset, limit=limit,
                          concurrency=1, max_tokens=plan.critique_tokens,
                          pipeline_run_id=demo_id)
            sm = r.summary
            out[name] = {"run_id": r.run.id, "calls": sm["calls"], "cached": sm["cached"],
                         "comparisons": sm["comparisons"], "revisions": sm["revisions"],
                         "unparseable": sm["unparseable"]}
        agree = judge_agreement(s, DEFAULT_MODEL)["all"]
        out["agreement"] = {k: agree.get(k) for k in ("pairs", "accuracy", "kappa",
                                                      "position_consistency", "length_bias")}
        return out

    judge_res = pipe.stage("judge", "6. Constitutional judge batch (pairwise + critique, local SmolLM2)",
                           judging)

    def queue():
        admins = [a for a in s.annotators.list() if a.role == "admin" and a.active]
        created = False
        if not admins:
            from prefloop.annotate_app.auth import hash_password

            password = os.environ.get("PREFLOOP_ADMIN_PASSWORD") or secrets.token_urlsafe(9)
            s.annotators.add("admin", "admin", hash_password(password))
            created = True
            shown = ("from PREFLOOP_ADMIN_PASSWORD" if os.environ.get("PREFLOOP_ADMIN_PASSWORD")
                     else password)
            console.print(f"  Created user [bold]admin[/] with password [bold]{shown}[/] "
                          "(shown once, stored only as an argon2 hash; change it with "
                          "`prefloop users passwd admin`)")
        open_tasks = s.tasks.count_open()
        return {"admin_created": created, "open_tasks": open_tasks,
                "admin": admins[0].name if admins else "admin"}

    q = pipe.stage("queue", "7. Queue the most uncertain pairs for people", queue)
    summary = _summary(s, pipe, rm_res, dpo_res, ppo_res, gen_res, judge_res, q)
    pipe.finish({"table": summary})
    _print_summary(console, s, summary, pipe)
    return summary


def _summary(s, pipe, rm, dpo, ppo, gen, judge, queue) -> dict[str, Any]:
    from prefloop.store.stats import store_stats

    st = store_stats(s)
    by_kind: dict[str, int] = {}
    for row in st.comparisons_by_source:
        key = f"{row['labeler_kind']}: {row['labeler']}"
        by_kind[key] = by_kind.get(key, 0) + row["comparisons"]
    return {"comparisons_by_source": by_kind, "tables": st.tables, "rm": rm, "dpo": dpo, "ppo": ppo,
            "generate": gen, "judge": judge, "queue": queue,
            "seconds": {k: v["seconds"] for k, v in pipe.stages.items()}}


def _f(v, digits=3) -> str:
    return "-" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _print_summary(console: Console, s: store.Store, sm: dict[str, Any], pipe: Pipeline) -> None:
    t = Table(title=f"prefloop demo summary (run {pipe.run.id})", show_lines=False)
    t.add_column("stage")
    t.add_column("result")
    t.add_column("seconds", justify="right")
    sec = sm["seconds"]
    imp = pipe.stages["import"]
    t.add_row("import", f"HH {imp['hh']['imported']} pairs ({imp['hh']['rejected']} rejected), "
              f"AlpacaEval {imp['alpaca_eval']['imported']} rows, MT-Bench {imp['mt_bench']['imported']} prompts",
              _f(sec["import"], 0))
    ex = pipe.stages["export"]
    t.add_row("export", f"{ex['train']} train / {ex['test']} held-out human pairs", _f(sec["export"], 0))
    t.add_row("reward model", f"run {sm['rm']['run_id']}: held-out accuracy {_f(sm['rm']['accuracy'])}, "
              f"ECE {_f(sm['rm']['ece'])} on {sm['rm']['eval_pairs']} pairs ({sm['rm']['steps']} steps)",
              _f(sec["rm"], 0))
    t.add_row("DPO", f"run {sm['dpo']['run_id']}: implicit-reward accuracy "
              f"{_f(sm['dpo']['implicit_reward_accuracy'])}, margin {_f(sm['dpo']['implicit_reward_margin'])}",
              _f(sec["dpo"], 0))
    t.add_row("PPO", f"run {sm['ppo']['run_id']}: reward {_f(sm['ppo']['reward_first'])} -> "
              f"{_f(sm['ppo']['reward_last'])}, KL {_f(sm['ppo']['kl_last'])} nats "
              f"({sm['ppo']['iterations']} iterations)", _f(sec["ppo"], 0))
    g = sm["generate"]
    t.add_row("generate", f"run {g['run_id']}: {g['responses']} responses to {g['prompts']} MT-Bench "
              f"prompts, {_f(g['tokens_per_second'], 1)} tokens/s, {g['tasks']} tasks queued",
              _f(sec["generate"], 0))
    j = sm["judge"]
    a = j["agreement"]
    t.add_row("judge", f"pairwise {j['new_pairs']['comparisons']} + {j['hh_pairs']['comparisons']} "
              f"comparisons, {j['critique']['revisions']} revisions; vs people on {a['pairs']} HH pairs: "
              f"accuracy {_f(a['accuracy'])}, kappa {_f(a['kappa'])}, position consistency "
              f"{_f(a['position_consistency'])}", _f(sec["judge"], 0))
    t.add_row("queue", f"{sm['queue']['open_tasks']} open tasks", _f(sec["queue"], 0))
    t.add_row("total", "", _f(sum(sec.values()), 0))
    console.print(t)
    src = Table(title="comparisons by source")
    src.add_column("labeler")
    src.add_column("comparisons", justify="right")
    for k, v in sm["comparisons_by_source"].items():
        src.add_row(k, str(v))
    console.print(src)
    console.print(f"Open the labeling app: [bold]{_prefloop_command()} --db {Path(s.path).resolve()} "
                  f"annotate[/] then http://127.0.0.1:7860 (log in as {sm['queue']['admin']}; "
                  "Admin tab for the dashboard, Next task to label)", soft_wrap=True)


def _prefloop_command() -> str:
    """How to call this ``prefloop`` from any directory: its absolute path when it is not the
    one on ``PATH`` (``make demo`` runs ``.venv/bin/prefloop`` without activating the venv)."""
    exe = Path(sys.argv[0])
    if exe.name != "prefloop" or not exe.exists():
        return "prefloop"   # python -m prefloop, or a test runner
    on_path = shutil.which("prefloop")
    return "prefloop" if on_path and Path(on_path).resolve() == exe.resolve() else str(exe.resolve())
