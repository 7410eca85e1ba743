"""``prefloop init``, ``import``, ``export`` and ``stats``: the store's commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ._common import IMPORT_FORMATS, console, state

app = typer.Typer()


sets_app = typer.Typer(no_args_is_help=True, help="Recorded prompt sets: train, dev (sweeps and "
                       "choices) and test (reporting only).")


def register(root: typer.Typer) -> None:
    root.add_typer(app)
    root.add_typer(sets_app, name="prompt-sets")


@sets_app.command("make")
def prompt_sets_make(
    dataset: Annotated[str, typer.Option(help="The dataset whose prompts are split.")],
    test: Annotated[int, typer.Option(help="Prompts for the test set (reporting only).")],
    dev: Annotated[int, typer.Option(help="Prompts for the dev set (sweeps and plan choices).")] = 0,
    subset: Annotated[Optional[str], typer.Option(help="The subset name evaluations report apart (e.g. harmless, benign).")] = None,
    train: Annotated[bool, typer.Option(help="The rest of the dataset's prompts go to the train set.")] = True,
    seed: Annotated[int, typer.Option(help="Salt of the order (sha256 of the prompt text).")] = 0,
) -> None:
    """Record a dataset's test, dev and train prompts (by a hash of their text; idempotent). A
    prompt is in one set only: a request that would move one fails and writes nothing."""
    from prefloop.pipelines.prompt_sets import PromptSetPlan, record_prompt_sets

    counts = record_prompt_sets(state.store(), PromptSetPlan(dataset, test, dev, subset, train, seed))
    _print_prompt_sets(counts)


@sets_app.command("show")
def prompt_sets_show() -> None:
    """Prompts per set, subset and dataset."""
    _print_prompt_sets(state.store().prompt_sets.counts())


def _print_prompt_sets(counts) -> None:
    t = Table(title="recorded prompt sets")
    for col in ("set", "subset", "dataset", "prompts"):
        t.add_column(col, justify="right" if col == "prompts" else "left")
    for c in counts:
        t.add_row(c.split, c.subset or "-", c.dataset or "-", str(c.prompts))
    console.print(t if counts else "No prompt sets recorded yet: `prefloop prompt-sets make --dataset D --test N`.")


@app.command()
def init() -> None:
    """Create the store (or upgrade an existing one to the current schema)."""
    s = state.store(create=True)
    console.print(f"Store ready at {s.path} (schema: {', '.join(s.schema_version())})")


def _print_report(r) -> None:
    console.print(f"Imported [bold]{r.path}[/] ({r.format}) into dataset "
                  f"[bold]{r.dataset}[/] in {r.seconds:.1f} s")
    t = Table(show_header=False, box=None, padding=(0, 2))
    t.add_row("lines read", str(r.lines_read))
    t.add_row("imported", str(r.imported))
    t.add_row("duplicates", f"{r.duplicates}  (already in the store or earlier in the file)")
    t.add_row("rejected", str(r.rejected))
    for reason, count, lines in r.reasons():
        more = ", ..." if count > len(lines) else ""
        t.add_row("", f"{count:>5}  {reason} (lines {', '.join(map(str, lines))}{more})")
    added = f"{r.prompts_added} prompts, {r.responses_added} responses, {r.comparisons_added} comparisons"
    t.add_row("added", added)
    if r.without_comparison and r.format != "prompts":
        t.add_row("", f"{r.without_comparison} lines have no usable verdict: responses kept, "
                      "no comparison")
    if r.rejects_path:
        t.add_row("rejects", r.rejects_path)
    console.print(t)


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(help="JSONL (.gz), JSON, Parquet file or datasets dir.")],
    format: Annotated[str, typer.Option("--format", "-f",
                                        help=f"One of: {', '.join(IMPORT_FORMATS)}.")],
    dataset: Annotated[Optional[str], typer.Option(help="Dataset name (default: from the file name).")] = None,
    skip_invalid: Annotated[bool, typer.Option(
        "--skip-invalid", help="Import the good lines; write unreadable ones to the rejects file.")] = False,
    rejects: Annotated[Optional[Path], typer.Option(
        help="Write lines not imported, with reasons, to this JSONL file.")] = None,
    labeler_kind: Annotated[Optional[str], typer.Option(
        help="trl: who labeled the file, human or ai (default human).")] = None,
    labeler: Annotated[Optional[str], typer.Option(help="Labeler name (default: the dataset).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Import prompts, responses and comparisons (idempotent: re-importing adds nothing)."""
    from prefloop.store.importer import import_file

    s = state.store()
    report = import_file(s, path, format, dataset=dataset, skip_invalid=skip_invalid,
                         rejects_path=rejects, labeler_kind=labeler_kind, labeler=labeler)
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        _print_report(report)


