"""The ``prefloop`` command line: parse arguments, call the library, print results.

Each module holds one group of commands as a Typer app; this module assembles them under one
root with the global ``--db`` option. Errors the user can fix (:class:`PrefloopError`) print as
one line (``Error: ...``) with exit status 1; no business logic lives here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import data, judge, labeling, pipelines, training
from ._common import ErrorsAsOneLine, quiet_third_party_warnings, show_progress, state

__all__ = ["app", "main"]

app = typer.Typer(cls=ErrorsAsOneLine, no_args_is_help=True, pretty_exceptions_enable=False,
                  add_completion=False, help="prefloop: collect preferences, judge, retrain.")


@app.callback()
def _global(db: Annotated[Optional[Path], typer.Option(
        "--db", help="Store file (default: $PREFLOOP_DB, else ./prefloop.duckdb).",
        envvar="PREFLOOP_DB", show_envvar=True)] = None) -> None:
    """prefloop: collect preferences from people and AI judges, export pairs, retrain."""
    state.db = db


for _module in (data, labeling, judge, training, pipelines):
    _module.register(app)


def main() -> None:
    """Entry point of the ``prefloop`` console script."""
    quiet_third_party_warnings()
    show_progress()
    app()
