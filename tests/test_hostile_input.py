"""Hostile and careless input (the fail classes of an attack pass): each class fails
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
from prefloop.store.export_files import export_pairs, verify_export
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
    else:                  # a store with data, cut: it attaches, then fails to read
        real = tmp_path / "real.duckdb"
        s = store.Store.init(real)
        s.prompts.add([[{"role": "user", "content": f"question {i} " * 50}] for i in range(3000)], dataset="d")
        s.close()
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
    assert store.Store(path).schema_version()[-1] == "0010_conversations"
    shutil.copy(path, tmp_path / "copy.duckdb")
    assert store.Store(tmp_path / "copy.duckdb").prompts.list() == []


# -- 5. secrets, 7. exit codes --------------------------------------------------------------

def _human_pairs(db, n=2):
    for pid, rids in make_pairs(db, n):
        db.comparisons.record(pid, [[rids[0]], [rids[1]]], labeler_kind="human", labeler="x")


def test_a_key_echoed_by_the_judge_server_is_stored_logged_and_printed_nowhere(db, cli, monkeypatch):
    from .judge_server import FakeJudgeServer

    key = "sk-canary-5f2e9c1b7a"
    monkeypatch.setenv("PREFLOOP_JUDGE_API_KEY", key)
    _human_pairs(db)
    srv = FakeJudgeServer().start()
    srv.echo_key = True
    try:
        out = cli("--db", db.path, "judge", "run", "--mode", "pairwise", "--backend", "openai",
                  "--base-url", srv.base_url, "--model", "fake-judge", "--no-progress")
    finally:
        srv.stop()
    assert out.exit_code == 1 and "every judge call failed" in out.output and "[redacted]" in out.output
    assert key not in out.output
    run = db.runs.list(kind="judge")[-1]
    assert run.status == "failed" and key not in run.summary["error"] and "[redacted]" in run.summary["error"]
    shown = cli("--db", db.path, "runs", "show", str(run.id))
    assert key not in shown.output
    db.close()
    for f in db.path.parent.glob(db.path.name + "*"):
        assert key.encode() not in f.read_bytes(), f


def test_an_unreachable_judge_exits_non_zero_before_any_run_row(db, cli):
    _human_pairs(db)
    out = cli("--db", db.path, "judge", "run", "--mode", "pairwise", "--backend", "openai",
              "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--no-progress")
    assert out.exit_code == 1 and "cannot be reached" in out.output
    assert db.runs.list() == []


def test_a_partly_failed_batch_exits_3_with_the_count(db, cli):
    from .judge_server import FakeJudgeServer

    _human_pairs(db, 2)
    srv = FakeJudgeServer().start()
    srv.faults = ["500"] * 6          # the first call fails for good (6 attempts), the rest answer
    try:
        out = cli("--db", db.path, "judge", "run", "--mode", "pairwise", "--backend", "openai",
                  "--base-url", srv.base_url, "--model", "fake-judge", "--no-progress",
                  "--concurrency", "1")
    finally:
        srv.stop()
    assert out.exit_code == 3 and "1 of 4 judge calls failed" in out.output, out.output


# -- 3. importers ---------------------------------------------------------------------------

def test_a_fifo_or_pipe_is_refused_at_once(db, tmp_path):
    import time

    from prefloop.store.importer import import_file

    fifo = tmp_path / "in.jsonl"
    os.mkfifo(fifo)
    t0 = time.perf_counter()
    with pytest.raises(store.InvalidInputError, match="not a regular file"):
        import_file(db, fifo, "prompts")
    r, w = os.pipe()
    try:
        with pytest.raises(store.InvalidInputError, match="process substitution"):
            import_file(db, f"/proc/self/fd/{r}", "prompts")
    finally:
        os.close(r)
        os.close(w)
    assert time.perf_counter() - t0 < 5 and db.prompts.list() == []


def test_json_arrays_truncated_doubled_or_with_a_bom(db, tmp_path):
    import gzip

    from prefloop.store.importer import import_file

    rows = [{"prompt": f"question {i}"} for i in range(50)]
    whole = gzip.compress(json.dumps(rows, indent=2).encode())
    cut = tmp_path / "cut.json.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(store.InvalidInputError, match=r"cut.json.gz(:\d+)?: the gzip stream is truncated"):
        import_file(db, cut, "prompts")
    two = tmp_path / "two.json"
    two.write_text(json.dumps(rows[:2]) + "\n" + json.dumps(rows[2:4]) + "\n")
    with pytest.raises(store.InvalidInputError, match=r"two.json:2: content after the JSON array"):
        import_file(db, two, "prompts")
    assert db.prompts.list() == []
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf\n  " + json.dumps(rows[:3], indent=2).encode())
    assert import_file(db, bom, "prompts").imported == 3


def test_every_importer_holds_the_stores_text_limit(db, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from prefloop.store.importer import import_file

    huge = "x" * (store.MAX_TEXT_CHARS + 1)
    cases = {"prompts": ("p.jsonl", [{"prompt": "fine"}, {"prompt": huge}]),
             "hh": ("h.jsonl", [{"chosen": f"\n\nHuman: hi\n\nAssistant: {huge}",
                                 "rejected": "\n\nHuman: hi\n\nAssistant: no"}])}
    for fmt, (name, lines) in cases.items():
        f = tmp_path / name
        f.write_text("".join(json.dumps(x) + "\n" for x in lines))
        with pytest.raises(store.InvalidInputError, match="characters, more than the store's limit"):
            import_file(db, f, fmt)
    parquet = tmp_path / "t.parquet"
    pq.write_table(pa.table({"prompt": ["q1", "q2"], "chosen": ["good", huge], "rejected": ["bad", "worse"]}),
                   parquet)
    with pytest.raises(store.InvalidInputError, match=r"t.parquet:2: .*more than the store's limit"):
        import_file(db, parquet, "trl")
    assert db.prompts.list() == []
    r = import_file(db, parquet, "trl", skip_invalid=True, rejects_path=tmp_path / "rej.jsonl")
    assert r.imported == 1 and r.rejected == 1
    assert max(len(x.text) for x in db.responses.get_many(list(range(1, 10)))) < store.MAX_TEXT_CHARS


# -- 6. the app's edit diff ------------------------------------------------------------------

def test_the_edit_diff_is_bounded():
    import time

    from prefloop.annotate_app.render import edit_diff

    original, edited = "ab " * 176_000, "ab ba " * 50_000          # 352k characters, repetitive
    t0 = time.perf_counter()
    out = edit_diff(original, edited)
    assert time.perf_counter() - t0 < 5 and "No word diff" in out and "ab ba" in out
    t0 = time.perf_counter()                                    # repetitive but small: diffed, fast
    out = edit_diff("ab " * 200, "ab ba " * 100)
    assert time.perf_counter() - t0 < 2 and "<ins" in out
    assert "<ins" in edit_diff("the cat sat", "the dog sat")     # ordinary edits still diff
    long = " ".join(f"w{i}" for i in range(1500))
    assert edit_diff(long, long.replace(" w700 ", " ")).count("<del") == 1


def test_a_foreign_or_damaged_write_ahead_log_is_one_line_with_the_fix(tmp_path, cli):
    """A WAL left beside the store that does not belong to it (copied from another store, or
    cut short): one line naming the log and how to open the store without it; random bytes
    (no WAL header) are ignored by DuckDB and the store opens."""
    from pathlib import Path

    path = tmp_path / "s.duckdb"
    store.Store.init(path).close()
    other = tmp_path / "b.duckdb"
    subprocess.run([sys.executable, "-c", (
        f"import duckdb, os; con = duckdb.connect({str(other)!r}); con.execute('CREATE TABLE t(x INT)'); "
        "con.execute('CHECKPOINT'); con.execute('PRAGMA disable_checkpoint_on_shutdown'); "
        "con.execute('INSERT INTO t SELECT range FROM range(1000)'); os._exit(0)")], check=True)
    wal = tmp_path / "s.duckdb.wal"
    for content in (Path(str(other) + ".wal").read_bytes(), Path(str(other) + ".wal").read_bytes()[:200]):
        wal.write_bytes(content)
        out = cli("--db", path, "stats")
        assert out.exit_code == 1 and "Traceback" not in out.output
        assert "write-ahead log" in out.output and f"mv {wal}" in out.output
    wal.write_bytes(os.urandom(3000))
    assert cli("--db", path, "stats").exit_code == 0


def test_a_truncated_store_that_migrates_and_fails_in_a_query_is_one_line(tmp_path, cli, shared_data):
    """Cut to a third, a store with data attaches and passes its migration check, then fails
    on a missing page inside a query: still one line, exit 1 (bench/hostile_cases.py's case)."""
    from pathlib import Path

    from prefloop.store.importer import import_file

    full = tmp_path / "full.duckdb"
    s = store.Store.init(full)
    import_file(s, shared_data / "hh-rlhf" / "harmless-base-test-dev.jsonl.gz", "hh")
    s.close()
    data = Path(full).read_bytes()
    cut = tmp_path / "cut.duckdb"
    cut.write_bytes(data[: len(data) // 3])
    out = cli("--db", cut, "stats")
    assert out.exit_code == 1 and "Traceback" not in out.output
    assert "not a readable store, truncated or damaged" in out.output
