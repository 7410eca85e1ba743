"""Store creation, migrations and the DB path resolution."""

from __future__ import annotations

import duckdb
import pytest

from prefloop import store
from prefloop.store import engine, migrations


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
    assert s.schema_version() == [name for name, _ in migrations.MIGRATIONS]
    assert s.schema_version()[:3] == ["0001_initial", "0002_provenance", "0003_ids_and_pipelines"]
    s.close()  # _columns opens the file directly
    assert "dedup_key" in _columns(path, "comparisons")
    with s.atomic() as c:
        assert c.execute("SELECT text_hash FROM prompts").fetchall() == [(b"h1",)]


def test_0003_names_app_labels_by_annotator_id_and_moves_pipeline_parents(tmp_path):
    path = tmp_path / "v2.duckdb"
    con = duckdb.connect(str(path))
    migrations.migrate(con, upto="0002_provenance")
    con.execute("""INSERT INTO prompts (id, messages, text_hash) VALUES (1, '[]', 'h')""")
    con.execute("INSERT INTO annotators (id, name, role) VALUES (7, 'ann', 'annotator')")
    con.execute("INSERT INTO tasks (id, prompt_id, response_ids) VALUES (3, 1, [1, 2])")
    con.execute("""INSERT INTO comparisons (id, prompt_id, task_id, ranking, labeler_kind, labeler)
                   VALUES (1, 1, 3, [[1], [2]], 'human', 'ann'),
                          (2, 1, NULL, [[1], [2]], 'human', 'ann'),
                          (3, 1, NULL, [[2], [1]], 'ai', 'judge')""")
    con.execute("""INSERT INTO runs (id, kind, config, parent_run_id, status) VALUES
                   (1, 'demo', '{}', NULL, 'finished'), (2, 'dpo', '{}', 1, 'finished'),
                   (3, 'ppo', '{}', 2, 'finished'), (4, 'judge', '{}', 3, 'finished')""")
    con.close()
    s = store.Store(path)
    by_id = {c.id: c for c in s.comparisons.list()}
    assert (by_id[1].annotator_id, by_id[1].labeler) == (7, "ann")      # a task submission
    assert (by_id[2].annotator_id, by_id[2].labeler) == (None, "ann")   # an imported label
    assert (by_id[3].annotator_id, by_id[3].labeler) == (None, "judge")
    s.annotators.update("ann", new_name="anna")                          # a rename keeps labels
    assert [c.id for c in s.comparisons.list(labeler="anna")] == [1]
    runs = {r.id: r for r in s.runs.list()}
    assert (runs[2].parent_run_id, runs[2].pipeline_run_id) == (None, 1)
    assert (runs[3].parent_run_id, runs[3].pipeline_run_id) == (2, None)
    assert runs[4].parent_run_id is None


def test_a_store_from_a_newer_version_is_refused(store_path):
    con = duckdb.connect(str(store_path))
    con.execute("INSERT INTO schema_migrations (name) VALUES ('9999_future')")
    con.close()
    engine._instances.clear()  # forget that this process already checked the file
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
