"""What routing the judge panel's uncertain pairs to people buys; prints figures.

    python bench/judge_routing.py [--pairs 100] [--principles harmless,helpful] [--share 0.2]
                                  [--panel local|simulated --judges 3]

On HH-RLHF harmless-base pairs whose human label is known, a panel of the local judge
(SmolLM2-135M-Instruct under each principle, both orders: a noisy judge) labels every pair
(``prefloop judge run --mode pairwise``). People then label a ``share`` of the pairs (their
label is taken to be HH-RLHF's, the reference here) and the panel's majority labels the rest.
Label accuracy against the human labels, with 95% bootstrap CIs over pairs, for:

- the panel alone (an even panel counts half);
- panel + people on the most uncertain ``share`` (:func:`prefloop.judge.routing.route_to_people`'s order);
- panel + people on a random ``share`` (the mean over 200 draws; the CI also resamples the draw);

and the panel's own accuracy on the pairs routed and on the pairs kept, which says whether its
uncertainty points at its errors (the point of routing).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT.parent))

from prefloop import store  # noqa: E402
from prefloop.judge.backends import make_backend  # noqa: E402
from prefloop.judge.batch import run_batch  # noqa: E402
from prefloop.judge.routing import panel_pairs  # noqa: E402
from prefloop.store.importer import import_file  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def _truth(s: store.Store) -> dict[tuple[int, int, int], int]:
    """HH-RLHF's label of each pair: ``(prompt, lo, hi) -> winner``."""
    out = {}
    for c in s.comparisons.list(labeler_kind="human"):
        ids = [x for g in c.ranking for x in g]
        if len(ids) == 2 and len(c.ranking[0]) == 1:
            out[(c.prompt_id, min(ids), max(ids))] = c.ranking[0][0]
    return out


def _ci(values: np.ndarray, rng: np.random.Generator, n: int = 2000) -> tuple[float, float]:
    boots = [values[rng.integers(0, len(values), len(values))].mean() for _ in range(n)]
    return float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def _correct(panel, truth) -> np.ndarray:
    """The panel's majority against the truth per pair: 1 right, 0 wrong, 0.5 even."""
    return np.array([0.5 if x.majority is None else float(x.majority == truth[(x.prompt_id, x.lo, x.hi)])
                     for x in panel])


def _report(panel, truth, share: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    judge = _correct(panel, truth)                      # panel order: most uncertain first
    k = max(1, round(share * len(panel)))
    routed = judge.copy()
    routed[:k] = 1.0
    draws = []
    for _ in range(200):
        x = judge.copy()
        x[rng.choice(len(x), k, replace=False)] = 1.0
        draws.append(x)
    random_mean = np.mean([d.mean() for d in draws])
    random_boot = [draws[rng.integers(0, 200)][rng.integers(0, len(judge), len(judge))].mean() for _ in range(2000)]
    print(f"{len(panel)} pairs, people on {k} ({share:.0%}); label accuracy against HH-RLHF's people, 95% CI:")
    print(f"  panel alone                         {judge.mean():.3f} [{_ci(judge, rng)[0]:.3f}, {_ci(judge, rng)[1]:.3f}]")
    lo, hi = _ci(routed, rng)
    print(f"  panel + people, most uncertain {share:.0%}  {routed.mean():.3f} [{lo:.3f}, {hi:.3f}]")
    print(f"  panel + people, random {share:.0%}          {random_mean:.3f} "
          f"[{np.percentile(random_boot, 2.5):.3f}, {np.percentile(random_boot, 97.5):.3f}]")
    gain = routed - np.mean(draws, axis=0)
    print(f"  difference (uncertain - random)     {gain.mean():+.3f} [{_ci(gain, rng)[0]:+.3f}, {_ci(gain, rng)[1]:+.3f}]")
    print(f"  the panel's accuracy on the routed pairs {judge[:k].mean():.3f}, on the kept ones {judge[k:].mean():.3f}; "
          f"order flips on {sum(x.flips > 0 for x in panel)} pairs")


def simulated_panel(s: store.Store, truth: dict[tuple[int, int, int], int], judges: int, seed: int) -> None:
    """Record ``judges`` simulated judges' labels on every pair: a pair's difficulty ``d`` is
    uniform in [0, 1]; each judge flips with the order with probability ``0.1 + 0.5 d`` (a tie),
    else picks HH-RLHF's winner with probability ``1 - 0.45 d``, at confidence ``0.5 + 0.5 (1 - d) u``
    (``u`` uniform). A noise model, not a model: it says what routing buys when a panel's
    disagreement tracks how hard a pair is, as judges' errors do (Zheng et al. 2023)."""
    rng = np.random.default_rng(seed)
    for (pid, lo, hi), win in truth.items():
        d = rng.uniform()
        for j in range(judges):
            flip = rng.uniform() < 0.1 + 0.5 * d
            right = rng.uniform() < 1 - 0.45 * d
            best = win if right else (hi if win == lo else lo)
            ranking = [[lo, hi]] if flip else [[best], [hi if best == lo else lo]]
            s.comparisons.record(pid, ranking, labeler_kind="ai", labeler=f"simulated-judge-{j + 1}",
                                 confidence=None if flip else float(0.5 + 0.5 * (1 - d) * rng.uniform()),
                                 flags=["position_inconsistent"] if flip else [])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default=None, help="work folder (default: a new temporary one)")
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--principles", default="harmless,helpful")
    ap.add_argument("--share", type=float, default=0.2)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--panel", choices=["local", "simulated"], default="local",
                    help="local: SmolLM2 under each principle, both orders; simulated: noisy judges "
                         "whose disagreement tracks each pair's difficulty (see simulated_panel)")
    ap.add_argument("--judges", type=int, default=3, help="simulated judges")
    args = ap.parse_args()
    d = Path(args.dir or tempfile.mkdtemp(prefix="judge-routing-"))
    d.mkdir(parents=True, exist_ok=True)
    s = store.Store(d / "routing.duckdb", create=True)
    if not s.prompts.datasets():
        import_file(s, SHARED / "hh-rlhf" / "harmless-base-test-dev.jsonl.gz", "hh")
    truth = _truth(s)
    if args.panel == "simulated":
        keep = dict(sorted(truth.items())[:args.pairs])
        simulated_panel(s, keep, args.judges, args.seed)
        print(f"{args.judges} simulated judges on {len(keep)} pairs ({d})")
        labelers = [f"simulated-judge-{j + 1}" for j in range(args.judges)]
    else:
        r = run_batch(s, "pairwise", make_backend("local", store=s), source="human", limit=args.pairs,
                      principles=args.principles.split(","), concurrency=args.concurrency, max_tokens=8,
                      progress=False)
        print(f"judge run {r.run.id}: {r.calls} calls, {r.comparisons} AI labels ({d})")
        labelers = None
    panel = [x for x in panel_pairs(s, labelers) if (x.prompt_id, x.lo, x.hi) in truth]
    _report(panel, truth, args.share, args.seed)


if __name__ == "__main__":
    main()
