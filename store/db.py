"""The DuckDB store: one file, many processes, short transactions.

DuckDB lets one process at a time open a database file for writing. The store therefore never
keeps the file open: each unit of work (:meth:`Store.atomic`) attaches the file to a
process-wide in-memory DuckDB instance, runs one transaction, and detaches, which releases the
file lock. If another process holds the lock, the attach is retried with jittered exponential
backoff until ``lock_timeout`` seconds have passed, then :class:`StoreBusyError` is raised: a
write is either committed or reported, never lost. Attaching costs about 1 ms (opening a new
DuckDB instance costs about 15 ms), so per-unit-of-work attachment is cheap.

Within a process, units of work are serialized by a lock per store file, so threads (Gradio
handlers, asyncio executors) share one instance safely.
"""

from __future__ import annotations

import atexit
import json
import os
import random
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

from . import migrations
from .locking import Turnstile
from .errors import (LeaseError, NotFoundError, StoreBusyError, StoreNotFoundError,
                     ValidationError)
from .records import (LABELER_KINDS, ROLES, RUN_KINDS, RUN_STATUSES, Annotator, Assignment,
                      Comparison, Export, Judgment, JudgmentIn, LeasedTask, Message, Prompt,
                      Ranking, Response, ResponseIn, Run, RunMetric, Task, TaskIn, prompt_hash,
                      text_hash, utcnow)

__all__ = ["Store", "default_db_path", "DEFAULT_LEASE_SECONDS", "DEFAULT_LOCK_TIMEOUT"]

DEFAULT_LEASE_SECONDS = 20 * 60
DEFAULT_LOCK_TIMEOUT = float(os.environ.get("PREFLOOP_LOCK_TIMEOUT", "60"))
ALIAS = "pf"
#: Checkpoint after a unit of work once the write-ahead log is larger than this. Every attach
#: replays the WAL (about 50 us per logged transaction: 28 ms for a 100 KiB WAL of small
#: writes) and a checkpoint costs 5-10 ms, so checkpointing often wins. Measured with small
#: writes on 2 cores (units of work per second, 1 process / 4 processes together): 0 B
#: (checkpoint every write) 138 / 129, 4 KiB 208 / 154, 16 KiB 151 / 131, 64 KiB 82 / 78.
WAL_CHECKPOINT_BYTES = int(os.environ.get("PREFLOOP_WAL_CHECKPOINT_BYTES", 4 * 1024))


def default_db_path() -> Path:
    """``$PREFLOOP_DB`` if set, else ``./prefloop.duckdb``."""
    return Path(os.environ.get("PREFLOOP_DB") or "prefloop.duckdb")


def _is_lock_conflict(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.IOException) and (
        "Could not set lock" in str(exc) or "Conflicting lock" in str(exc))


@dataclass
class _Instance:
    """The process-wide in-memory DuckDB instance that attaches one store file."""

    pid: int
    con: duckdb.DuckDBPyConnection
    lock: threading.RLock = field(default_factory=threading.RLock)
    depth: int = 0
    migrated: bool = False
    frontier: list[int] | None = None  # queue head cache, see Store._next_task_id
    frontier_complete: bool = False
    frontier_max_id: int = 0
    frontier_at: float = 0.0
    turnstile: Turnstile | None = None


_instances: dict[str, _Instance] = {}
_instances_lock = threading.Lock()


@atexit.register
def _close_instances() -> None:
    """Close the in-memory instances at exit (DuckDB's bindings warn about open ones)."""
    with _instances_lock:
        for inst in _instances.values():
            if inst.pid == os.getpid():
                try:
                    inst.con.close()
                except duckdb.Error:
                    pass
        _instances.clear()


def _instance_for(path: str) -> _Instance:
    with _instances_lock:
        inst = _instances.get(path)
        if inst is None or inst.pid != os.getpid():  # a forked child must not reuse the parent's
            con = duckdb.connect(":memory:", config={"threads": 2})
            con.execute("SET TimeZone = 'UTC'")
            # Detaching does not checkpoint; Store._attached checkpoints once the WAL passes
            # WAL_CHECKPOINT_BYTES.
            con.execute("SET checkpoint_on_detach = 'DISABLED'")
            inst = _Instance(pid=os.getpid(), con=con, turnstile=Turnstile(path + ".lock"))
            _instances[path] = inst
        return inst


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _loads(value: Any) -> Any:
    return None if value is None else json.loads(value)


def validate_messages(messages: Any, *, field_name: str = "messages",
                      end_with_user: bool = True) -> list[Message]:
    """Check chat messages: a non-empty list of ``{"role", "content"}`` with a known role.

    Returns the messages reduced to ``role`` and ``content``.

    Raises:
        ValidationError: names the offending element, e.g. ``messages[2].role``.
    """
    if not isinstance(messages, list) or not messages:
        raise ValidationError(f"{field_name}: expected a non-empty list of messages, "
                              f"found {type(messages).__name__}")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise ValidationError(f"{field_name}[{i}]: expected an object with role and content, "
                                  f"found {type(m).__name__}")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise ValidationError(f"{field_name}[{i}].role: expected one of {ROLES}, found {role!r}")
        if not isinstance(content, str):
            raise ValidationError(f"{field_name}[{i}].content: expected a string, "
                                  f"found {type(content).__name__}")
        out.append({"role": role, "content": content})
    if end_with_user and out[-1]["role"] != "user":
        raise ValidationError(f"{field_name}: a prompt must end with a user turn, "
                              f"found a final {out[-1]['role']!r} turn")
    return out


def validate_ranking(ranking: Any) -> Ranking:
    """Check a ranking: a non-empty list of non-empty tie groups of distinct int ids.

    Raises:
        ValidationError: empty groups, repeated ids or non-integer ids.
    """
    if not isinstance(ranking, list) or not ranking:
        raise ValidationError("ranking: expected a non-empty list of tie groups, best first")
    seen: set[int] = set()
    out = []
    for i, group in enumerate(ranking):
        if not isinstance(group, list) or not group:
            raise ValidationError(f"ranking[{i}]: expected a non-empty list of response ids")
        for rid in group:
            if not isinstance(rid, int) or isinstance(rid, bool):
                raise ValidationError(f"ranking[{i}]: response id {rid!r} is not an integer")
            if rid in seen:
                raise ValidationError(f"ranking: response {rid} appears twice")
            seen.add(rid)
        out.append(sorted(group))
    return out


