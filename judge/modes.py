"""Judge modes: pairwise, rank, critique (SL-CAI) and score, writing AI labels to the store.

* **pairwise**: each pair is judged in both orders (AB, BA) under each principle to cancel
  position bias (Zheng et al. 2023, MT-Bench). Where the backend returns option
  probabilities, the soft label ``P(a > b)`` averages both orders (as in Constitutional AI,
  Bai et al. 2022), decides the label and becomes the comparison's ``confidence``; otherwise
  agreeing verdicts give a label and disagreeing ones a tie. Orders that disagree are flagged
  ``position_inconsistent``. An unparseable order yields no comparison (its judgment is kept,
  verdict NULL).
* **rank**: k responses of a prompt are ranked by their pairwise wins (Copeland); responses
  with equal wins share a tie group.
* **critique**: Bai et al. 2022's supervised stage: sample a principle, ask for a critique,
  then a revision; repeat for N rounds. Critiques stay in ``judgments``; each revision becomes
  a response (origin ``revision``, parent = the revised response) and an AI comparison
  revision > original, ready for SFT and DPO.
* **score**: single-answer grading 1-10 (``Rating: [[N]]``, MT-Bench); judgments only.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from prefloop import store
from prefloop.core.kinds import JUDGE_MODES

from .backends import Completion
from .constitution import Constitution, Principle
from .errors import JudgeError
from .runner import CallSpec, JudgeSession
from .templates import (
    CRITIQUE,
    PAIRWISE,
    REVISION,
    SCORE,
    clean_generation,
    parse_pairwise,
    parse_score,
    render_critique,
    render_pairwise,
    render_revision,
    render_score,
)

__all__ = ["ModeResult", "judge_pairwise", "judge_rank", "critique_responses", "score_responses",
           "MODES"]

MODES = JUDGE_MODES


@dataclass
class ModeResult:
    """What a mode wrote: comparisons (ids), revisions (response ids), per-outcome counts, and
    for ``pairwise`` each pair's verdict: ``verdicts[(prompt_id, a, b, principle)] =
    (outcome, P(a > b) or None)`` with outcome ``a``, ``b``, ``tie``, ``unparseable`` or
    ``failed``."""

    comparisons: list[int] = field(default_factory=list)
    revisions: list[int] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    verdicts: dict[tuple[int, int, int, str], tuple[str, float | None]] = field(default_factory=dict)


def _pairwise_parse(c: Completion) -> tuple[str | None, float | None]:
    if c.choice_probs:
        p = c.choice_probs.get("A", 0.0)
        return ("A" if p >= 0.5 else "B"), p
    return parse_pairwise(c.text), None


def _pair_spec(messages, first: store.Response, second: store.Response, principle: Principle,
               order: str, prompt_id: int) -> CallSpec:
    return CallSpec(PAIRWISE, render_pairwise(messages, first.text, second.text, principle),
                    max_tokens=8, parse=_pairwise_parse, principle=principle.id, order=order,
                    choices=("A", "B"),
                    meta={"prompt_id": prompt_id, "first": first.id, "second": second.id})


async def _judge_pair(session: JudgeSession, prompt: store.Prompt, a: store.Response,
                      b: store.Response, principle: Principle) -> tuple[Any, Any]:
    ab = _pair_spec(prompt.messages, a, b, principle, "AB", prompt.id)
    ba = _pair_spec(prompt.messages, b, a, principle, "BA", prompt.id)
    return await asyncio.gather(session.call(ab), session.call(ba))


def _combine(j_ab, j_ba) -> tuple[str, float | None, bool]:
    """Outcome for the pair (a, b) from the AB and BA judgments: ``a``, ``b``, ``tie``, or
    ``unparseable``/``failed``; P(a > b) if known; whether the two orders agreed.

    With option probabilities, ``P(a > b)`` is the mean over both orders, which cancels a
    constant position bias: the label follows it (a tie only at exactly 0.5). Without them,
    agreeing verdicts give the label and disagreeing ones a tie.
    """
    if j_ab is None or j_ba is None:
        return "failed", None, False
    if j_ab.verdict is None or j_ba.verdict is None:
        return "unparseable", None, False
    a_first = j_ab.verdict == "A"           # AB: a was shown first
    a_second = j_ba.verdict == "B"          # BA: a was shown second
    consistent = a_first == a_second
    if j_ab.probability is not None and j_ba.probability is not None:
        prob = (j_ab.probability + (1.0 - j_ba.probability)) / 2
        return ("a" if prob > 0.5 else "b" if prob < 0.5 else "tie"), prob, consistent
    if consistent:
        return ("a" if a_first else "b"), None, True
    return "tie", None, False


async def judge_pairwise(s: store.Store, session: JudgeSession, pairs: list[tuple[int, int, int]],
                         principles: list[Principle], *, eval_run_id: int | None = None) -> ModeResult:
    """Judge ``(prompt_id, a_id, b_id)`` pairs in both orders under each principle and record
    one AI comparison per pair and principle (labeler = the judge model, rationale = the
    principle id; ``eval_run_id`` marks them as evaluation labels)."""
    result = ModeResult()
    prompts = {p.id: p for p in s.prompts.get_many(sorted({p for p, _, _ in pairs}))}
    responses = {r.id: r for r in s.responses.get_many(sorted({x for _, a, b in pairs for x in (a, b)}))}
    specs = [(_pair_spec(prompts[p].messages, responses[a], responses[b], pr, "AB", p),
              _pair_spec(prompts[p].messages, responses[b], responses[a], pr, "BA", p))
             for p, a, b in pairs for pr in principles]
    session.prefetch([session.key(x) for pair in specs for x in pair])
    jobs = [(p, a, b, pr) for p, a, b in pairs for pr in principles]
    judged = await asyncio.gather(*(_judge_pair(session, prompts[p], responses[a], responses[b], pr)
                                    for p, a, b, pr in jobs))
    for (p, a, b, pr), (j_ab, j_ba) in zip(jobs, judged):
        outcome, prob, consistent = _combine(j_ab, j_ba)
        result.outcomes[outcome] += 1
        result.verdicts[(p, a, b, pr.id)] = (outcome, prob)
        if outcome in ("failed", "unparseable"):
            continue
        ranking = [[a], [b]] if outcome == "a" else [[b], [a]] if outcome == "b" else [[a, b]]
        confidence = None if prob is None else (prob if outcome != "b" else 1.0 - prob)
        if outcome == "tie":
            confidence = None if prob is None else 1.0 - abs(prob - 0.5) * 2
        cid = await asyncio.to_thread(
            s.comparisons.record, p, ranking, labeler_kind="ai", labeler=session.backend.model,
            rationale=pr.id, flags=[] if consistent else ["position_inconsistent"],
            confidence=confidence, dedup_key=f"pairwise:{j_ab.cache_key}:{j_ba.cache_key}",
            eval_run_id=eval_run_id)
        await asyncio.to_thread(s.judgments.link_to_comparison, [j_ab.id, j_ba.id], cid)
        result.comparisons.append(cid)
    return result


async def judge_rank(s: store.Store, session: JudgeSession, groups: dict[int, list[int]],
                     principle: Principle) -> ModeResult:
    """Rank the responses of each prompt (``{prompt_id: [response ids]}``, k >= 2) by
    pairwise wins under one principle; one comparison per prompt."""
    result = ModeResult()
    prompts = {p.id: p for p in s.prompts.get_many(sorted(groups))}
    responses = {r.id: r for r in s.responses.get_many(sorted({x for v in groups.values() for x in v}))}
    for pid, rids in groups.items():
        rids = sorted(set(rids))
        if len(rids) < 2:
            continue
        pairs = [(a, b) for i, a in enumerate(rids) for b in rids[i + 1:]]
        judged = await asyncio.gather(*(_judge_pair(session, prompts[pid], responses[a], responses[b],
                                                    principle) for a, b in pairs))
        wins = {r: 0.0 for r in rids}
        usable = 0
        for (a, b), (j_ab, j_ba) in zip(pairs, judged):
            outcome, _, _ = _combine(j_ab, j_ba)
            if outcome == "a":
                wins[a] += 1
            elif outcome == "b":
                wins[b] += 1
            elif outcome == "tie":
                wins[a] += 0.5
                wins[b] += 0.5
            usable += outcome in ("a", "b", "tie")
        if usable < len(pairs):
            result.outcomes["incomplete"] += 1
            continue
        levels = sorted(set(wins.values()), reverse=True)
        ranking = [sorted(r for r in rids if wins[r] == w) for w in levels]
        keys = ":".join(sorted(j.cache_key for pair in judged for j in pair))
        cid = await asyncio.to_thread(
            s.comparisons.record, pid, ranking, labeler_kind="ai", labeler=session.backend.model,
            rationale=principle.id, dedup_key="rank:" + hashlib.sha256(keys.encode()).hexdigest())
        result.comparisons.append(cid)
        result.outcomes["ranked"] += 1
    return result


async def _critique_one(s: store.Store, session: JudgeSession, prompt: store.Prompt,
                        response: store.Response, constitution: Constitution, rounds: int,
                        result: ModeResult, max_tokens: int) -> None:
    current = response
    for r in range(rounds):
        principle = constitution.sample(f"{response.id}:{r}")
        meta = {"prompt_id": prompt.id, "response_id": current.id, "round": r + 1}
        crit = await session.call(CallSpec(CRITIQUE, render_critique(prompt.messages, current.text, principle),
                                           max_tokens=max_tokens, parse=None,
                                           principle=principle.id, meta=meta, keep_text_as="critique"))
        if crit is None:
            result.outcomes["failed"] += 1
            return
        critique = clean_generation(crit.raw_output)
        rev = await session.call(CallSpec(REVISION, render_revision(prompt.messages, current.text,
                                                                    critique, principle),
                                          max_tokens=max_tokens, parse=None,
                                          principle=principle.id, meta=meta))
        if rev is None:
            result.outcomes["failed"] += 1
            return
        text = clean_generation(rev.raw_output)
        if not text or text == current.text:
            result.outcomes["no_change"] += 1
            return
        rid, = await asyncio.to_thread(s.responses.add, [store.ResponseIn(
            prompt.id, text, origin="revision", model=session.backend.model,
            parent_response_id=current.id,
            gen_params={"principle": principle.id, "round": r + 1, "critique_judgment_id": crit.id})])
        await asyncio.to_thread(s.judgments.link_revision, rev.id, rid)
        cid = await asyncio.to_thread(
            s.comparisons.record, prompt.id, [[rid], [current.id]], labeler_kind="ai",
            labeler=session.backend.model, rationale=principle.id,
            dedup_key=f"revision:{crit.cache_key}:{rev.cache_key}")
        await asyncio.to_thread(s.judgments.link_to_comparison, [crit.id, rev.id], cid)
        result.revisions.append(rid)
        result.comparisons.append(cid)
        result.outcomes["revised"] += 1
        current = (await asyncio.to_thread(s.responses.get_many, [rid]))[0]


async def critique_responses(s: store.Store, session: JudgeSession, response_ids: list[int],
                             constitution: Constitution, rounds: int = 1,
                             max_tokens: int = 160) -> ModeResult:
    """SL-CAI critique and revision of each response for ``rounds`` rounds."""
    if rounds < 1:
        raise JudgeError("--rounds must be at least 1")
    result = ModeResult()
    responses = s.responses.get_many(response_ids)
    prompts = {p.id: p for p in s.prompts.get_many(sorted({r.prompt_id for r in responses}))}
    await asyncio.gather(*(_critique_one(s, session, prompts[r.prompt_id], r, constitution, rounds,
                                         result, max_tokens) for r in responses))
    return result


async def score_responses(s: store.Store, session: JudgeSession, response_ids: list[int],
                          principle: Principle) -> ModeResult:
    """1-10 grades of each response (judgments with ``verdict`` "1".."10" or NULL)."""
    result = ModeResult()
    responses = s.responses.get_many(response_ids)
    prompts = {p.id: p for p in s.prompts.get_many(sorted({r.prompt_id for r in responses}))}

    def parse(c: Completion):
        n = parse_score(c.text)
        return (str(n) if n is not None else None), None

    judged = await asyncio.gather(*(session.call(CallSpec(
        SCORE, render_score(prompts[r.prompt_id].messages, r.text, principle), max_tokens=16,
        parse=parse, principle=principle.id,
        meta={"prompt_id": r.prompt_id, "response_id": r.id})) for r in responses))
    for j in judged:
        result.outcomes["failed" if j is None else "unparseable" if j.verdict is None else "scored"] += 1
    return result
