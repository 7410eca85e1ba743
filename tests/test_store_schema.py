"""Store creation, migrations and the DB path resolution."""

from __future__ import annotations

import duckdb
import pytest

import store
from store import migrations


def test_init_records_every_migration(store_path):
    s = store.Store(store_path)
    assert s.schema_version() == [name for name, _ in migrations.MIGRATIONS]


def test_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(store.StoreNotFoundError, match="prefloop init"):
        store.Store(tmp_path / "nope.duckdb")


def test_opening_an_older_store_upgrades_it_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    migrations.migrate(con, upto="0001_initial")
    con.execute("INSERT INTO prompts (messages, text_hash) VALUES ('[]', 'h1')")
    con.close()
    assert "dedup_key" not in _columns(path, "comparisons")

    s = store.Store(path)
    assert s.schema_version() == ["0001_initial", "0002_provenance"]
    assert "dedup_key" in _columns(path, "comparisons")
    with s.atomic() as c:
        assert c.execute("SELECT text_hash FROM prompts").fetchall() == [(b"h1",)]


def test_a_store_from_a_newer_version_is_refused(store_path):
    con = duckdb.connect(str(store_path))
    con.execute("INSERT INTO schema_migrations (name) VALUES ('9999_future')")
    con.close()
    store.db._instances.clear()  # forget that this process already checked the file
    with pytest.raises(store.SchemaError, match="newer"):
        store.Store(store_path)


def test_db_path_from_option_then_env_then_default(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PREFLOOP_DB", raising=False)
    assert store.default_db_path().name == "prefloop.duckdb"
    assert cli("init").exit_code == 0
    assert (tmp_path / "prefloop.duckdb").exists()

    monkeypatch.setenv("PREFLOOP_DB", str(tmp_path / "env.duckdb"))
    assert cli("init").exit_code == 0
    assert (tmp_path / "env.duckdb").exists()

    assert cli("--db", tmp_path / "opt.duckdb", "init").exit_code == 0
    assert (tmp_path / "opt.duckdb").exists()


def _columns(path, table):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}
    finally:
        con.close()
