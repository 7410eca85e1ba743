"""``prefloop demo`` and ``prefloop loop``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from prefloop.pipelines.eval_config import eval_help

from ._common import console, int_list_option, state

app = typer.Typer()


board_app = typer.Typer(no_args_is_help=True, help="The method board: every method over seeds, people's "
                        "column beside the diagnostics.")


def register(root: typer.Typer) -> None:
    root.add_typer(app)
    root.add_typer(eval_app, name="eval")
    root.add_typer(board_app, name="board")


@board_app.command("run")
def board_run(
    methods: Annotated[Optional[str], typer.Option(help="Comma-separated methods (default: all): aa, sft, dpo, dpo-random, iterative-dpo, sft+dpo, rs-sft, ppo, grpo, rloo, orpo, kto.")] = None,
    seeds: Annotated[str, typer.Option(help="Comma-separated end-to-end seeds.")] = "1,2,3",
    budget: Annotated[float, typer.Option(help="Seconds of training per method.")] = 150.0,
    per_subset: Annotated[int, typer.Option(help="Test prompts per subset (harmless, benign).")] = 32,
    tasks: Annotated[int, typer.Option(help="Blind tasks per method for people.")] = 16,
    fresh: Annotated[bool, typer.Option("--fresh", help="Start over instead of resuming.")] = False,
) -> None:
    """Train every method from the base on each seed's labels under one budget, evaluate them
    on the test prompts with blind tasks for people, and print the board (resumable)."""
    from prefloop.pipelines.board import BOARD_METHODS, BoardConfig, run_board

    cfg = BoardConfig(methods=tuple(m.strip() for m in methods.split(",")) if methods else BOARD_METHODS,
                      seeds=tuple(int_list_option(seeds, "--seeds") or ()), budget=budget,
                      per_subset=per_subset, tasks=tasks)
    s = state.store(create=True)
    run = run_board(s, cfg, fresh=fresh)
    _print_board(s, run)


@board_app.command("show")
def board_show(run: Annotated[Optional[int], typer.Argument(help="Board run id (default: the newest).")] = None) -> None:
    """The board with people's labels as they are now."""
    from prefloop.pipelines.board import BoardError

    s = state.store()
    runs = [s.runs.get(run)] if run is not None else s.runs.list(kind="board")
    if not runs or runs[-1].kind != "board":
        raise BoardError("no board run yet: `prefloop board run`" if run is None else f"run {run} is not a board run")
    _print_board(s, runs[-1])


def _print_board(s, run) -> None:
    from prefloop.cli.report import print_board
    from prefloop.pipelines.board import board_rows

    print_board(console, run, board_rows(s, run))


