"""The documentation stays true: every relative link in the README and docs/ points to a file
that exists, every ``prefloop`` command the README shows exists with the options it uses, the
README stays a landing page, and docs/cli-reference.md is what the command line says today."""

from __future__ import annotations

import re
import shlex

import pytest
import typer.main

from prefloop.cli import app
from prefloop.cli.reference import render

from .conftest import ROOT

DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", *DOCS]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_points_to_a_file(page):
    text = page.read_text(encoding="utf-8")
    missing = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://", "#", "mailto:")):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        if not path.exists():
            missing.append(target)
    assert missing == [], f"{page.name}: broken links {missing}"


def _readme_commands() -> list[list[str]]:
    """The ``prefloop ...`` lines of the README's code blocks, as argument lists."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("#")[0].strip()
            if not line:
                continue
            words = shlex.split(line)
            for i, w in enumerate(words):
                if w.endswith("prefloop"):
                    out.append(words[i + 1:])
                    break
    return out


def test_every_command_the_readme_shows_exists_with_its_options():
    root = typer.main.get_command(app)
    commands = _readme_commands()
    assert len(commands) >= 10
    for words in commands:
        cmd, rest = root, list(words)
        while rest and rest[0] == "--db":
            rest = rest[2:]
        while rest and hasattr(cmd, "commands") and rest[0] in cmd.commands:
            cmd, rest = cmd.commands[rest[0]], rest[1:]
        assert not hasattr(cmd, "commands") or not rest or rest[0].startswith("-"), f"unknown command in {words}"
        known = {o for p in cmd.params for o in getattr(p, "opts", [])}
        used = {w.split("=")[0] for w in rest if w.startswith("--")}
        assert used <= known, f"prefloop {' '.join(words)}: unknown options {sorted(used - known)}"


def test_the_readme_is_a_landing_page():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200
    head = "\n".join(lines[:30])
    assert "make demo" in head and "make test" in head


def test_the_cli_reference_is_current():
    assert (ROOT / "docs" / "cli-reference.md").read_text(encoding="utf-8") == render(), (
        "docs/cli-reference.md is stale: python -m prefloop.cli.reference > docs/cli-reference.md")
