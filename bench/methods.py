"""The method board: every policy method of prefloop trained from the same base on the same
labels under the same wall-clock budget, then evaluated together in one ``prefloop eval``.
Prints one table (and writes it as JSON); asserts nothing.

    python bench/methods.py [--budget 150] [--methods dpo orpo kto ppo rloo grpo rs-sft iterative-dpo]
                            [--db PATH] [--eval-prompts 96] [--out bench/out/methods.json] [--resume]

Data: the demo's (``prefloop demo``): the human HH-RLHF harmless-base pairs of
``../shared/data``, split by prompt into halves A and B that share one held-out split. Half A's
human pairs train the offline methods (DPO, ORPO, KTO) and the proxy reward model (MiniLM,
Bradley-Terry); the RL methods (PPO, RLOO, GRPO) and the on-policy ones (rejection-sampling
SFT, iterative DPO) optimize that proxy on half A's prompts; a gold reward model on half B,
which no method sees, judges too (Gao et al. 2023). With ``--db`` of a store where the demo
finished, its exports and reward models are reused; otherwise they are made here first.

Budget: each method trains LoRA adapters (its defaults otherwise) with ``max_seconds=budget``;
the on-policy methods spend part of their budget on sampling and labeling (their trainers get
what is left, per round). ``seconds`` in the table is each method's whole wall clock.

Evaluation (one eval run): every method and the base answer the same held-out prompts
(``--eval-prompts``, of the held-out split); win rates against the base under the proxy RM,
the gold RM (raw and length-controlled) and the local AI judge (SmolLM2, both orders,
length-controlled), each with a 95% bootstrap CI; KL to the base in nats per response; mean
tokens; EOS rate.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = ["dpo", "orpo", "kto", "ppo", "rloo", "grpo", "rs-sft", "iterative-dpo"]
SAMPLE_SECONDS_PER_PROMPT = 1.0     # measured: 4 samples of 48 tokens per prompt, 2 CPU cores


def prepare(s, console) -> dict:
    """Half A / half B exports and the proxy and gold reward models: the demo's, when a demo
    finished in this store, else made here with the demo's settings."""
    from prefloop.pipelines.demo import FULL, HH, HH_DATASET, shared_data_dir
    from prefloop.store.export import export_pairs
    from prefloop.store.importer import import_file
    from prefloop.store.pairs import PairFilters
    from prefloop.training.train import train

    demos = [r for r in s.runs.list(kind="demo") if r.status == "finished"]
    if demos:
        st = demos[-1].summary["stages"]
        console.print(f"reusing demo run {demos[-1].id}: exports and reward models")
        return {"half_a": st["export"]["a"]["export_id"], "half_b": st["export"]["b"]["export_id"],
                "proxy": f"run:{st['rm']['run_id']}", "gold": f"run:{st['gold_rm']['run_id']}"}
    import_file(s, shared_data_dir() / HH, "hh")
    out = {}
    for half, shard in (("a", 0), ("b", 1)):
        e = export_pairs(s, s.path.parent / f"methods-export-{half}", PairFilters(
            source="human", dataset=HH_DATASET, test_fraction=0.15, shard=shard, shards=2), overwrite=True)
        out[f"half_{half}"] = e.export.id
    for name, half in (("proxy", "half_a"), ("gold", "half_b")):
        r = train(s, "rm", overrides={
            "model": "minilm", "export_id": out[half], "max_steps": FULL.rm_steps,
            "max_length": FULL.rm_max_length, "per_device_train_batch_size": 8, "learning_rate": 5e-5,
            "max_eval_pairs": FULL.rm_eval_pairs, "save_steps": 10_000, "logging_steps": 10})
        out[name] = f"run:{r.run.id}"
        console.print(f"{name} RM: run {r.run.id}, held-out accuracy "
                      f"{r.summary['eval']['all']['accuracy']:.3f}")
    return out


def kto_export(s, half_a: int) -> int:
    """Half A's labels again, unpaired (each pair's chosen desirable, its rejected not)."""
    from prefloop.store.export import ExportOptions, export_pairs
    from prefloop.store.pairs import PairFilters

    f = s.exports.get(half_a).filters
    filters = PairFilters(**{k: v for k, v in f.items() if k in PairFilters.__dataclass_fields__})
    return export_pairs(s, s.path.parent / "methods-export-kto", filters,
                        ExportOptions(format="kto", kto_pairs=True), overwrite=True).export.id


