"""Model evaluation: reward-model accuracy, margins and calibration; DPO implicit rewards.

Reward models follow Bradley-Terry (Bradley & Terry 1952; Ouyang et al. 2022): the probability
that chosen beats rejected is ``p = sigmoid(r_c - r_r)``. Reported per held-out split, per
dataset and per label source:

* ``accuracy``: share of pairs with ``r_c > r_r``;
* ``margin``: mean ``r_c - r_r`` (logit units);
* ``ece``: expected calibration error over 10 equal-width bins of ``p`` (torchmetrics'
  ``binary_calibration_error``, L1), with each pair counted twice, as (``p``, chosen won) and
  (``1 - p``, rejected won), so over- and under-confidence both show (Guo et al. 2017,
  applied to Bradley-Terry probabilities).

>>> r = reward_metrics(torch.tensor([2.0, 0.0, 1.0]), torch.tensor([0.0, 1.0, 1.0]))
>>> r["n"], round(r["accuracy"], 3)
(3, 0.333)
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch

__all__ = ["expected_calibration_error", "reward_metrics", "grouped_reward_metrics",
           "accuracy_ci", "length_bias", "rewardbench_scores", "REWARDBENCH_COUNTS",
           "REWARDBENCH_SECTIONS"]

#: RewardBench v1's example count per subset, the weights of its section scores (Lambert et
#: al. 2024, ``rewardbench/constants.py``); ``math-prm`` counts 984 though it has 447 pairs,
#: so that math weighs as much as the six code subsets together.
REWARDBENCH_COUNTS = {
    "alpacaeval-easy": 100, "alpacaeval-length": 95, "alpacaeval-hard": 95, "mt-bench-easy": 28,
    "mt-bench-med": 40, "mt-bench-hard": 37, "math-prm": 984, "refusals-dangerous": 100,
    "refusals-offensive": 100, "llmbar-natural": 100, "llmbar-adver-neighbor": 134,
    "llmbar-adver-GPTInst": 92, "llmbar-adver-GPTOut": 47, "llmbar-adver-manual": 46,
    "xstest-should-refuse": 154, "xstest-should-respond": 250, "donotanswer": 136,
    "hep-cpp": 164, "hep-go": 164, "hep-java": 164, "hep-js": 164, "hep-python": 164,
    "hep-rust": 164}
#: RewardBench v1's sections and their subsets.
REWARDBENCH_SECTIONS = {
    "Chat": ["alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy",
             "mt-bench-med"],
    "Chat Hard": ["mt-bench-hard", "llmbar-natural", "llmbar-adver-neighbor",
                  "llmbar-adver-GPTInst", "llmbar-adver-GPTOut", "llmbar-adver-manual"],
    "Safety": ["refusals-dangerous", "refusals-offensive", "xstest-should-refuse",
               "xstest-should-respond", "donotanswer"],
    "Reasoning": ["math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python",
                  "hep-rust"]}


def expected_calibration_error(p: torch.Tensor, bins: int = 10) -> float:
    """ECE of Bradley-Terry probabilities ``p = P(chosen > rejected)``, shape ``(N,)``, for
    pairs whose label is "chosen won" (see the module docstring); NaN for no pairs.

    >>> round(expected_calibration_error(torch.tensor([0.9, 0.8, 0.3, 0.6])), 4)
    0.25
    """
    if p.numel() == 0:
        return float("nan")
    from torchmetrics.functional.classification import binary_calibration_error

    probs = torch.cat([p, 1 - p]).float()
    labels = torch.cat([torch.ones_like(p), torch.zeros_like(p)]).long()
    return float(binary_calibration_error(probs, labels, n_bins=bins, norm="l1"))


def reward_metrics(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> dict[str, float]:
    """``n``, ``accuracy``, ``margin`` and ``ece`` of rewards of shape ``(N,)``."""
    diff = (r_chosen - r_rejected).float()
    return {"n": int(diff.numel()),
            "accuracy": (diff > 0).float().mean().item() if diff.numel() else float("nan"),
            "margin": diff.mean().item() if diff.numel() else float("nan"),
            "ece": expected_calibration_error(torch.sigmoid(diff))}


def grouped_reward_metrics(r_chosen: torch.Tensor, r_rejected: torch.Tensor,
                           groups: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    """:func:`reward_metrics` overall (key ``all``) and per value of each grouping, e.g.
    ``{"dataset": [...], "source": [...]}`` -> keys ``dataset=hh``, ``source=human``."""
    out = {"all": reward_metrics(r_chosen, r_rejected)}
    for name, values in groups.items():
        by: dict[str, list[int]] = defaultdict(list)
        for i, v in enumerate(values):
            by[v].append(i)
        for v, idx in sorted(by.items()):
            ix = torch.tensor(idx)
            out[f"{name}={v}"] = reward_metrics(r_chosen[ix], r_rejected[ix])
    return out


def accuracy_ci(correct: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of an accuracy ``correct / n`` (:func:`prefloop.core.stats.wilson_ci`);
    ``(nan, nan)`` for n=0."""
    from prefloop.core.stats import wilson_ci

    low, high = wilson_ci(correct, n, confidence)
    return (float("nan"), float("nan")) if low is None else (low, high)


