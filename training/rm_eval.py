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

import torch

__all__ = ["expected_calibration_error", "reward_metrics", "grouped_reward_metrics"]


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
