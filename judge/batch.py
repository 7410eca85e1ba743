"""``prefloop judge run``: select inputs, run a mode with a progress bar, record the batch.

Each batch is a ``judge`` run whose summary holds the totals (calls, cached, failed,
unparseable, tokens, latency) and the outcomes of the mode.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefloop import store
from prefloop.store.tracking import tracked_run

from .backends import JudgeBackend
from .constitution import load_constitution
from .errors import BackendError, JudgeError
from .modes import (
    MODES,
    critique_responses,
    judge_pairwise,
    judge_rank,
    score_responses,
)
from .runner import JudgeSession

__all__ = ["BatchResult", "run_batch"]


@dataclass
class BatchResult:
    """A finished judge batch: its run and the run's summary (JSON as stored); the counts every
    mode reports are typed properties."""

    run: store.Run
    summary: dict[str, Any]

    @property
    def calls(self) -> int:
        """Backend calls made (each a judgment, critique or revision request)."""
        return int(self.summary.get("calls", 0))

    @property
    def comparisons(self) -> int:
        """AI comparisons recorded (pairwise and ranking modes)."""
        return int(self.summary.get("comparisons", 0))

    @property
    def revisions(self) -> int:
        """Revised responses stored (critique mode)."""
        return int(self.summary.get("revisions", 0))


def _expected_calls(mode: str, n_items: int, n_principles: int, rounds: int, groups=None) -> int:
    if mode == "pairwise":
        return 2 * n_items * n_principles
    if mode == "critique":
        return 2 * n_items * rounds
    if mode == "rank":
        return sum(len(v) * (len(v) - 1) for v in groups.values())
    return n_items


def run_batch(s: store.Store, mode: str, backend: JudgeBackend, *, source: str = "human",
              dataset: str | None = None, limit: int | None = None, concurrency: int = 4,
              constitution: str | Path | None = None, principles: list[str] | None = None,
              rounds: int = 1, progress: bool = True, max_tokens: int = 160,
              response_groups: dict[int, list[int]] | None = None,
              pipeline_run_id: int | None = None) -> BatchResult:
    """Run one judge batch (see :mod:`judge.modes`) and record it as a ``judge`` run.

    Inputs: ``candidate_pairs(source, dataset, limit)`` of the store, or with ``response_groups``
    (``{prompt_id: [response ids]}``, e.g. a policy's samples for on-policy pairs) every pair
    within each group; critique and score take the distinct responses of those pairs; rank
    groups them by prompt.

    Raises:
        JudgeError: unknown mode, nothing to judge, bad principle ids, a judge that cannot be
            reached (before any run row).
        BackendError: every call failed (the run is recorded as failed, with the cause).
    """
    if mode not in MODES:
        raise JudgeError(f"--mode {mode!r}: expected one of {', '.join(MODES)}")
    cons = load_constitution(constitution)
    chosen = [cons.get(p) for p in principles] if principles else None
    if response_groups is not None:
        pairs = [(p, a, b) for p, rids in response_groups.items()
                 for i, a in enumerate(sorted(set(rids))) for b in sorted(set(rids))[i + 1:]]
    else:
        pairs = s.comparisons.candidate_pairs(source, dataset=dataset, limit=limit)
    if not pairs:
        raise JudgeError(f"nothing to judge: no {source} pairs"
                         f"{f' in dataset {dataset!r}' if dataset else ''}")
    response_ids = sorted({x for _, a, b in pairs for x in (a, b)})
    groups: dict[int, list[int]] = {}
    for p, a, b in pairs:
        groups.setdefault(p, [])
        groups[p] += [x for x in (a, b) if x not in groups[p]]
    if mode == "pairwise":
        use = chosen or [cons.principles[0]]
        total = _expected_calls(mode, len(pairs), len(use), rounds)
    elif mode == "critique":
        total = _expected_calls(mode, len(response_ids), 1, rounds)
    elif mode == "rank":
        total = _expected_calls(mode, 0, 1, rounds, groups)
    else:
        total = len(response_ids)
    config = {"mode": mode, "backend": repr(backend), "judge_model": backend.model,
              "source": source, "dataset": dataset, "limit": limit, "concurrency": concurrency,
              "constitution": cons.source, "principles": principles, "rounds": rounds,
              "response_groups": None if response_groups is None else len(response_groups)}
    check = getattr(backend, "check", None)
    if check is not None:            # an unreachable judge fails here, before any run row
        check()
    with tracked_run(s, "judge", config, pipeline_run_id=pipeline_run_id) as run:
        summary = asyncio.run(_run(s, mode, backend, pairs, response_ids, groups, cons, chosen,
                                   rounds, concurrency, total, progress, max_tokens))
        if summary["failed"] and not summary["calls"] and not summary["cached"]:
            raise BackendError(f"every judge call failed ({summary['failed']} calls); the first: "
                               f"{(summary.get('errors') or ['?'])[0]}")
        summary["items"] = len(pairs) if mode == "pairwise" else len(response_ids)
        run = s.runs.update(run.id, status="finished", summary=summary)
        metrics = {k: v for k, v in summary.items() if isinstance(v, (int, float))}
        s.runs.add_metrics(run.id, [(0, k, float(v)) for k, v in metrics.items()])
    return BatchResult(run, summary)


async def _run(s, mode, backend, pairs, response_ids, groups, cons, chosen, rounds, concurrency,
               total, progress, max_tokens) -> dict[str, Any]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(TextColumn(f"judge {mode}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]} calls/s"), TimeElapsedColumn(),
                   TimeRemainingColumn(), disable=not progress)
    task = bar.add_task(mode, total=total, rate="-")
    holder: dict[str, JudgeSession] = {}

    def tick() -> None:
        stats = holder["s"].stats
        elapsed = max(1e-9, time.perf_counter() - stats.started)
        bar.update(task, advance=1, rate=f"{(stats.calls + stats.cached) / elapsed:.2f}")

    with bar:
        async with JudgeSession(s, backend, concurrency=concurrency, on_done=tick) as session:
            holder["s"] = session
            if mode == "pairwise":
                result = await judge_pairwise(s, session, pairs, chosen or [cons.principles[0]])
            elif mode == "rank":
                result = await judge_rank(s, session, groups, (chosen or [cons.principles[0]])[0])
            elif mode == "critique":
                result = await critique_responses(s, session, response_ids, cons, rounds, max_tokens)
            else:
                result = await score_responses(s, session, response_ids, (chosen or [cons.principles[0]])[0])
        if hasattr(backend, "aclose"):      # its connections close in the loop that opened them
            await backend.aclose()
    summary = session.stats.summary()
    summary.update({f"outcome_{k}": v for k, v in result.outcomes.items()})
    summary["comparisons"] = len(result.comparisons)
    summary["revisions"] = len(result.revisions)
    if session.stats.errors:
        summary["errors"] = session.stats.errors[:5]
    return summary