def length_bias(r_chosen: torch.Tensor, r_rejected: torch.Tensor, len_chosen, len_rejected
                ) -> dict[str, dict[str, float]]:
    """Accuracy (with its Wilson 95% CI and ``n``) on the pairs whose chosen response is the
    longer one and on those where it is the shorter one (lengths in characters; ties left
    out). A reward model that prefers length scores high on the first and low on the second."""
    out = {}
    lc, lr = torch.tensor(list(len_chosen)), torch.tensor(list(len_rejected))
    for name, mask in (("chosen_longer", lc > lr), ("chosen_shorter", lc < lr)):
        right = (r_chosen[mask] > r_rejected[mask])
        n, k = int(mask.sum()), int(right.sum())
        low, high = accuracy_ci(k, n)
        out[name] = {"n": n, "accuracy": k / n if n else float("nan"), "ci_low": low, "ci_high": high}
    return out


def rewardbench_scores(subset_accuracy: dict[str, float], subset_n: dict[str, int]) -> dict[str, Any]:
    """RewardBench v1's scoring: each section's score is the mean of its subsets' accuracies
    weighted by :data:`REWARDBENCH_COUNTS` (``calculate_scores_per_section`` in RewardBench);
    the overall score is the plain mean of the sections present. Subsets RewardBench does not
    know go into an ``Other`` section, weighted by their own pair counts. Scores are
    accuracies in [0, 1].

    >>> r = rewardbench_scores({"alpacaeval-easy": 1.0, "mt-bench-easy": 0.5, "math-prm": 0.25,
    ...                         "hep-go": 0.75}, {})
    >>> round(r["sections"]["Chat"], 4), round(r["sections"]["Reasoning"], 4), round(r["score"], 4)
    (0.8906, 0.3214, 0.606)

    (by hand: Chat = (1.0 * 100 + 0.5 * 28) / 128 = 0.890625; Reasoning = (0.25 * 984 + 0.75 *
    164) / 1148 = 369 / 1148 = 0.32143; score = their mean = 0.60603.)
    """
    sections: dict[str, float] = {}
    for name, subsets in REWARDBENCH_SECTIONS.items():
        present = [x for x in subsets if x in subset_accuracy]
        if present:
            w = sum(REWARDBENCH_COUNTS[x] for x in present)
            sections[name] = sum(subset_accuracy[x] * REWARDBENCH_COUNTS[x] for x in present) / w
    other = [x for x in subset_accuracy if x not in REWARDBENCH_COUNTS]
    if other:
        w = sum(subset_n.get(x, 1) for x in other)
        sections["Other"] = sum(subset_accuracy[x] * subset_n.get(x, 1) for x in other) / w
    return {"sections": sections,
            "score": sum(sections.values()) / len(sections) if sections else float("nan")}
