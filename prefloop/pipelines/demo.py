"""``prefloop demo``: the whole loop on real data and the embedded SmolLM2, in one command, and
the evidence that it made the model better.

Stages (each recorded; re-running resumes):

1. import the shared HH-RLHF (human labels), AlpacaEval (AI labels) and MT-Bench files;
2. export the human HH pairs as two disjoint halves of the training prompts (A, B) that share
   one held-out split; convert the embedded model;
3. a **proxy** reward model (MiniLM, Bradley-Terry) on half A, and a **gold** reward model on
   half B that no policy ever trains against (Gao et al. 2023);
4. **DPO** (LoRA) on half A's human pairs;
5. **rejection-sampling fine-tuning** (best-of-n SFT; Touvron et al. 2023, Dong et al. 2023)
   from the base model: it samples ``rs_n`` responses to half A's prompts, the proxy reward
   model labels the best of each (AI labels in the store), and SFT (LoRA) learns them. On 2
   CPU cores this is the update that measurably helps within the budget; PPO's tuning runs
   (``bench/ppo_tuning.py``) show why PPO is not used here;
6. **evaluation** (:mod:`prefloop.pipelines.evaluation`): base vs DPO vs the final policy on the
   held-out prompts under both reward models and the local AI judge (both orders, length
   controlled), with 95% CIs and KL to the base; blind pairwise tasks queued for people;
7. a Constitutional-AI batch (critique and revision, local judge) on a few of the final
   policy's responses, an ``admin`` user, and the summary.
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
from prefloop.store.export import export_pairs
from prefloop.store.importer import import_file
from prefloop.store.pairs import PairFilters

from .base import Pipeline
from .errors import DemoDataError

__all__ = ["DemoPlan", "FULL", "QUICK", "run_demo", "shared_data_dir"]


@dataclass(frozen=True)
class DemoPlan:
    """Budgets of each stage (steps, lengths, counts); :data:`FULL` fits in 20 minutes and
    :data:`QUICK` in about 6 on 2 CPU cores."""

    rm_steps: int
    rm_max_length: int
    rm_eval_pairs: int
    dpo_steps: int
    dpo_max_length: int
    rs_prompts: int
    rs_n: int
    rs_epochs: float
    eval_prompts: int
    eval_tokens: int
    max_prompt_tokens: int
    judge_models: int          # how many policies (besides the base) the AI judge compares
    tasks: int
    critique_responses: int


FULL = DemoPlan(rm_steps=72, rm_max_length=160, rm_eval_pairs=96, dpo_steps=8, dpo_max_length=160,
                rs_prompts=64, rs_n=4, rs_epochs=2, eval_prompts=96, eval_tokens=48,
                max_prompt_tokens=128, judge_models=1, tasks=12, critique_responses=1)
QUICK = DemoPlan(rm_steps=12, rm_max_length=128, rm_eval_pairs=32, dpo_steps=4, dpo_max_length=160,
                 rs_prompts=16, rs_n=2, rs_epochs=1, eval_prompts=24, eval_tokens=32,
                 max_prompt_tokens=128, judge_models=1, tasks=4, critique_responses=1)

HH = "hh-rlhf/harmless-base-test-dev.jsonl.gz"
ALPACA = "alpaca-eval/alpaca-7b_vs_text-davinci-003_gpt4-judge.json"
MT_BENCH = "mt-bench/question.jsonl"
HH_DATASET = "harmless-base-test-dev"


def shared_data_dir(explicit: str | Path | None = None) -> Path:
    """``explicit``, ``$PREFLOOP_SHARED_DATA``, or ``shared/data`` beside the project checkout.

    Raises:
        DemoDataError: none of them holds the HH-RLHF file.
    """
    candidates = [Path(explicit)] if explicit else []
    if os.environ.get("PREFLOOP_SHARED_DATA"):
        candidates.append(Path(os.environ["PREFLOOP_SHARED_DATA"]))
    here = Path(__file__).resolve().parents[2]     # the checkout: prefloop/pipelines/demo.py
    candidates += [here.parent / "shared" / "data", Path.cwd().parent / "shared" / "data",
                   Path.cwd() / "shared" / "data"]
    for c in candidates:
        if (c / HH).exists():
            return c
    raise DemoDataError(f"{candidates[0] if candidates else 'shared/data'}: the shared data (hh-rlhf, "
                        "alpaca-eval, mt-bench) was not found; pass --data DIR or set PREFLOOP_SHARED_DATA")


def run_demo(s: store.Store, *, quick: bool = False, data: str | Path | None = None,
             fresh: bool = False, console: Console | None = None) -> dict[str, Any]:
    """Run (or resume) the demo on store ``s``; returns the summary dict also printed."""
    from prefloop.core.models import DEFAULT_MODEL, default_model_path
    from prefloop.judge.backends import make_backend
    from prefloop.judge.batch import run_batch
    from prefloop.pipelines.evaluation import EvalConfig, run_eval
    from prefloop.pipelines.report import print_eval, print_leaderboards
    from prefloop.training.generate import GenParams, generate, reward_labeler
    from prefloop.training.train import train

    console = console or Console()
    plan = QUICK if quick else FULL
    data_dir = shared_data_dir(data)
    config = {"demo": "quick" if quick else "full", "plan": asdict(plan), "version": 5}
    pipe = Pipeline(s, "demo", config, resume=not fresh, reuse_finished=not fresh, console=console)
    if pipe.already_finished:
        console.print("This demo already finished; its summary follows (use --fresh to run it again).")
    demo_id = pipe.run.id
    runs = s.path.resolve().parent / "runs"

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
        out = {}
        for half, shard in (("a", 0), ("b", 1)):
            r = export_pairs(s, runs / f"demo-{demo_id}-export-{half}", PairFilters(
                source="human", dataset=HH_DATASET, test_fraction=0.15, shard=shard, shards=2),
                overwrite=True)
            console.print(f"  half {half.upper()}: export {r.export.id}, {r.n_train} train pairs; "
                          f"{r.n_test} held-out pairs (the same in both halves)")
            out[half] = {"export_id": r.export.id, "train": r.n_train, "test": r.n_test}
        return out

    pipe.stage("import", "1. Import HH-RLHF (human), AlpacaEval (AI) and MT-Bench prompts", imports)
    ex = pipe.stage("export", "2. Export human HH pairs: halves A and B, one held-out split", export)
    pipe.stage("model", f"   Embedded model {DEFAULT_MODEL} (converted once, then cached)",
               lambda: {"path": str(default_model_path())})
    half_a, half_b = ex["a"]["export_id"], ex["b"]["export_id"]

    def rm(export_id):
        def fn():
            r = train(s, "rm", overrides={
                "model": "minilm", "export_id": export_id, "max_steps": plan.rm_steps,
                "max_length": plan.rm_max_length,
                "per_device_train_batch_size": 8, "learning_rate": 5e-5,
                "max_eval_pairs": plan.rm_eval_pairs, "save_steps": 10_000, "logging_steps": 10},
                pipeline_run_id=demo_id)
            ev = r.summary.get("eval", {}).get("all", {})
            return {"run_id": r.run.id, "accuracy": ev.get("accuracy"), "ece": ev.get("ece"),
                    "eval_pairs": ev.get("n"), "steps": r.summary["steps"]}
        return fn

    proxy = pipe.stage("rm", "3. Proxy reward model (MiniLM, Bradley-Terry) on half A", rm(half_a))
    gold = pipe.stage("gold_rm", "   Gold reward model on half B (no policy trains against it)", rm(half_b))
    proxy_rm, gold_rm = f"run:{proxy['run_id']}", f"run:{gold['run_id']}"

    def dpo():
        r = train(s, "dpo", overrides={
            "model": DEFAULT_MODEL, "export_id": half_a, "max_steps": plan.dpo_steps,
            "max_train_pairs": plan.dpo_steps * 2, "max_length": plan.dpo_max_length,
            "use_lora": True, "lora_layers": 0.5, "learning_rate": 5e-5,
            "max_eval_pairs": 16, "save_steps": 10_000, "logging_steps": 2},
            pipeline_run_id=demo_id)
        ev = r.summary.get("eval", {})
        return {"run_id": r.run.id, "implicit_reward_accuracy": ev.get("rewards/accuracies"),
                "implicit_reward_margin": ev.get("rewards/margins"), "steps": r.summary["steps"]}

    dpo_res = pipe.stage("dpo", f"4. DPO (LoRA) on half A's human pairs, from {DEFAULT_MODEL}", dpo)

    def rejection_sampling():
        g = generate(s, DEFAULT_MODEL, f"export:{half_a}:train", limit=plan.rs_prompts,
                     params=GenParams(n=plan.rs_n, max_new_tokens=plan.eval_tokens, temperature=0.7,
                                      top_p=1.0, batch_size=32, seed=1),
                     reward_model=proxy_rm, label_best=True,
                     max_prompt_tokens=plan.max_prompt_tokens, pipeline_run_id=demo_id)
        sm = g.run.summary
        console.print(f"  {sm['responses']} samples of {g.n_prompts} prompts; the proxy RM labeled "
                      f"the best of each ({sm['labeled']}): mean reward {sm['mean_reward']:.3f}, "
                      f"of the best {sm['mean_best_reward']:.3f}")
        e = export_pairs(s, runs / f"demo-{demo_id}-export-best-of-n", PairFilters(
            source="ai", labeler=reward_labeler(proxy_rm)), overwrite=True)
        r = train(s, "sft", overrides={
            "model": DEFAULT_MODEL, "export_id": e.export.id,
            "num_train_epochs": plan.rs_epochs, "per_device_train_batch_size": 8,
            "learning_rate": 1e-4, "lr_scheduler_type": "constant", "use_lora": True,
            "lora_layers": 1.0, "max_length": plan.max_prompt_tokens + plan.eval_tokens + 8,
            "save_steps": 10_000, "logging_steps": 2}, pipeline_run_id=demo_id)
        return {"generate_run_id": g.run.id, "samples": sm["responses"], "prompts": g.n_prompts,
                "mean_reward": sm["mean_reward"], "mean_best_reward": sm["mean_best_reward"],
                "export_id": e.export.id, "run_id": r.run.id, "steps": r.summary["steps"],
                "train_loss": r.summary["train_loss"]}

    rs = pipe.stage("rs", f"5. Rejection-sampling fine-tuning: best of {plan.rs_n} under the proxy "
                    "RM, SFT (LoRA)", rejection_sampling)

    def evaluate():
        base = DEFAULT_MODEL
        judged = [f"run:{dpo_res['run_id']}", f"run:{rs['run_id']}"][-plan.judge_models:]
        cfg = EvalConfig(models=(base, f"run:{dpo_res['run_id']}", f"run:{rs['run_id']}"),
                         prompts=f"export:{half_a}", limit=plan.eval_prompts,
                         max_prompt_tokens=plan.max_prompt_tokens, reward_model=proxy_rm,
                         gold_reward_model=gold_rm, judge="local", judge_models=tuple(judged),
                         concurrency=8, tasks=plan.tasks, overlap=2,
                         max_new_tokens=plan.eval_tokens, batch_size=32)
        r = run_eval(s, cfg, pipeline_run_id=demo_id)
        return {"run_id": r.run.id}

    ev = pipe.stage("eval", "6. Evaluate base vs DPO vs the final policy on held-out prompts "
                    "(proxy RM, gold RM, AI judge, KL)", evaluate)

    def constitutional():
        backend = make_backend("local", store=s)
        r = run_batch(s, "critique", backend, source="generated", limit=plan.critique_responses,
                      concurrency=1, max_tokens=96, progress=False, pipeline_run_id=demo_id)
        return {"run_id": r.run.id, "revisions": r.summary["revisions"], "calls": r.summary["calls"]}

    cai = pipe.stage("cai", "7. Constitutional AI: critique and revise a few responses (local judge)",
                     constitutional)

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
        return {"admin_created": created, "open_tasks": s.tasks.count_open(),
                "admin": admins[0].name if admins else "admin"}

    q = pipe.stage("queue", "   Queue for people and an admin user", queue)
    summary = {"proxy_rm": proxy, "gold_rm": gold, "dpo": dpo_res, "rs": rs, "eval": ev, "cai": cai,
               "queue": q, "seconds": {k: v["seconds"] for k, v in pipe.stages.items()}}
    pipe.finish({"table": summary})
    _print_summary(console, s, summary, pipe)
    eval_run = s.runs.get(ev["run_id"])
    print_eval(console, eval_run)
    print_leaderboards(console, (eval_run.summary or {}).get("leaderboard", {}),
                       (eval_run.summary or {}).get("leaderboard_length_coef"))
    console.print(f"Open the labeling app: [bold]{_prefloop_command()} --db {Path(s.path).resolve()} "
                  f"annotate[/] then http://127.0.0.1:7860 (log in as {q['admin']}; the Models tab "
                  "rates the versions once people vote on the blind tasks)", soft_wrap=True)
    return summary


def _f(v, digits=3) -> str:
    return "-" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _print_summary(console: Console, s: store.Store, sm: dict[str, Any], pipe: Pipeline) -> None:
    t = Table(title=f"prefloop demo summary (run {pipe.run.id})", show_lines=False)
    t.add_column("stage")
    t.add_column("result")
    t.add_column("seconds", justify="right")
    sec = sm["seconds"]
    imp, ex = pipe.stages["import"], pipe.stages["export"]
    t.add_row("import", f"HH {imp['hh']['imported']} pairs ({imp['hh']['rejected']} rejected), "
              f"AlpacaEval {imp['alpaca_eval']['imported']} rows, MT-Bench {imp['mt_bench']['imported']} prompts",
              _f(sec["import"], 0))
    t.add_row("export", f"half A {ex['a']['train']} / half B {ex['b']['train']} train pairs, "
              f"{ex['a']['test']} held-out", _f(sec["export"] + sec.get("model", 0), 0))
    for key, name in (("proxy_rm", "proxy RM"), ("gold_rm", "gold RM")):
        r = sm[key]
        t.add_row(name, f"run {r['run_id']}: held-out accuracy {_f(r['accuracy'])}, ECE "
                  f"{_f(r['ece'])} on {r['eval_pairs']} pairs ({r['steps']} steps)",
                  _f(sec["rm" if key == "proxy_rm" else "gold_rm"], 0))
    d = sm["dpo"]
    t.add_row("DPO", f"run {d['run_id']}: {d['steps']} steps, implicit-reward accuracy "
              f"{_f(d['implicit_reward_accuracy'])}, margin {_f(d['implicit_reward_margin'])}",
              _f(sec["dpo"], 0))
    r = sm["rs"]
    t.add_row("rejection sampling", f"run {r['run_id']}: {r['samples']} samples of {r['prompts']} "
              f"prompts, proxy reward {_f(r['mean_reward'])} -> best {_f(r['mean_best_reward'])}; "
              f"SFT {r['steps']} steps", _f(sec["rs"], 0))
    t.add_row("evaluation", f"run {sm['eval']['run_id']} (table below)", _f(sec["eval"], 0))
    t.add_row("constitutional AI", f"run {sm['cai']['run_id']}: {sm['cai']['revisions']} revisions",
              _f(sec["cai"], 0))
    t.add_row("queue", f"{sm['queue']['open_tasks']} open tasks", _f(sec["queue"], 0))
    t.add_row("total", "", _f(sum(sec.values()), 0))
    console.print(t)


def _prefloop_command() -> str:
    """How to call this ``prefloop`` from any directory: its absolute path when it is not the
    one on ``PATH`` (``make demo`` runs ``.venv/bin/prefloop`` without activating the venv)."""
    exe = Path(sys.argv[0])
    if exe.name != "prefloop" or not exe.exists():
        return "prefloop"   # python -m prefloop, or a test runner
    on_path = shutil.which("prefloop")
    return "prefloop" if on_path and Path(on_path).resolve() == exe.resolve() else str(exe.resolve())
