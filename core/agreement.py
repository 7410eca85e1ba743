"""Inter-annotator agreement over task rankings.

Each unit is a (task, pair of responses); each annotator's value for it is ``-1`` / ``0`` /
``+1`` (first better, tie, second better) read off their ranking. Reported:

* Krippendorff's alpha for nominal data (Krippendorff 2011, "Computing Krippendorff's
  Alpha-Reliability"), computed by the ``krippendorff`` package over units with two or more
  values;
* pairwise agreement: share of agreeing annotator pairs per unit, pooled;
* Cohen's kappa of two label lists (Cohen 1960, scikit-learn's ``cohen_kappa_score``), for a
  judge against people.

>>> round(krippendorff_alpha([[1, 1], [0, 0], [1, 0]]), 3)
0.444
>>> cohen_kappa(["a", "b", "a", "tie"], ["a", "b", "b", "tie"])
0.6363636363636364
"""

from __future__ import annotations

from collections import defaultdict
from itertools import combinations

__all__ = ["krippendorff_alpha", "pairwise_agreement", "ranking_units", "cohen_kappa"]


def ranking_units(submissions: list[tuple[int, str, list[list[int]]]]) -> list[list[int]]:
    """Values per (task, response pair) unit from ``(task_id, annotator, ranking)`` rows."""
    units: dict[tuple, list[int]] = defaultdict(list)
    for task_id, _, ranking in submissions:
        pos = {r: i for i, g in enumerate(ranking) for r in g}
        for a, b in combinations(sorted(pos), 2):
            units[(task_id, a, b)].append((pos[a] > pos[b]) - (pos[a] < pos[b]))
    return list(units.values())


def krippendorff_alpha(units: list[list[int]]) -> float | None:
    """Nominal Krippendorff's alpha of the values per unit (``krippendorff.alpha`` on the
    units' value counts); ``None`` when no unit has two values or all values fall in one
    category (expected disagreement 0)."""
    import krippendorff
    import numpy as np

    usable = [u for u in units if len(u) >= 2]
    categories = sorted({v for u in usable for v in u})
    if len(categories) < 2:
        return None
    counts = np.array([[u.count(c) for c in categories] for u in usable])
    return float(krippendorff.alpha(value_counts=counts, level_of_measurement="nominal"))


def pairwise_agreement(units: list[list[int]]) -> float | None:
    """Share of agreeing pairs of values within units, pooled over units."""
    agree = total = 0
    for u in units:
        for a, b in combinations(u, 2):
            agree += a == b
            total += 1
    return agree / total if total else None


def cohen_kappa(x: list[str], y: list[str]) -> float | None:
    """Cohen's kappa of two label lists of equal length (``sklearn.metrics.cohen_kappa_score``);
    ``None`` where it is undefined (no labels, or both sides always give the same one)."""
    if not x or len(set(x) | set(y)) < 2:
        return None
    from sklearn.metrics import cohen_kappa_score

    return float(cohen_kappa_score(x, y))
