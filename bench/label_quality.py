"""Label quality on a noisy crowd: majority vs Dawid-Skene labels, and reward models trained on
each (hard, soft ``p_chosen``, weighted), scored on the true labels. Prints figures; asserts
nothing.

    python bench/label_quality.py [--dir /tmp/prefloop-label-quality] [--steps 48]

Set-up: the shared HH-RLHF pairs are the truth. A simulated crowd relabels every training pair:
``hh`` (the original label), ``noisy`` (30% of its votes flipped, as the issue asks) and
``careless`` (40% flipped). Each labeler is imported as a TRL file under its own name into a
crowd store. Exports of the crowd store (same prompt split as the truth, by prompt hash) with
``--aggregate majority`` and ``dawid-skene`` give the training labels; every reward model
(MiniLM, the same steps and seed) is scored on the *true* held-out pairs, with a 95% bootstrap
CI over pairs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from prefloop import store
from prefloop.store.export_files import export_pairs
from prefloop.store.importer import import_file
from prefloop.store.pairs import PairFilters
from prefloop.store.reliability import labeler_reliability
from prefloop.training.train import train

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CROWD = {"hh": 0.0, "noisy": 0.30, "careless": 0.40}       # share of votes flipped


def _ci(correct: np.ndarray) -> tuple[float, float]:
    from scipy.stats import bootstrap

    r = bootstrap((correct.astype(float),), np.mean, n_resamples=2000, random_state=0,
                  method="percentile")
    return float(r.confidence_interval.low), float(r.confidence_interval.high)


def _crowd(d: Path, rows: list[dict], t_exp) -> store.Store:
    """The crowd store: each planted labeler of :data:`CROWD` relabels the truth's training
    pairs with its flip rate; the held-out prompts come from the truth only."""
    crowd = store.Store(d / "crowd.duckdb", create=True)
    if not crowd.comparisons.list(labeler="hh"):
        rng = np.random.default_rng(0)
        for name, flip in CROWD.items():
            f = d / f"{name}.jsonl"
            with open(f, "w") as out:
                for r in rows:
                    chosen, rejected = (r["chosen"], r["rejected"]) if rng.random() >= flip else \
                        (r["rejected"], r["chosen"])
                    out.write(json.dumps({"prompt": r["prompt"], "chosen": chosen,
                                          "rejected": rejected}) + "\n")
            rep = import_file(crowd, f, "trl", dataset="crowd", labeler=name)
            print(f"crowd labeler {name}: {flip:.0%} flipped, {rep.imported} imported")
        # the held-out prompts need to exist in the crowd store for the same split: their
        # pairs come from the truth (hh) only
        test = pq.read_table(Path(t_exp.export.path) / "test.parquet").to_pylist()
        f = d / "hh-test.jsonl"
        with open(f, "w") as out:
            for r in test:
                out.write(json.dumps({"prompt": r["prompt"], "chosen": r["chosen"],
                                      "rejected": r["rejected"]}) + "\n")
        import_file(crowd, f, "trl", dataset="crowd", labeler="hh")
    return crowd



def _reward_models(crowd: store.Store, t_exp, exports: dict[str, int], args):
    """Train one reward model per setting and score it on the true held-out pairs; returns
    the held-out split and ``[(name, accuracy, low, high, seconds)]``."""
    import datasets

    from prefloop.core.models import resolve_model
    from prefloop.training.reward import evaluate_reward_model
    from prefloop.training.scoring import RewardScorer

    test = datasets.Dataset.from_parquet(str(Path(t_exp.export.path) / "test.parquet"))
    settings = {"majority": ("majority (hard)", "majority", {}),
                "dawid-skene": ("dawid-skene (hard)", "dawid-skene", {}),
                "soft": ("dawid-skene soft (label_smoothing=auto)", "dawid-skene", {"label_smoothing": "auto"}),
                "weighted": ("dawid-skene weighted (label_weights)", "dawid-skene", {"label_weights": True})}
    settings = {settings[k][0]: settings[k][1:] for k in args.settings.split(",")}
    results = []
    for name, (agg, extra) in settings.items():
        t0 = time.perf_counter()
        r = train(crowd, "rm", overrides={
            "model": "minilm", "export_id": exports[agg], "max_steps": args.steps,
            "max_length": args.max_length, "per_device_train_batch_size": 8, "learning_rate": 5e-5,
            "max_eval_pairs": 8, "save_steps": 10_000, "seed": 0, **extra})
        scorer = RewardScorer(resolve_model(f"run:{r.run.id}", crowd).path, batch_size=16)
        prompts = [list(p) for p in test["prompt"]]
        rc = scorer.score(prompts, [c[0]["content"] for c in test["chosen"]])
        rr = scorer.score(prompts, [c[0]["content"] for c in test["rejected"]])
        correct = (rc > rr).numpy()
        low, high = _ci(correct)
        acc = evaluate_reward_model(scorer, test)["all"]["accuracy"]
        results.append((name, acc, low, high, time.perf_counter() - t0))
        print(f"{name:42s} held-out accuracy on true labels {acc:.3f} [{low:.3f}, {high:.3f}] "
              f"(run {r.run.id}, {time.perf_counter() - t0:.0f} s)", flush=True)
    return test, results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default="/tmp/prefloop-label-quality")
    ap.add_argument("--steps", type=int, default=48)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--settings", default="majority,dawid-skene,soft,weighted",
                    help="which reward models to train (comma-separated)")
    args = ap.parse_args()
    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)

    truth = store.Store(d / "truth.duckdb", create=True)
    if not truth.prompts.datasets():
        import_file(truth, SHARED / "hh-rlhf" / "harmless-base-test-dev.jsonl.gz", "hh")
    t_exp = export_pairs(truth, d / "truth-export", PairFilters(source="human", test_fraction=0.1),
                         overwrite=True)
    rows = pq.read_table(Path(t_exp.export.path) / "train.parquet").to_pylist()

    crowd = _crowd(d, rows, t_exp)
    print("\nlabeler reliability (Dawid-Skene, crowd-kit):")
    for s in labeler_reliability(crowd):
        print(f"  {s.labeler:9s} votes {s.votes:5d}  accuracy {s.accuracy:.3f} "
              f"[{s.accuracy_low:.3f}, {s.accuracy_high:.3f}]  (true {1 - CROWD[s.labeler]:.2f})")

    text_key = lambda r: (json.dumps(r["prompt"]), r["chosen"][0]["content"])  # noqa: E731
    true_text = {text_key(r) for r in rows}
    exports, label_acc = {}, {}
    for agg in ("majority", "dawid-skene"):
        e = export_pairs(crowd, d / f"crowd-{agg}", PairFilters(aggregate=agg, test_fraction=0.1),
                         overwrite=True)
        tr = pq.read_table(Path(e.export.path) / "train.parquet").to_pylist()
        label_acc[agg] = np.mean([text_key(r) in true_text for r in tr])
        exports[agg] = e.export.id
        print(f"{agg:12s} export {e.export.id}: {e.n_train} train pairs, label accuracy "
              f"{label_acc[agg]:.3f} against the truth")

    test, results = _reward_models(crowd, t_exp, exports, args)
    print(f"\nsummary ({len(test)} true held-out pairs, {args.steps} steps each, 95% bootstrap CI):")
    for name, acc, low, high, _ in results:
        print(f"  {name:42s} {acc:.3f} [{low:.3f}, {high:.3f}]")


if __name__ == "__main__":
    main()
