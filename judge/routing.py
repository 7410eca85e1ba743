"""AI labels routed to people where the judges are unsure.

A **panel** is every AI pairwise label on a pair: several judge models, several principles
(constitution entries), each judged in both orders (:func:`prefloop.judge.modes.judge_pairwise`
records one comparison per pair and principle, flagged ``position_inconsistent`` when the two
orders disagree). Each member's label is a probability that the pair's lower response id wins:
its confidence toward the side it chose, 0.5 for a tie or an order flip. The panel's
probability is their mean, and its **uncertainty** ``1 - |2p - 1|`` is 1 where the members
cancel out or flip with the order and 0 where they agree with full confidence (the routing idea
of sending a model's least certain items to people: active learning's uncertainty sampling;
Zheng et al. 2023 and Dubois et al. 2023 measure judges' position bias and agreement with
people, the reasons to distrust a single order and a single judge).

:func:`route_to_people` queues blind tasks for the most uncertain pairs first (priority by
uncertainty); the rest keep their AI labels. ``bench/judge_routing.py`` measures what this buys
against sending a random share of the pairs to people.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from prefloop import store

from .errors import JudgeError

__all__ = ["PairPanel", "panel_pairs", "route_to_people", "RouteResult"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairPanel:
    """One pair's panel: ``p_lo``, the mean probability over ``members`` AI labels that the
    lower response id wins; ``flips``, how many members' two orders disagreed; ``uncertainty``
    in [0, 1]."""

    prompt_id: int
    lo: int
    hi: int
    p_lo: float
    members: int
    flips: int

    @property
    def uncertainty(self) -> float:
        return 1.0 - abs(2.0 * self.p_lo - 1.0)

    @property
    def majority(self) -> int | None:
        """The panel's label: the winning response id, ``None`` for an even panel."""
        return self.lo if self.p_lo > 0.5 else self.hi if self.p_lo < 0.5 else None


def _member_p_lo(c: store.Comparison, lo: int) -> float:
    """One AI label as P(lower id wins): its confidence toward its side (1 without one), 0.5
    for a tie or a label whose two orders disagreed."""
    if len(c.ranking[0]) > 1 or "position_inconsistent" in (c.flags or []):
        return 0.5
    conf = 1.0 if c.confidence is None else float(c.confidence)
    return conf if c.ranking[0][0] == lo else 1.0 - conf


def panel_pairs(s: store.Store, labelers: Sequence[str] | None = None,
                prompt_ids: Sequence[int] | None = None) -> list[PairPanel]:
    """The panel of every pair with AI pairwise labels (of ``labelers`` only, when given; of
    ``prompt_ids`` only, when given), most uncertain first (ties by prompt and ids)."""
    votes: dict[tuple[int, int, int], list[float]] = {}
    flips: dict[tuple[int, int, int], int] = {}
    for c in s.comparisons.list(labeler_kind="ai", prompt_ids=prompt_ids):
        ids = [x for g in c.ranking for x in g]
        if len(ids) != 2 or c.eval_run_id is not None or (labelers and c.labeler not in labelers):
            continue
        lo, hi = sorted(ids)
        key = (c.prompt_id, lo, hi)
        votes.setdefault(key, []).append(_member_p_lo(c, lo))
        flips[key] = flips.get(key, 0) + ("position_inconsistent" in (c.flags or []))
    out = [PairPanel(p, lo, hi, sum(v) / len(v), len(v), flips[(p, lo, hi)]) for (p, lo, hi), v in votes.items()]
    return sorted(out, key=lambda x: (-x.uncertainty, x.prompt_id, x.lo, x.hi))


@dataclass(frozen=True)
class RouteResult:
    """What :func:`route_to_people` did: the pairs read, the routed pairs' task ids (new or
    already queued), how many were new, and the uncertainty of the least uncertain one routed."""

    pairs: int
    task_ids: list[int]
    created: int
    threshold: float | None


def route_to_people(s: store.Store, *, fraction: float | None = None, n: int | None = None,
                    labelers: Sequence[str] | None = None, min_uncertainty: float = 0.0,
                    overlap: int = 1) -> RouteResult:
    """Queue blind tasks for people on the most uncertain pairs of the panel: the top
    ``fraction`` of the pairs, or the top ``n``, with uncertainty at least ``min_uncertainty``;
    priority ``round(100 * uncertainty)``, so the least certain are labeled first. Pairs already
    queued are counted, not queued twice.

    Raises:
        JudgeError: neither or both of ``fraction`` and ``n``, a fraction outside (0, 1], or no
            AI pairwise label to route.
    """
    if (fraction is None) == (n is None):
        raise JudgeError("route: give --fraction or --n (one of them)")
    if fraction is not None and not 0 < fraction <= 1:
        raise JudgeError(f"--fraction {fraction}: expected a share in (0, 1]")
    if n is not None and n < 1:
        raise JudgeError(f"--n {n}: expected at least 1 pair")
    panel = panel_pairs(s, labelers)
    if not panel:
        raise JudgeError("no AI pairwise labels to route: run `prefloop judge --mode pairwise` first"
                         + (f" (labelers {', '.join(labelers)})" if labelers else ""))
    k = n if n is not None else max(1, round(fraction * len(panel)))
    chosen = [x for x in panel[:k] if x.uncertainty >= min_uncertainty]
    tasks = [store.TaskIn(x.prompt_id, [x.lo, x.hi], overlap=overlap, priority=round(100 * x.uncertainty),
                          reason=f"judge panel unsure: {x.members} labels, {x.flips} order flips, "
                                 f"P(first) {x.p_lo:.2f}") for x in chosen]
    report = s.tasks.create_report(tasks)
    log.info("routed %d of %d pairs to people (%d already queued)", len(report.ids), len(panel), report.existing)
    return RouteResult(len(panel), report.ids, report.created, chosen[-1].uncertainty if chosen else None)
