"""Regression tests for the defects a security pass found in the labeling app and the importers
(issue 14, section 6); each failed before its fix."""

from __future__ import annotations

import time

import pytest
from prefloop.annotate_app.auth import LoginGuard, authenticate, hash_password
from prefloop.annotate_app.errors import InvalidSubmission
from prefloop.annotate_app.service import AppConfig, LabelingService

from prefloop import store
from prefloop.store.importer import import_file

from .conftest import make_pairs


def test_login_locks_a_name_after_repeated_failures_and_unlocks_later(db):
    """Defect 5: 300 wrong passwords in a row, then the right one, used to work."""
    db.annotators.add("ann", "annotator", hash_password("correct horse"))
    guard = LoginGuard(max_failures=5, lockout_seconds=0.5)
    for _ in range(5):
        assert not authenticate(db, "ann", "wrong guess", guard)
    t0 = time.perf_counter()
    assert not authenticate(db, "ann", "correct horse", guard)          # locked
    assert time.perf_counter() - t0 < 0.02                             # no argon2 while locked
    time.sleep(0.6)
    assert authenticate(db, "ann", "correct horse", guard)              # the lock expires
    assert authenticate(db, "ann", "correct horse", guard)


def test_an_unknown_user_costs_as_much_as_a_wrong_password(db):
    """Defect 5: user names could be enumerated by timing (argon2 was skipped)."""
    db.annotators.add("ann", "annotator", hash_password("correct horse"))

    def cost(name):
        t0 = time.perf_counter()
        for _ in range(3):
            assert not authenticate(db, name, "wrong guess")
        return time.perf_counter() - t0

    known, unknown = cost("ann"), cost("nobody")
    assert unknown > 0.5 * known, (known, unknown)


def test_the_admin_export_path_is_confined_to_the_exports_root(db, tmp_path):
    """Defect 11: the admin export path was unrestricted (``../../anywhere``)."""
    root = tmp_path / "exports-root"
    svc = LabelingService(db, AppConfig(exports_root=str(root)))
    for bad in ("../../anywhere", str(tmp_path / "elsewhere"), "", ".", "a/../.."):
        with pytest.raises(InvalidSubmission, match="inside"):
            svc.export(bad, source="all")
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "anywhere").exists()


def test_a_bad_rejects_path_fails_before_anything_is_imported(db, tmp_path):
    """Defect 3: ``--rejects /nonexistent/r.jsonl`` committed the rows, then failed."""
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "hello"}\n{"prompt": 3}\n')
    with pytest.raises(store.InvalidInputError, match="directory does not exist"):
        import_file(db, f, "prompts", skip_invalid=True, rejects_path=tmp_path / "no" / "r.jsonl")
    assert db.prompts.list() == []


def test_default_rejects_files_are_named_after_the_input_file(db, tmp_path, monkeypatch):
    """Defect 3: two imports with the same dataset name overwrote each other's rejects file."""
    monkeypatch.chdir(tmp_path)
    for name in ("a.jsonl", "b.jsonl"):
        (tmp_path / name).write_text(f'{{"prompt": "{name}"}}\n{{"prompt": 3}}\n')
        r = import_file(db, tmp_path / name, "prompts", dataset="same", skip_invalid=True)
        assert r.rejects_path == f"{name}.rejects.jsonl"
    assert (tmp_path / "a.jsonl.rejects.jsonl").exists() and (tmp_path / "b.jsonl.rejects.jsonl").exists()


def test_a_store_path_with_a_quote_works(tmp_path):
    """Defect 10: a store path containing ' broke ATTACH with an SQL traceback."""
    d = tmp_path / "it's here"
    d.mkdir()
    s = store.Store(d / "o'neil.duckdb", create=True)
    pid, = s.prompts.add([[{"role": "user", "content": "hi"}]], dataset="q")
    assert store.Store(d / "o'neil.duckdb").prompts.get(pid).id == pid


def test_rationale_and_edit_text_are_bounded(db):
    """Defect 7: a 5 MB rationale was stored."""
    (pid, rids), = make_pairs(db, 1)
    db.tasks.create([store.TaskIn(pid, rids)])
    db.annotators.add("ann", "annotator", hash_password("correct horse"))
    svc = LabelingService(db, AppConfig())
    ann = db.annotators.get("ann")
    view = svc.current_task(ann)
    huge = "x" * (store.MAX_TEXT_CHARS + 1)
    for kwargs in ({"rationale": huge}, {"edit": huge}):
        with pytest.raises((InvalidSubmission, store.ValidationError)):
            svc.submit_and_next(ann, view.task_id, choice="A", **kwargs)
    assert db.comparisons.list() == []


def test_a_busy_port_is_one_line(db, cli):
    """Defect 10: ``prefloop annotate`` on a busy port printed a traceback."""
    import socket

    db.annotators.add("ann", "admin", hash_password("correct horse"))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        out = cli("--db", str(db.path), "annotate", "--port", str(port))
    assert out.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in out.output and "Traceback" not in out.output
