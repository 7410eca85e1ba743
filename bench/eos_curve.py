"""The base model's EOS curve on the dev prompts: the share of responses that end (emit EOS)
within each token budget, per subset, from one sampling run at the largest budget (a response
that ended within T tokens at budget 256 ends within T at budget T too: the same random numbers
draw the same tokens). The evaluation's ``max_new_tokens`` is chosen from it
(docs/results.md).

    python bench/eos_curve.py [--db STORE] [--max-new-tokens 256] [--seed 0]

Without ``--db`` it builds a store in a temporary directory from the shared data with the demo's
prompt sets. Prints a table (budget, EOS rate per subset) and the seconds sampling took.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from prefloop import store

BUDGETS = (32, 48, 64, 96, 128, 160, 192, 224, 256)


def _store(db: str | None) -> store.Store:
    if db:
        return store.Store(db)
    from prefloop.pipelines.demo import ALPACA, HH, MT_BENCH, PROMPT_SETS, shared_data_dir
    from prefloop.pipelines.prompt_sets import record_prompt_sets
    from prefloop.store.importer import import_file

    s = store.Store.init(Path(tempfile.mkdtemp()) / "eos.duckdb")
    data = shared_data_dir()
    for rel, fmt in ((HH, "hh"), (ALPACA, "alpaca-eval"), (MT_BENCH, "prompts")):
        import_file(s, data / rel, fmt)
    for plan in PROMPT_SETS:
        record_prompt_sets(s, plan)
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db")
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--max-prompt-tokens", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from prefloop.core.models import default_model_path, load_causal_lm, load_tokenizer
    from prefloop.pipelines.evaluation import eval_prompts
    from prefloop.training.generate import GenParams, sample_responses

    s = _store(args.db)
    path = default_model_path()
    tok, model = load_tokenizer(path), load_causal_lm(path)
    prompts = eval_prompts(s, "set:dev", None, tok, args.max_prompt_tokens)
    subset = {pid: sub for pid, (_, sub) in s.prompt_sets.of([p.id for p in prompts]).items()}
    t0 = time.perf_counter()
    samples = sample_responses(model, tok, [p.messages for p in prompts], GenParams(
        n=1, max_new_tokens=args.max_new_tokens, temperature=0.7, top_p=1.0, batch_size=16, seed=args.seed))
    seconds = time.perf_counter() - t0
    groups = sorted({subset.get(p.id) or "-" for p in prompts})
    print(f"base model EOS rate by token budget, {len(prompts)} dev prompts, seed {args.seed}, "
          f"sampled at {args.max_new_tokens} tokens in {seconds:.0f} s")
    print("budget  " + "  ".join(f"{g:>9}" for g in groups))
    for budget in (b for b in BUDGETS if b <= args.max_new_tokens):
        rates = []
        for g in groups:
            xs = [x[0] for p, x in zip(prompts, samples) if (subset.get(p.id) or "-") == g]
            rates.append(sum(x.finished and x.n_tokens <= budget for x in xs) / len(xs))
        print(f"{budget:>6}  " + "  ".join(f"{r:>9.2f}" for r in rates))


if __name__ == "__main__":
    main()