@app.command()
def demo(
    quick: Annotated[bool, typer.Option("--quick", help="A smoke run of every stage (minutes), not a result.")] = False,
    full: Annotated[bool, typer.Option("--full", help="The plan the documentation reports (about 40 minutes on 2 cores): more SFT and DPO steps, the A/A row and the random-label control, with blind tasks for each.")] = False,
    seed: Annotated[int, typer.Option(help="The end-to-end seed: halves A/B, reward models, policies, samples.")] = 1,
    data: Annotated[Optional[Path], typer.Option(help="The shared data dir (default: ../shared/data or $PREFLOOP_SHARED_DATA).")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Start over instead of resuming the last demo.")] = False,
    show: Annotated[bool, typer.Option("--show", help="Run nothing: the seed-level table of this plan's finished demos on the store (people's column from the blind labels so far).")] = False,
) -> None:
    """The whole loop on real data with the embedded SmolLM2: prompt sets, reward models, SFT
    with rehearsal, DPO, an evaluation on test prompts with blind tasks for people. Re-running
    resumes."""
    from prefloop.cli.report import print_demo, print_seed_rows
    from prefloop.pipelines.demo import DEFAULT, FULL, QUICK, demo_seed_rows, run_demo
    from prefloop.pipelines.errors import DemoDataError

    if quick and full:
        raise DemoDataError("--quick and --full: choose one")
    plan = QUICK if quick else FULL if full else DEFAULT
    if show:
        runs, rows = demo_seed_rows(state.store(), plan.name)
        print_seed_rows(console, f"prefloop demo{'' if plan is DEFAULT else ' --' + plan.name}: runs "
                        f"{', '.join(map(str, runs))}, win rate against the base on the test prompts", rows)
        return
    s = state.store(create=True)
    r = run_demo(s, plan=plan, seed=seed, data=data, fresh=fresh)
    print_demo(console, r, _prefloop_command(), Path(s.path).resolve())
    _show_eval(s, r.eval_run)


def _prefloop_command() -> str:
    """How to call this ``prefloop`` from any directory: its absolute path when it is not the
    one on ``PATH`` (``make demo`` runs ``.venv/bin/prefloop`` without activating the venv)."""
    import shutil
    import sys

    exe = Path(sys.argv[0])
    if exe.name != "prefloop" or not exe.exists():
        return "prefloop"   # python -m prefloop, or a test runner
    on_path = shutil.which("prefloop")
    return "prefloop" if on_path and Path(on_path).resolve() == exe.resolve() else str(exe.resolve())


@app.command()
def loop(
    config: Annotated[Path, typer.Option(help="Loop config YAML (see README: prefloop loop).")],
    fresh: Annotated[bool, typer.Option("--fresh", help="Start a new iteration even if the last one was interrupted.")] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Keep running: start an iteration whenever the config's trigger (new_labels, min_interval) is met.")] = False,
    poll: Annotated[float, typer.Option(help="With --watch: seconds between checks.")] = 30.0,
    max_iterations: Annotated[Optional[int], typer.Option(help="With --watch: stop after this many iterations.")] = None,
) -> None:
    """One iteration of export -> train -> generate -> judge -> enqueue on your store and models
    (with --watch: one each time enough new human labels arrived)."""
    from prefloop.pipelines.loop import load_loop_config, run_loop

    cfg = load_loop_config(config)
    if watch:
        from prefloop.pipelines.watch import trigger_progress
        from prefloop.pipelines.watch import watch as run_watch

        s = state.store()
        p = trigger_progress(s, cfg)
        console.print(f"Watching {s.path}: {p['new_labels']} of {p['needed']} new human labels; "
                      "Ctrl+C to stop")
        n = run_watch(s, cfg, poll_seconds=poll, max_iterations=max_iterations)
        console.print(f"{n} iterations ran.")
        return
    s = state.store()
    stages = run_loop(s, cfg, fresh=fresh)
    console.print("Loop iteration finished: " + ", ".join(
        f"{k} {v.get('run_id', '')}".strip() for k, v in stages.items()))
    if "eval" in stages:
        _show_eval(s, s.runs.get(stages["eval"]["run_id"]))


eval_app = typer.Typer()


@eval_app.callback(invoke_without_command=True)
def eval_(
    ctx: typer.Context,
    models: Annotated[Optional[str], typer.Option(help=eval_help("models") + " A spec may repeat: an A/A check.")] = None,
    prompts: Annotated[Optional[str], typer.Option(help=eval_help("prompts"))] = None,
    baseline: Annotated[Optional[str], typer.Option(help=eval_help("baseline"))] = None,
    limit: Annotated[Optional[int], typer.Option(help=eval_help("limit"))] = None,
    per_subset: Annotated[Optional[int], typer.Option(help=eval_help("per_subset"))] = None,
    max_prompt_tokens: Annotated[Optional[int], typer.Option(help=eval_help("max_prompt_tokens"))] = None,
    reward_model: Annotated[Optional[str], typer.Option(help=eval_help("reward_model"))] = None,
    second_reward_model: Annotated[Optional[str], typer.Option(help=eval_help("second_reward_model"))] = None,
    judge: Annotated[Optional[str], typer.Option(help=eval_help("judge"))] = None,
    judge_model: Annotated[Optional[str], typer.Option(help=eval_help("judge_model"))] = None,
    base_url: Annotated[Optional[str], typer.Option(help=eval_help("judge_base_url"))] = None,
    principle: Annotated[Optional[str], typer.Option(help=eval_help("principle"))] = None,
    constitution: Annotated[Optional[Path], typer.Option(help=eval_help("constitution"))] = None,
    concurrency: Annotated[Optional[int], typer.Option(help=eval_help("concurrency"))] = None,
    tasks: Annotated[Optional[int], typer.Option(help=eval_help("tasks"))] = None,
    overlap: Annotated[Optional[int], typer.Option(help=eval_help("overlap"))] = None,
    reference: Annotated[Optional[str], typer.Option(help=eval_help("reference"))] = None,
    max_new_tokens: Annotated[Optional[int], typer.Option(help=eval_help("max_new_tokens"))] = None,
    temperature: Annotated[Optional[float], typer.Option(help=eval_help("temperature"))] = None,
    seed: Annotated[Optional[int], typer.Option(help=eval_help("seed"))] = None,
    batch_size: Annotated[Optional[int], typer.Option(help=eval_help("batch_size"))] = None,
) -> None:
    """Did the round help? Compare model versions on held-out prompts: blind tasks for people
    (the headline), reward models (the proxy and a second one), an AI judge (both orders,
    length-controlled), per subset with refusal rates, and a Bradley-Terry leaderboard; recorded
    as an eval run. Unset options keep the defaults shown (EvalConfig's)."""
    if ctx.invoked_subcommand:
        return
    from prefloop.pipelines.evaluation import EvalConfig, EvalError, run_eval

    if not models or not prompts:
        raise EvalError("prefloop eval needs --models and --prompts (see --help)")
    given = {k: v for k, v in ctx.params.items() if v is not None and k not in ("models", "base_url",
                                                                               "constitution")}
    cfg = EvalConfig(models=tuple(m.strip() for m in models.split(",") if m.strip()),
                     judge_base_url=base_url, constitution=str(constitution) if constitution else None,
                     **given)
    s = state.store()
    r = run_eval(s, cfg)
    _show_eval(s, r.run)


def _show_eval(s, run) -> None:
    from prefloop.cli.report import print_eval, print_leaderboards
    from prefloop.core.models import DEFAULT_MODEL
    from prefloop.core.stats import leaderboards
    from prefloop.pipelines.evaluation import with_people

    summary, progress = with_people(s, run)
    print_eval(console, run.id, summary, progress)
    boards = leaderboards(s.samples.model_votes(with_tokens=True), anchor=summary.baseline,
                          fallback_anchor=DEFAULT_MODEL, style_control=True)
    print_leaderboards(console, {g: b.rows() for g, b in boards.items()},
                       {g: b.style["length"] for g, b in boards.items() if "length" in b.style})


@eval_app.command("rm")
def eval_rm(
    model: Annotated[str, typer.Option(help="Reward model: run:ID (an rm run; an ensemble may add @mean, @wco or @uwo=LAMBDA) or a checkpoint directory.")],
    pairs: Annotated[str, typer.Option(help="export:ID (held-out split), export:ID:train, export:ID:all, a pair file (RewardBench rows: prompt, chosen, rejected, subset; or TRL rows) or a dataset of the store.")],
    by: Annotated[Optional[str], typer.Option(help="Group figures by subset or dataset (default: subset for files, dataset otherwise).")] = None,
    limit: Annotated[Optional[int], typer.Option(help="At most N pairs.")] = None,
    batch_size: Annotated[int, typer.Option(help="Sequences per forward pass.")] = 8,
) -> None:
    """A reward model on any pair set: accuracy with a 95% CI, ECE, mean margin, accuracy when
    the chosen response is longer vs shorter (length bias), per-group figures and RewardBench
    v1's section scores; recorded as an eval-rm run."""
    from prefloop.cli.report import print_rm_eval
    from prefloop.pipelines.reward_eval import run_rm_eval

    r = run_rm_eval(state.store(), model, pairs, by=by, limit=limit, batch_size=batch_size)
    print_rm_eval(console, r.run)


@eval_app.command("show")
def eval_show(
    run: Annotated[Optional[int], typer.Argument(help="Eval run id (default: the newest).")] = None,
    people: Annotated[bool, typer.Option("--people", help="Require the people column: fail if the run queued no blind tasks.")] = False,
) -> None:
    """An eval run's tables with the people column as labeled so far, and the leaderboard from
    every vote."""
    from prefloop.pipelines.evaluation import EvalError, latest_eval

    s = state.store()
    r = latest_eval(s, run)
    if people and not s.tasks.eval_progress(r.id)[0]:
        raise EvalError(f"--people: eval run {r.id} queued no blind tasks for people; run the "
                        "evaluation with --tasks N")
    _show_eval(s, r)
