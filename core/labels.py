"""From votes to labels worth training on, computed on votes already fetched (the store fetches
them, :mod:`prefloop.store.aggregate`): labeler reliability by Dawid-Skene over people and AI
judges alike, and AI labelers' agreement with people.

An item is a pair of responses of one prompt; a labeler's label on it is 1 (the lower response
id wins) or 0 (the higher one wins). Dawid & Skene (1979), "Maximum Likelihood Estimation of
Observer Error-Rates Using the EM Algorithm", as implemented by crowd-kit (Ustalov et al.
2021): each labeler has a confusion matrix; EM estimates them and each item's posterior. Gold
tasks (known answers) anchor it (``true_labels``). A labeler's accuracy is ``sum_c prior_c *
P(says c | truth c)``, with a Wilson 95% interval over its number of votes; a labeler who shares
no item with another labeler and answered no gold item has no estimable accuracy (``None``,
``why``: "no overlap"): EM would call it perfect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .stats import wilson_ci

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["LabelerStats", "dawid_skene", "ai_agreement"]


@dataclass
class LabelerStats:
    """One labeler's reliability: ``votes`` (directed), estimated ``accuracy`` (Dawid-Skene)
    with its Wilson interval, accuracy on gold items, agreement with the others' majority."""

    labeler: str
    kind: str
    votes: int
    accuracy: float | None = None
    accuracy_low: float | None = None
    accuracy_high: float | None = None
    gold_votes: int = 0
    gold_accuracy: float | None = None
    consensus_votes: int = 0
    consensus_agreement: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def dawid_skene(votes: pa.Table, gold: dict[tuple[int, int, int], int] | None = None, *,
                n_iter: int = 100) -> tuple[dict[tuple[int, int, int], float], list[LabelerStats]]:
    """Fit Dawid-Skene (crowd-kit) to directed votes (:func:`labeler_votes`).

    Args:
        gold: known labels of items ``(prompt_id, lo, hi)`` -> 1 or 0 (anchors).

    Returns:
        ``(posterior, stats)``: P(``lo`` wins) per item, and one :class:`LabelerStats` per
        labeler (most accurate first).
    """
    import numpy as np
    import pandas as pd
    from crowdkit.aggregation import DawidSkene

    if votes.num_rows == 0:
        return {}, []
    df = votes.to_pandas()
    items = list(dict.fromkeys(zip(df.prompt_id, df.lo, df.hi)))
    index = {k: i for i, k in enumerate(items)}
    df["task"] = [index[k] for k in zip(df.prompt_id, df.lo, df.hi)]
    data = df.rename(columns={"labeler": "worker"})[["task", "worker", "label"]]
    gold = gold or {}
    true = pd.Series({index[k]: y for k, y in gold.items() if k in index}, dtype="int64")
    errors = priors = None
    if data.label.nunique() == 1:                 # one class only: nothing to estimate
        p_lo = dict.fromkeys(range(len(items)), float(data.label.iloc[0]))
    else:
        ds = DawidSkene(n_iter=n_iter).fit(data, true_labels=true if len(true) else None)
        p_lo = ds.probas_[1].to_dict() if 1 in ds.probas_.columns else dict.fromkeys(range(len(items)), 0.0)
        errors, priors = ds.errors_, ds.priors_
    posterior = {items[t]: float(p) for t, p in p_lo.items()}
    gold_by_task = {index[k]: y for k, y in gold.items() if k in index}
    kinds = df.groupby("labeler").labeler_kind.first().to_dict()
    # the others' majority per item, leaving each labeler out
    totals = df.groupby("task").label.agg(["sum", "count"])
    out = []
    for w, g in df.groupby("labeler"):
        acc = None
        if errors is not None:
            acc = float(sum(priors.get(c, 0.0) * errors.loc[(w, c), c]
                            for c in (0, 1) if (w, c) in errors.index))
        on_gold = [(y == gold_by_task[t]) for t, y in zip(g.task, g.label) if t in gold_by_task]
        others = totals.loc[list(g.task)]
        rest_sum, rest_n = others["sum"].values - g.label.values, others["count"].values - 1
        decided = (rest_n > 0) & (2 * rest_sum != rest_n)
        agree = ((2 * rest_sum > rest_n).astype(int) == g.label.values)[decided]
        overlap = bool((rest_n > 0).any()) or bool(on_gold)
        if not overlap:                    # nobody to agree with: EM's "accuracy" would be 1
            acc = None
        low, high = wilson_ci((acc or 0.0) * len(g), len(g)) if acc is not None else (None, None)
        out.append(LabelerStats(
            w, kinds[w], len(g), acc, low, high, len(on_gold),
            float(np.mean(on_gold)) if on_gold else None, int(decided.sum()),
            float(agree.mean()) if decided.any() else None, {} if overlap else {"why": "no overlap"}))
    out.sort(key=lambda x: (x.accuracy is None, -(x.accuracy or 0)))
    return posterior, out


def ai_agreement(votes: pa.Table) -> dict[str, tuple[float | None, int]]:
    """Per AI labeler: agreement with people's majority on items both labeled, and how many
    such items (people's ties and AI's ties left out)."""
    df = votes.to_pandas()
    human = df[df.labeler_kind == "human"].groupby(["prompt_id", "lo", "hi"]).label.agg(["sum", "count"])
    human = human[2 * human["sum"] != human["count"]]
    people = (2 * human["sum"] > human["count"]).astype(int).to_dict()
    out = {}
    for w, g in df[df.labeler_kind == "ai"].groupby("labeler"):
        shared = [(y == people[k]) for k, y in zip(zip(g.prompt_id, g.lo, g.hi), g.label) if k in people]
        out[w] = (sum(shared) / len(shared) if shared else None, len(shared))
    return out
