"""How well an AI judge agrees with people (or with another judge) on the same pairs.

For every response pair labeled by both, each side's label is its majority vote (``lo`` wins,
``hi`` wins, or ``tie`` when votes are even). Reported overall and per principle:

* ``accuracy``: agreement on pairs where neither side says tie (agreement without ties);
* ``agreement_with_ties``: identical labels over all shared pairs (a judge tie is wrong unless
  the reference is a tie);
* ``kappa``: Cohen's kappa (Cohen 1960) over the three labels (scikit-learn's
  ``cohen_kappa_score``);
* ``position_consistency``: share of (pair, principle) whose AB and BA verdicts pick the same
  response (from the judge's ``pairwise`` judgments, shared pairs or not);
* ``length_bias``: share of the judge's non-tie verdicts won by the longer response
  (0.5 = no bias).

Cohen's kappa itself is :func:`prefloop.core.agreement.cohen_kappa`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from prefloop import store
from prefloop.core.agreement import cohen_kappa

from .pairs import pair_votes

__all__ = ["judge_agreement", "PAIRWISE_TEMPLATE"]

#: The template id under which the judge stores its pairwise judgments (one definition:
#: :data:`prefloop.judge.templates.PAIRWISE` is this value).
PAIRWISE_TEMPLATE = "pairwise@1"


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


def judge_agreement(s: store.Store, judge_model: str, *, against: str = "human") -> dict[str, dict[str, Any]]:
    """Metrics of ``judge_model``'s AI comparisons against ``against`` (``human`` for all
    human labels, or a labeler name such as ``alpaca_eval_gpt4``), overall (key ``all``) and
    per principle (``principle=<id>``)."""
    ref_rows = (pair_votes(s, labeler_kind="human") if against == "human"
                else pair_votes(s, labeler=against))
    ref: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for r in ref_rows:
        ref[(r["prompt_id"], r["lo"], r["hi"])][0] += r["v_lo"]
        ref[(r["prompt_id"], r["lo"], r["hi"])][1] += r["v_hi"]
    judged = pair_votes(s, labeler=judge_model)
    by_principle: dict[str, list[tuple[str, str]]] = defaultdict(list)
    overall: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for r in judged:
        key = (r["prompt_id"], r["lo"], r["hi"])
        if key not in ref:
            continue
        by_principle[r["rationale"]].append((_label(r["v_lo"], r["v_hi"]), _label(*ref[key])))
        overall[key][0] += r["v_lo"]
        overall[key][1] += r["v_hi"]
    out = {"all": _metrics([(_label(*v), _label(*ref[k])) for k, v in overall.items()])}
    for principle, pairs in sorted(by_principle.items()):
        out[f"principle={principle or '-'}"] = _metrics(pairs)
    consistency, lengths = _position_and_length(s, judge_model, judged)
    for key, value in consistency.items():
        out.setdefault(key, {"pairs": 0})["position_consistency"] = value
    out["all"]["length_bias"] = lengths
    return out


def _position_and_length(s: store.Store, judge_model: str, judged: list[dict]) -> tuple[dict, float | None]:
    orders: dict[tuple, dict[str, int]] = defaultdict(dict)
    for j in s.judgments.list(judge_model=judge_model, template=PAIRWISE_TEMPLATE):
        meta = j.meta or {}
        if j.verdict is None or "first" not in meta:
            continue
        winner = meta["first"] if j.verdict == "A" else meta["second"]
        pair = (meta["prompt_id"], min(meta["first"], meta["second"]), max(meta["first"], meta["second"]))
        orders[(pair, j.principle or "")][j.order] = winner
    per: dict[str, list[bool]] = defaultdict(list)
    for (_pair, principle), o in orders.items():
        if "AB" in o and "BA" in o:
            same = o["AB"] == o["BA"]
            per["all"].append(same)
            per[f"principle={principle or '-'}"].append(same)
    consistency = {k: sum(v) / len(v) for k, v in per.items() if v}
    winners = [(r["lo"], r["hi"], _label(r["v_lo"], r["v_hi"])) for r in judged]
    ids = sorted({x for lo, hi, _ in winners for x in (lo, hi)})
    length = {r.id: len(r.text) for r in s.responses.get_many(ids)} if ids else {}
    decided = [(lo, hi, lab) for lo, hi, lab in winners if lab != "tie" and length[lo] != length[hi]]
    longer = sum((lab == "lo") == (length[lo] > length[hi]) for lo, hi, lab in decided)
    return consistency, (longer / len(decided) if decided else None)