def _print_export(r) -> None:
    what = "unpaired labels" if r.export.filters.get("format") == "kto" else "pairs"
    console.print(f"Export [bold]{r.export.id}[/]: {r.export.n_pairs} {what} "
                  f"({r.n_train} train, {r.n_test} test) from {r.counts.n_comparisons} comparisons "
                  f"-> {r.export.path}")
    if r.counts.n_conflicts or r.counts.n_ties or r.counts.n_below_agreement or r.counts.n_below_confidence or r.counts.n_ambiguous:
        console.print(f"  not exported: {r.counts.n_conflicts} conflicting pairs, {r.counts.n_ties} tied "
                      f"pairs, {r.counts.n_below_agreement} below min agreement, {r.counts.n_below_confidence} "
                      f"below min confidence, {r.counts.n_ambiguous} marked ambiguous by a reviewer")
    if r.counts.ai_labelers:
        t = Table(title="AI labelers: agreement with people on pairs both labeled")
        for col in ("labeler", "agreement", "overlap", "kept"):
            t.add_column(col, justify="left" if col == "labeler" else "right")
        for a in r.counts.ai_labelers:
            t.add_row(a["labeler"], "-" if a["agreement"] is None else f"{a['agreement']:.3f}",
                      str(a["overlap"]), "yes" if a["kept"] else "no: dropped")
        console.print(t)
    if r.counts.n_held_out:
        console.print(f"  left out: {r.counts.n_held_out} comparisons of dev and test prompts (recorded "
                      "prompt sets; --include-held-out keeps them)")
    if r.counts.n_swapped:
        console.print(f"  random-label control: {r.counts.n_swapped} of {r.export.n_pairs} pairs swapped")
    for w in r.counts.warnings:
        console.print(f"  [yellow]warning:[/] {w}")
    console.print(f"  sha256 {r.export.sha256}")


