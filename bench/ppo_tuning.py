"""PPO tuning on 2 CPU cores: reward, second-reward-model and KL curves for several settings at the
same budget, each final policy evaluated against the base, and the rejection-sampling SFT the
demo uses at a similar budget, for comparison. Prints figures; asserts nothing.

    python bench/ppo_tuning.py [--dir /tmp/prefloop-ppo-tuning] [--iterations 8] [--settings a,b,...]

Set-up (cached in ``--dir``): the shared HH pairs, halves A and B with one held-out split, a
proxy reward model (MiniLM) on A and a second one on B, as ``prefloop demo`` makes them. Every
PPO run starts from the embedded SmolLM2 on half A's prompts (chat-formatted, at most 128
tokens), 48 new tokens, logs ``reward_model``, ``reward_second`` and ``kl`` per iteration, and
is then evaluated on 48 held-out prompts (proxy and second-RM win rates with 95% CIs, KL).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.console import Console

from prefloop import store
from prefloop.cli.report import print_eval
from prefloop.pipelines.evaluation import EvalConfig, run_eval
from prefloop.store.export_files import export_pairs
from prefloop.store.importer import import_file
from prefloop.store.pairs import PairFilters
from prefloop.training.train import train

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
COMMON = {"mini_batch_size": 8, "ppo_epochs": 2, "max_new_tokens": 48,
          "max_prompt_length": 128, "save_steps": 0, "temperature": 0.7}
SETTINGS = {
    "lr2e-5": {"learning_rate": 2e-5},
    "lr1e-4": {"learning_rate": 1e-4},
    "lr1e-4_warmup": {"learning_rate": 1e-4, "value_warmup": 2},
    "lr1e-4_kl0.01_noeos": {"learning_rate": 1e-4, "kl_coef": 0.01, "missing_eos_penalty": 0.0},
    "lr3e-4_noeos": {"learning_rate": 3e-4, "missing_eos_penalty": 0.0},
}


def setup(d: Path, console: Console) -> tuple[store.Store, dict]:
    ids_file = d / "ids.json"
    s = store.Store(d / "prefloop.duckdb", create=True)
    if ids_file.exists():
        return s, json.loads(ids_file.read_text())
    import_file(s, SHARED / "hh-rlhf" / "harmless-base-test-dev.jsonl.gz", "hh")
    ids = {}
    for half, shard in (("a", 0), ("b", 1)):
        e = export_pairs(s, d / f"export-{half}", PairFilters(source="human", test_fraction=0.1,
                                                               shard=shard, shards=2), overwrite=True)
        r = train(s, "rm", overrides={"model": "minilm", "export_id": e.export.id, "max_steps": 60,
                                      "max_train_pairs": 480, "max_length": 192, "learning_rate": 5e-5,
                                      "per_device_train_batch_size": 8, "max_eval_pairs": 96,
                                      "save_steps": 10_000})
        ids[f"export_{half}"], ids[f"rm_{half}"] = e.export.id, r.run.id
        console.print(f"half {half}: export {e.export.id}, reward model run {r.run.id}, held-out "
                      f"accuracy {r.summary['eval']['all']['accuracy']:.3f}")
    ids_file.write_text(json.dumps(ids))
    return s, ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default="/tmp/prefloop-ppo-tuning")
    ap.add_argument("--iterations", type=int, default=8)
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--eval-prompts", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=8, help="rollouts per PPO iteration")
    args = ap.parse_args()
    console = Console(width=200)
    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    s, ids = setup(d, console)
    proxy, second = f"run:{ids['rm_a']}", f"run:{ids['rm_b']}"
    results = []
    for name in args.settings.split(","):
        t0 = time.perf_counter()
        r = train(s, "ppo", overrides={**COMMON, **SETTINGS[name], "max_steps": args.iterations,
                                       "batch_size": args.batch_size,
                                       "export_id": ids["export_a"], "reward_model": proxy,
                                       "second_reward_model": second})
        seconds = time.perf_counter() - t0
        curves = {}
        for m in s.runs.metrics(r.run.id):
            curves.setdefault(m.name, []).append(m.value)
        console.print(f"[bold]{name}[/] (run {r.run.id}, {seconds:.0f} s, "
                      f"{seconds / args.iterations:.0f} s/iteration)")
        for key in ("reward_model", "reward_second", "kl", "eos_rate", "response_length"):
            console.print(f"  {key:16s} " + " ".join(f"{v:7.3f}" for v in curves.get(key, [])))
        ev = run_eval(s, EvalConfig(models=("smollm2-135m-instruct", f"run:{r.run.id}"),
                                    prompts=f"export:{ids['export_a']}", limit=args.eval_prompts,
                                    max_prompt_tokens=128, reward_model=proxy,
                                    second_reward_model=second, max_new_tokens=48, batch_size=32))
        print_eval(console, ev.run.id, ev.summary)
        row = ev.summary.row(f"run:{r.run.id}").overall
        results.append((name, seconds, row.proxy.win, row.second_rm.win, row.kl))
    console.print("[bold]summary[/] (win rates vs the base on held-out prompts, 95% CI)")
    for name, sec, pw, gw, kl in results:
        console.print(f"  {name:22s} {sec:6.0f} s  proxy {pw.rate:.2f} [{pw.low:.2f}, {pw.high:.2f}]"
                      f"  second RM {gw.rate:.2f} [{gw.low:.2f}, {gw.high:.2f}]  KL {kl:.2f}")


if __name__ == "__main__":
    main()
