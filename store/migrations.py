"""Named schema migrations, applied in order, each in its own transaction.

A store records the migrations it has applied in ``schema_migrations``; opening an older store
applies the missing ones (the sqlite-utils ``migrations`` pattern). Never edit a migration that
has shipped: add a new one.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb

from .errors import SchemaError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "applied_migrations", "migrate"]


_INITIAL_TABLES = ("""
        CREATE TABLE prompts (
            id BIGINT PRIMARY KEY DEFAULT nextval('prompts_id_seq'),
            messages JSON NOT NULL,
            text_hash BLOB NOT NULL UNIQUE,
            source VARCHAR,
            dataset VARCHAR,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        )""",
                   """
        CREATE TABLE responses (
            id BIGINT PRIMARY KEY DEFAULT nextval('responses_id_seq'),
            prompt_id BIGINT NOT NULL,
            text VARCHAR NOT NULL,
            text_hash BLOB NOT NULL,
            origin VARCHAR NOT NULL CHECK (origin IN ('dataset', 'model', 'revision', 'human_edit')),
            model VARCHAR,
            run_id BIGINT,
            parent_response_id BIGINT,
            gen_params JSON,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            UNIQUE (prompt_id, text_hash)
        )""",
                   """
        CREATE TABLE annotators (
            id BIGINT PRIMARY KEY DEFAULT nextval('annotators_id_seq'),
            name VARCHAR NOT NULL UNIQUE,
            role VARCHAR NOT NULL CHECK (role IN ('annotator', 'admin')),
            password_hash VARCHAR,
            active BOOLEAN NOT NULL DEFAULT true,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        )""",
                   """
        CREATE TABLE tasks (
            id BIGINT PRIMARY KEY DEFAULT nextval('tasks_id_seq'),
            prompt_id BIGINT NOT NULL,
            response_ids BIGINT[] NOT NULL,
            overlap INTEGER NOT NULL DEFAULT 1 CHECK (overlap >= 1),
            priority INTEGER NOT NULL DEFAULT 0,
            reason VARCHAR,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        )""",
                   """
        CREATE TABLE assignments (
            task_id BIGINT NOT NULL,
            annotator_id BIGINT NOT NULL,
            leased_at TIMESTAMP NOT NULL,
            lease_expires_at TIMESTAMP NOT NULL,
            state VARCHAR NOT NULL CHECK (state IN ('leased', 'done', 'skipped', 'expired')),
            PRIMARY KEY (task_id, annotator_id)
        )""",
                   """
        CREATE TABLE comparisons (
            id BIGINT PRIMARY KEY DEFAULT nextval('comparisons_id_seq'),
            prompt_id BIGINT NOT NULL,
            task_id BIGINT,
            ranking BIGINT[][] NOT NULL,
            labeler_kind VARCHAR NOT NULL CHECK (labeler_kind IN ('human', 'ai')),
            labeler VARCHAR NOT NULL,
            rationale VARCHAR,
            flags VARCHAR[] NOT NULL DEFAULT [],
            confidence DOUBLE,
            duration_ms BIGINT,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        )""",
                   """
        CREATE TABLE judgments (
            id BIGINT PRIMARY KEY DEFAULT nextval('judgments_id_seq'),
            comparison_id BIGINT,
            cache_key VARCHAR NOT NULL UNIQUE,
            judge_model VARCHAR NOT NULL,
            template VARCHAR NOT NULL,
            principle VARCHAR,
            "order" VARCHAR CHECK ("order" IN ('AB', 'BA')),
            raw_output VARCHAR,
            verdict VARCHAR,
            probability DOUBLE,
            critique VARCHAR,
            revision_response_id BIGINT,
            tokens_in INTEGER,
            tokens_out INTEGER,
            latency_ms DOUBLE,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        )""",
                   """
        CREATE TABLE runs (
            id BIGINT PRIMARY KEY DEFAULT nextval('runs_id_seq'),
            kind VARCHAR NOT NULL,
            config JSON NOT NULL,
            export_id BIGINT,
            parent_run_id BIGINT,
            status VARCHAR NOT NULL,
            started_at TIMESTAMP,
            finished_at TIMESTAMP,
            checkpoint_path VARCHAR,
            summary JSON
        )""",
                   """
        CREATE TABLE run_metrics (
            run_id BIGINT NOT NULL,
            step BIGINT NOT NULL,
            name VARCHAR NOT NULL,
            value DOUBLE NOT NULL
        )""",
                   """
        CREATE TABLE exports (
            id BIGINT PRIMARY KEY DEFAULT nextval('exports_id_seq'),
            filters JSON NOT NULL,
            n_pairs BIGINT NOT NULL,
            path VARCHAR NOT NULL,
            sha256 VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        )""",)


def _0001_initial(con: duckdb.DuckDBPyConnection) -> None:
    """The tables of the data model (docs/architecture.md). Content hashes are 16-byte BLOBs (128 bits of sha256): unique
    indexes on them cost about half as much as on 64-char hex strings."""
    for seq in ("prompts", "responses", "annotators", "tasks", "comparisons", "judgments", "runs",
                "exports"):
        con.execute(f"CREATE SEQUENCE {seq}_id_seq START 1")
    for ddl in _INITIAL_TABLES:
        con.execute(ddl)


def _0002_provenance(con: duckdb.DuckDBPyConnection) -> None:
    """Idempotent imports, judge metadata, run liveness, gold items, incremental exports."""
    # Content key of an imported comparison: re-importing a file adds nothing. NULL for labels
    # from the app, whose uniqueness is (task_id, labeler).
    con.execute("ALTER TABLE comparisons ADD COLUMN dedup_key BLOB")
    con.execute("CREATE UNIQUE INDEX comparisons_dedup_key ON comparisons (dedup_key)")
    con.execute("ALTER TABLE judgments ADD COLUMN meta JSON")
    con.execute("ALTER TABLE runs ADD COLUMN pid INTEGER")
    con.execute("ALTER TABLE runs ADD COLUMN host VARCHAR")
    con.execute("ALTER TABLE tasks ADD COLUMN gold_ranking BIGINT[][]")
    # Set when a task has `overlap` done assignments: the lease query skips completed tasks
    # without joining assignments (the queue stays fast at 1M tasks).
    con.execute("ALTER TABLE tasks ADD COLUMN completed_at TIMESTAMP")
    con.execute("ALTER TABLE exports ADD COLUMN max_comparison_id BIGINT")


def _0003_ids_and_pipelines(con: duckdb.DuckDBPyConnection) -> None:
    """Labeling-app comparisons name their annotator by id (a rename keeps the labels), and a
    run's orchestrating pipeline gets its own column (``parent_run_id`` is model lineage only).

    Old stores: app submissions (a task, or a human edit) whose labeler is an annotator's name
    get that annotator's id and no stored name; runs whose parent was a ``demo``/``loop`` run
    move it to ``pipeline_run_id``; judge runs, which have no model lineage, lose their parent.
    """
    con.execute("ALTER TABLE comparisons ADD COLUMN annotator_id BIGINT")
    # DuckDB alters no column of a table with an index, and creates no index after updates in
    # the same transaction: drop, alter, re-create, then update.
    con.execute("DROP INDEX comparisons_dedup_key")
    con.execute("ALTER TABLE comparisons ALTER labeler DROP NOT NULL")
    con.execute("CREATE UNIQUE INDEX comparisons_dedup_key ON comparisons (dedup_key)")
    con.execute("""
        UPDATE comparisons c SET annotator_id = a.id, labeler = NULL FROM annotators a
        WHERE c.labeler_kind = 'human' AND a.name = c.labeler
          AND (c.task_id IS NOT NULL OR c.rationale = 'human edit')""")
    con.execute("ALTER TABLE runs ADD COLUMN pipeline_run_id BIGINT")
    con.execute("""
        UPDATE runs SET pipeline_run_id = parent_run_id, parent_run_id = NULL
        WHERE parent_run_id IN (SELECT id FROM runs WHERE kind IN ('demo', 'loop'))""")
    con.execute("UPDATE runs SET parent_run_id = NULL WHERE kind = 'judge'")


def _0004_evaluation(con: duckdb.DuckDBPyConnection) -> None:
    """Model-version evaluation: the responses each model version gave to each eval prompt
    (``samples``, reused across evaluations by ``gen_key``), and evaluation tasks and
    comparisons marked by their eval run so that training exports leave them out."""
    con.execute("""
        CREATE TABLE samples (
            run_id BIGINT NOT NULL,
            model VARCHAR NOT NULL,
            prompt_id BIGINT NOT NULL,
            response_id BIGINT NOT NULL,
            gen_key VARCHAR NOT NULL,
            n_tokens INTEGER,
            finished BOOLEAN,
            logprob DOUBLE,
            token_ids INTEGER[],
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (gen_key, prompt_id)
        )""")
    con.execute("ALTER TABLE tasks ADD COLUMN eval_run_id BIGINT")
    con.execute("ALTER TABLE comparisons ADD COLUMN eval_run_id BIGINT")


def _0005_review(con: duckdb.DuckDBPyConnection) -> None:
    """Review and qualification: a ``reviewer`` role between annotator and admin; an
    annotator's qualification and pause (``qualified_at``, ``paused_reason``,
    ``gold_since``: the start of the rolling gold window, reset when an admin re-enables);
    ``reviews``: a reviewer's decision on a task (``adjudicated``, with the comparison that
    records the final ranking, or ``ambiguous``: its pairs are left out of exports);
    ``comparisons.suggestion``: the AI suggestion a submission's task had, and whether it was
    shown before the choice (assisted labeling, to measure anchoring); ``ratings``: per-response
    ratings of named aspects (1..scale) that came with a comparison (UltraFeedback style)."""
    con.execute("ALTER TABLE comparisons ADD COLUMN suggestion JSON")
    con.execute("CREATE SEQUENCE ratings_id_seq START 1")
    con.execute("""
        CREATE TABLE ratings (
            id BIGINT PRIMARY KEY DEFAULT nextval('ratings_id_seq'),
            comparison_id BIGINT NOT NULL,
            prompt_id BIGINT NOT NULL,
            response_id BIGINT NOT NULL,
            aspect VARCHAR NOT NULL,
            value INTEGER NOT NULL,
            scale INTEGER NOT NULL CHECK (scale >= 2),
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            CHECK (value BETWEEN 1 AND scale)
        )""")
    # DuckDB cannot alter a CHECK constraint: rebuild the table (no foreign keys refer to it).
    con.execute("ALTER TABLE annotators RENAME TO annotators_0004")
    con.execute("""
        CREATE TABLE annotators (
            id BIGINT PRIMARY KEY DEFAULT nextval('annotators_id_seq'),
            name VARCHAR NOT NULL UNIQUE,
            role VARCHAR NOT NULL CHECK (role IN ('annotator', 'reviewer', 'admin')),
            password_hash VARCHAR,
            active BOOLEAN NOT NULL DEFAULT true,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            qualified_at TIMESTAMP,
            paused_reason VARCHAR,
            gold_since TIMESTAMP
        )""")
    con.execute("""INSERT INTO annotators (id, name, role, password_hash, active, created_at)
                   SELECT id, name, role, password_hash, active, created_at FROM annotators_0004""")
    con.execute("DROP TABLE annotators_0004")
    con.execute("CREATE SEQUENCE reviews_id_seq START 1")
    con.execute("""
        CREATE TABLE reviews (
            id BIGINT PRIMARY KEY DEFAULT nextval('reviews_id_seq'),
            task_id BIGINT NOT NULL UNIQUE,
            prompt_id BIGINT NOT NULL,
            response_ids BIGINT[] NOT NULL,
            reviewer_id BIGINT NOT NULL,
            decision VARCHAR NOT NULL CHECK (decision IN ('adjudicated', 'ambiguous')),
            comparison_id BIGINT,
            reasons VARCHAR[] NOT NULL DEFAULT [],
            note VARCHAR,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        )""")


def _0006_export_replacement(con: duckdb.DuckDBPyConnection) -> None:
    """``exports.replaced_by``: the export that overwrote an export's files (``--overwrite``)."""
    con.execute("ALTER TABLE exports ADD COLUMN replaced_by BIGINT")


