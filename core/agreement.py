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
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

__all__ = ["krippendorff_alpha", "pairwise_agreement", "ranking_units", "cohen_kappa", "PAIRWISE_TEMPLATE",
           "JudgeRows", "judge_agreement"]

#: The template id under which the judge stores its pairwise judgments (the judge writes them,
#: :data:`prefloop.judge.templates.PAIRWISE`; the agreement below reads them).
PAIRWISE_TEMPLATE = "pairwise@1"


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


@dataclass
class JudgeRows:
    """What :func:`judge_agreement` reads, as the store fetches it
    (:func:`prefloop.store.judge_rows.agreement_rows`): votes per response pair of the
    reference (``ref``) and of the judge (``judged``), rows ``{prompt_id, lo, hi, rationale,
    v_lo, v_hi}``; the judge's pairwise verdicts per order, ``(pair, principle, order, winner)``;
    and each judged response's length in characters."""

    ref: list[dict[str, Any]]
    judged: list[dict[str, Any]]
    orders: list[tuple[tuple[int, int, int], str, str, int]] = field(default_factory=list)
    lengths: dict[int, int] = field(default_factory=dict)


def _label(v_lo: int, v_hi: int) -> str:
    return "lo" if v_lo > v_hi else "hi" if v_hi > v_lo else "tie"


def _metrics(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    judge = [j for j, _ in pairs]
    ref = [r for _, r in pairs]
    no_ties = [(j, r) for j, r in pairs if j != "tie" and r != "tie"]
    return {"pairs": len(pairs),
            "accuracy": sum(j == r for j, r in no_ties) / len(no_ties) if no_ties else None,
            "pairs_without_ties": len(no_ties),
            "agreement_with_ties": sum(j == r for j, r in pairs) / len(pairs) if pairs else None,
            "kappa": cohen_kappa(judge, ref),
            "judge_tie_rate": judge.count("tie") / len(judge) if judge else None}


def judge_agreement(rows: JudgeRows) -> dict[str, dict[str, Any]]:
    """How well an AI judge agrees with a reference (people, or another labeler) on the pairs
    both labeled, overall (key ``all``) and per principle (``principle=<id>``). Each side's label
    on a pair is its majority vote (``lo`` wins, ``hi`` wins, or ``tie``):

    * ``accuracy``: agreement on pairs where neither side says tie;
    * ``agreement_with_ties``: identical labels over all shared pairs;
    * ``kappa``: Cohen's kappa over the three labels;
    * ``position_consistency``: share of (pair, principle) whose AB and BA verdicts pick the
      same response;
    * ``length_bias`` (``all``): share of the judge's non-tie verdicts won by the longer response
      (0.5 = no bias).
    """
    ref: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows.ref:
        ref[(r["prompt_id"], r["lo"], r["hi"])][0] += r["v_lo"]
        ref[(r["prompt_id"], r["lo"], r["hi"])][1] += r["v_hi"]
    by_principle: dict[str, list[tuple[str, str]]] = defaultdict(list)
    overall: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows.judged:
        key = (r["prompt_id"], r["lo"], r["hi"])
        if key not in ref:
            continue
        by_principle[r["rationale"]].append((_label(r["v_lo"], r["v_hi"]), _label(*ref[key])))
        overall[key][0] += r["v_lo"]
        overall[key][1] += r["v_hi"]
    out = {"all": _metrics([(_label(*v), _label(*ref[k])) for k, v in overall.items()])}
    for principle, pairs in sorted(by_principle.items()):
        out[f"principle={principle or '-'}"] = _metrics(pairs)
    for key, value in _position_consistency(rows.orders).items():
        out.setdefault(key, {"pairs": 0})["position_consistency"] = value
    out["all"]["length_bias"] = _length_bias(rows.judged, rows.lengths)
    return out


def _position_consistency(orders: list[tuple[tuple[int, int, int], str, str, int]]) -> dict[str, float]:
    by: dict[tuple, dict[str, int]] = defaultdict(dict)
    for pair, principle, order, winner in orders:
        by[(pair, principle)][order] = winner
    per: dict[str, list[bool]] = defaultdict(list)
    for (_pair, principle), o in by.items():
        if "AB" in o and "BA" in o:
            same = o["AB"] == o["BA"]
            per["all"].append(same)
            per[f"principle={principle or '-'}"].append(same)
    return {k: sum(v) / len(v) for k, v in per.items() if v}


def _length_bias(judged: list[dict[str, Any]], length: dict[int, int]) -> float | None:
    winners = [(r["lo"], r["hi"], _label(r["v_lo"], r["v_hi"])) for r in judged]
    decided = [(lo, hi, lab) for lo, hi, lab in winners if lab != "tie" and length.get(lo) != length.get(hi)]
    longer = sum((lab == "lo") == (length[lo] > length[hi]) for lo, hi, lab in decided)
    return longer / len(decided) if decided else None