def train_method(s, method: str, data: dict, budget: float, base: str) -> dict:
    """Train one method from ``base`` within ``budget`` seconds; returns ``{run_id, seconds,
    steps, stopped_by_budget}``."""
    from prefloop.pipelines.onpolicy import onpolicy_config, run_onpolicy
    from prefloop.training.train import train

    t0 = time.perf_counter()
    common = {"model": base, "max_seconds": budget, "save_steps": 10_000, "use_lora": True}
    pref = {**common, "max_steps": 10_000, "max_length": 192, "max_train_pairs": 600,
            "max_eval_pairs": 32, "logging_steps": 5}
    if method in ("dpo", "orpo"):
        r = train(s, method, overrides={**pref, "export_id": data["half_a"]})
    elif method == "kto":
        r = train(s, "kto", overrides={**pref, "export_id": data["kto"], "per_device_train_batch_size": 4})
    elif method == "ppo":
        r = train(s, "ppo", overrides={**common, "export_id": data["half_a"], "max_steps": 10_000,
                                        "reward_model": data["proxy"], "second_reward_model": data["gold"],
                                        "max_new_tokens": 48, "max_prompt_length": 128})
    elif method in ("rloo", "grpo"):
        r = train(s, method, overrides={**common, "export_id": data["half_a"], "max_steps": 10_000,
                                         "reward_model": data["proxy"], "second_reward_model": data["gold"],
                                         "max_completion_length": 48, "logging_steps": 1})
    else:
        rounds = 2 if method == "iterative-dpo" else 1
        prompts = 32 if method == "iterative-dpo" else 64
        sampling = rounds * prompts * SAMPLE_SECONDS_PER_PROMPT
        cfg = onpolicy_config(method, {
            "model": base, "export_id": data["half_a"], "reward_model": data["proxy"],
            "rounds": rounds, "prompts_per_round": prompts, "n": 4, "max_new_tokens": 48,
            "max_prompt_tokens": 128, "max_steps": 10_000, "save_steps": 10_000,
            "max_seconds": max(10.0, (budget - sampling) / rounds), "logging_steps": 5,
            **({"num_train_epochs": 2} if method == "rs-sft" else {})})
        res = run_onpolicy(s, cfg, fresh=True)
        last = s.runs.get(res.run.summary["final_run_id"])
        return {"run_id": last.id, "seconds": round(time.perf_counter() - t0, 1),
                "steps": sum(x["steps"] for x in res.rounds), "pairs": sum(x["pairs"] for x in res.rounds),
                "stopped_by_budget": last.summary.get("stopped_by_budget")}
    return {"run_id": r.run.id, "seconds": round(time.perf_counter() - t0, 1),
            "steps": r.summary.get("steps"), "stopped_by_budget": r.summary.get("stopped_by_budget")}


def _ci(w: dict | None) -> str:
    if not w or not w.get("n"):
        return "-"
    return f"{w['rate']:.2f} [{w['low']:.2f}, {w['high']:.2f}]"


def board_rows(summary: dict, trained: dict) -> list[dict]:
    """One row per method (and the base) from the eval summary."""
    by_run = {r["run_id"]: r for r in summary["models"]}
    rows = []
    base = next(r for r in summary["models"] if r["model"] == summary["baseline"])
    for method, t in [("base", None), *trained.items()]:
        r = base if t is None else by_run[t["run_id"]]
        rows.append({"method": method, "model": r["model"],
                     "proxy": r.get("proxy", {}).get("win"), "proxy_lc": r.get("proxy", {}).get("length_controlled"),
                     "gold": r.get("gold", {}).get("win"), "gold_lc": r.get("gold", {}).get("length_controlled"),
                     "judge": r.get("judge", {}).get("win"), "judge_lc": r.get("judge", {}).get("length_controlled"),
                     "kl": r.get("kl"), "tokens": r["mean_tokens"], "eos": r["eos_rate"],
                     "seconds": None if t is None else t["seconds"],
                     "steps": None if t is None else t.get("steps")})
    return rows