def _0007_preference_strength(con: duckdb.DuckDBPyConnection) -> None:
    """``comparisons.strength``: how much better the preferred response of a two-response
    comparison is (:data:`prefloop.store.records.STRENGTHS`), or ``NULL``."""
    con.execute("ALTER TABLE comparisons ADD COLUMN strength VARCHAR")


def _0008_platform(con: duckdb.DuckDBPyConnection) -> None:
    """API keys (hashed), webhooks and their delivery outbox (:mod:`prefloop.store.platform`)."""
    con.execute("CREATE SEQUENCE api_keys_id_seq START 1")
    con.execute("""
        CREATE TABLE api_keys (
            id BIGINT PRIMARY KEY,
            annotator_id BIGINT NOT NULL,
            name VARCHAR NOT NULL DEFAULT '',
            prefix VARCHAR NOT NULL,
            key_hash VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            last_used_at TIMESTAMP,
            revoked_at TIMESTAMP
        )""")
    con.execute("CREATE SEQUENCE webhooks_id_seq START 1")
    con.execute("""
        CREATE TABLE webhooks (
            id BIGINT PRIMARY KEY DEFAULT nextval('webhooks_id_seq'),
            url VARCHAR NOT NULL,
            events VARCHAR[] NOT NULL,
            salt VARCHAR NOT NULL,
            active BOOLEAN NOT NULL DEFAULT true,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        )""")
    con.execute("CREATE SEQUENCE webhook_deliveries_id_seq START 1")
    con.execute("""
        CREATE TABLE webhook_deliveries (
            id BIGINT PRIMARY KEY DEFAULT nextval('webhook_deliveries_id_seq'),
            webhook_id BIGINT NOT NULL,
            event VARCHAR NOT NULL,
            message_id VARCHAR NOT NULL,
            payload VARCHAR NOT NULL,
            status VARCHAR NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'delivered', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            last_status INTEGER,
            last_error VARCHAR,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            next_attempt_at TIMESTAMP,
            delivered_at TIMESTAMP
        )""")


