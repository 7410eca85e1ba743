"""Regression tests for the defects a security pass found in the labeling app and the importers;
each failed before its fix."""

from __future__ import annotations

import time

import pytest

from prefloop import store
from prefloop.annotate_app.auth import LoginGuard, authenticate, hash_password
from prefloop.annotate_app.config import AppConfig
from prefloop.annotate_app.errors import InvalidSubmission
from prefloop.annotate_app.services import AppServices
from prefloop.store.importer import import_file

from .conftest import make_pairs


def test_login_locks_a_name_after_repeated_failures_and_unlocks_later(db):
    """300 wrong passwords in a row, then the right one, used to work."""
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
    """user names could be enumerated by timing (argon2 was skipped)."""
    db.annotators.add("ann", "annotator", hash_password("correct horse"))

    def cost(name):
        t0 = time.perf_counter()
        for _ in range(3):
            assert not authenticate(db, name, "wrong guess")
        return time.perf_counter() - t0

    known, unknown = cost("ann"), cost("nobody")
    assert unknown > 0.5 * known, (known, unknown)


def test_the_admin_export_path_is_confined_to_the_exports_root(db, tmp_path):
    """the admin export path was unrestricted (``../../anywhere``)."""
    root = tmp_path / "exports-root"
    svc = AppServices(db, AppConfig(exports_root=str(root)))
    for bad in ("../../anywhere", str(tmp_path / "elsewhere"), "", ".", "a/../.."):
        with pytest.raises(InvalidSubmission, match="inside"):
            svc.admin.export(bad, source="all")
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "anywhere").exists()


def test_a_bad_rejects_path_fails_before_anything_is_imported(db, tmp_path):
    """``--rejects /nonexistent/r.jsonl`` committed the rows, then failed."""
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "hello"}\n{"prompt": 3}\n')
    with pytest.raises(store.InvalidInputError, match="directory does not exist"):
        import_file(db, f, "prompts", skip_invalid=True, rejects_path=tmp_path / "no" / "r.jsonl")
    assert db.prompts.list() == []


def test_default_rejects_files_are_named_after_the_input_file(db, tmp_path, monkeypatch):
    """two imports with the same dataset name overwrote each other's rejects file."""
    monkeypatch.chdir(tmp_path)
    for name in ("a.jsonl", "b.jsonl"):
        (tmp_path / name).write_text(f'{{"prompt": "{name}"}}\n{{"prompt": 3}}\n')
        r = import_file(db, tmp_path / name, "prompts", dataset="same", skip_invalid=True)
        assert r.rejects_path == f"{name}.rejects.jsonl"
    assert (tmp_path / "a.jsonl.rejects.jsonl").exists() and (tmp_path / "b.jsonl.rejects.jsonl").exists()


def test_a_store_path_with_a_quote_works(tmp_path):
    """a store path containing ' broke ATTACH with an SQL traceback."""
    d = tmp_path / "it's here"
    d.mkdir()
    s = store.Store(d / "o'neil.duckdb", create=True)
    pid, = s.prompts.add([[{"role": "user", "content": "hi"}]], dataset="q")
    assert store.Store(d / "o'neil.duckdb").prompts.get(pid).id == pid


def test_rationale_and_edit_text_are_bounded(db):
    """a 5 MB rationale was stored."""
    (pid, rids), = make_pairs(db, 1)
    db.tasks.create([store.TaskIn(pid, rids)])
    db.annotators.add("ann", "annotator", hash_password("correct horse"))
    svc = AppServices(db, AppConfig())
    ann = db.annotators.get("ann")
    view = svc.labeling.current_task(ann)
    huge = "x" * (store.MAX_TEXT_CHARS + 1)
    for kwargs in ({"rationale": huge}, {"edit": huge}):
        with pytest.raises((InvalidSubmission, store.ValidationError)):
            svc.labeling.submit_and_next(ann, view.task_id, choice="A", **kwargs)
    assert db.comparisons.list() == []


def test_a_busy_port_is_one_line(db, cli):
    """``prefloop annotate`` on a busy port printed a traceback."""
    import socket

    db.annotators.add("ann", "admin", hash_password("correct horse"))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        out = cli("--db", str(db.path), "annotate", "--port", str(port))
    assert out.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in out.output and "Traceback" not in out.output


