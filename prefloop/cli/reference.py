"""``docs/cli-reference.md`` from the command line itself: every command, its arguments and
options with their help, as the parser knows them (datasette's way: generated, and a test keeps
the file current, ``tests/test_docs.py``).

    python -m prefloop.cli.reference > docs/cli-reference.md
"""

from __future__ import annotations

__all__ = ["render"]


def _commands(cmd, path: list[str]):
    yield path, cmd
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        if not getattr(sub, "hidden", False):
            yield from _commands(sub, path + [name])


def _cell(text: str) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def render() -> str:
    """The reference as markdown: one section per command (group commands list their
    subcommands), each with its help's first paragraph, its arguments and options."""
    import typer.main

    from . import app

    root = typer.main.get_command(app)
    out = ["# CLI reference", "", "Generated from the command line (`python -m prefloop.cli.reference`); "
           "`tests/test_docs.py` keeps it current. Every command also answers `--help`.", ""]
    for path, cmd in _commands(root, ["prefloop"]):
        out += [f"## `{' '.join(path)}`", ""]
        doc = (cmd.help or "").strip().split("\n\n")[0]
        if doc:
            out += [" ".join(doc.split()), ""]
        params = [p for p in cmd.params if p.name != "help" and not getattr(p, "hidden", False)]
        if params:
            out += ["| argument or option | help |", "|---|---|"]
            for p in params:
                names = ", ".join(p.opts) if p.param_type_name == "option" else p.name.upper()
                out.append(f"| `{names}` | {_cell(getattr(p, 'help', '') or '')} |")
            out.append("")
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