@app.command()
def export(
    out: Annotated[Path, typer.Argument(help="Output directory (must be new or empty).")],
    source: Annotated[str, typer.Option(help="Labels from: human, ai or all.")] = "all",
    min_agreement: Annotated[float, typer.Option(help="Minimum share of votes for the majority.")] = 0.0,
    dataset: Annotated[Optional[str], typer.Option(help="Only prompts of this dataset.")] = None,
    since_export: Annotated[Optional[int], typer.Option(help="Only comparisons newer than this export id.")] = None,
    test_fraction: Annotated[float, typer.Option(help="Share of prompts held out as the test split.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Salt of the prompt split.")] = 0,
    include_eval: Annotated[bool, typer.Option("--include-eval", help="Also export the labels of evaluation tasks and judges (left out by default).")] = False,
    labeler: Annotated[Optional[str], typer.Option(help="Only these labelers' comparisons, comma separated (an annotator, a dataset's crowd such as hh-rlhf, a judge model, reward-model:run:ID).")] = None,
    aggregate: Annotated[str, typer.Option(help="A pair's label from its votes: majority, dawid-skene (labeler reliability) or adjudicated (reviewers' decisions).")] = "majority",
    min_confidence: Annotated[float, typer.Option(help="Leave out pairs whose p_chosen is below this (counted).")] = 0.0,
    ai_min_agreement: Annotated[Optional[float], typer.Option(help="Keep an AI labeler's votes only if it agrees with people at least this often (judge gating).")] = None,
    ai_min_overlap: Annotated[int, typer.Option(help="...on at least this many pairs both labeled.")] = 30,
    format: Annotated[str, typer.Option("--format", help="pairs (TRL preference rows); kto (TRL unpaired rows: prompt, completion, label; thumbs up/down feedback and both-bad labels); openrlhf, verl or label-studio (the pairs plus OpenRLHF's reward/DPO JSONL, verl's RL prompt parquet, or Label Studio tasks with AI labels as predictions, in a subfolder).")] = "pairs",
    kto_pairs: Annotated[bool, typer.Option("--kto-pairs", help="With --format kto: also each pair's chosen (desirable) and rejected (undesirable).")] = False,
    shard: Annotated[int, typer.Option(help="Keep only this part (0-based) of --shards disjoint parts of the training prompts (the test split is the same in every part).")] = 0,
    shards: Annotated[int, typer.Option(help="How many disjoint parts the training prompts are cut into.")] = 1,
    include_held_out: Annotated[bool, typer.Option("--include-held-out", help="Also the labels of prompts in the recorded dev and test prompt sets (left out by default).")] = False,
    random_labels: Annotated[bool, typer.Option("--random-labels", help="The random-label control: swap each pair's chosen and rejected with probability 1/2 (seeded by --seed).")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a non-empty OUT.")] = False,
) -> None:
    """Export preferences (TRL conversational format, Parquet + datasets dir): pairs, or
    unpaired labels for KTO with ``--format kto``."""
    from prefloop.store.export_files import ExportOptions, export_pairs
    from prefloop.store.pairs import PairFilters

    filters = PairFilters(source=source, min_agreement=min_agreement, dataset=dataset,
                          since_export=since_export, test_fraction=test_fraction, seed=seed,
                          include_eval=include_eval, aggregate=aggregate,
                          labeler=tuple(x.strip() for x in labeler.split(",")) if labeler else None,
                          min_confidence=min_confidence, ai_min_agreement=ai_min_agreement,
                          ai_min_overlap=ai_min_overlap, shard=shard, shards=shards,
                          include_held_out=include_held_out, random_labels=random_labels)
    options = ExportOptions(format=format, kto_pairs=kto_pairs)
    _print_export(export_pairs(state.store(), out, filters, options, overwrite=overwrite))


def _print_labelers(dataset: str | None) -> None:
    from prefloop.store.pairs import PairFilters
    from prefloop.store.reliability import labeler_reliability

    rows = labeler_reliability(state.store(), PairFilters(dataset=dataset, include_eval=True, include_held_out=True))
    if not rows:
        console.print("No directed votes yet: nothing to estimate.")
        return
    pct = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    t = Table(title="Labelers (Dawid-Skene via crowd-kit; accuracy 95% CI: Wilson)")
    t.add_column("labeler", no_wrap=True)
    for col in ("kind", "votes", "accuracy [95% CI]", "gold", "agreement", "longer", "first"):
        t.add_column(col, justify="left" if col == "kind" else "right")
    for r in rows:
        acc = ("-" if r.accuracy is None else
               f"{r.accuracy:.2f} [{r.accuracy_low:.2f}, {r.accuracy_high:.2f}]")
        gold = "-" if not r.gold_votes else f"{r.gold_accuracy:.2f} ({r.gold_votes})"
        agree = "-" if not r.consensus_votes else f"{r.consensus_agreement:.2f} ({r.consensus_votes})"
        t.add_row(r.labeler, r.kind, str(r.votes), acc, gold, agree,
                  pct(r.extra.get("longer_chosen")), pct(r.extra.get("first_shown")))
    console.print(t)
    console.print("agreement: with the other labelers' majority on the same pairs; longer: "
                  "share of votes for the longer response (0.5: no length bias); first: a judge's "
                  "share of verdicts for the response shown first (0.5: no position bias)")


@app.command()
def stats(labelers: bool = typer.Option(False, "--labelers", help="Per labeler (people, datasets' "
                                        "crowds, AI judges under a principle): votes, Dawid-Skene "
                                        "accuracy with a 95% CI, gold accuracy, agreement with "
                                        "the others, length and position bias."),
          dataset: str | None = typer.Option(None, help="With --labelers: only this dataset.")) -> None:
    """Row counts, counts per dataset and source, human-human agreement; or, with
    ``--labelers``, each labeler's reliability."""
    if labelers:
        _print_labelers(dataset)
        return
    from prefloop.store.counts import ratings_summary, store_stats

    st = store_stats(state.store())
    ratings = ratings_summary(state.store())
    t = Table(title="tables")
    t.add_column("table")
    t.add_column("rows", justify="right")
    for name, n in st.tables.items():
        t.add_row(name, str(n))
    console.print(t)
    for title, rows in (("prompts by dataset", st.prompts_by_dataset),
                        ("comparisons by source", st.comparisons_by_source),
                        ("responses by origin", st.responses_by_origin),
                        ("ratings by dataset and aspect", ratings)):
        if not rows:
            continue
        t = Table(title=title)
        for col in rows[0]:
            t.add_column(col, justify="right" if isinstance(rows[0][col], int) else "left")
        for row in rows:
            t.add_row(*map(str, row.values()))
        console.print(t)
    if st.human_agreement is None:
        console.print("human-human agreement: no pair was labeled by two or more people yet")
    else:
        console.print(f"human-human agreement: {st.human_agreement:.3f} "
                      f"(pairwise, over {st.overlap_pairs} pairs with 2+ human votes)")
