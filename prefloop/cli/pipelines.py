"""``prefloop demo`` and ``prefloop loop``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from prefloop.pipelines.eval_config import eval_help

from ._common import console, state

app = typer.Typer()


def register(root: typer.Typer) -> None:
    root.add_typer(app)
    root.add_typer(eval_app, name="eval")


@app.command()
def demo(
    quick: Annotated[bool, typer.Option("--quick", help="Smaller budgets: about 5 minutes instead of 20.")] = False,
    data: Annotated[Optional[Path], typer.Option(help="The shared data dir (default: ../shared/data or $PREFLOOP_SHARED_DATA).")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Start over instead of resuming the last demo.")] = False,
) -> None:
    """The whole cycle on real data with the embedded SmolLM2: import, reward model, DPO, PPO,
    generate, judge, queue for people. Re-running resumes."""
    from prefloop.pipelines.demo import run_demo

    run_demo(state.store(create=True), quick=quick, data=data, fresh=fresh, console=console)


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
        n = run_watch(s, cfg, poll_seconds=poll, max_iterations=max_iterations, console=console)
        console.print(f"{n} iterations ran.")
        return
    run_loop(state.store(), cfg, fresh=fresh, console=console)


eval_app = typer.Typer()


@eval_app.callback(invoke_without_command=True)
def eval_(
    ctx: typer.Context,
    models: Annotated[Optional[str], typer.Option(help=eval_help("models") + " A spec may repeat: an A/A check.")] = None,
    prompts: Annotated[Optional[str], typer.Option(help=eval_help("prompts"))] = None,
    baseline: Annotated[Optional[str], typer.Option(help=eval_help("baseline"))] = None,
    limit: Annotated[Optional[int], typer.Option(help=eval_help("limit"))] = None,
    max_prompt_tokens: Annotated[Optional[int], typer.Option(help=eval_help("max_prompt_tokens"))] = None,
    reward_model: Annotated[Optional[str], typer.Option(help=eval_help("reward_model"))] = None,
    gold_reward_model: Annotated[Optional[str], typer.Option(help=eval_help("gold_reward_model"))] = None,
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
) -> None:
    """Did the round help? Compare model versions on held-out prompts: reward models (proxy and
    gold), an AI judge (both orders, length-controlled), blind tasks for people, and a
    Bradley-Terry leaderboard; recorded as an eval run. Unset options keep the defaults shown
    (EvalConfig's)."""
    if ctx.invoked_subcommand:
        return
    from prefloop.pipelines.evaluation import EvalConfig, EvalError, run_eval
    from prefloop.pipelines.report import print_eval, print_leaderboards

    if not models or not prompts:
        raise EvalError("prefloop eval needs --models and --prompts (see --help)")
    given = {k: v for k, v in ctx.params.items() if v is not None and k not in ("models", "base_url",
                                                                               "constitution")}
    cfg = EvalConfig(models=tuple(m.strip() for m in models.split(",") if m.strip()),
                     judge_base_url=base_url, constitution=str(constitution) if constitution else None,
                     **given)
    r = run_eval(state.store(), cfg)
    print_eval(console, r.run)
    print_leaderboards(console, r.summary["leaderboard"], r.summary.get("leaderboard_length_coef"))
    if r.summary["tasks"]:
        console.print(f"{r.summary['tasks']} blind evaluation tasks queued for people "
                      "(their votes stay out of training exports).")


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
    from prefloop.pipelines.report import print_rm_eval
    from prefloop.pipelines.reward_eval import run_rm_eval

    r = run_rm_eval(state.store(), model, pairs, by=by, limit=limit, batch_size=batch_size)
    print_rm_eval(console, r.run)


@eval_app.command("show")
def eval_show(run: Annotated[Optional[int], typer.Argument(help="Eval run id (default: the newest).")] = None) -> None:
    """An eval run's table, and the leaderboard from every vote so far."""
    from prefloop.pipelines.evaluation import latest_eval
    from prefloop.pipelines.report import print_eval, print_leaderboards
    from prefloop.store.leaderboard import leaderboards

    s = state.store()
    r = latest_eval(s, run)
    print_eval(console, r)
    boards = leaderboards(s, anchor=(r.summary or {}).get("baseline"), style_control=True)
    print_leaderboards(console, {g: b.rows() for g, b in boards.items()},
                       {g: b.style["length"] for g, b in boards.items() if "length" in b.style})
