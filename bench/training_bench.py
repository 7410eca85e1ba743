"""Training data path, DPO reference log-probs, generation batching, peak memory; prints figures.

    python bench/training_bench.py [--model smollm2-135m-instruct] [--steps 6] [--dir /tmp/prefloop-tbench]

1. data-path overhead: export -> datasets -> TRL tokenization -> collator, per training step,
   as a share of the reward-model step time (batch 4 pairs, max length 512);
2. DPO seconds per step with and without ``precompute_ref_log_probs`` (precomputation
   amortized over one epoch of the bench's pairs);
3. generation throughput (new tokens/s), batched vs one sequence at a time;
4. peak RSS of ``prefloop train rm`` and ``prefloop train dpo`` processes (max length 512).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from prefloop import store
from prefloop.core.models import load_causal_lm, load_tokenizer, resolve_model
from prefloop.store.export_files import export_pairs
from prefloop.store.importer import import_file
from prefloop.store.pairs import PairFilters
from prefloop.training.configs import load_config
from prefloop.training.data import load_pairs
from prefloop.training.generate import GenParams, sample_responses

HH = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf" / "harmless-base-test-dev.jsonl.gz"
MT = HH.parents[1] / "mt-bench" / "question.jsonl"


def data_path(model, export, steps: int, out: Path) -> None:
    from trl import RewardTrainer

    from prefloop.core.models import load_reward_model
    from prefloop.training.scoring import prepare_reward_tokenizer, to_reward_rows

    t0 = time.perf_counter()
    ds = load_pairs(export)
    tok = prepare_reward_tokenizer(model.path)
    train = to_reward_rows(ds["train"].select_columns(["prompt", "chosen", "rejected"]), tok)
    t_load = time.perf_counter() - t0
    cfg = load_config("rm", overrides={"output_dir": str(out / "rm"), "max_steps": steps,
                                        "per_device_train_batch_size": 4, "max_length": 512,
                                        "save_steps": 10_000, "logging_steps": 1000})
    rm = load_reward_model(model.path, tok.pad_token_id)
    t0 = time.perf_counter()
    trainer = RewardTrainer(model=rm, args=cfg, train_dataset=train, processing_class=tok)
    t_prep = time.perf_counter() - t0 - 0.0
    batches = [trainer.train_dataset[i * 4:(i + 1) * 4] for i in range(steps)]
    examples = [[{k: b[k][j] for k in b} for j in range(len(b["chosen_ids"]))] for b in batches]
    t0 = time.perf_counter()
    for ex in examples:
        trainer.data_collator(ex)
    t_collate = (time.perf_counter() - t0) / steps
    t0 = time.perf_counter()
    trainer.train()
    t_step = (time.perf_counter() - t0) / steps
    epoch_steps = len(trainer.train_dataset) // 4
    per_step = (t_load + t_prep) / epoch_steps + t_collate
    print(f"data path: load {t_load:.2f} s + tokenize {t_prep:.2f} s (once per run, "
          f"{len(trainer.train_dataset)} pairs) + collate {t_collate * 1000:.1f} ms/step; "
          f"RM step {t_step:.2f} s -> overhead {per_step / t_step * 100:.2f}% of step time "
          f"(amortized over one epoch, {epoch_steps} steps)")


def dpo_speed(model, export, steps: int, out: Path) -> None:
    from trl import DPOTrainer

    ds = load_pairs(export)["train"].select_columns(["prompt", "chosen", "rejected"])
    ds = ds.select(range(min(len(ds), steps * 2 * 4)))
    tok = load_tokenizer(model.path)
    for pre in (False, True):
        cfg = load_config("dpo", overrides={"output_dir": str(out / f"dpo-{pre}"), "max_steps": steps,
                                             "per_device_train_batch_size": 2, "max_length": 256,
                                             "precompute_ref_log_probs": pre, "save_steps": 10_000,
                                             "logging_steps": 1000, "num_train_epochs": 1})
        t0 = time.perf_counter()
        trainer = DPOTrainer(model=load_causal_lm(model.path), args=cfg, train_dataset=ds,
                             processing_class=tok)
        t_init = time.perf_counter() - t0
        t0 = time.perf_counter()
        trainer.train()
        t_train = time.perf_counter() - t0
        print(f"dpo precompute_ref_log_probs={pre!s:5}: {t_train / steps:.2f} s/step over {steps} "
              f"steps, + {t_init:.1f} s setup (with precomputation: the reference model's pass "
              f"over all {len(ds)} pairs)")


def generation(model, n_prompts: int) -> None:
    import json

    prompts = [[{"role": "user", "content": json.loads(line)["turns"][0]}]
               for line in MT.read_text().splitlines()[:n_prompts]]
    tok = load_tokenizer(model.path)
    lm = load_causal_lm(model.path)
    params = GenParams(n=4, max_new_tokens=32, batch_size=16)
    rates = {}
    for batched in (True, False):
        t0 = time.perf_counter()
        out = sample_responses(lm, tok, prompts, params, batched=batched)
        dt = time.perf_counter() - t0
        tokens = sum(x.n_tokens for g in out for x in g)
        rates[batched] = tokens / dt
        print(f"generation batched={batched!s:5}: {tokens} tokens in {dt:.1f} s = {tokens / dt:.1f} tokens/s")
    print(f"generation speedup batched / one at a time: {rates[True] / rates[False]:.1f}x")


def peak_rss(db: Path, kind: str, model: str) -> None:
    """Peak resident set of a training process: ``VmHWM`` from /proc, polled until exit."""
    cmd = [sys.executable, "-m", "prefloop", "--db", str(db), "train", kind, "--model", model,
           "--max-steps", "3", "--set", "max_length=512", "--set", "max_eval_pairs=8",
           "--set", "save_steps=1000"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak_kib = 0
    while proc.poll() is None:
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kib = max(peak_kib, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.2)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed with status {proc.returncode}")
    print(f"peak RSS prefloop train {kind} ({model}, max length 512, 3 steps): "
          f"{peak_kib / 1024:.0f} MiB ({time.perf_counter() - t0:.0f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/prefloop-tbench"))
    args = ap.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    args.dir.mkdir(parents=True)
    s = store.Store.init(args.dir / "bench.duckdb")
    import_file(s, HH, "hh")
    export = export_pairs(s, args.dir / "export", PairFilters(test_fraction=0.1)).export
    model = resolve_model(args.model, s)
    print(f"model {model.name}; {export.n_pairs} HH pairs")
    peak_rss(s.path, "rm", args.model)
    peak_rss(s.path, "dpo", args.model)
    data_path(model, export, args.steps, args.dir)
    dpo_speed(model, export, args.steps, args.dir)
    generation(model, args.prompts)


if __name__ == "__main__":
    main()