def _0009_prompt_sets(con: duckdb.DuckDBPyConnection) -> None:
    """``prompt_sets``: which recorded prompt set (``train``, ``dev`` or ``test``) a prompt
    belongs to, at most one, and its ``subset`` (e.g. ``harmless``, ``benign``), reported apart
    by evaluations (:mod:`prefloop.store.prompt_sets`)."""
    con.execute("""
        CREATE TABLE prompt_sets (
            prompt_id BIGINT PRIMARY KEY,
            split VARCHAR NOT NULL CHECK (split IN ('train', 'dev', 'test')),
            subset VARCHAR,
            rule VARCHAR,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        )""")


def _0010_conversations(con: duckdb.DuckDBPyConnection) -> None:
    """Live conversations ranked turn by turn: each turn's prompt, candidates and comparison
    (:mod:`prefloop.store.conversations`)."""
    con.execute("CREATE SEQUENCE conversations_id_seq START 1")
    con.execute("""
        CREATE TABLE conversations (
            id BIGINT PRIMARY KEY DEFAULT nextval('conversations_id_seq'),
            annotator_id BIGINT NOT NULL,
            model VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            updated_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        )""")
    con.execute("""
        CREATE TABLE conversation_turns (
            conversation_id BIGINT NOT NULL,
            turn INTEGER NOT NULL,
            prompt_id BIGINT NOT NULL,
            response_ids BIGINT[] NOT NULL,
            comparison_id BIGINT,
            chosen_response_id BIGINT,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (conversation_id, turn)
        )""")


