"""Active learning that is measured: how many human labels each way of choosing pairs needs.

Pool-based simulation on the shared human HH-RLHF harmless-base pairs. The pairs are split by
prompt into a pool and a fixed held-out set (``--heldout`` pairs, never in the pool). Each
strategy starts from the same ``--start`` random labeled pairs, then repeatedly picks the next
``--batch`` pairs from the unlabeled pool (labels hidden), "asks for" their labels (reveals the
human one), retrains and scores the reward model on the held-out set, up to ``--budget``
labels:

* ``random``: uniformly at random;
* ``gap``: the single reward model's smallest reward gap |r_a - r_b| (uncertainty sampling:
  what ``generate --select uncertain`` does with one reward model);
* ``disagreement``: the largest std over a ``--members``-member bootstrap ensemble of the
  reward difference (query by committee, Seung et al. 1992; what ``--select uncertain`` does
  with an ensemble, ``prefloop train rm --set ensemble=K``).

The reward model: frozen MiniLM (all-MiniLM-L6-v2, mean-pooled, normalized) embeddings of
``prompt + response`` with a linear Bradley-Terry head, P(a > b) = sigmoid(w . (e_a - e_b)),
fitted by L2-regularized logistic regression (scikit-learn, C = ``--C``). Fitting it takes
milliseconds, so every strategy, round and seed retrains from scratch; a fine-tuned MiniLM
reward model (``prefloop train rm``, about a minute per fit here) would need about 2 hours for
the same grid on 2 CPU cores. Every strategy's accuracy is that of one head fitted on all its
labels (the ensemble only chooses), so the strategies differ only in which pairs they label.

Prints accuracy against labels per strategy (mean over ``--seeds`` seeds with a 95% t
interval), and the labels each strategy needs to reach random's accuracy at ``--budget``
(linear interpolation between rounds, per seed; "> budget" when it never does); writes the
figures as JSON to ``--out``. Asserts nothing.

    python bench/label_efficiency.py [--seeds 5] [--start 100] [--batch 100] [--budget 800]
                                     [--heldout 400] [--members 5] [--out bench/out/label_efficiency.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HH = ROOT.parent / "shared" / "data" / "hh-rlhf" / "harmless-base-test-dev.jsonl.gz"
STRATEGIES = ("random", "gap", "disagreement")


def load_pairs(path: Path) -> list[tuple[str, str, str]]:
    """``(prompt text, chosen, rejected)`` of every clean pair, read by the store's HH reader."""
    sys.path.insert(0, str(ROOT.parent))
    from prefloop.store.formats import ImportRecord, read_hh
    from prefloop.training.data import plain_prompt

    out = []
    for rec in read_hh(path):
        if isinstance(rec, ImportRecord) and rec.ranking == [[0], [1]]:
            out.append((plain_prompt(rec.messages), rec.responses[0][0], rec.responses[1][0]))
    return out


