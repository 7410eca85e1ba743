"""Learning-rate sweep of the LoRA policy trainers on a trivially learnable reward: the record
behind the LoRA defaults in ``training/configs.py`` (``LEARNING_RATES``). Prints figures;
asserts nothing.

    python bench/lr_sweep.py [--methods ppo grpo rloo] [--iterations 12] [--lrs ppo=3e-6,1e-4,3e-4,1e-3 ...]

The embedded SmolLM2-135M-Instruct (LoRA on the top half of the layers, every other setting
at its default) is rewarded 1 when its response to an HH-RLHF harmless-base prompt
(``../shared/data``) contains "sorry" (``prefloop.training.toy_rewards.ContainsWord``), 0
otherwise. Per setting, per iteration: the reward (share of responses with "sorry"), KL to
the reference (nats per response), mean tokens and EOS rate; then the base rate (the first
iteration, sampled before any update) and the last three iterations' rate with 95% Wilson
intervals. A setting that does not raise the rate above the base rate's interval does not
move the policy; one whose KL passes 5 nats per response moves it too far.

PPO is ours (8 rollouts of 24 tokens per iteration, 4 epochs of 2 minibatches); GRPO and
RLOO are TRL's (2 prompts x 4 completions of 24 tokens per step, one update per step: a step
has an eighth of a PPO iteration's updates, and on 2 CPU cores costs about 20 s, against about
6 s for a PPO iteration; they run ``--group-steps`` steps).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_LRS = {"ppo": [3e-6, 1e-4, 3e-4, 1e-3], "grpo": [1e-4, 3e-4, 1e-3], "rloo": [1e-4, 3e-4, 1e-3]}


def wilson(k: float, n: int) -> tuple[float, float]:
    """95% Wilson score interval of ``k`` successes in ``n`` (``nan`` for none)."""
    from prefloop.core.stats import wilson_ci

    low, high = wilson_ci(k, n)
    return (float("nan"), float("nan")) if low is None else (low, high)


def hh_prompts(limit: int) -> list[list[dict]]:
    """The first ``limit`` distinct HH-RLHF harmless-base prompts, as chat messages."""
    from prefloop import store
    from prefloop.store.importer import import_file

    d = Path(tempfile.mkdtemp(prefix="lr-sweep-"))
    s = store.Store(d / "s.duckdb", create=True)
    import_file(s, SHARED / "hh-rlhf" / "harmless-base-test-dev.jsonl.gz", "hh")
    from prefloop.store.sources import prompts_from

    return [p.messages for p in prompts_from(s, "harmless-base-test-dev", limit=limit)]


def run_ppo(model, tok, prompts, lr: float, iterations: int) -> list[dict]:
    from peft import get_peft_model

    from prefloop.core.models import load_causal_lm
    from prefloop.training.configs import PPORunConfig, lora_config
    from prefloop.training.ppo import PPOTrainer
    from prefloop.training.toy_rewards import ContainsWord

    cfg = PPORunConfig(max_steps=iterations, batch_size=8, mini_batch_size=4, max_new_tokens=24,
                       learning_rate=lr, save_steps=0, max_prompt_length=128)
    policy = load_causal_lm(model)
    policy = get_peft_model(policy, lora_config(cfg, policy))
    score = ContainsWord("sorry", decode=lambda ids: tok.decode(ids, skip_special_tokens=True))
    ids = [tok.apply_chat_template(p, add_generation_prompt=True, tokenize=True,
                                   return_dict=True)["input_ids"][-128:] for p in prompts]
    trainer = PPOTrainer(policy, score, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                         config=cfg)
    hist = trainer.train(prompts, ids, output_dir="/nonexistent")
    return [{"reward": h["reward_model"], "kl": h["kl"], "tokens": h["response_length"],
             "eos": h["eos_rate"], "n": cfg.batch_size} for h in hist]


def run_group(kind: str, model, prompts, lr: float, steps: int) -> list[dict]:
    from datasets import Dataset

    from prefloop.training.configs import GRPORunConfig, RLOORunConfig
    from prefloop.training.group_rl import build_trainer
    from prefloop.training.toy_rewards import ContainsWord

    cls = {"grpo": GRPORunConfig, "rloo": RLOORunConfig}[kind]
    cfg = cls(output_dir=tempfile.mkdtemp(), use_lora=True, learning_rate=lr, max_steps=steps,
              num_generations=4, per_device_train_batch_size=8, max_completion_length=24,
              logging_steps=1, save_strategy="no", report_to="none", seed=0)
    trainer = build_trainer(kind, cfg, model, [ContainsWord("sorry").trl_reward()],
                            Dataset.from_list([{"prompt": p} for p in prompts]))
    trainer.train()
    logs = [x for x in trainer.state.log_history if "reward" in x]
    return [{"reward": x["reward"], "kl": x.get("kl", float("nan")), "tokens": x["completions/mean_length"],
             "eos": 1 - x["completions/clipped_ratio"], "n": 8} for x in logs]


def summarize(name: str, hist: list[dict], seconds: float) -> None:
    base = hist[0]
    tail = hist[-3:]
    k, n = sum(h["reward"] * h["n"] for h in tail), sum(h["n"] for h in tail)
    blo, bhi = wilson(base["reward"] * base["n"], base["n"])
    lo, hi = wilson(k, n)
    print(f"  {name}: base {base['reward']:.2f} [{blo:.2f}, {bhi:.2f}] -> last 3 {k / n:.2f} "
          f"[{lo:.2f}, {hi:.2f}], KL {sum(h['kl'] for h in tail) / len(tail):.2f} nats, "
          f"tokens {sum(h['tokens'] for h in tail) / len(tail):.1f}, EOS "
          f"{sum(h['eos'] for h in tail) / len(tail):.2f}, {seconds:.0f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", nargs="+", default=["ppo", "grpo", "rloo"])
    ap.add_argument("--iterations", type=int, default=12)
    ap.add_argument("--group-steps", type=int, default=16)
    ap.add_argument("--prompts", type=int, default=96)
    ap.add_argument("--lrs", nargs="*", default=[], help="METHOD=lr,lr,... (overrides the grid)")
    args = ap.parse_args()
    import torch

    from prefloop.core.models import default_model_path, load_tokenizer

    torch.set_num_threads(2)
    grid = {**DEFAULT_LRS, **{m: [float(x) for x in v.split(",")] for m, v in
                              (a.split("=", 1) for a in args.lrs)}}
    model = default_model_path()
    tok = load_tokenizer(model)
    tok.padding_side = "left"
    prompts = hh_prompts(args.prompts)
    print(f"{len(prompts)} HH prompts, reward: response contains 'sorry'; SmolLM2-135M, LoRA top half")
    for method in args.methods:
        for lr in grid[method]:
            torch.manual_seed(0)
            t0 = time.perf_counter()
            if method == "ppo":
                hist = run_ppo(model, tok, prompts, lr, args.iterations)
            else:
                hist = run_group(method, model, prompts, lr, args.group_steps)
            secs = time.perf_counter() - t0
            print(f"{method} lr {lr:g}: " + " ".join(f"{h['reward']:.2f}/{h['kl']:.1f}" for h in hist),
                  flush=True)
            summarize(f"{method} lr {lr:g}", hist, secs)


if __name__ == "__main__":
    main()
