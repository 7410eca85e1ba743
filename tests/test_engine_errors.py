"""The store recognises DuckDB's own errors by their text (a short read of a truncated file, a
lock held by another process): these tests produce each with the installed DuckDB, so that a
release that words them differently fails here, not in a user's terminal. pyproject bounds
duckdb below the next major version for the same reason."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pytest

from prefloop.store.engine import _first_line, _is_lock_conflict, _is_short_read


def test_a_truncated_file_is_a_short_read(tmp_path):
    path = tmp_path / "a.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t AS SELECT range AS i, repeat('x', 100) AS s FROM range(200000)")
    con.execute("CHECKPOINT")
    con.close()
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    with pytest.raises(duckdb.Error) as info:
        duckdb.connect(str(path)).execute("SELECT sum(i), max(s) FROM t").fetchall()
    assert _is_short_read(info.value) and not _is_lock_conflict(info.value)
    assert _first_line(info.value).startswith("Could not read enough bytes")


def test_a_file_another_process_holds_is_a_lock_conflict(tmp_path):
    path = tmp_path / "b.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('held', flush=True); time.sleep(60)", str(path)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"held"
        with pytest.raises(duckdb.Error) as info:
            duckdb.connect(str(path))
        assert _is_lock_conflict(info.value) and not _is_short_read(info.value)
    finally:
        holder.kill()
        holder.wait()
