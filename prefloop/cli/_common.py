"""What every command module shares: the console, the store option, one-line errors."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import typer
from rich.console import Console
from typer.core import TyperGroup

from prefloop.core.display import cell
from prefloop.core.errors import PrefloopError
from prefloop.core.secrets import redact

__all__ = ["console", "state", "ErrorsAsOneLine", "fmt", "quiet_third_party_warnings", "show_progress",
           "IMPORT_FORMATS"]

#: ``prefloop import --format`` choices (the store's readers; a test keeps them in step).
IMPORT_FORMATS = ("hh", "trl", "alpaca-eval", "prompts", "feedback", "rollouts", "label-studio",
                  "argilla")

console = Console()


class State:
    """The global ``--db`` option, read by every command through :meth:`store`."""

    db: Path | None = None

    def store(self, create: bool = False):
        """The :class:`prefloop.store.Store` of ``--db`` (imported here, not at start-up, so
        ``prefloop --help`` stays fast)."""
        from prefloop.store import Store

        return Store(self.db, create=create)


state = State()


class OptionError(PrefloopError):
    """A command-line option's value cannot be used (an unreadable file, a malformed list); the
    message names the option."""


def read_option_file(path: Path, option: str) -> str:
    """The text of the file an option names (``--password-file``), as UTF-8.

    Raises:
        OptionError: one line naming the option and the file: missing, a directory, unreadable,
            not text.
    """
    try:
        if path.is_dir():
            raise OptionError(f"{option} {path}: is a directory, not a file")
        return path.read_text(encoding="utf-8")
    except OptionError:
        raise
    except OSError as exc:
        raise OptionError(f"{option} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise OptionError(f"{option} {path}: not UTF-8 text") from None


def int_list_option(value: str | None, option: str) -> list[int] | None:
    """``"3,5,8"`` as ``[3, 5, 8]``.

    Raises:
        OptionError: an item is not an integer (names the option and the item).
    """
    if not value:
        return None
    out = []
    for item in value.split(","):
        try:
            out.append(int(item.strip()))
        except ValueError:
            raise OptionError(f"{option} {value!r}: {item.strip()!r} is not an integer id "
                              "(expected e.g. 3,5,8)") from None
    return out


class ErrorsAsOneLine(TyperGroup):
    """Turns :class:`PrefloopError` into ``Error: <message>`` and exit status 1, and a bad
    command line (an unknown command or option, a value of the wrong type) into one ``Error:``
    line naming it and exit status 2, instead of a usage box; anything else is a bug and keeps
    its traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except PrefloopError as exc:
            typer.echo(f"Error: {redact(exc)}", err=True)
            raise typer.Exit(1) from None

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        import sys

        exit_, abort, usage = _click_errors()
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except exit_ as exc:
            sys.exit(exc.exit_code)
        except abort:
            typer.echo("Aborted.", err=True)
            sys.exit(1)
        except usage as exc:
            where = f" (see `{exc.ctx.command_path} --help`)" if getattr(exc, "ctx", None) else ""
            message = " ".join(exc.format_message().split())
            typer.echo(f"Error: {message}{where}", err=True)
            sys.exit(exc.exit_code)
        # without standalone mode click returns an Exit's status instead of exiting with it
        sys.exit(rv if isinstance(rv, int) and not isinstance(rv, bool) else 0)


def _click_errors():
    """``(Exit, Abort, ClickException)`` of the click that typer runs on (its own copy in
    recent typer releases, click itself in older ones)."""
    usage = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    return typer.Exit, typer.Abort, usage


def fmt(v, digits: int = 3) -> str:
    """A table cell: ``-`` for ``None``, floats to ``digits`` decimals."""
    return cell(v, digits)


def show_progress() -> None:
    """Print the library's progress (INFO lines of the ``prefloop`` loggers: training
    iterations, evaluation sampling) on the console; the library logs, the CLI prints."""
    import logging

    from rich.logging import RichHandler

    logger = logging.getLogger("prefloop")
    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        logger.addHandler(RichHandler(console=console, show_time=False, show_level=False,
                                      show_path=False, markup=False))
    logger.setLevel(logging.INFO)


def quiet_third_party_warnings() -> None:
    """Hide what other packages tell their own users: deprecation warnings raised inside them
    (transformers, TRL, torch, datasets...), transformers' info-level log and its weight-loading
    progress bars. Warnings raised in prefloop's modules still show, and so do transformers'
    errors and the trainers' progress bars."""
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category, module=r"^(?!prefloop)")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
