"""Learning-rate sweep of the offline preference trainers (ORPO, DPO, KTO) with LoRA on human
pairs: the record behind their LoRA defaults in ``training/configs.py``. Prints figures;
asserts nothing.

    python bench/lr_sweep_offline.py [--methods orpo dpo] [--steps 40] [--lrs orpo=3e-5,1e-4,3e-4,1e-3]

The embedded SmolLM2-135M-Instruct (LoRA on every layer, every other setting at its default)
trains ``--steps`` steps of 2 pairs on the HH-RLHF harmless-base pairs of ``../shared/data``
(85% of the prompts); the held-out 15% (64 pairs) gives TRL's evaluation: for DPO the
implicit-reward accuracy and margin (beta * log-ratio to the reference, Rafailov et al. 2023),
for ORPO the share of pairs whose chosen response has the larger log-odds and the mean
log-odds ratio (Hong et al. 2024). A rate that leaves these at chance (0.5, 0) does not move
the policy within the budget; one whose held-out NLL of the chosen responses rises has moved
it off its language.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_LRS = {"orpo": [3e-5, 1e-4, 3e-4, 1e-3], "dpo": [5e-6, 5e-5, 2e-4], "kto": [5e-6, 5e-5, 2e-4]}
SHOWN = {"dpo": ("rewards/accuracies", "rewards/margins", "loss"),
         "orpo": ("rewards/accuracies", "log_odds_ratio", "nll_loss"),
         "kto": ("rewards/chosen_sum", "rewards/rejected_sum", "loss")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", nargs="+", default=["orpo"], choices=list(DEFAULT_LRS))
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--lrs", nargs="*", default=[], help="METHOD=lr,lr,... (overrides the grid)")
    args = ap.parse_args()
    from prefloop import store
    from prefloop.core.models import DEFAULT_MODEL
    from prefloop.store.export_files import ExportOptions, export_pairs
    from prefloop.store.importer import import_file
    from prefloop.store.pairs import PairFilters
    from prefloop.training.train import train

    grid = {**DEFAULT_LRS, **{m: [float(x) for x in v.split(",")] for m, v in
                              (a.split("=", 1) for a in args.lrs)}}
    d = Path(tempfile.mkdtemp(prefix="lr-sweep-offline-"))
    s = store.Store(d / "s.duckdb", create=True)
    import_file(s, SHARED / "hh-rlhf" / "harmless-base-test-dev.jsonl.gz", "hh")
    filters = PairFilters(source="human", test_fraction=0.15)
    pairs = export_pairs(s, d / "pairs", filters).export.id
    print(f"SmolLM2-135M LoRA (all layers), {args.steps} steps x 2 pairs, held-out 64 pairs", flush=True)
    for method in args.methods:
        export = pairs
        if method == "kto":
            export = export_pairs(s, d / "kto", filters, ExportOptions(format="kto", kto_pairs=True)).export.id
        for lr in grid[method]:
            t0 = time.perf_counter()
            r = train(s, method, overrides={
                "model": DEFAULT_MODEL, "export_id": export, "use_lora": True, "learning_rate": lr,
                "max_steps": args.steps, "max_length": 192, "max_eval_pairs": 64, "max_train_pairs": 400,
                "save_steps": 10_000, "logging_steps": 10, "per_device_train_batch_size": 2})
            ev = r.summary.get("eval", {})
            shown = ", ".join(f"{k} {ev[k]:.3f}" for k in SHOWN[method] if k in ev)
            print(f"{method} lr {lr:g}: train loss {r.summary['train_loss']:.3f}; held-out {shown} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
