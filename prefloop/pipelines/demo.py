"""``prefloop demo``: the whole loop on real data and the embedded SmolLM2, in one command, and
the evidence that it made the model better.

Stages (each recorded; re-running resumes):

1. import the shared HH-RLHF (human labels), AlpacaEval (AI labels) and MT-Bench files;
2. export the human HH pairs as two disjoint halves of the training prompts (A, B) that share
   one held-out split; convert the embedded model;
3. a **proxy** reward model (MiniLM, Bradley-Terry) on half A, and a **gold** reward model on
   half B that no policy ever trains against (Gao et al. 2023);
4. **on-policy DPO** (iterative DPO; Xiong et al. 2024, :mod:`prefloop.pipelines.onpolicy`):
   ``dpo_rounds`` rounds, each sampling ``dpo_n`` responses to ``dpo_prompts`` of half A's
   prompts from the current policy; the proxy reward model labels the best over the worst of
   each (AI labels in the store), and DPO (LoRA at ``dpo_learning_rate``, 5e-4: the README's
   DPO LoRA sweep; 0.8-1.5 nats of KL in 24 steps) learns them against the base as reference;
5. **PPO** (:mod:`prefloop.training.ppo`) from the DPO policy on the proxy reward model (in its
   standard units, ``normalize_reward``; its reference and KL penalty are the DPO policy's), the
   gold reward model logged beside it (``reward_gold``, never optimized): the final policy, the
   usual order of the two (Ouyang et al. 2022 start PPO from a tuned policy; Xiong et al. 2024
   follow DPO with on-policy rounds). The eval's KL is to the base, so it counts both stages;
6. **evaluation** (:mod:`prefloop.pipelines.evaluation`): base vs DPO vs the final (DPO+PPO) policy
   on the held-out prompts under both reward models (raw and length-controlled) and the local AI
   judge (both orders, length controlled), with 95% CIs, KL to the base, mean tokens and EOS
   rate; blind pairwise tasks queued for people;
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

__all__ = ["DemoPlan", "FULL", "QUICK", "run_demo", "shared_data_dir", "demo_targets"]


@dataclass(frozen=True)
class DemoPlan:
    """Budgets of each stage (steps, lengths, counts): :data:`FULL` 9-29 minutes of stages on 2
    CPU cores, depending on the machine (nine runs from fresh clones, the README's "The loop":
    12 minutes for a plan of this cost on one machine, 25-29 for this plan on one 2.1 times slower), :data:`QUICK` 3-6."""

    rm_steps: int
    rm_max_length: int
    rm_eval_pairs: int
    dpo_rounds: int            # on-policy DPO: sample-label-train rounds
    dpo_prompts: int           # prompts per round
    dpo_n: int                 # samples per prompt (the best and the worst make a pair)
    dpo_steps: int             # DPO steps per round
    dpo_beta: float
    dpo_learning_rate: float   # LoRA; the README's DPO LoRA sweep (5e-4: KL 0.8-1.5 nats in 24 steps)
    ppo_iterations: int
    ppo_batch: int             # rollouts per PPO iteration
    ppo_mini_batch: int        # rollouts per gradient step
    ppo_epochs: int            # passes over each rollout batch
    ppo_kl_coef: float
    eval_prompts: int
    eval_tokens: int
    max_prompt_tokens: int
    judge_models: int          # how many policies (besides the base) the AI judge compares
    tasks: int
    critique_responses: int


FULL = DemoPlan(rm_steps=72, rm_max_length=160, rm_eval_pairs=96, dpo_rounds=1, dpo_prompts=64,
                dpo_n=4, dpo_steps=24, dpo_beta=0.1, dpo_learning_rate=5e-4, ppo_iterations=4,
                ppo_batch=16, ppo_mini_batch=8, ppo_epochs=4, ppo_kl_coef=0.05, eval_prompts=96, eval_tokens=48,
                max_prompt_tokens=128, judge_models=1, tasks=12, critique_responses=1)
QUICK = DemoPlan(rm_steps=12, rm_max_length=128, rm_eval_pairs=32, dpo_rounds=1, dpo_prompts=12,
                 dpo_n=2, dpo_steps=4, dpo_beta=0.1, dpo_learning_rate=1e-3, ppo_iterations=2, ppo_batch=4,
                 ppo_mini_batch=4, ppo_epochs=2, ppo_kl_coef=0.1, eval_prompts=24, eval_tokens=32,
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
    from prefloop.training.train import train

    console = console or Console()
    plan = QUICK if quick else FULL
    data_dir = shared_data_dir(data)
    config = {"demo": "quick" if quick else "full", "plan": asdict(plan), "version": 11}
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

    def onpolicy_dpo():
        from prefloop.pipelines.onpolicy import onpolicy_config, run_onpolicy

        cfg = onpolicy_config("iterative-dpo", {
            "model": DEFAULT_MODEL, "export_id": half_a, "reward_model": proxy_rm,
            "rounds": plan.dpo_rounds, "prompts_per_round": plan.dpo_prompts, "n": plan.dpo_n,
            "max_new_tokens": plan.eval_tokens, "max_prompt_tokens": plan.max_prompt_tokens,
            "max_steps": plan.dpo_steps, "beta": plan.dpo_beta, "learning_rate": plan.dpo_learning_rate,
            "per_device_train_batch_size": 2,
            "lora_layers": 0.5, "logging_steps": 2, "seed": 1}, "demo")
        r = run_onpolicy(s, cfg, pipeline_run_id=demo_id, console=console)
        final = s.runs.get(r.run.summary["final_run_id"])
        console.print("  " + "; ".join(
            f"round {i}: {x['pairs']} pairs, mean proxy reward of the samples {x['mean_reward']:.3f}"
            for i, x in enumerate(r.rounds, 1)))
        return {"run_id": final.id, "pipeline_run_id": r.run.id, "rounds": len(r.rounds),
                "pairs": sum(x["pairs"] for x in r.rounds), "steps": sum(x["steps"] for x in r.rounds),
                "mean_reward": [x["mean_reward"] for x in r.rounds]}

    dpo_res = pipe.stage("dpo", f"4. On-policy DPO: {plan.dpo_rounds} rounds of {plan.dpo_n} samples "
                         f"per prompt from the policy, best vs worst under the proxy RM", onpolicy_dpo)

    def ppo():
        r = train(s, "ppo", overrides={
            "model": f"run:{dpo_res['run_id']}", "export_id": half_a, "reward_model": proxy_rm,
            "gold_reward_model": gold_rm, "max_steps": plan.ppo_iterations,
            "batch_size": plan.ppo_batch, "mini_batch_size": plan.ppo_mini_batch,
            "ppo_epochs": plan.ppo_epochs,
            "max_new_tokens": plan.eval_tokens, "max_prompt_length": plan.max_prompt_tokens,
            "kl_coef": plan.ppo_kl_coef, "save_steps": 10_000}, pipeline_run_id=demo_id)
        curve = {name: [m.value for m in s.runs.metrics(r.run.id, name)]
                 for name in ("reward_model", "reward_gold", "kl")}
        return {"run_id": r.run.id, "iterations": r.summary["iterations"], **curve}

    ppo_res = pipe.stage("ppo", f"5. PPO from the DPO policy on the proxy RM ({plan.ppo_iterations} "
                         "iterations; the gold RM logged, never optimized)", ppo)

    def evaluate():
        base = DEFAULT_MODEL
        judged = [f"run:{dpo_res['run_id']}", f"run:{ppo_res['run_id']}"][-plan.judge_models:]
        cfg = EvalConfig(models=(base, f"run:{dpo_res['run_id']}", f"run:{ppo_res['run_id']}"),
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
    summary = {"proxy_rm": proxy, "gold_rm": gold, "dpo": dpo_res, "ppo": ppo_res, "eval": ev, "cai": cai,
               "queue": q, "seconds": {k: v["seconds"] for k, v in pipe.stages.items()}}
    pipe.finish({"table": summary})
    _print_summary(console, s, summary, pipe)
    eval_run = s.runs.get(ev["run_id"])
    print_eval(console, eval_run)
    print_leaderboards(console, (eval_run.summary or {}).get("leaderboard", {}),
                       (eval_run.summary or {}).get("leaderboard_length_coef"))
    _print_targets(console, demo_targets(eval_run.summary or {}, f"run:{dpo_res['run_id']}",
                                         f"run:{ppo_res['run_id']}", ppo_res, summary["seconds"]))
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
    t.add_row("on-policy DPO", f"run {d['run_id']}: {d['rounds']} rounds, {d['pairs']} pairs labeled by "
              f"the proxy RM, {d['steps']} steps", _f(sec["dpo"], 0))
    p = sm["ppo"]
    curve = ", ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(p["reward_model"], p["reward_gold"]))
    t.add_row("PPO from DPO (final)", f"run {p['run_id']}: {p['iterations']} iterations; proxy/gold reward per "
              f"iteration {curve}; KL last {_f(p['kl'][-1] if p['kl'] else None, 2)} nats", _f(sec["ppo"], 0))
    t.add_row("evaluation", f"run {sm['eval']['run_id']} (table below)", _f(sec["eval"], 0))
    t.add_row("constitutional AI", f"run {sm['cai']['run_id']}: {sm['cai']['revisions']} revisions",
              _f(sec["cai"], 0))
    t.add_row("queue", f"{sm['queue']['open_tasks']} open tasks", _f(sec["queue"], 0))
    t.add_row("total", "", _f(sum(sec.values()), 0))
    console.print(t)


#: The demo's targets (2 CPU cores): a total under 20 minutes; the final policy beats the base
#: under the gold reward model (win rate >= 0.60 with its CI above 0.5, length-controlled win
#: rate > 0.55) within 5 nats of KL per response; DPO and the RL policy each beat the base under
#: the gold RM (CI low > 0.5); PPO's proxy reward rises while its gold reward does not fall.
TARGET_SECONDS = 20 * 60


def demo_targets(ev: dict[str, Any], dpo: str, final: str, ppo: dict[str, Any],
                 seconds: dict[str, float]) -> list[tuple[str, str, bool]]:
    """``(target, measured figure, met)`` rows for the demo's targets (see :data:`TARGET_SECONDS`)
    from an eval run's summary (``ev``: its ``models`` rows with ``gold.win``,
    ``gold.length_controlled`` as ``{rate, low, high}``, and ``kl`` in nats per response), the
    DPO and final model specs, PPO's per-iteration curves and the stages' seconds."""
    rows = {r["model"]: r for r in ev.get("models", [])}

    def win(model: str, key: str) -> dict[str, float] | None:
        w = (rows.get(model, {}).get("gold") or {}).get(key)
        return w if w and w.get("n", 1) else None

    def fmt(w):
        return "-" if w is None else f"{w['rate']:.2f} [{w['low']:.2f}, {w['high']:.2f}]"

    out = []
    total = sum(seconds.values())
    out.append(("demo under 20 minutes", f"{total / 60:.1f} min", total <= TARGET_SECONDS))
    g, lc, kl = win(final, "win"), win(final, "length_controlled"), rows.get(final, {}).get("kl")
    out.append(("final policy: gold win >= 0.60, CI low > 0.5", fmt(g),
                bool(g and g["rate"] >= 0.60 and g["low"] > 0.5)))
    out.append(("final policy: length-controlled gold win > 0.55", fmt(lc), bool(lc and lc["rate"] > 0.55)))
    out.append(("final policy: KL <= 5 nats per response", "-" if kl is None else f"{kl:.2f}",
                kl is not None and kl <= 5))
    for name, model in (("DPO", dpo), ("RL policy (PPO from DPO)", final)):
        w = win(model, "win")
        out.append((f"{name} beats the base under the gold RM (CI low > 0.5)", fmt(w), bool(w and w["low"] > 0.5)))
    proxy, gold = ppo.get("reward_model") or [], ppo.get("reward_gold") or []
    if len(proxy) >= 2 and len(gold) >= 2:
        h = max(1, len(proxy) // 2)       # first half vs second half of the iterations
        p0, p1 = sum(proxy[:h]) / h, sum(proxy[h:]) / (len(proxy) - h)
        g0, g1 = sum(gold[:h]) / h, sum(gold[h:]) / (len(gold) - h)
        out.append(("PPO: proxy reward rises, gold reward does not fall (first vs second half)",
                    f"proxy {p0:.3f} -> {p1:.3f}, gold {g0:.3f} -> {g1:.3f}", p1 > p0 and g1 >= g0))
    return out


def _print_targets(console: Console, rows: list[tuple[str, str, bool]]) -> None:
    t = Table(title="the demo's targets (issue 24; 2 CPU cores)")
    t.add_column("target")
    t.add_column("measured", justify="right")
    t.add_column("", justify="center")
    for name, fig, met in rows:
        t.add_row(name, fig, "met" if met else "[bold red]gap[/]")
    console.print(t)
    missed = [n for n, _, met in rows if not met]
    console.print(f"{len(rows) - len(missed)} of {len(rows)} targets met"
                  + (f"; the gap: {'; '.join(missed)}" if missed else ""))


def _prefloop_command() -> str:
    """How to call this ``prefloop`` from any directory: its absolute path when it is not the
    one on ``PATH`` (``make demo`` runs ``.venv/bin/prefloop`` without activating the venv)."""
    exe = Path(sys.argv[0])
    if exe.name != "prefloop" or not exe.exists():
        return "prefloop"   # python -m prefloop, or a test runner
    on_path = shutil.which("prefloop")
    return "prefloop" if on_path and Path(on_path).resolve() == exe.resolve() else str(exe.resolve())
