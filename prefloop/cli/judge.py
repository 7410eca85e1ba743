"""``prefloop judge run``, ``prefloop judge agreement`` and ``prefloop judge route``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ._common import console, fmt, state

judge_app = typer.Typer(no_args_is_help=True, help="AI judges and Constitutional AI batches (RLAIF).")


def register(root: typer.Typer) -> None:
    root.add_typer(judge_app, name="judge")


#: ``prefloop judge run``'s exit status when some (not all) judge calls failed.
PARTIAL_FAILURE = 3


@judge_app.command("run")
def run(
    mode: Annotated[str, typer.Option(help="pairwise, rank, critique or score.")],
    backend: Annotated[str, typer.Option(help="openai (any OpenAI-compatible URL) or local (transformers).")] = "local",
    base_url: Annotated[Optional[str], typer.Option(help="openai backend: e.g. http://127.0.0.1:8000/v1.")] = None,
    model: Annotated[Optional[str], typer.Option(help="openai: the served model name; local: a model spec (default smollm2-135m-instruct).")] = None,
    constitution: Annotated[Optional[Path], typer.Option(help="Constitution file (YAML/TOML/JSON; default: prefloop's).")] = None,
    principle: Annotated[list[str], typer.Option(help="Principle id(s) to judge under (default: the first).")] = [],
    source: Annotated[str, typer.Option(help="Pairs from: human, ai, tasks or generated.")] = "human",
    dataset: Annotated[Optional[str], typer.Option(help="Only prompts of this dataset.")] = None,
    limit: Annotated[Optional[int], typer.Option(help="At most N pairs.")] = None,
    concurrency: Annotated[int, typer.Option(help="Calls in flight.")] = 4,
    rounds: Annotated[int, typer.Option(help="critique: critique/revision rounds.")] = 1,
    timeout: Annotated[float, typer.Option(help="openai: seconds per request.")] = 60.0,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Run a judge batch; every call is cached in `judgments`, so re-running resumes.

    Exit status: 0 every call answered; 1 nothing could be judged (an unreachable judge,
    every call failed: the cause is printed); 3 some calls failed (the count is printed)."""
    from prefloop.judge.backends import make_backend
    from prefloop.judge.batch import run_batch

    s = state.store()
    b = make_backend(backend, model=model, base_url=base_url, timeout=timeout, store=s)
    result = run_batch(s, mode, b, source=source, dataset=dataset, limit=limit,
                       concurrency=concurrency, constitution=constitution,
                       principles=principle or None, rounds=rounds, progress=progress)
    sm = result.summary
    console.print(f"Run [bold]{result.run.id}[/] (judge {mode}, {b.model}): {sm['calls']} calls, "
                  f"{sm['cached']} cached, {sm['failed']} failed, {sm['unparseable']} unparseable; "
                  f"{sm['comparisons']} comparisons, {sm['revisions']} revisions; "
                  f"{sm['tokens_in']} tokens in, {sm['tokens_out']} out; {sm['seconds']} s")
    outcomes = {k.removeprefix("outcome_"): v for k, v in sm.items() if k.startswith("outcome_")}
    if outcomes:
        console.print("  outcomes: " + ", ".join(f"{k}={v}" for k, v in sorted(outcomes.items())))
    for err in sm.get("errors", []):
        console.print(f"  failed call: {err}")
    if sm["failed"]:       # some calls failed: their items have no label (exit 3, documented)
        console.print(f"[bold]{sm['failed']} of {sm['failed'] + sm['calls']} judge calls failed[/]; "
                      "re-run the same command to retry them (the others are cached)")
        raise typer.Exit(PARTIAL_FAILURE)


@judge_app.command("agreement")
def agreement(
    judge: Annotated[Optional[str], typer.Option(help="Judge model (default: every AI labeler with pairwise judgments).")] = None,
    against: Annotated[str, typer.Option(help="Reference: human, or a labeler name such as alpaca_eval_gpt4.")] = "human",
) -> None:
    """Judge vs people: accuracy, Cohen's kappa, ties, position consistency, length bias."""
    from prefloop.core.agreement import judge_agreement
    from prefloop.judge.templates import PAIRWISE
    from prefloop.store.judge_rows import agreement_rows

    s = state.store()
    judges = [judge] if judge else sorted({j.judge_model for j in s.judgments.list(template=PAIRWISE)})
    if not judges:
        console.print("No pairwise judgments yet: run `prefloop judge run --mode pairwise` first.")
        raise typer.Exit(1)
    cols = ("pairs", "accuracy", "agreement_with_ties", "kappa", "judge_tie_rate",
            "position_consistency", "length_bias")
    for name in judges:
        res = judge_agreement(agreement_rows(s, name, against=against))
        t = Table(title=f"judge {name} vs {against}")
        t.add_column("group")
        for c in cols:
            t.add_column(c, justify="right")
        for group, m in res.items():
            t.add_row(group, *(fmt(m.get(c)) for c in cols))
        console.print(t)


@judge_app.command("route")
def route(
    fraction: Annotated[Optional[float], typer.Option(help="Route this share of the judged pairs, the most uncertain first.")] = None,
    n: Annotated[Optional[int], typer.Option(help="Route this many pairs, the most uncertain first.")] = None,
    labeler: Annotated[list[str], typer.Option(help="Panel members (judge models as recorded; default: every AI labeler with pairwise labels).")] = [],
    min_uncertainty: Annotated[float, typer.Option(help="Route no pair the panel is surer of than this (0..1).")] = 0.0,
    overlap: Annotated[int, typer.Option(help="People per routed pair.")] = 1,
) -> None:
    """Send the pairs the judge panel is least sure of to people: every AI pairwise label
    (judges, principles, both orders) is a panel member; pairs where they disagree or flip
    with the order are queued as blind tasks first (priority by uncertainty); the rest keep
    their AI labels."""
    from prefloop.judge.routing import route_to_people

    s = state.store()
    r = route_to_people(s, fraction=fraction, n=n, labelers=labeler or None,
                        min_uncertainty=min_uncertainty, overlap=overlap)
    console.print(f"{len(r.task_ids)} of {r.pairs} judged pairs routed to people ({r.created} new tasks); "
                  f"least uncertain routed: {fmt(r.threshold, 2)}")
