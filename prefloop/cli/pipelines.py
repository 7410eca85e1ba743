"""``prefloop demo`` and ``prefloop loop``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._common import console, state

app = typer.Typer()


def register(root: typer.Typer) -> None:
    root.add_typer(app)


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
