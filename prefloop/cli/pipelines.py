"""``prefloop demo`` and ``prefloop loop``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

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
    from prefloop.demo import run_demo

    run_demo(state.store(create=True), quick=quick, data=data, fresh=fresh, console=console)


@app.command()
def loop(
    config: Annotated[Path, typer.Option(help="Loop config YAML (see README: prefloop loop).")],
    fresh: Annotated[bool, typer.Option("--fresh", help="Start a new iteration even if the last one was interrupted.")] = False,
) -> None:
    """One iteration of export -> train -> generate -> judge -> enqueue on your store and models."""
    from prefloop.loop import load_loop_config, run_loop

    run_loop(state.store(), load_loop_config(config), fresh=fresh, console=console)


eval_app = typer.Typer()


@eval_app.callback(invoke_without_command=True)
def eval_(
    ctx: typer.Context,
    models: Annotated[Optional[str], typer.Option(help="Comma-separated model specs, e.g. smollm2-135m-instruct,run:3,run:4 (a spec may repeat: an A/A check).")] = None,
    prompts: Annotated[Optional[str], typer.Option(help="A dataset of the store, a prompts file, or export:ID (its held-out split).")] = None,
    baseline: Annotated[Optional[str], typer.Option(help="The spec the others are compared with (default: the first).")] = None,
    limit: Annotated[int, typer.Option(help="At most N prompts.")] = 96,
    max_prompt_tokens: Annotated[int, typer.Option(help="Leave out prompts longer than this (chat-formatted tokens).")] = 256,
    reward_model: Annotated[Optional[str], typer.Option(help="The proxy reward model (default: the one the policies trained against).")] = None,
    gold_reward_model: Annotated[Optional[str], typer.Option(help="A reward model the policies never saw.")] = None,
    judge: Annotated[Optional[str], typer.Option(help="AI-judge view with this backend: local or openai.")] = None,
    judge_model: Annotated[Optional[str], typer.Option(help="local: a model spec; openai: the served model's name.")] = None,
    base_url: Annotated[Optional[str], typer.Option(help="openai judge: e.g. http://127.0.0.1:8000/v1.")] = None,
    principle: Annotated[Optional[str], typer.Option(help="Judge under this principle of the constitution (default: the first).")] = None,
    constitution: Annotated[Optional[Path], typer.Option(help="Constitution file (default: prefloop's).")] = None,
    concurrency: Annotated[int, typer.Option(help="Judge calls in flight.")] = 4,
    tasks: Annotated[int, typer.Option(help="Queue N blind pairwise tasks per compared version for people.")] = 0,
    overlap: Annotated[int, typer.Option(help="Annotators per task.")] = 2,
    reference: Annotated[Optional[str], typer.Option(help="KL reference model (default: the baseline).")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per response.")] = 64,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.7,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
) -> None:
    """Did the round help? Compare model versions on held-out prompts: reward models (proxy and
    gold), an AI judge (both orders, length-controlled), blind tasks for people, and a
    Bradley-Terry leaderboard; recorded as an eval run."""
    if ctx.invoked_subcommand:
        return
    from prefloop.evaluation import EvalConfig, EvalError, print_eval, print_leaderboards, run_eval

    if not models or not prompts:
        raise EvalError("prefloop eval needs --models and --prompts (see --help)")
    cfg = EvalConfig(models=tuple(m.strip() for m in models.split(",") if m.strip()), prompts=prompts,
                     baseline=baseline, limit=limit, max_prompt_tokens=max_prompt_tokens,
                     reward_model=reward_model, gold_reward_model=gold_reward_model, judge=judge,
                     judge_model=judge_model, judge_base_url=base_url, principle=principle,
                     constitution=str(constitution) if constitution else None,
                     concurrency=concurrency, tasks=tasks, overlap=overlap, reference=reference,
                     max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    r = run_eval(state.store(), cfg, console=console)
    print_eval(console, r.run)
    print_leaderboards(console, r.summary["leaderboard"])
    if r.summary["tasks"]:
        console.print(f"{r.summary['tasks']} blind evaluation tasks queued for people "
                      "(their votes stay out of training exports).")


@eval_app.command("show")
def eval_show(run: Annotated[Optional[int], typer.Argument(help="Eval run id (default: the newest).")] = None) -> None:
    """An eval run's table, and the leaderboard from every vote so far."""
    from prefloop.evaluation import latest_eval, print_eval, print_leaderboards
    from prefloop.leaderboard import leaderboards

    s = state.store()
    r = latest_eval(s, run)
    print_eval(console, r)
    print_leaderboards(console, {g: b.rows() for g, b in leaderboards(
        s, anchor=(r.summary or {}).get("baseline")).items()})