class Store:
    """A preference store in one DuckDB file.

    Args:
        path: the DuckDB file (``default_db_path()`` if ``None``).
        create: create the file if it does not exist (``prefloop init``); otherwise a missing
            file raises :class:`StoreNotFoundError`.
        lock_timeout: seconds to wait for another process's write lock before
            :class:`StoreBusyError` (``$PREFLOOP_LOCK_TIMEOUT``, default 60).

    Opening applies missing migrations (an older store is upgraded in place).

    Example:
        >>> import tempfile, os
        >>> s = Store(os.path.join(tempfile.mkdtemp(), "p.duckdb"), create=True)
        >>> pid = s.add_prompts([[{"role": "user", "content": "Hi"}]], source="doc")[0]
        >>> s.get_prompt(pid).messages
        [{'role': 'user', 'content': 'Hi'}]
    """

    def __init__(self, path: str | os.PathLike | None = None, *, create: bool = False,
                 lock_timeout: float = DEFAULT_LOCK_TIMEOUT):
        self.path = Path(path) if path is not None else default_db_path()
        self.lock_timeout = lock_timeout
        if not self.path.exists():
            if not create:
                raise StoreNotFoundError(
                    f"no store at {self.path}: create one with `prefloop init` "
                    f"(or pass --db / set PREFLOOP_DB to an existing store)")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._key = str(self.path.resolve())
        self._upgrade()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # ------------------------------------------------------------------ connections
    def _busy(self, what: str) -> StoreBusyError:
        return StoreBusyError(
            f"store {self.path} stayed locked by another process for {self.lock_timeout:.0f} s "
            f"({what}); wait for that process to finish or raise PREFLOOP_LOCK_TIMEOUT")

    @contextmanager
    def _attached(self, inst: _Instance) -> Iterator[None]:
        """Hold the turnstile and the attached store file for one unit of work."""
        start = time.monotonic()
        if not inst.turnstile.acquire(self.lock_timeout):
            raise self._busy(f"{inst.turnstile.path} is held")
        try:
            try:
                for attempt in Retrying(  # a process outside prefloop may hold DuckDB's lock
                        retry=retry_if_exception(_is_lock_conflict),
                        wait=wait_random_exponential(multiplier=0.002, max=0.1),
                        stop=stop_after_delay(max(0.0, self.lock_timeout - (time.monotonic() - start))),
                        reraise=True):
                    with attempt:
                        inst.con.execute(f"ATTACH '{self._key}' AS {ALIAS}")
            except duckdb.IOException as exc:
                if _is_lock_conflict(exc):
                    raise self._busy(str(exc).splitlines()[0]) from exc
                raise
            try:
                inst.con.execute(f"USE {ALIAS}")
                yield
            finally:
                wal = self._key + ".wal"
                if os.path.exists(wal) and os.path.getsize(wal) > WAL_CHECKPOINT_BYTES:
                    inst.con.execute(f"CHECKPOINT {ALIAS}")
                inst.con.execute("USE memory")
                inst.con.execute(f"DETACH {ALIAS}")
        finally:
            inst.turnstile.release()

    def _upgrade(self) -> None:
        inst = _instance_for(self._key)
        if inst.migrated:
            return
        with inst.lock, self._attached(inst):
            migrations.migrate(inst.con)
            inst.migrated = True

    @contextmanager
    def atomic(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One unit of work: attach, ``BEGIN``, yield the connection, ``COMMIT``, detach.

        Any exception rolls back and propagates. Nested calls in the same thread join the outer
        transaction. Unqualified table names refer to the store; ``memory.<table>`` refers to
        the process's in-memory scratch database (used to stage imports).

        Raises:
            StoreBusyError: another process held the lock longer than ``lock_timeout``.
        """
        inst = _instance_for(self._key)
        with inst.lock:
            if inst.depth:
                inst.depth += 1
                try:
                    yield inst.con
                finally:
                    inst.depth -= 1
                return
            with self._attached(inst):
                inst.con.execute("BEGIN")
                inst.depth = 1
                try:
                    yield inst.con
                except BaseException:
                    inst.con.execute("ROLLBACK")
                    raise
                else:
                    inst.con.execute("COMMIT")
                finally:
                    inst.depth = 0

    @contextmanager
    def scratch(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor on this process's in-memory instance, without the store attached.

        Used to stage imports and post-process exports while other processes write the store.
        Tables created here live in ``memory`` until dropped.
        """
        inst = _instance_for(self._key)
        with inst.lock:
            cur = inst.con.cursor()
            try:
                cur.execute("USE memory")
                yield cur
            finally:
                cur.close()

    def schema_version(self) -> list[str]:
        """Names of the applied migrations, oldest first."""
        with self.atomic() as con:
            return migrations.applied_migrations(con)

    @classmethod
    def init(cls, path: str | os.PathLike | None = None) -> "Store":
        """Create (or open and upgrade) the store at ``path``."""
        return cls(path, create=True)

    # ------------------------------------------------------------------ prompts & responses
    def add_prompts(self, prompts: Iterable[Sequence[Message]], *, source: str | None = None,
                    dataset: str | None = None) -> list[int]:
        """Add prompts, deduplicated by :func:`prompt_hash`; returns their ids in input order
        (an existing prompt's id when it was already there).

        Raises:
            ValidationError: a prompt is not a list of messages ending with a user turn.
        """
        rows = []
        for i, msgs in enumerate(prompts):
            try:
                clean = validate_messages(list(msgs))
            except ValidationError as exc:
                raise ValidationError(f"prompt {i}: {exc}") from None
            rows.append((prompt_hash(clean), json.dumps(clean, ensure_ascii=False)))
        if not rows:
            return []
        batch = pa.table({"idx": list(range(len(rows))), "messages": [m for _, m in rows],
                          "text_hash": pa.array([h for h, _ in rows], pa.binary())})
        with self.atomic() as con, _registered(con, "prompt_batch", batch):
            con.execute(
                "INSERT INTO prompts (messages, text_hash, source, dataset) "
                "SELECT messages, text_hash, ?, ? FROM prompt_batch "
                "WHERE text_hash NOT IN (SELECT text_hash FROM prompts) "
                "QUALIFY row_number() OVER (PARTITION BY text_hash ORDER BY idx) = 1 ORDER BY idx",
                [source, dataset])
            ids = dict(con.execute(
                "SELECT text_hash, id FROM prompts WHERE text_hash IN (SELECT unnest(?))",
                [[h for h, _ in rows]]).fetchall())
        return [ids[h] for h, _ in rows]

    def get_prompt(self, prompt_id: int) -> Prompt:
        """The prompt with this id. Raises :class:`NotFoundError`."""
        prompts = self.get_prompts([prompt_id])
        if not prompts:
            raise NotFoundError(f"no prompt with id {prompt_id}")
        return prompts[0]

    def get_prompts(self, prompt_ids: Sequence[int]) -> list[Prompt]:
        """Prompts with these ids, in the given order (missing ids are left out)."""
        if not prompt_ids:
            return []
        with self.atomic() as con:
            rows = con.execute(
                "SELECT id, messages, text_hash, source, dataset, created_at FROM prompts "
                f"WHERE id IN ({_id_list(prompt_ids)})").fetchall()
        by_id = {r[0]: Prompt(r[0], json.loads(r[1]), r[2], r[3], r[4], r[5]) for r in rows}
        return [by_id[i] for i in prompt_ids if i in by_id]

    def list_prompts(self, *, dataset: str | None = None, limit: int | None = None,
                     offset: int = 0) -> list[Prompt]:
        """Prompts by id, optionally of one dataset."""
        with self.atomic() as con:
            rows = con.execute(
                "SELECT id, messages, text_hash, source, dataset, created_at FROM prompts "
                "WHERE (?::VARCHAR IS NULL OR dataset = ?) ORDER BY id LIMIT ? OFFSET ?",
                [dataset, dataset, limit if limit is not None else 2**62, offset]).fetchall()
        return [Prompt(r[0], json.loads(r[1]), r[2], r[3], r[4], r[5]) for r in rows]

    def add_responses(self, responses: Iterable[ResponseIn]) -> list[int]:
        """Add responses, deduplicated on ``(prompt_id, text_hash)``; returns ids in input order.

        Raises:
            ValidationError: empty text, unknown origin, or a prompt id that does not exist.
        """
        items = list(responses)
        if not items:
            return []
        rows = []
        for r in items:
            if not isinstance(r.text, str) or not r.text.strip():
                raise ValidationError(f"response to prompt {r.prompt_id}: text is empty")
            if r.origin not in ("dataset", "model", "revision", "human_edit"):
                raise ValidationError(f"response origin {r.origin!r} is not one of "
                                      "dataset, model, revision, human_edit")
            rows.append((r.prompt_id, r.text, text_hash(r.text), r.origin, r.model, r.run_id,
                         r.parent_response_id, _json(r.gen_params)))
        with self.atomic() as con:
            missing = con.execute(
                "SELECT list(x) FROM (SELECT unnest(?) x) WHERE x NOT IN (SELECT id FROM prompts)",
                [sorted({r[0] for r in rows})]).fetchone()[0]
            if missing:
                raise ValidationError(f"responses name prompts that do not exist: {missing[:10]}")
            names = ("prompt_id", "text", "text_hash", "origin", "model", "run_id",
                     "parent_response_id", "gen_params")
            batch = pa.table({"idx": list(range(len(rows))),
                              **{n: [r[i] for r in rows] for i, n in enumerate(names)}},
                             schema=pa.schema([("idx", pa.int64()), ("prompt_id", pa.int64()),
                                               ("text", pa.string()), ("text_hash", pa.binary()),
                                               ("origin", pa.string()), ("model", pa.string()),
                                               ("run_id", pa.int64()), ("parent_response_id", pa.int64()),
                                               ("gen_params", pa.string())]))
            with _registered(con, "response_batch", batch):
                con.execute(
                    "INSERT INTO responses (prompt_id, text, text_hash, origin, model, run_id, "
                    "parent_response_id, gen_params) "
                    "SELECT b.prompt_id, b.text, b.text_hash, b.origin, b.model, b.run_id, "
                    "b.parent_response_id, b.gen_params FROM response_batch b "
                    "LEFT JOIN responses r ON r.prompt_id = b.prompt_id AND r.text_hash = b.text_hash "
                    "WHERE r.id IS NULL "
                    "QUALIFY row_number() OVER (PARTITION BY b.prompt_id, b.text_hash ORDER BY b.idx) = 1 "
                    "ORDER BY b.idx")
            found = con.execute(
                "SELECT prompt_id, text_hash, id FROM responses r JOIN "
                "(SELECT unnest(?) AS p, unnest(?) AS h) k ON r.prompt_id = k.p AND r.text_hash = k.h",
                [[r[0] for r in rows], [r[2] for r in rows]]).fetchall()
        ids = {(p, h): i for p, h, i in found}
        return [ids[(r[0], r[2])] for r in rows]

    _RESPONSE_COLS = ("id, prompt_id, text, text_hash, origin, model, run_id, parent_response_id, "
                      "gen_params, created_at")

    @staticmethod
    def _response(r: tuple) -> Response:
        return Response(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], _loads(r[8]), r[9])

    def get_responses(self, response_ids: Sequence[int]) -> list[Response]:
        """Responses with these ids, in the given order (missing ids are left out)."""
        if not response_ids:
            return []
        with self.atomic() as con:
            rows = con.execute(f"SELECT {self._RESPONSE_COLS} FROM responses "
                               f"WHERE id IN ({_id_list(response_ids)})").fetchall()
        by_id = {r[0]: self._response(r) for r in rows}
        return [by_id[i] for i in response_ids if i in by_id]

    def responses_for_prompts(self, prompt_ids: Sequence[int]) -> dict[int, list[Response]]:
        """All responses of each prompt, by id; prompts without responses map to ``[]``."""
        with self.atomic() as con:
            rows = con.execute(f"SELECT {self._RESPONSE_COLS} FROM responses "
                               "WHERE prompt_id IN (SELECT unnest(?)) ORDER BY id",
                               [list(prompt_ids)]).fetchall()
        out: dict[int, list[Response]] = {p: [] for p in prompt_ids}
        for r in rows:
            out[r[1]].append(self._response(r))
        return out

    # ------------------------------------------------------------------ annotators
    _ANNOTATOR_COLS = "id, name, role, active, password_hash, created_at"

    def add_annotator(self, name: str, role: str = "annotator",
                      password_hash: str | None = None) -> Annotator:
        """Create an annotator. ``password_hash`` must already be hashed (argon2/bcrypt).

        Raises:
            ValidationError: bad role, empty name, or the name is taken.
        """
        if role not in ("annotator", "admin"):
            raise ValidationError(f"role {role!r} is not one of annotator, admin")
        if not name or not name.strip():
            raise ValidationError("annotator name is empty")
        with self.atomic() as con:
            if con.execute("SELECT 1 FROM annotators WHERE name = ?", [name]).fetchone():
                raise ValidationError(f"annotator {name!r} already exists")
            row = con.execute(
                f"INSERT INTO annotators (name, role, password_hash) VALUES (?, ?, ?) "
                f"RETURNING {self._ANNOTATOR_COLS}", [name, role, password_hash]).fetchone()
        return Annotator(*row)

    def get_annotator(self, name: str) -> Annotator:
        """The annotator with this name. Raises :class:`NotFoundError`."""
        with self.atomic() as con:
            row = con.execute(f"SELECT {self._ANNOTATOR_COLS} FROM annotators WHERE name = ?",
                              [name]).fetchone()
        if row is None:
            raise NotFoundError(f"no annotator named {name!r} (see `prefloop users list`)")
        return Annotator(*row)

    def list_annotators(self) -> list[Annotator]:
        """All annotators by id."""
        with self.atomic() as con:
            rows = con.execute(f"SELECT {self._ANNOTATOR_COLS} FROM annotators ORDER BY id").fetchall()
        return [Annotator(*r) for r in rows]

    def update_annotator(self, name: str, *, active: bool | None = None,
                         password_hash: str | None = None, role: str | None = None) -> Annotator:
        """Change an annotator's active flag, password hash or role."""
        with self.atomic() as con:
            a = self.get_annotator(name)
            con.execute("UPDATE annotators SET active = ?, password_hash = ?, role = ? WHERE id = ?",
                        [a.active if active is None else active,
                         a.password_hash if password_hash is None else password_hash,
                         a.role if role is None else role, a.id])
            return self.get_annotator(name)

    # ------------------------------------------------------------------ tasks & leases
    _TASK_COLS = "id, prompt_id, response_ids, overlap, priority, reason, created_at, gold_ranking"

    def create_tasks(self, tasks: Iterable[TaskIn]) -> list[int]:
        """Create labeling tasks in one set-based transaction; returns ids in input order.

        A task identical to an existing one (same prompt, same set of responses, both gold or
        both not) is not created again; its existing id is returned.

        Raises:
            ValidationError: fewer than 2 responses, a response not of the task's prompt,
                overlap < 1, or a gold ranking that does not cover the responses.
        """
        rows: dict[str, list] = {k: [] for k in ("idx", "prompt_id", "response_ids", "overlap",
                                                  "priority", "reason", "gold_ranking")}
        for i, t in enumerate(tasks):
            rids = list(dict.fromkeys(t.response_ids))
            if len(rids) < 2:
                raise ValidationError(f"task for prompt {t.prompt_id}: needs at least 2 distinct "
                                      f"responses, found {len(rids)}")
            if t.overlap < 1:
                raise ValidationError(f"task for prompt {t.prompt_id}: overlap must be >= 1")
            gold = None
            if t.gold_ranking is not None:
                gold = validate_ranking(t.gold_ranking)
                if sorted(x for g in gold for x in g) != sorted(rids):
                    raise ValidationError(f"task for prompt {t.prompt_id}: the gold ranking must "
                                          f"rank exactly the task's responses {rids}")
            for k, v in zip(rows, (i, t.prompt_id, rids, t.overlap, t.priority, t.reason, gold)):
                rows[k].append(v)
        if not rows["idx"]:
            return []
        batch = pa.table({**rows, "response_ids": pa.array(rows["response_ids"], pa.list_(pa.int64())),
                          "gold_ranking": pa.array(rows["gold_ranking"],
                                                   pa.list_(pa.list_(pa.int64())))})
        with self.atomic() as con, _registered(con, "task_batch", batch):
            bad = con.execute("""
                SELECT b.prompt_id, r.id FROM (SELECT prompt_id, unnest(response_ids) rid
                                               FROM task_batch) b
                LEFT JOIN responses r ON r.id = b.rid
                WHERE r.id IS NULL OR r.prompt_id <> b.prompt_id LIMIT 5""").fetchall()
            if bad:
                raise ValidationError(
                    f"task for prompt {bad[0][0]}: responses do not exist or belong to another "
                    f"prompt ({len(bad)}+ found, e.g. response ids {[b[1] for b in bad]})")
            con.execute("""
                INSERT INTO tasks (prompt_id, response_ids, overlap, priority, reason, gold_ranking)
                SELECT prompt_id, response_ids, overlap, priority, reason, gold_ranking
                FROM task_batch b
                WHERE NOT EXISTS (SELECT 1 FROM tasks t WHERE t.prompt_id = b.prompt_id
                                  AND list_sort(t.response_ids) = list_sort(b.response_ids)
                                  AND (t.gold_ranking IS NULL) = (b.gold_ranking IS NULL))
                QUALIFY row_number() OVER (PARTITION BY prompt_id, list_sort(response_ids),
                                           gold_ranking IS NULL ORDER BY idx) = 1
                ORDER BY idx""")
            ids = con.execute("""
                SELECT b.idx, min(t.id) FROM task_batch b JOIN tasks t
                  ON t.prompt_id = b.prompt_id AND list_sort(t.response_ids) = list_sort(b.response_ids)
                 AND (t.gold_ranking IS NULL) = (b.gold_ranking IS NULL)
                GROUP BY b.idx ORDER BY b.idx""").fetchall()
        return [i for _, i in ids]

    def create_tasks_for_prompts(self, *, dataset: str | None = None,
                                 prompt_ids: Sequence[int] | None = None, k: int | None = None,
                                 overlap: int = 1, priority: int = 0, limit: int | None = None,
                                 reason: str = "queued by admin") -> list[int]:
        """A task per prompt (of ``dataset`` or ``prompt_ids``) with two or more responses,
        ranking all its responses (or its first ``k`` by id); prompts already queued with the
        same responses are skipped. Returns the task ids (new and existing)."""
        with self.atomic() as con:
            rows = con.execute(f"""
                SELECT r.prompt_id, list(r.id ORDER BY r.id) FROM responses r
                JOIN prompts p ON p.id = r.prompt_id
                WHERE ($dataset::VARCHAR IS NULL OR p.dataset = $dataset)
                  {'' if prompt_ids is None else f'AND r.prompt_id IN ({_id_list(prompt_ids) or "NULL"})'}
                GROUP BY r.prompt_id HAVING count(*) >= 2 ORDER BY r.prompt_id LIMIT $limit""",
                {"dataset": dataset, "limit": limit if limit is not None else 2**62}).fetchall()
            return self.create_tasks([TaskIn(pid, rids[:k] if k else rids, overlap=overlap,
                                             priority=priority, reason=reason) for pid, rids in rows])

    def create_gold_tasks(self, *, dataset: str | None = None, limit: int | None = None,
                          labeler_kind: str = "human") -> list[int]:
        """Gold tasks from imported comparisons (no task of their own) whose answer is known:
        the task ranks the comparison's responses and carries its ranking as ``gold_ranking``.
        Gold tasks are served at the app's gold rate, outside the normal queue."""
        with self.atomic() as con:
            rows = con.execute("""
                SELECT c.prompt_id, c.ranking FROM comparisons c JOIN prompts p ON p.id = c.prompt_id
                WHERE c.task_id IS NULL AND c.labeler_kind = $kind AND len(c.ranking) >= 2
                  AND ($dataset::VARCHAR IS NULL OR p.dataset = $dataset)
                ORDER BY c.id LIMIT $limit""",
                {"kind": labeler_kind, "dataset": dataset,
                 "limit": limit if limit is not None else 2**62}).fetchall()
            return self.create_tasks([
                TaskIn(pid, [r for g in ranking for r in g], overlap=1, reason="gold",
                       gold_ranking=ranking) for pid, ranking in rows])

    def get_task(self, task_id: int) -> Task:
        """The task with this id. Raises :class:`NotFoundError`."""
        with self.atomic() as con:
            row = con.execute(f"SELECT {self._TASK_COLS} FROM tasks WHERE id = ?",
                              [task_id]).fetchone()
        if row is None:
            raise NotFoundError(f"no task with id {task_id}")
        return Task(*row)

    def list_tasks(self, *, limit: int = 100, open_only: bool = False,
                   now: datetime | None = None) -> list[tuple[Task, int, int]]:
        """The queue, highest priority first: ``(task, n_done, n_leased)`` per task.

        ``open_only`` keeps tasks with fewer done + active leases than their overlap.
        """
        now = now or utcnow()
        with self.atomic() as con:
            rows = con.execute(f"""
                SELECT {', '.join('t.' + c for c in self._TASK_COLS.split(', '))},
                       coalesce(a.n_done, 0), coalesce(a.n_leased, 0)
                FROM tasks t LEFT JOIN (
                    SELECT task_id, count(*) FILTER (state = 'done') n_done,
                           count(*) FILTER (state = 'leased' AND lease_expires_at > ?) n_leased
                    FROM assignments GROUP BY task_id) a ON a.task_id = t.id
                WHERE NOT ? OR coalesce(a.n_done, 0) + coalesce(a.n_leased, 0) < t.overlap
                ORDER BY t.priority DESC, t.id LIMIT ?""", [now, open_only, limit]).fetchall()
        return [(Task(*r[:8]), r[8], r[9]) for r in rows]

    def lease_next_task(self, annotator_id: int, *, lease_seconds: float = DEFAULT_LEASE_SECONDS,
                        now: datetime | None = None, gold_rate: float = 0.0,
                        rng: random.Random | None = None) -> LeasedTask | None:
        """Lease the next task for an annotator, or return ``None`` if the queue has none.

        Rules: an annotator's unexpired lease is returned again (a page reload shows the same
        task); otherwise the highest-priority task (then the oldest) is leased whose done +
        unexpired leases are fewer than its ``overlap`` and which this annotator has not done or
        skipped. An expired lease frees its slot for others; the lease lasts ``lease_seconds``.

        Gold tasks (with a ``gold_ranking``) are outside the normal queue: with probability
        ``gold_rate`` the annotator gets a gold task they have not seen yet instead.
        """
        now = now or utcnow()
        expires = now + timedelta(seconds=lease_seconds)
        with self.atomic() as con:
            row = con.execute(
                "SELECT task_id FROM assignments WHERE annotator_id = ? AND state = 'leased' "
                "AND lease_expires_at > ? ORDER BY leased_at LIMIT 1", [annotator_id, now]).fetchone()
            if row is None:
                if gold_rate > 0 and (rng or random).random() < gold_rate:
                    row = con.execute("""
                        SELECT id FROM tasks WHERE gold_ranking IS NOT NULL AND id NOT IN
                            (SELECT task_id FROM assignments WHERE annotator_id = ?)
                        ORDER BY hash(id + ?) LIMIT 1""", [annotator_id, annotator_id]).fetchone()
                if row is None:
                    row = self._next_task_id(con, annotator_id, now)
                if row is None:
                    return None
                con.execute("""
                    INSERT INTO assignments VALUES (?, ?, ?, ?, 'leased')
                    ON CONFLICT (task_id, annotator_id) DO UPDATE SET
                        leased_at = excluded.leased_at, lease_expires_at = excluded.lease_expires_at,
                        state = 'leased'""", [row[0], annotator_id, now, expires])
            return self._leased_task(con, row[0], annotator_id)

    _FRONTIER = 512
    _CANDIDATES = 64
    _FRONTIER_TTL = 30.0

    def _next_task_id(self, con: duckdb.DuckDBPyConnection, annotator_id: int,
                      now: datetime) -> tuple[int] | None:
        """The queue head for this annotator, or ``None``.

        Ordering all open tasks costs a scan of ``tasks`` (about 15 ms at 1M tasks), so the
        process keeps a frontier: the first 512 open task ids in queue order, refreshed when
        tasks were added (``max(id)`` changed), after 30 s, or when it has nothing left for this
        annotator. Candidates are checked against ``tasks`` and ``assignments`` inside the
        transaction, so the cache can at most delay a reordering, never lease a full task.
        """
        inst = _instance_for(self._key)
        max_id = con.execute("SELECT coalesce(max(id), 0) FROM tasks").fetchone()[0]
        refreshed = False
        if (inst.frontier is None or inst.frontier_max_id != max_id
                or time.monotonic() - inst.frontier_at > self._FRONTIER_TTL):
            self._refresh_frontier(con, inst, max_id)
            refreshed = True
        while True:
            found = self._scan_frontier(con, inst, annotator_id, now)
            if found is not None or inst.frontier_complete:
                return found
            if refreshed:
                break
            self._refresh_frontier(con, inst, max_id)
            refreshed = True
        # More than 512 open tasks and none of the first 512 is for this annotator.
        return con.execute("""
            WITH busy AS (SELECT task_id,
                                 count(*) FILTER (state = 'done' OR (state = 'leased'
                                                  AND lease_expires_at > ?)) AS n,
                                 bool_or(annotator_id = ? AND state IN ('done', 'skipped')) AS mine
                          FROM assignments GROUP BY task_id)
            SELECT t.id FROM tasks t LEFT JOIN busy b ON b.task_id = t.id
            WHERE t.completed_at IS NULL AND t.gold_ranking IS NULL AND coalesce(b.n, 0) < t.overlap
              AND NOT coalesce(b.mine, false)
            ORDER BY t.priority DESC, t.id LIMIT 1""", [now, annotator_id]).fetchone()

    def _refresh_frontier(self, con: duckdb.DuckDBPyConnection, inst: _Instance, max_id: int) -> None:
        inst.frontier = [r[0] for r in con.execute(
            "SELECT id FROM tasks WHERE completed_at IS NULL AND gold_ranking IS NULL "
            "ORDER BY priority DESC, id LIMIT ?",
            [self._FRONTIER]).fetchall()]
        inst.frontier_complete = len(inst.frontier) < self._FRONTIER
        inst.frontier_max_id, inst.frontier_at = max_id, time.monotonic()

    def _scan_frontier(self, con: duckdb.DuckDBPyConnection, inst: _Instance, annotator_id: int,
                       now: datetime) -> tuple[int] | None:
        """First frontier task with a free slot that this annotator has not done or skipped;
        completed tasks met on the way leave the frontier."""
        pos = 0
        while pos < len(inst.frontier):
            cand = inst.frontier[pos:pos + self._CANDIDATES]
            ids = ", ".join(str(int(i)) for i in cand)  # integers: inlined so DuckDB prunes
            rows = con.execute(f"""
                SELECT t.id, t.completed_at IS NOT NULL,
                       coalesce(b.n, 0) < t.overlap AND NOT coalesce(b.mine, false)
                FROM (SELECT id, overlap, completed_at FROM tasks WHERE id IN ({ids})) t
                LEFT JOIN (SELECT task_id,
                                  count(*) FILTER (state = 'done' OR (state = 'leased'
                                                   AND lease_expires_at > ?)) AS n,
                                  bool_or(annotator_id = ? AND state IN ('done', 'skipped')) AS mine
                           FROM assignments WHERE task_id IN ({ids}) GROUP BY task_id) b
                  ON b.task_id = t.id""", [now, annotator_id]).fetchall()
            status = {r[0]: (r[1], r[2]) for r in rows}
            gone = {i for i in cand if status.get(i, (True, False))[0]}
            for task_id in cand:
                if task_id not in gone and status[task_id][1]:
                    inst.frontier = [i for i in inst.frontier if i not in gone]
                    return (task_id,)
            inst.frontier = [i for i in inst.frontier if i not in gone]
            pos += len(cand) - len(gone)
        return None

    def _leased_task(self, con: duckdb.DuckDBPyConnection, task_id: int,
                     annotator_id: int) -> LeasedTask:
        task = Task(*con.execute(f"SELECT {self._TASK_COLS} FROM tasks WHERE id = ?",
                                 [task_id]).fetchone())
        prompt = self.get_prompt(task.prompt_id)
        responses = self.get_responses(task.response_ids)
        a = con.execute("SELECT task_id, annotator_id, leased_at, lease_expires_at, state "
                        "FROM assignments WHERE task_id = ? AND annotator_id = ?",
                        [task_id, annotator_id]).fetchone()
        return LeasedTask(task, prompt, responses, Assignment(*a))

    def skip_task(self, task_id: int, annotator_id: int) -> None:
        """Give a leased task back: it will not be offered to this annotator again.

        Raises:
            LeaseError: the annotator holds no lease on the task.
        """
        with self.atomic() as con:
            n = con.execute("UPDATE assignments SET state = 'skipped' WHERE task_id = ? AND "
                            "annotator_id = ? AND state = 'leased'",
                            [task_id, annotator_id]).fetchone()[0]
            if n != 1:
                raise LeaseError(f"annotator {annotator_id} holds no lease on task {task_id}")

    def assignments_for(self, *, annotator_id: int | None = None,
                        task_id: int | None = None) -> list[Assignment]:
        """Assignments of one annotator and/or one task."""
        with self.atomic() as con:
            rows = con.execute(
                "SELECT task_id, annotator_id, leased_at, lease_expires_at, state FROM assignments "
                "WHERE (?::BIGINT IS NULL OR annotator_id = ?) AND (?::BIGINT IS NULL OR task_id = ?) "
                "ORDER BY task_id, annotator_id",
                [annotator_id, annotator_id, task_id, task_id]).fetchall()
        return [Assignment(*r) for r in rows]

    # ------------------------------------------------------------------ comparisons
    _COMPARISON_COLS = ("id, prompt_id, ranking, labeler_kind, labeler, task_id, rationale, "
                        "flags, confidence, duration_ms, created_at")

    def record_comparison(self, prompt_id: int, ranking: Ranking, *, labeler_kind: str,
                          labeler: str, task_id: int | None = None, annotator_id: int | None = None,
                          rationale: str | None = None, flags: Sequence[str] = (),
                          confidence: float | None = None, duration_ms: int | None = None,
                          dedup_key: str | None = None, now: datetime | None = None) -> int:
        """Record a ranking of responses of one prompt; returns the comparison id.

        With ``task_id`` (a submission from the labeling app) the ranking must cover exactly the
        task's responses and ``annotator_id`` must hold a lease on it (an expired lease is still
        accepted while the task has a free slot); the assignment becomes ``done`` in the same
        transaction. A second submission of the same task by the same annotator raises.
        With ``dedup_key`` an existing comparison with that key is returned instead of a new one.

        Raises:
            ValidationError: bad ranking, responses not of this prompt, bad labeler kind or
                confidence outside [0, 1].
            LeaseError: no lease, or the task is already full.
        """
        ranking = validate_ranking(ranking)
        if labeler_kind not in LABELER_KINDS:
            raise ValidationError(f"labeler_kind {labeler_kind!r} is not one of {LABELER_KINDS}")
        if confidence is not None and not 0.0 <= confidence <= 1.0:
            raise ValidationError(f"confidence {confidence} is outside [0, 1]")
        rids = [r for g in ranking for r in g]
        now = now or utcnow()
        with self.atomic() as con:
            key = None if dedup_key is None else text_hash(f"api:{dedup_key}")
            if key is not None:
                row = con.execute("SELECT id FROM comparisons WHERE dedup_key = ?", [key]).fetchone()
                if row:
                    return row[0]
            owners = dict(con.execute("SELECT id, prompt_id FROM responses WHERE id IN "
                                      "(SELECT unnest(?))", [rids]).fetchall())
            bad = [r for r in rids if owners.get(r) != prompt_id]
            if bad:
                raise ValidationError(f"ranking: responses {bad} do not exist or are not "
                                      f"responses to prompt {prompt_id}")
            if task_id is not None:
                self._complete_assignment(con, task_id, annotator_id, prompt_id, rids, now)
            return con.execute(
                "INSERT INTO comparisons (prompt_id, task_id, ranking, labeler_kind, labeler, "
                "rationale, flags, confidence, duration_ms, dedup_key, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                [prompt_id, task_id, ranking, labeler_kind, labeler, rationale, list(flags),
                 confidence, duration_ms, key, now]).fetchone()[0]

    @staticmethod
    def _complete_assignment(con, task_id, annotator_id, prompt_id, rids, now) -> None:
        task = con.execute("SELECT prompt_id, response_ids, overlap, gold_ranking IS NOT NULL "
                           "FROM tasks WHERE id = ?", [task_id]).fetchone()
        if task is None:
            raise NotFoundError(f"no task with id {task_id}")
        if task[0] != prompt_id or sorted(task[1]) != sorted(rids):
            raise ValidationError(f"task {task_id}: the ranking must rank exactly responses "
                                  f"{sorted(task[1])} of prompt {task[0]}")
        if annotator_id is None:
            raise LeaseError(f"task {task_id}: a submission needs the annotator's id")
        a = con.execute("SELECT state FROM assignments WHERE task_id = ? AND annotator_id = ?",
                        [task_id, annotator_id]).fetchone()
        if a is None or a[0] not in ("leased", "expired"):
            state = "no lease" if a is None else f"state {a[0]!r}"
            raise LeaseError(f"task {task_id}: annotator {annotator_id} has {state}; "
                             "lease the task before submitting")
        gold = task[3]
        if not gold:  # gold tasks are answered by everyone: no overlap limit
            others = con.execute(
                "SELECT count(*) FROM assignments WHERE task_id = ? AND annotator_id <> ? AND "
                "(state = 'done' OR (state = 'leased' AND lease_expires_at > ?))",
                [task_id, annotator_id, now]).fetchone()[0]
            if others >= task[2]:
                raise LeaseError(f"task {task_id}: your lease expired and the task was completed "
                                 "by others; take the next task")
        con.execute("UPDATE assignments SET state = 'done' WHERE task_id = ? AND annotator_id = ?",
                    [task_id, annotator_id])
        if not gold:
            done = con.execute("SELECT count(*) FROM assignments WHERE task_id = ? AND state = 'done'",
                               [task_id]).fetchone()[0]
            if done >= task[2]:
                con.execute("UPDATE tasks SET completed_at = ? WHERE id = ?", [now, task_id])

    def undo_comparison(self, comparison_id: int, annotator_id: int, *,
                        window_seconds: float = 60.0, lease_seconds: float = DEFAULT_LEASE_SECONDS,
                        now: datetime | None = None) -> int:
        """Withdraw an annotator's own task submission made less than ``window_seconds`` ago.

        The comparison is deleted and the task is leased to the annotator again.
        Returns the task id.

        Raises:
            LeaseError: not a task submission of this annotator, or past the undo window.
        """
        now = now or utcnow()
        with self.atomic() as con:
            row = con.execute(
                "SELECT c.task_id, c.created_at FROM comparisons c JOIN assignments a ON "
                "a.task_id = c.task_id AND a.annotator_id = ? AND a.state = 'done' "
                "JOIN annotators n ON n.id = a.annotator_id AND n.name = c.labeler "
                "WHERE c.id = ? AND c.labeler_kind = 'human'", [annotator_id, comparison_id]).fetchone()
            if row is None:
                raise LeaseError(f"comparison {comparison_id} is not a task submission of "
                                 f"annotator {annotator_id}")
            if (now - row[1]).total_seconds() > window_seconds:
                raise LeaseError(f"comparison {comparison_id} is older than the "
                                 f"{window_seconds:.0f} s undo window")
            con.execute("DELETE FROM comparisons WHERE id = ?", [comparison_id])
            con.execute("UPDATE tasks SET completed_at = NULL WHERE id = ?", [row[0]])
            _instance_for(self._key).frontier = None  # the task is open again
            con.execute("UPDATE assignments SET state = 'leased', leased_at = ?, "
                        "lease_expires_at = ? WHERE task_id = ? AND annotator_id = ?",
                        [now, now + timedelta(seconds=lease_seconds), row[0], annotator_id])
            return row[0]

    def _comparison(self, r: tuple) -> Comparison:
        return Comparison(id=r[0], prompt_id=r[1], ranking=r[2], labeler_kind=r[3], labeler=r[4],
                          task_id=r[5], rationale=r[6], flags=list(r[7] or []), confidence=r[8],
                          duration_ms=r[9], created_at=r[10])

    def get_comparison(self, comparison_id: int) -> Comparison:
        """The comparison with this id. Raises :class:`NotFoundError`."""
        with self.atomic() as con:
            row = con.execute(f"SELECT {self._COMPARISON_COLS} FROM comparisons WHERE id = ?",
                              [comparison_id]).fetchone()
        if row is None:
            raise NotFoundError(f"no comparison with id {comparison_id}")
        return self._comparison(row)

    def list_comparisons(self, *, labeler_kind: str | None = None, labeler: str | None = None,
                         prompt_ids: Sequence[int] | None = None,
                         task_id: int | None = None) -> list[Comparison]:
        """Comparisons matching every given filter, by id."""
        with self.atomic() as con:
            rows = con.execute(
                f"SELECT {self._COMPARISON_COLS} FROM comparisons WHERE "
                "(?::VARCHAR IS NULL OR labeler_kind = ?) AND (?::VARCHAR IS NULL OR labeler = ?) "
                "AND (?::BIGINT[] IS NULL OR prompt_id IN (SELECT unnest(?::BIGINT[]))) "
                "AND (?::BIGINT IS NULL OR task_id = ?) ORDER BY id",
                [labeler_kind, labeler_kind, labeler, labeler,
                 None if prompt_ids is None else list(prompt_ids),
                 None if prompt_ids is None else list(prompt_ids), task_id, task_id]).fetchall()
        return [self._comparison(r) for r in rows]

    # ------------------------------------------------------------------ judgments
    _JUDGMENT_COLS = ('id, cache_key, judge_model, template, raw_output, verdict, comparison_id, '
                      'principle, "order", probability, critique, revision_response_id, '
                      'tokens_in, tokens_out, latency_ms, meta, created_at')

    def record_judgments(self, judgments: Iterable[JudgmentIn]) -> list[int]:
        """Record judge calls; a ``cache_key`` already present keeps its first row.

        Returns the ids (new or existing) in input order.
        """
        items = list(judgments)
        if not items:
            return []
        cols = ("cache_key", "judge_model", "template", "raw_output", "verdict", "comparison_id",
                "principle", "order", "probability", "critique", "revision_response_id",
                "tokens_in", "tokens_out", "latency_ms")
        batch = pa.table({**{c: [getattr(j, c) for j in items] for c in cols},
                          "meta": [_json(j.meta) for j in items]},
                         schema=pa.schema([
                             ("cache_key", pa.string()), ("judge_model", pa.string()),
                             ("template", pa.string()), ("raw_output", pa.string()),
                             ("verdict", pa.string()), ("comparison_id", pa.int64()),
                             ("principle", pa.string()), ("order", pa.string()),
                             ("probability", pa.float64()), ("critique", pa.string()),
                             ("revision_response_id", pa.int64()), ("tokens_in", pa.int64()),
                             ("tokens_out", pa.int64()), ("latency_ms", pa.float64()),
                             ("meta", pa.string())]))
        with self.atomic() as con, _registered(con, "judgment_batch", batch):
            con.execute(
                'INSERT INTO judgments (cache_key, judge_model, template, raw_output, verdict, '
                'comparison_id, principle, "order", probability, critique, revision_response_id, '
                'tokens_in, tokens_out, latency_ms, meta) SELECT * FROM judgment_batch '
                'WHERE cache_key NOT IN (SELECT cache_key FROM judgments) '
                'QUALIFY row_number() OVER (PARTITION BY cache_key) = 1')
            ids = dict(con.execute("SELECT cache_key, id FROM judgments WHERE cache_key IN "
                                   "(SELECT unnest(?))", [[j.cache_key for j in items]]).fetchall())
        return [ids[j.cache_key] for j in items]

    def _judgment(self, r: tuple) -> Judgment:
        return Judgment(*r[:15], _loads(r[15]), r[16])

    def judgments_by_cache_key(self, cache_keys: Sequence[str]) -> dict[str, Judgment]:
        """The recorded judgments among these cache keys, keyed by cache key."""
        with self.atomic() as con:
            rows = con.execute(f"SELECT {self._JUDGMENT_COLS} FROM judgments WHERE cache_key IN "
                               "(SELECT unnest(?))", [list(cache_keys)]).fetchall()
        return {r[1]: self._judgment(r) for r in rows}

    def link_revision(self, judgment_id: int, response_id: int) -> None:
        """Record the response a revision judgment produced."""
        with self.atomic() as con:
            con.execute("UPDATE judgments SET revision_response_id = ? WHERE id = ?",
                        [response_id, judgment_id])

    def candidate_pairs(self, source: str = "human", *, dataset: str | None = None,
                        limit: int | None = None) -> list[tuple[int, int, int]]:
        """Response pairs to judge, as ``(prompt_id, a_id, b_id)`` with ``a_id < b_id``,
        deduplicated, in a stable order (prompt id, then response ids).

        ``source``: ``human`` / ``ai`` (pairs ranked by such labelers: every two responses
        in different groups of a comparison), ``tasks`` (every two responses of a labeling
        task) or ``generated`` (every two model-sampled responses of a prompt).

        Raises:
            ValidationError: unknown source.
        """
        if source in ("human", "ai"):
            sql = """
                WITH g AS (SELECT c.id, c.prompt_id, unnest(c.ranking) grp,
                                  generate_subscripts(c.ranking, 1) pos
                           FROM comparisons c WHERE c.labeler_kind = $source),
                     i AS (SELECT id, prompt_id, pos, unnest(grp) rid FROM g)
                SELECT DISTINCT a.prompt_id, least(a.rid, b.rid) x, greatest(a.rid, b.rid) y
                FROM i a JOIN i b ON a.id = b.id AND a.pos < b.pos"""
        elif source == "tasks":
            sql = """
                WITH i AS (SELECT id, prompt_id, unnest(response_ids) rid FROM tasks)
                SELECT DISTINCT a.prompt_id, a.rid x, b.rid y
                FROM i a JOIN i b ON a.id = b.id AND a.rid < b.rid"""
        elif source == "generated":
            sql = """
                SELECT DISTINCT a.prompt_id, a.id x, b.id y FROM responses a
                JOIN responses b ON a.prompt_id = b.prompt_id AND a.id < b.id
                WHERE a.origin = 'model' AND b.origin = 'model'"""
        else:
            raise ValidationError(f"source {source!r}: expected human, ai, tasks or generated")
        with self.atomic() as con:
            rows = con.execute(f"""
                SELECT s.* FROM ({sql}) s JOIN prompts p ON p.id = s.prompt_id
                WHERE $dataset::VARCHAR IS NULL OR p.dataset = $dataset
                ORDER BY 1, 2, 3 LIMIT $limit""",
                {**({"source": source} if source in ("human", "ai") else {}), "dataset": dataset,
                 "limit": limit if limit is not None else 2**62}).fetchall()
        return [tuple(r) for r in rows]

    def link_judgments(self, judgment_ids: Sequence[int], comparison_id: int) -> None:
        """Point judgments at the comparison they produced."""
        with self.atomic() as con:
            con.execute("UPDATE judgments SET comparison_id = ? WHERE id IN (SELECT unnest(?))",
                        [comparison_id, list(judgment_ids)])

    def list_judgments(self, *, judge_model: str | None = None, template: str | None = None,
                       limit: int | None = None) -> list[Judgment]:
        """Judgments by id, optionally of one judge model and/or template."""
        with self.atomic() as con:
            rows = con.execute(
                f"SELECT {self._JUDGMENT_COLS} FROM judgments WHERE "
                "(?::VARCHAR IS NULL OR judge_model = ?) AND (?::VARCHAR IS NULL OR template = ?) "
                "ORDER BY id LIMIT ?",
                [judge_model, judge_model, template, template,
                 limit if limit is not None else 2**62]).fetchall()
        return [self._judgment(r) for r in rows]

    # ------------------------------------------------------------------ runs
    _RUN_COLS = ("id, kind, config, export_id, parent_run_id, status, started_at, finished_at, "
                 "checkpoint_path, summary, pid, host")

    def _run(self, r: tuple) -> Run:
        return Run(r[0], r[1], json.loads(r[2]), r[3], r[4], r[5], r[6], r[7], r[8],
                   _loads(r[9]), r[10], r[11])

    def create_run(self, kind: str, config: dict[str, Any], *, export_id: int | None = None,
                   parent_run_id: int | None = None, checkpoint_path: str | None = None) -> Run:
        """Start a run owned by this process (status ``running``, pid and host recorded)."""
        if kind not in RUN_KINDS:
            raise ValidationError(f"run kind {kind!r} is not one of {RUN_KINDS}")
        with self.atomic() as con:
            row = con.execute(
                f"INSERT INTO runs (kind, config, export_id, parent_run_id, status, started_at, "
                f"checkpoint_path, pid, host) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?) "
                f"RETURNING {self._RUN_COLS}",
                [kind, _json(config), export_id, parent_run_id, utcnow(), checkpoint_path,
                 os.getpid(), socket.gethostname()]).fetchone()
        return self._run(row)

    def update_run(self, run_id: int, *, status: str | None = None,
                   checkpoint_path: str | None = None, summary: dict[str, Any] | None = None,
                   claim: bool = False) -> Run:
        """Change a run's status, checkpoint or summary (merged into the existing summary).

        A final status (finished, failed, interrupted) sets ``finished_at``; ``claim`` makes the
        calling process the run's owner again (``--resume``).
        """
        if status is not None and status not in RUN_STATUSES:
            raise ValidationError(f"run status {status!r} is not one of {RUN_STATUSES}")
        with self.atomic() as con:
            run = self.get_run(run_id)
            merged = dict(run.summary or {})
            merged.update(summary or {})
            final = status in ("finished", "failed", "interrupted")
            con.execute(
                "UPDATE runs SET status = ?, checkpoint_path = ?, summary = ?, finished_at = ?, "
                "pid = ?, host = ? WHERE id = ?",
                [status or run.status, checkpoint_path or run.checkpoint_path,
                 _json(merged) if merged else None,
                 utcnow() if final else (None if status == "running" else run.finished_at),
                 os.getpid() if claim else run.pid, socket.gethostname() if claim else run.host,
                 run_id])
            return self.get_run(run_id)

    def get_run(self, run_id: int) -> Run:
        """The run with this id. Raises :class:`NotFoundError`."""
        with self.atomic() as con:
            row = con.execute(f"SELECT {self._RUN_COLS} FROM runs WHERE id = ?", [run_id]).fetchone()
        if row is None:
            raise NotFoundError(f"no run with id {run_id} (see `prefloop runs list`)")
        return self._run(row)

    def list_runs(self, *, kind: str | None = None, status: str | None = None) -> list[Run]:
        """Runs by id, optionally of one kind and/or status."""
        with self.atomic() as con:
            rows = con.execute(
                f"SELECT {self._RUN_COLS} FROM runs WHERE (?::VARCHAR IS NULL OR kind = ?) "
                "AND (?::VARCHAR IS NULL OR status = ?) ORDER BY id",
                [kind, kind, status, status]).fetchall()
        return [self._run(r) for r in rows]

    def reap_runs(self) -> list[int]:
        """Mark ``running`` runs of this host whose process is gone as ``interrupted``.

        A run killed with SIGKILL cannot update its own row; any later command that lists or
        resumes runs calls this. Returns the ids marked.
        """
        host = socket.gethostname()
        dead = []
        for run in self.list_runs(status="running"):
            if run.host == host and run.pid is not None and not _pid_alive(run.pid):
                dead.append(run.id)
        for run_id in dead:
            self.update_run(run_id, status="interrupted")
        return dead

    def add_run_metrics(self, run_id: int, metrics: Iterable[tuple[int, str, float]]) -> None:
        """Append ``(step, name, value)`` metrics of a run."""
        rows = [(int(s), str(n), float(v)) for s, n, v in metrics]
        if rows:
            batch = pa.table({"run_id": pa.array([run_id] * len(rows), pa.int64()),
                              "step": pa.array([r[0] for r in rows], pa.int64()),
                              "name": [r[1] for r in rows], "value": [r[2] for r in rows]})
            with self.atomic() as con, _registered(con, "metric_batch", batch):
                con.execute("INSERT INTO run_metrics SELECT * FROM metric_batch")

    def run_metrics(self, run_id: int, name: str | None = None) -> list[RunMetric]:
        """Metrics of a run ordered by step, optionally of one name."""
        with self.atomic() as con:
            rows = con.execute("SELECT run_id, step, name, value FROM run_metrics WHERE run_id = ? "
                               "AND (?::VARCHAR IS NULL OR name = ?) ORDER BY step, name",
                               [run_id, name, name]).fetchall()
        return [RunMetric(*r) for r in rows]

    # ------------------------------------------------------------------ exports
    _EXPORT_COLS = "id, filters, n_pairs, path, sha256, max_comparison_id, created_at"

    def record_export(self, filters: dict[str, Any], n_pairs: int, path: str, sha256: str,
                      max_comparison_id: int | None) -> Export:
        """Record a written pair export."""
        with self.atomic() as con:
            row = con.execute(
                f"INSERT INTO exports (filters, n_pairs, path, sha256, max_comparison_id) "
                f"VALUES (?, ?, ?, ?, ?) RETURNING {self._EXPORT_COLS}",
                [_json(filters), n_pairs, path, sha256, max_comparison_id]).fetchone()
        return Export(row[0], json.loads(row[1]), *row[2:])

    def get_export(self, export_id: int) -> Export:
        """The export with this id. Raises :class:`NotFoundError`."""
        with self.atomic() as con:
            row = con.execute(f"SELECT {self._EXPORT_COLS} FROM exports WHERE id = ?",
                              [export_id]).fetchone()
        if row is None:
            raise NotFoundError(f"no export with id {export_id}")
        return Export(row[0], json.loads(row[1]), *row[2:])

    def list_exports(self) -> list[Export]:
        """All exports by id."""
        with self.atomic() as con:
            rows = con.execute(f"SELECT {self._EXPORT_COLS} FROM exports ORDER BY id").fetchall()
        return [Export(r[0], json.loads(r[1]), *r[2:]) for r in rows]


@contextmanager
def _registered(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> Iterator[None]:
    """``table`` visible to SQL as ``name`` for the duration (bulk inserts: one statement
    instead of one per row, which ``executemany`` costs)."""
    con.execute("SELECT 1").fetchall()  # DuckDB refuses register() while a result is pending
    con.register(name, table)
    try:
        yield
    finally:
        con.unregister(name)


def _id_list(ids: Iterable[int]) -> str:
    """Ids inlined as an SQL list: DuckDB prunes row groups (and uses the primary key) for
    constant ``IN`` lists but not for ``IN (SELECT unnest(?))``. ``int()`` keeps it safe."""
    return ", ".join(str(int(i)) for i in ids)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped by its parent) still answers kill(0).
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