MIGRATIONS: list[tuple[str, Callable[[duckdb.DuckDBPyConnection], None]]] = [
    ("0001_initial", _0001_initial),
    ("0002_provenance", _0002_provenance),
    ("0003_ids_and_pipelines", _0003_ids_and_pipelines),
    ("0004_evaluation", _0004_evaluation),
    ("0005_review", _0005_review),
    ("0006_export_replacement", _0006_export_replacement),
    ("0007_preference_strength", _0007_preference_strength),
    ("0008_platform", _0008_platform),
    ("0009_prompt_sets", _0009_prompt_sets),
    ("0010_conversations", _0010_conversations),
]
SCHEMA_VERSION = len(MIGRATIONS)


def applied_migrations(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Names of the migrations recorded in the attached store, oldest first."""
    con.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
                       name VARCHAR PRIMARY KEY, applied_at TIMESTAMP DEFAULT current_timestamp)""")
    return [r[0] for r in con.execute("SELECT name FROM schema_migrations ORDER BY name").fetchall()]


def migrate(con: duckdb.DuckDBPyConnection, upto: str | None = None) -> list[str]:
    """Apply the missing migrations (up to and including ``upto``) to the attached store.

    ``con`` must be outside a transaction; each migration runs in its own.

    Returns:
        the names applied now (empty when the store is current).

    Raises:
        SchemaError: the store records a migration this version does not know (it was written
            by a newer prefloop).
    """
    done = applied_migrations(con)
    known = [name for name, _ in MIGRATIONS]
    unknown = [n for n in done if n not in known]
    if unknown:
        raise SchemaError(
            f"the store has migrations {unknown} that this prefloop does not know; "
            f"it was written by a newer version: upgrade prefloop to open it")
    applied = []
    for name, fn in MIGRATIONS:
        if name in done:
            continue
        con.execute("BEGIN")
        try:
            fn(con)
            con.execute("INSERT INTO schema_migrations (name) VALUES (?)", [name])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        applied.append(name)
        if name == upto:
            break
    return applied
