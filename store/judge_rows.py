"""What the agreement between an AI judge and a reference is computed from
(:func:`prefloop.core.agreement.judge_agreement`), fetched from the store."""

from __future__ import annotations

from prefloop.core.agreement import PAIRWISE_TEMPLATE, JudgeRows

from .db import Store
from .pairs import pair_votes

__all__ = ["agreement_rows"]


def agreement_rows(s: Store, judge_model: str, *, against: str = "human") -> JudgeRows:
    """The votes of ``judge_model`` and of the reference (``human``: every human label; or a
    labeler name such as ``alpaca_eval_gpt4``) per response pair, the judge's pairwise verdicts
    per order, and the judged responses' lengths (characters)."""
    ref = pair_votes(s, labeler_kind="human") if against == "human" else pair_votes(s, labeler=against)
    judged = pair_votes(s, labeler=judge_model)
    orders = []
    for j in s.judgments.list(judge_model=judge_model, template=PAIRWISE_TEMPLATE):
        meta = j.meta or {}
        if j.verdict is None or "first" not in meta:
            continue
        winner = meta["first"] if j.verdict == "A" else meta["second"]
        pair = (meta["prompt_id"], min(meta["first"], meta["second"]), max(meta["first"], meta["second"]))
        orders.append((pair, j.principle or "", j.order, winner))
    ids = sorted({x for r in judged for x in (r["lo"], r["hi"])})
    lengths = {r.id: len(r.text) for r in s.responses.get_many(ids)} if ids else {}
    return JudgeRows(ref, judged, orders, lengths)
