"""PPO's cost on one machine: seconds per iteration, peak RSS and tokens/s for the default and
each remedy, at the demo's settings (SmolLM2-135M policy, a MiniLM reward model, batch 8,
64 new tokens, prompts up to 192 tokens, 4 PPO epochs). Prints figures; asserts nothing.

    python bench/ppo_bench.py [--configs before,default,...] [--iterations 2]

Configurations (each runs in a process of its own, so its peak RSS is its own):

* ``before``: the layout of prefloop <= 0.1: full fine-tuning, a frozen reference copy, a
  separate value model (from the policy: MiniLM's vocabulary differs), four models;
* ``default``: a LoRA policy (adapters on the top half of the layers) whose reference is its
  own backbone with adapters disabled, and a value head on that backbone;
  ``default_all_layers``: adapters on every layer;
* ``lora``: LoRA with a separate value model; ``shared_value``: full fine-tuning with a value
  head on the policy; ``default_ckpt``: the default with gradient checkpointing.

The reward model's head is random (timing does not depend on it). Reduced precision for the
frozen models is ``auto`` everywhere: bfloat16 only where the CPU computes it fast.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = {
    "before": {"use_lora": False, "value_model": "separate"},
    "default": {},
    "default_all_layers": {"lora_layers": 1.0},
    "lora": {"value_model": "separate"},
    "shared_value": {"use_lora": False},
    "default_ckpt": {"gradient_checkpointing": True},
}
SETTINGS = {"batch_size": 8, "mini_batch_size": 4, "ppo_epochs": 4, "max_new_tokens": 64,
            "max_prompt_length": 192, "save_steps": 0, "missing_eos_penalty": 0.0}
SHARED = Path(os.environ.get("PREFLOOP_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _reward_model(tmp: Path) -> Path:
    from prefloop.core.models import load_reward_model, minilm_path
    from prefloop.training.scoring import prepare_reward_tokenizer, write_reward_config

    out = tmp / "rm"
    tok = prepare_reward_tokenizer(minilm_path())
    load_reward_model(minilm_path(), tok.pad_token_id).save_pretrained(out)
    tok.save_pretrained(out)
    write_reward_config(out, 256)
    return out


def child(name: str, iterations: int, tmp: Path) -> dict:
    import torch

    from prefloop.core.models import default_model_path, load_tokenizer
    from prefloop.store.formats.hh import read_hh
    from prefloop.training.configs import load_config
    from prefloop.training.ppo_run import build_trainer

    torch.set_num_threads(os.cpu_count() or 2)
    policy = default_model_path()
    tok = load_tokenizer(policy)
    tok.padding_side = "left"
    prompts = []
    for rec in read_hh(SHARED / "hh-rlhf" / "harmless-base-test-dev.jsonl.gz"):
        if hasattr(rec, "messages"):
            ids = tok.apply_chat_template(rec.messages, add_generation_prompt=True, tokenize=True,
                                          return_dict=True)["input_ids"]
            if len(ids) <= SETTINGS["max_prompt_length"]:
                prompts.append((rec.messages, ids))
        if len(prompts) >= 64:
            break
    cfg = load_config("ppo", overrides={**SETTINGS, **CONFIGS[name], "max_steps": iterations,
                                        "reward_model": "bench"})
    t0 = time.perf_counter()
    trainer = build_trainer(cfg, policy, tok, _reward_model(tmp))
    setup = time.perf_counter() - t0
    times, tokens = [], []

    def log(it, metrics):
        now = time.perf_counter()
        times.append(now - log.last)
        tokens.append(metrics["response_length"] * cfg.batch_size)
        log.last = now

    trainer.log = log
    log.last = time.perf_counter()
    trainer.train([p for p, _ in prompts], [i for _, i in prompts], output_dir=tmp / "out")
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"config": name, "setup_s": setup, "seconds": times, "tokens": tokens, "peak_rss_mib": rss_mib}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", default="before,default,lora,shared_value,default_ckpt")
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(child(args.child, args.iterations, Path(tmp))))
        return
    rows = []
    for name in args.configs.split(","):
        out = subprocess.run([sys.executable, __file__, "--child", name, "--iterations",
                              str(args.iterations)], capture_output=True, text=True)
        if out.returncode:
            print(f"{name}: failed\n{out.stderr[-2000:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        steady = r["seconds"][1:] or r["seconds"]          # the first iteration warms up
        r["s_per_it"] = statistics.mean(steady)
        r["tok_per_s"] = sum(r["tokens"]) / sum(r["seconds"])
        rows.append(r)
        print(f"{name:13s} {r['s_per_it']:7.1f} s/iteration  peak RSS {r['peak_rss_mib']:7.0f} MiB  "
              f"{r['tok_per_s']:6.1f} response tokens/s  (iterations {[round(x, 1) for x in r['seconds']]}, "
              f"setup {r['setup_s']:.0f} s)", flush=True)
    base = next((r for r in rows if r["config"] == "before"), None)
    if base:
        for r in rows:
            if r is not base:
                print(f"{r['config']:13s} vs before: {base['s_per_it'] / r['s_per_it']:.2f}x faster, "
                      f"{r['peak_rss_mib'] / base['peak_rss_mib']:.2f}x the peak memory")


if __name__ == "__main__":
    main()