def _no_rows(db) -> bool:
    return db.prompts.list() == [] and db.comparisons.list() == []


@pytest.mark.parametrize("name,content,fmt,message", [
    ("deep.jsonl", '{"chosen": ' + "[" * 100_000 + "]" * 100_000 + "}\n", "hh", "deep.jsonl:1: malformed JSON: nested too deeply"),
    ("sur.jsonl", '{"prompt":"a\\udfff"}\n', "prompts", "sur.jsonl:1: a lone UTF-16 surrogate"),
    ("big.jsonl", '{"prompt": ' + "1" * 5000 + "}\n", "prompts", "big.jsonl:1: malformed JSON: Exceeds the limit"),
    ("deep.json", "[" + "[" * 100_000 + "]" * 100_000 + "]", "prompts", "deep.json:1: malformed JSON: nested too deeply"),
    ("x.parquet", "not parquet", "trl", "x.parquet: not a Parquet file, or a truncated one"),
    ("empty.json", "[]", "prompts", "empty.json: file is empty"),
])
def test_malformed_files_are_one_line_errors_and_the_store_is_unchanged(db, tmp_path, name, content, fmt, message):
    """Defects 1 and 2: these used to print tracebacks (or, for an empty JSON array, pass
    silently while an empty JSONL file failed)."""
    f = tmp_path / name
    f.write_text(content)
    with pytest.raises(store.InvalidInputError) as e:
        import_file(db, f, fmt)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert _no_rows(db)


def test_a_lone_surrogate_is_skippable(db, tmp_path):
    """a lone surrogate could not even be skipped with --skip-invalid."""
    f = tmp_path / "s.jsonl"
    f.write_text('{"prompt":"a\\udfff"}\n{"prompt": "fine"}\n')
    r = import_file(db, f, "prompts", skip_invalid=True, rejects_path=tmp_path / "r.jsonl")
    assert r.prompts_added == 1 and len(r.problems) == 1 and r.problems[0].line == 1


def test_a_broken_datasets_directory_is_one_line(db, tmp_path):
    d = tmp_path / "dd"
    d.mkdir()
    (d / "dataset_info.json").write_text("{")
    with pytest.raises(store.InvalidInputError, match="dd: not a readable saved dataset"):
        import_file(db, d, "trl")
    assert _no_rows(db)


def test_a_byte_order_mark_is_accepted_in_jsonl_and_json(db, tmp_path):
    """a UTF-8 BOM was rejected in JSONL but accepted in JSON."""
    (tmp_path / "a.jsonl").write_bytes(b'\xef\xbb\xbf{"prompt": "one"}\n')
    (tmp_path / "b.json").write_bytes(b'\xef\xbb\xbf[{"prompt": "two"}]')
    assert import_file(db, tmp_path / "a.jsonl", "prompts").prompts_added == 1
    assert import_file(db, tmp_path / "b.json", "prompts").prompts_added == 1


def test_an_endless_line_is_refused_without_reading_it_all(db, tmp_path, monkeypatch):
    """reading /dev/zero grew memory without limit."""
    from prefloop.store.formats import common

    monkeypatch.setattr(common, "MAX_LINE_BYTES", 1 << 20)
    f = tmp_path / "zeros.jsonl"
    f.write_bytes(b"\0" * (3 << 20))
    with pytest.raises(store.InvalidInputError, match="zeros.jsonl:1: line longer than 1 MiB"):
        import_file(db, f, "prompts")


def test_undo_after_an_edit_withdraws_the_edit_and_shows_the_same_task(db):
    """undo left the edit's comparison (exported later), a new edit then got no
    comparison (same dedup key), and the app showed a different task."""
    made = make_pairs(db, 3)
    db.tasks.create([store.TaskIn(p, r) for p, r in made])
    db.annotators.add("ann", "annotator", hash_password("correct horse"))
    svc = AppServices(db, AppConfig())
    ann = db.annotators.get("ann")
    view = svc.labeling.current_task(ann)
    cid, nxt = svc.labeling.submit_and_next(ann, view.task_id, choice="A", edit="a much better answer")
    assert nxt is not None and nxt.task_id != view.task_id
    assert len(db.comparisons.list()) == 2                      # the ranking and the edit
    again = svc.labeling.undo_and_next(ann, cid)
    assert again.task_id == view.task_id                       # the withdrawn task, not the next
    assert db.comparisons.list() == []                          # the edit went with it
    cid2, _ = svc.labeling.submit_and_next(ann, view.task_id, choice="B", edit="a second, different edit")
    edits = [c for c in db.comparisons.list() if c.rationale == "human edit"]
    assert len(edits) == 1
    new = db.responses.get_many([edits[0].ranking[0][0]])[0]
    assert new.text == "a second, different edit" and new.origin == "human_edit"


