"""Hostile and careless input (issue: the fail classes of the attack pass): each class fails
at its boundary with one line naming what is wrong, deletes nothing it did not write, and
writes nothing partial. No model is loaded: the fast tier."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import duckdb
import pytest

from prefloop import store
from prefloop.store.export import export_pairs, verify_export
from prefloop.store.pairs import PairFilters

from .conftest import make_pairs


def _labeled(db):
    (pid, rids), = make_pairs(db, 1)
    db.comparisons.record(pid, [[rids[0]], [rids[1]]], labeler_kind="human", labeler="x")


# -- 0. data loss ---------------------------------------------------------------------------

def test_export_never_deletes_a_folder_it_did_not_write(db, tmp_path):
    _labeled(db)
    mine = tmp_path / "mine"
    mine.mkdir()
    files = {"notes.txt": "my notes", "background.js": "alert(1)",
             "manifest.json": json.dumps({"name": "my extension", "version": "1"})}
    for name, text in files.items():
        (mine / name).write_text(text)
    for overwrite in (False, True):
        with pytest.raises(store.ExportError, match="is not a prefloop export"):
            export_pairs(db, mine, PairFilters(), overwrite=overwrite)
    assert {p.name: p.read_text() for p in mine.iterdir()} == files
    # an export folder with a file of the user's added is not ours alone either
    out = tmp_path / "e"
    export_pairs(db, out, PairFilters())
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(store.ExportError, match="is not a prefloop export"):
        export_pairs(db, out, PairFilters(), overwrite=True)
    assert (out / "mine.txt").read_text() == "keep me"
    assert len(db.exports.list()) == 1


def test_overwriting_an_export_marks_the_old_row_replaced(db, tmp_path):
    _labeled(db)
    out = tmp_path / "e"
    first = export_pairs(db, out, PairFilters())
    with pytest.raises(store.ExportError, match=f"holds export {first.export.id}"):
        export_pairs(db, out, PairFilters())
    second = export_pairs(db, out, PairFilters(test_fraction=0.0, seed=3), overwrite=True)
    old = db.exports.get(first.export.id)
    assert old.replaced_by == second.export.id and db.exports.get(second.export.id).replaced_by is None
    with pytest.raises(store.ExportError, match=f"replaced by export {second.export.id}"):
        verify_export(old)
    assert verify_export(db.exports.get(second.export.id)) == out.resolve()


def test_a_killed_exports_temp_dir_is_cleaned_on_the_next_run(db, tmp_path):
    _labeled(db)
    out = tmp_path / "e"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / ".e-abc123"
    stale.mkdir()
    (stale / "train.parquet").write_bytes(b"half written")
    (stale / ".prefloop-export-writer").write_text(dead)
    alive = tmp_path / ".e-live"
    alive.mkdir()
    (alive / ".prefloop-export-writer").write_text(str(os.getpid()))
    foreign = tmp_path / ".e-user"
    foreign.mkdir()
    export_pairs(db, out, PairFilters())
    assert not stale.exists() and alive.exists() and foreign.exists()
    assert not [p for p in tmp_path.glob(".e-*") if p.name not in (".e-live", ".e-user")]


def test_export_onto_a_file_or_an_unwritable_parent_is_one_line(db, tmp_path, cli):
    _labeled(db)
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(store.ExportError, match="is a file, not a directory"):
        export_pairs(db, f, PairFilters())
    out = cli("--db", db.path, "export", f / "out")          # its parent is a file
    assert out.exit_code == 1 and "cannot write the export there" in out.output
    assert "Traceback" not in out.output
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):      # root ignores the mode bits
            pytest.skip("running as root: a read-only folder is writable")
        out = cli("--db", db.path, "export", locked / "out")
        assert out.exit_code == 1 and "cannot write the export there" in out.output
        assert "Traceback" not in out.output and len(out.output.strip().splitlines()) == 1
    finally:
        locked.chmod(0o700)
    assert db.exports.list() == []


# -- 4. a store is a store ------------------------------------------------------------------

@pytest.mark.parametrize("kind,message", [
    ("text", "not a readable store"), ("empty", "is an empty file"),
    ("directory", "is a directory, not a store file"), ("foreign", "of another application"),
    ("truncated", "not a readable store")])
def test_a_file_that_is_not_a_store_is_refused_and_left_alone(tmp_path, cli, kind, message):
    path = tmp_path / "x.duckdb"
    if kind == "text":
        path.write_text("hello\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "directory":
        path.mkdir()
    elif kind == "foreign":
        con = duckdb.connect(str(path))
        con.execute("CREATE TABLE orders (id INT)")
        con.close()
    else:
        real = tmp_path / "real.duckdb"
        store.Store.init(real).close()
        data = real.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    before = None if kind == "directory" else path.read_bytes()
    for args in (("stats",), ("init",)):
        out = cli("--db", path, *args)
        assert out.exit_code == 1 and message in out.output, out.output
        assert "Traceback" not in out.output and len(out.output.strip().splitlines()) <= 2
    if before is not None:
        assert path.read_bytes() == before          # not a table added, not a byte changed
    if kind == "foreign":
        con = duckdb.connect(str(path))
        assert [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()] == ["orders"]
        con.close()


def test_a_store_still_opens_and_a_new_one_is_created(tmp_path):
    path = tmp_path / "new" / "s.duckdb"
    s = store.Store.init(path)
    s.close()
    assert store.Store(path).schema_version()[-1] == "0006_export_replacement"
    shutil.copy(path, tmp_path / "copy.duckdb")
    assert store.Store(tmp_path / "copy.duckdb").prompts.list() == []
