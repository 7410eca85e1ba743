"""The ``prefloop`` command line: help everywhere, the store commands, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import datasets
import pytest
import typer.main

from prefloop.cli import app

from .conftest import ALPACA, HH, MT_BENCH, make_pairs


def _commands(group, prefix=()):
    for name, cmd in group.commands.items():
        yield prefix + (name,), cmd
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, prefix + (name,))


def test_every_command_has_help_text(cli):
    root = typer.main.get_command(app)
    names = list(_commands(root))
    assert len(names) >= 4
    for path, cmd in names:
        assert (cmd.help or "").strip(), f"`prefloop {' '.join(path)}` has no help text"
        result = cli(*path, "--help")
        assert result.exit_code == 0 and "Usage" in result.output


def test_import_help_lists_every_format_the_store_reads(cli):
    from prefloop.cli._common import IMPORT_FORMATS
    from prefloop.store.importer import FORMATS

    assert IMPORT_FORMATS == FORMATS
    assert all(f in cli("import", "--help").output for f in FORMATS)


def test_users_rename_keeps_their_labels(cli, tmp_path):
    from prefloop import store

    db = tmp_path / "s.duckdb"
    s = store.Store(db, create=True)
    s.annotators.add("ann")
    (p, rids), = make_pairs(s, 1)
    task, = s.tasks.create([store.TaskIn(p, rids)])
    ann = s.annotators.get("ann")
    s.tasks.lease_next(ann.id)
    s.comparisons.record(p, [[rids[0]], [rids[1]]], labeler_kind="human", task_id=task,
                         annotator_id=ann.id)
    r = cli("--db", db, "users", "rename", "ann", "anna")
    assert r.exit_code == 0 and r.output.strip() == "User ann is now anna."
    assert [c.labeler for c in s.comparisons.list()] == ["anna"]
    assert s.comparisons.list(labeler="ann") == []


def test_init_import_export_stats(cli, tmp_path, shared_data):
    db = tmp_path / "s.duckdb"
    assert cli("--db", db, "init").exit_code == 0
    r = cli("--db", db, "import", HH, "--format", "hh")
    assert r.exit_code == 0 and "1800" in r.output and "1794" in r.output
    assert "lines 1255, 1689" in r.output
    assert cli("--db", db, "import", ALPACA, "-f", "alpaca-eval").exit_code == 0
    assert cli("--db", db, "import", MT_BENCH, "-f", "prompts").exit_code == 0
    r = cli("--db", db, "export", tmp_path / "out", "--source", "human", "--test-fraction", "0.1")
    assert r.exit_code == 0 and "1794 pairs" in r.output
    ds = datasets.load_from_disk(str(tmp_path / "out" / "dataset"))
    assert ds["train"].num_rows + ds["test"].num_rows == 1794
    r = cli("--db", db, "stats")
    assert r.exit_code == 0 and "alpaca_eval_gpt4" in r.output and "2583" in r.output


def test_errors_are_one_line_with_a_nonzero_exit(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"chosen": 1}\n')
    db = tmp_path / "s.duckdb"
    run = [sys.executable, "-m", "prefloop", "--db", str(db)]
    missing = subprocess.run(run + ["stats"], capture_output=True, text=True)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        f"Error: no store at {db}: create one with `prefloop init` (or pass --db / set "
        "PREFLOOP_DB to an existing store)"]
    subprocess.run(run + ["init"], check=True, capture_output=True)
    r = subprocess.run(run + ["import", str(bad), "--format", "hh"], capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip() == f"Error: {bad}:1: field 'chosen': expected a string, found int"


@pytest.mark.parametrize("args, words", [
    (("train", "bogus"), "'bogus': expected one of rm, dpo"),
    (("runs", "show", "abc"), "Invalid value for 'run_id'"),
    (("train", "dpo", "--set", "beta"), "--set 'beta': expected key=value"),
    (("no-such-command",), "No such command 'no-such-command'"),
    (("eval", "show", "--bogus"), "No such option: --bogus"),
])
def test_a_bad_command_line_is_one_error_line_with_status_2(db, cli, args, words):
    db.close()
    r = cli("--db", db.path, *args)
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and words in lines[0]


def test_eval_checks_its_prompts_before_any_model_is_converted(db, cli, monkeypatch, tmp_path):
    monkeypatch.setenv("PREFLOOP_CACHE", str(tmp_path / "empty-cache"))
    db.close()
    r = cli("--db", db.path, "eval", "--models", "smollm2-135m-instruct", "--prompts", "no-such-dataset")
    assert r.exit_code == 1 and "no prompts in 'no-such-dataset'" in r.output
    assert not (tmp_path / "empty-cache").exists()           # nothing was converted