def test_an_export_killed_before_its_record_can_be_run_again(db, tmp_path):
    """kill -9 between the rename and the exports row left a complete, unrecorded
    directory, and a re-run refused it as "exists and is not empty"."""
    from prefloop.store.export_files import export_pairs
    from prefloop.store.pairs import PairFilters

    (pid, rids), = make_pairs(db, 1)
    db.comparisons.record(pid, [[rids[0]], [rids[1]]], labeler_kind="human", labeler="x")
    out = tmp_path / "e"
    first = export_pairs(db, out, PairFilters())
    with db.atomic() as con:                      # as if the process died before recording it
        con.execute("DELETE FROM exports WHERE id = ?", [first.export.id])
    again = export_pairs(db, out, PairFilters())
    assert again.export.sha256 == first.export.sha256 and db.exports.by_path(str(out.resolve()))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("not an export")
    with pytest.raises(store.ExportError, match="exists, is not empty"):
        export_pairs(db, tmp_path / "mine", PairFilters())


class _Request:
    """What the service reads of a gr.Request: the user name and Gradio's token cookie."""

    def __init__(self, username: str, token: str):
        self.username, self.cookies = username, {"access-token-abc123": token}


def test_a_password_change_ends_existing_sessions_and_sessions_expire(db):
    """changing a password (or disabling a user) must end that user's sessions, and
    sessions should expire."""
    from prefloop.annotate_app.errors import NotAuthorized

    db.annotators.add("ann", "annotator", hash_password("correct horse"))
    svc = AppServices(db, AppConfig())
    assert authenticate(db, "ann", "correct horse", sessions=svc.sessions)
    old = _Request("ann", "token-1")
    assert svc.authorize(old).name == "ann"
    db.annotators.update("ann", password_hash=hash_password("new battery staple"))
    with pytest.raises(NotAuthorized, match="password was changed"):
        svc.authorize(old)
    assert authenticate(db, "ann", "new battery staple", sessions=svc.sessions)
    assert svc.authorize(_Request("ann", "token-2")).name == "ann"   # the new login works
    with pytest.raises(NotAuthorized, match="password was changed"):
        svc.authorize(old)                                          # the old one stays ended
    db.annotators.update("ann", active=False)
    with pytest.raises(NotAuthorized, match="disabled"):
        svc.authorize(_Request("ann", "token-2"))

    short = AppServices(db, AppConfig(session_hours=0.2 / 3600))
    db.annotators.update("ann", active=True)
    assert short.authorize(_Request("ann", "token-3")).name == "ann"
    time.sleep(0.3)
    with pytest.raises(NotAuthorized, match="session expired"):
        short.authorize(_Request("ann", "token-3"))


def test_a_token_issued_before_a_password_change_is_refused_at_its_first_use(db):
    """A login token obtained before the change and never used was accepted
    after the user's next login (sessions were tied to a login at their first use)."""
    from prefloop.annotate_app.errors import NotAuthorized

    db.annotators.add("ann", "annotator", hash_password("correct horse"))
    svc = AppServices(db, AppConfig())
    assert authenticate(db, "ann", "correct horse", sessions=svc.sessions)
    svc.sessions.issued("token-early", "ann")                  # Gradio issues it, nobody uses it
    db.annotators.update("ann", password_hash=hash_password("new battery staple"))
    assert authenticate(db, "ann", "new battery staple", sessions=svc.sessions)
    svc.sessions.issued("token-late", "ann")
    with pytest.raises(NotAuthorized, match="password was changed"):
        svc.authorize(_Request("ann", "token-early"))
    assert svc.authorize(_Request("ann", "token-late")).name == "ann"
