"""Inter-annotator agreement over task rankings.

Each unit is a (task, pair of responses); each annotator's value for it is ``-1`` / ``0`` /
``+1`` (first better, tie, second better) read off their ranking. Reported:

* Krippendorff's alpha for nominal data (Krippendorff 2011, "Computing Krippendorff's
  Alpha-Reliability"): ``1 - D_o / D_e`` over units with two or more values;
* pairwise agreement: share of agreeing annotator pairs per unit, pooled.

>>> round(krippendorff_alpha([[1, 1], [0, 0], [1, 0]]), 3)
0.444
"""

from __future__ import annotations

from collections import Counter, defaultdict
from itertools import combinations

__all__ = ["krippendorff_alpha", "pairwise_agreement", "ranking_units"]


def ranking_units(submissions: list[tuple[int, str, list[list[int]]]]) -> list[list[int]]:
    """Values per (task, response pair) unit from ``(task_id, annotator, ranking)`` rows."""
    units: dict[tuple, list[int]] = defaultdict(list)
    for task_id, _, ranking in submissions:
        pos = {r: i for i, g in enumerate(ranking) for r in g}
        for a, b in combinations(sorted(pos), 2):
            units[(task_id, a, b)].append((pos[a] > pos[b]) - (pos[a] < pos[b]))
    return list(units.values())


def krippendorff_alpha(units: list[list[int]]) -> float | None:
    """Nominal Krippendorff's alpha; ``None`` when no unit has two values or all values agree
    on a single category (expected disagreement 0)."""
    usable = [u for u in units if len(u) >= 2]
    if not usable:
        return None
    o: Counter = Counter()                    # coincidence matrix
    for u in usable:
        m = len(u)
        for i, j in combinations(range(m), 2):
            o[(u[i], u[j])] += 1 / (m - 1)
            o[(u[j], u[i])] += 1 / (m - 1)
    n_c: Counter = Counter()
    for (c, _), v in o.items():
        n_c[c] += v
    n = sum(n_c.values())
    d_o = sum(v for (c, k), v in o.items() if c != k) / n
    d_e = sum(n_c[c] * n_c[k] for c in n_c for k in n_c if c != k) / (n * (n - 1))
    return None if d_e == 0 else 1 - d_o / d_e


def pairwise_agreement(units: list[list[int]]) -> float | None:
    """Share of agreeing pairs of values within units, pooled over units."""
    agree = total = 0
    for u in units:
        for a, b in combinations(u, 2):
            agree += a == b
            total += 1
    return agree / total if total else None