def print_board(console, rows: list[dict], n_prompts: int, budget: float) -> None:
    from rich.table import Table

    t = Table(title=f"method board: win rate vs the base on {n_prompts} held-out prompts (95% CI); "
                    f"budget {budget:.0f} s each, 2 CPU cores")
    for col in ("method", "proxy", "gold", "gold LC", "judge", "judge LC", "KL nats", "tokens",
                "EOS", "seconds"):
        t.add_column(col, justify="left" if col == "method" else "right")
    for r in rows:
        t.add_row(r["method"], _ci(r["proxy"]), _ci(r["gold"]), _ci(r["gold_lc"]), _ci(r["judge"]),
                  _ci(r["judge_lc"]), "-" if r["kl"] is None else f"{r['kl']:.2f}", f"{r['tokens']:.0f}",
                  f"{r['eos']:.2f}", "-" if r["seconds"] is None else f"{r['seconds']:.0f}")
    console.print(t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=float, default=150.0, help="seconds of training per method")
    ap.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    ap.add_argument("--db", type=Path, default=None, help="store (default: a fresh one in bench/out)")
    ap.add_argument("--eval-prompts", type=int, default=96)
    ap.add_argument("--judge", default="local", help="AI judge backend of the eval (local: SmolLM2)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "methods.json")
    ap.add_argument("--resume", action="store_true", help="keep the methods --out already holds "
                    "(same --db and budget), train the others, and evaluate them all together")
    args = ap.parse_args()

    from rich.console import Console

    from prefloop import store
    from prefloop.core.models import DEFAULT_MODEL
    from prefloop.pipelines.evaluation import EvalConfig, run_eval
    from prefloop.pipelines.report import print_eval

    console = Console()
    db = args.db or ROOT / "bench" / "out" / f"methods-{time.strftime('%Y%m%d-%H%M%S')}" / "store.duckdb"
    db.parent.mkdir(parents=True, exist_ok=True)
    s = store.Store(db, create=True)
    data = prepare(s, console)
    if "kto" in args.methods:
        data["kto"] = kto_export(s, data["half_a"])
    trained, failed = {}, {}
    if args.resume and args.out.exists():
        previous = json.loads(args.out.read_text())
        if previous["store"] == str(db) and previous["budget"] == args.budget:
            trained = {m: t for m, t in previous["trained"].items() if m in args.methods}
            console.print(f"resuming: {sorted(trained)} already trained in {db}")
    for m in args.methods:
        if m in trained:
            continue
        console.rule(f"{m}: {args.budget:.0f} s")
        try:
            trained[m] = train_method(s, m, data, args.budget, DEFAULT_MODEL)
        except Exception as exc:     # one method's failure is reported, the board goes on
            failed[m] = f"{type(exc).__name__}: {exc}"
            console.print(f"[bold red]{m} failed[/]: {failed[m]}")
            continue
        console.print(f"{m}: run {trained[m]['run_id']}, {trained[m]['steps']} steps in "
                      f"{trained[m]['seconds']:.0f} s (budget stop: {trained[m]['stopped_by_budget']})")
    trained = {m: trained[m] for m in args.methods if m in trained}      # the board's order
    specs = tuple(f"run:{t['run_id']}" for t in trained.values())
    t0 = time.perf_counter()
    ev = run_eval(s, EvalConfig(models=(DEFAULT_MODEL, *specs), prompts=f"export:{data['half_a']}",
                                limit=args.eval_prompts, max_prompt_tokens=128, reward_model=data["proxy"],
                                second_reward_model=data["gold"], judge=args.judge, judge_models=specs,
                                concurrency=8, max_new_tokens=48, batch_size=32))
    print_eval(console, ev.run)
    rows = board_rows(ev.summary, trained)
    print_board(console, rows, ev.summary["prompts"], args.budget)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"budget": args.budget, "eval_run_id": ev.run.id, "store": str(db),
                                    "eval_seconds": round(time.perf_counter() - t0, 1), "data": data,
                                    "trained": trained, "failed": failed, "rows": rows}, indent=1))
    console.print(f"board written to {args.out} (eval run {ev.run.id} in {db})")
    if failed:
        console.print(f"[bold red]failed methods[/]: {failed}")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