def embed(texts: list[str], batch: int = 64) -> np.ndarray:
    """Mean-pooled, L2-normalized MiniLM embeddings, shape ``(N, 384)`` (first 256 tokens:
    the prompt is cut from the left, as the reward scorer does)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from prefloop.core.models import minilm_path

    tok = AutoTokenizer.from_pretrained(str(minilm_path()))
    tok.truncation_side = "left"
    model = AutoModel.from_pretrained(str(minilm_path())).eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch):
            enc = tok(texts[i:i + batch], padding=True, truncation=True, max_length=256, return_tensors="pt")
            h = model(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).float()
            e = (h * m).sum(1) / m.sum(1)
            out.append(torch.nn.functional.normalize(e, dim=-1).numpy())
    return np.concatenate(out)


def fit_head(diff: np.ndarray, C: float, seed: int = 0) -> np.ndarray:
    """The linear Bradley-Terry head ``w`` (shape ``(D,)``) on chosen-minus-rejected
    embedding differences ``(N, D)``: logistic regression without intercept on the pairs in
    both orders (so the model is antisymmetric)."""
    from sklearn.linear_model import LogisticRegression

    X = np.concatenate([diff, -diff])
    y = np.concatenate([np.ones(len(diff)), np.zeros(len(diff))])
    clf = LogisticRegression(C=C, fit_intercept=False, max_iter=2000, random_state=seed)
    return clf.fit(X, y).coef_[0]


def labels_to_reach(curve: list[float], xs: list[int], target: float) -> float:
    """The first label count where ``curve`` reaches ``target`` (linear interpolation), or
    ``inf``."""
    for i, (x, acc) in enumerate(zip(xs, curve)):
        if acc >= target:
            if i == 0:
                return float(x)
            x0, a0 = xs[i - 1], curve[i - 1]
            return x0 + (x - x0) * (target - a0) / max(acc - a0, 1e-12)
    return float("inf")


def t_interval(values) -> tuple[float, float, float]:
    from scipy import stats

    v = np.asarray(values, dtype=float)
    m = float(v.mean())
    if len(v) < 2 or not np.isfinite(v).all():
        return m, float("nan"), float("nan")
    h = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return m, m - h, m + h


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=HH)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--start", type=int, default=100)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--budget", type=int, default=800)
    ap.add_argument("--heldout", type=int, default=400)
    ap.add_argument("--members", type=int, default=5)
    ap.add_argument("--C", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "label_efficiency.json")
    args = ap.parse_args()
    t0 = time.perf_counter()
    pairs = load_pairs(args.data)
    order = np.random.default_rng(0).permutation(len(pairs))   # one prompt per HH line
    held_ix, pool_ix = order[:args.heldout], order[args.heldout:]
    e_c = embed([p + c for p, c, _ in pairs])
    e_r = embed([p + r for p, _, r in pairs])
    print(f"{len(pairs)} pairs: pool {len(pool_ix)}, held-out {len(held_ix)}; embedded in "
          f"{time.perf_counter() - t0:.0f} s")
    true = e_c - e_r                                   # chosen - rejected
    held = true[held_ix]
    flip = np.random.default_rng(1).random(len(pool_ix)) < 0.5
    seen = np.where(flip[:, None], -true[pool_ix], true[pool_ix])   # label-free orientation
    sign = np.where(flip, -1.0, 1.0)[:, None]
    xs = list(range(args.start, args.budget + 1, args.batch))
    curves: dict[str, list[list[float]]] = {s: [] for s in STRATEGIES}
    for strategy in STRATEGIES:
        for seed in range(args.seeds):
            curves[strategy].append(run_revealed(strategy, seed, seen, sign, held, args))
    print(f"\nheld-out accuracy vs labels (mean of {args.seeds} seeds [95% t interval])")
    header = "labels  " + "  ".join(f"{s:>24}" for s in STRATEGIES)
    print(header)
    table = {}
    for i, x in enumerate(xs):
        cells = []
        for s in STRATEGIES:
            m, lo, hi = t_interval([c[i] for c in curves[s]])
            table.setdefault(s, []).append({"labels": x, "accuracy": m, "low": lo, "high": hi})
            cells.append(f"{m:.3f} [{lo:.3f}, {hi:.3f}]")
        print(f"{x:>6}  " + "  ".join(f"{c:>24}" for c in cells))
    target = float(np.mean([c[-1] for c in curves["random"]]))
    print(f"\nlabels to reach random's {args.budget}-label accuracy ({target:.3f}):")
    need = {}
    for s in STRATEGIES:
        per_seed = [labels_to_reach(c, xs, target) for c in curves[s]]
        m, lo, hi = t_interval(per_seed)
        finite = [v for v in per_seed if np.isfinite(v)]
        need[s] = {"per_seed": per_seed, "mean": m, "low": lo, "high": hi,
                   "saving": 1 - m / args.budget if np.isfinite(m) else None}
        shown = (f"{m:.0f} [{lo:.0f}, {hi:.0f}] ({1 - m / args.budget:+.0%} vs {args.budget})"
                 if np.isfinite(m) else f"> {args.budget} in {len(per_seed) - len(finite)} of "
                 f"{len(per_seed)} seeds")
        print(f"  {s:>12}: {shown}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"config": {k: str(v) if isinstance(v, Path) else v
                                               for k, v in vars(args).items()},
                                    "pairs": len(pairs), "curves": table, "target": target,
                                    "labels_needed": need,
                                    "seconds": round(time.perf_counter() - t0, 1)}, indent=1))
    print(f"\nwritten {args.out} ({time.perf_counter() - t0:.0f} s)")


def run_revealed(strategy: str, seed: int, seen: np.ndarray, sign: np.ndarray, held: np.ndarray,
                 args) -> list[float]:
    """:func:`run` where the strategy chooses from the label-free ``seen`` differences and
    each labeled pair is then fitted in its true orientation (``seen * sign``: the label)."""
    rng = np.random.default_rng(seed)
    n = len(seen)
    true = seen * sign
    labeled = np.random.default_rng(1000 + seed).choice(n, size=args.start, replace=False)
    curve = []
    while True:
        w = fit_head(true[labeled], args.C)
        curve.append(float(np.mean(held @ w > 0)))
        if len(labeled) >= args.budget:
            return curve
        pool = np.setdiff1d(np.arange(n), labeled)
        # the selection's models are fitted on labeled pairs (true orientation) and score the
        # unlabeled ones as the platform sees them (a random orientation)
        nxt = pick_from(strategy, true[labeled], seen, pool, args.batch, rng, args.C, args.members)
        labeled = np.concatenate([labeled, nxt])


def pick_from(strategy, labeled_diff, seen, pool, k, rng, C, members):
    """The next ``k`` of ``pool`` under ``strategy`` (see the module docstring)."""
    if strategy == "random":
        return rng.choice(pool, size=min(k, len(pool)), replace=False)
    if strategy == "gap":
        w = fit_head(labeled_diff, C)
        score = -np.abs(seen[pool] @ w)
    else:
        heads = [fit_head(labeled_diff[rng.choice(len(labeled_diff), len(labeled_diff))], C, seed=m)
                 for m in range(members)]
        score = np.std(np.stack([seen[pool] @ w for w in heads]), axis=0)
    return pool[np.argsort(-score, kind="stable")[:k]]


if __name__ == "__main__":
    main()
