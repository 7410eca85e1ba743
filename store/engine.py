"""The store's engine: one DuckDB file, many processes, short transactions.

DuckDB lets one process at a time open a database file for writing. Each unit of work
(:meth:`Engine.atomic`) runs as one transaction on a process-wide in-memory DuckDB instance to
which the file is attached. Before attaching, a process takes the turnstile
(:mod:`prefloop.store.locking`), an ``flock`` that wakes waiting processes in turn.

Attaching costs 10-30 ms on a large store, more than most units of work, so a process keeps the
file attached (and the turnstile held) after a unit of work while no other process waits: the
labeling app, the only user of the store most of the time, pays it once. A waiting process
announces itself on the turnstile's ``.want`` file; the holder detaches at the end of the
current unit of work, or within :data:`POLL_SECONDS` (20 ms) when idle, and always after
:data:`LINGER_SECONDS` without a unit of work (so tools outside prefloop, which do not announce
themselves, get their turn). ``PREFLOOP_LINGER_SECONDS=0`` detaches after every unit of work.

If another process holds DuckDB's lock (a process outside prefloop), the attach is retried with
jittered exponential backoff until ``lock_timeout`` seconds have passed, then
:class:`StoreBusyError` is raised: a write is either committed or reported, never lost.

Within a process, units of work are serialized by a lock per store file, so threads (Gradio
handlers, asyncio executors) share one instance safely.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_random_exponential,
)

from . import migrations
from .errors import SchemaError, StoreBusyError, StoreError, StoreNotFoundError
from .locking import Turnstile

__all__ = ["Engine", "DEFAULT_LOCK_TIMEOUT", "WAL_CHECKPOINT_BYTES", "fetch_records", "registered",
           "id_list", "to_json", "from_json", "sql_literal"]

DEFAULT_LOCK_TIMEOUT = float(os.environ.get("PREFLOOP_LOCK_TIMEOUT", "60"))
ALIAS = "pf"
#: Checkpoint after a unit of work once the write-ahead log is larger than this. Every attach
#: replays the WAL (about 50 us per logged transaction: 28 ms for a 100 KiB WAL of small
#: writes) and a checkpoint costs 5-10 ms, so checkpointing often wins. Measured with small
#: writes on 2 cores (units of work per second, 1 process / 4 processes together): 0 B
#: (checkpoint every write) 138 / 129, 4 KiB 208 / 154, 16 KiB 151 / 131, 64 KiB 82 / 78.
WAL_CHECKPOINT_BYTES = int(os.environ.get("PREFLOOP_WAL_CHECKPOINT_BYTES", 4 * 1024))
#: While the file stays attached, nobody replays the WAL, so checkpoints wait until it is
#: this large (or until the file is handed over: :meth:`_Instance.detach` checkpoints past
#: ``WAL_CHECKPOINT_BYTES``). At 1M tasks a checkpoint costs about 11 ms, two thirds of a
#: lease, when it came every few submissions.
WAL_LINGER_CHECKPOINT_BYTES = 1024 * 1024
#: Seconds the file stays attached after a unit of work while no other process waits.
LINGER_SECONDS = float(os.environ.get("PREFLOOP_LINGER_SECONDS", "2"))
#: Seconds between an idle holder's checks for waiting processes (a waiter's extra delay at
#: most). Each check is one non-blocking ``flock``; at 3 ms the checks took 6% of the
#: labeling app's CPU samples under load (py-spy), at 20 ms they are negligible.
POLL_SECONDS = 0.02

R = TypeVar("R")


def _wal_hint(path, exc: Exception) -> str:
    """What to do when the store's write-ahead log is the problem (a log from another file,
    or a damaged one): the store itself opens as of its last checkpoint without it."""
    if "WAL" not in str(exc):
        return ""
    wal = f"{path}.wal"
    return (f"; its write-ahead log {wal} belongs to another store or is damaged: move it aside "
            f"(mv {wal} {wal}.bad) to open the store as of its last checkpoint, losing the "
            "writes only that log held")


def _is_short_read(exc: BaseException) -> bool:
    """DuckDB's error for a page beyond the end of a (truncated) file."""
    return "Could not read enough bytes" in str(exc)


def _first_line(exc: BaseException) -> str:
    """The first line of a DuckDB error without its ``IO Error:`` style prefix."""
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return line.split(": ", 1)[1] if ": " in line and line.split(": ", 1)[0].endswith("Error") else line


def _is_lock_conflict(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.IOException) and (
        "Could not set lock" in str(exc) or "Conflicting lock" in str(exc))


def sql_literal(text: str) -> str:
    """``text`` as an SQL string literal (``'`` doubled), for the few statements that take no
    parameters (``ATTACH``)."""
    return "'" + text.replace("'", "''") + "'"


@dataclass
class _Instance:
    """The process-wide in-memory DuckDB instance that attaches one store file, and the
    per-process state kept beside it (caches that must not outlive a fork)."""

    pid: int
    key: str
    con: duckdb.DuckDBPyConnection
    turnstile: Turnstile
    lock: threading.RLock = field(default_factory=threading.RLock)
    depth: int = 0
    migrated: bool = False
    cache: dict[str, Any] = field(default_factory=dict)   # e.g. the task queue's frontier
    attached: bool = False        # the file is attached and the turnstile held
    last_used: float = 0.0        # time.monotonic() at the end of the last unit of work
    lingering: threading.Event = field(default_factory=threading.Event)
    watcher: threading.Thread | None = None
    closing: bool = False
    generation: int = 0           # attaches so far: while it holds, no other process wrote

    def checkpoint_past(self, limit: int) -> None:
        """``CHECKPOINT`` if the write-ahead log is larger than ``limit`` bytes."""
        wal = self.key + ".wal"
        if os.path.exists(wal) and os.path.getsize(wal) > limit:
            self.con.execute(f"CHECKPOINT {ALIAS}")

    def detach(self) -> None:
        """Give the file and the turnstile back (caller holds ``lock``), checkpointing first
        past ``WAL_CHECKPOINT_BYTES`` (the next process replays the WAL when it attaches)."""
        if not self.attached:
            return
        self.attached = False
        try:
            self.checkpoint_past(WAL_CHECKPOINT_BYTES)
            self.con.execute("USE memory")
            self.con.execute(f"DETACH {ALIAS}")
        finally:
            self.turnstile.release()

    def watch(self) -> None:
        """While the file stays attached between units of work, detach it as soon as another
        process waits or after ``LINGER_SECONDS`` idle (runs in a daemon thread)."""
        while not self.closing:
            self.lingering.wait()
            time.sleep(POLL_SECONDS)
            if not (self.turnstile.others_waiting()
                    or time.monotonic() - self.last_used > LINGER_SECONDS or self.closing):
                continue          # one flock probe per poll while nobody waits
            if not self.lock.acquire(blocking=False):
                continue          # a unit of work runs; it checks for waiters when it ends
            try:
                if self.attached and self.depth == 0:
                    self.detach()
                if not self.attached:
                    self.lingering.clear()
            finally:
                self.lock.release()


_instances: dict[str, _Instance] = {}
_instances_lock = threading.Lock()


@atexit.register
def _close_instances() -> None:
    """Close the in-memory instances at exit (DuckDB's bindings warn about open ones)."""
    with _instances_lock:
        for inst in _instances.values():
            if inst.pid == os.getpid():
                inst.closing = True
                inst.lingering.set()
                if inst.watcher is not None:
                    inst.watcher.join(timeout=1)
                with inst.lock:
                    try:
                        inst.detach()
                        inst.con.close()
                    except duckdb.Error:
                        pass  # at exit; the WAL is replayed by the next process
        _instances.clear()


def _instance_for(key: str) -> _Instance:
    with _instances_lock:
        inst = _instances.get(key)
        if inst is None or inst.pid != os.getpid():  # a forked child must not reuse the parent's
            con = duckdb.connect(":memory:", config={"threads": 2})
            con.execute("SET TimeZone = 'UTC'")
            # Detaching does not checkpoint; _Instance.detach checkpoints once the WAL passes
            # WAL_CHECKPOINT_BYTES.
            con.execute("SET checkpoint_on_detach = 'DISABLED'")
            inst = _Instance(pid=os.getpid(), key=key, con=con, turnstile=Turnstile(key + ".lock"))
            _instances[key] = inst
        return inst


class Engine:
    """Units of work on one store file.

    Args:
        path: the DuckDB file.
        create: create the file if it does not exist; otherwise a missing file raises
            :class:`StoreNotFoundError`.
        lock_timeout: seconds to wait for another process's lock before
            :class:`StoreBusyError`.

    Opening applies missing migrations (an older store is upgraded in place).
    """

    def __init__(self, path: str | os.PathLike, *, create: bool = False,
                 lock_timeout: float = DEFAULT_LOCK_TIMEOUT):
        self.path = Path(path)
        self.lock_timeout = lock_timeout
        if not self.path.exists():
            if not create:
                raise StoreNotFoundError(
                    f"no store at {self.path}: create one with `prefloop init` "
                    f"(or pass --db / set PREFLOOP_DB to an existing store)")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"{self.path}: cannot create the store's folder "
                                 f"({exc.strerror or exc})") from None
        elif self.path.is_dir():
            raise StoreError(f"{self.path} is a directory, not a store file: pass the store's "
                             "file (e.g. prefloop.duckdb)")
        elif not self.path.is_file():
            raise StoreError(f"{self.path} is not a regular file (a FIFO or a device): not a store")
        elif self.path.stat().st_size == 0:
            raise StoreError(f"{self.path} is an empty file, not a store: remove it, or point --db "
                             "at the store (prefloop init creates one)")
        self.key = str(self.path.resolve())
        self._upgrade()

    @property
    def generation(self) -> int:
        """How many times this process attached the file. Unchanged between two reads, it
        means no other process wrote in between (caches of store contents stay valid)."""
        return _instance_for(self.key).generation

    @property
    def cache(self) -> dict[str, Any]:
        """This process's cache for this store (cleared in a forked child)."""
        return _instance_for(self.key).cache

    def _busy(self, what: str) -> StoreBusyError:
        return StoreBusyError(
            f"store {self.path} stayed locked by another process for {self.lock_timeout:.0f} s "
            f"({what}); wait for that process to finish or raise PREFLOOP_LOCK_TIMEOUT")

    @contextmanager
    def _attached(self, inst: _Instance) -> Iterator[None]:
        """The store file attached (and the turnstile held) for one unit of work; afterwards
        it stays attached while no other process waits (see the module's docstring)."""
        if not inst.attached:
            self._attach(inst)
        try:
            yield
        finally:
            inst.last_used = time.monotonic()
            if LINGER_SECONDS <= 0 or inst.turnstile.others_waiting():
                inst.detach()
            else:
                inst.checkpoint_past(WAL_LINGER_CHECKPOINT_BYTES)
                if inst.watcher is None:
                    inst.watcher = threading.Thread(target=inst.watch, daemon=True,
                                                    name="prefloop-store-linger")
                    inst.watcher.start()
                inst.lingering.set()

    def _attach(self, inst: _Instance) -> None:
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
                        inst.con.execute(f"ATTACH {sql_literal(self.key)} AS {ALIAS}")
            except duckdb.IOException as exc:
                if _is_lock_conflict(exc):
                    raise self._busy(str(exc).splitlines()[0]) from exc
                raise StoreError(f"{self.path}: not a readable store ("
                                 f"{_first_line(exc)})" + _wal_hint(self.path, exc)) from None
            except duckdb.Error as exc:        # a truncated or damaged file, a text file
                raise StoreError(f"{self.path}: not a readable store ({_first_line(exc)})"
                                 + _wal_hint(self.path, exc)) from None
            inst.con.execute(f"USE {ALIAS}")
            inst.generation += 1
        except BaseException:
            try:
                inst.con.execute("USE memory")
                inst.con.execute(f"DETACH DATABASE IF EXISTS {ALIAS}")
            finally:
                inst.turnstile.release()
            raise
        inst.attached = True

    def release(self) -> None:
        """Detach the file now if this process keeps it attached between units of work (for
        a caller about to hand the store to another process and wait for it)."""
        inst = _instance_for(self.key)
        with inst.lock:
            if inst.depth == 0:
                inst.detach()

    def _upgrade(self) -> None:
        inst = _instance_for(self.key)
        if inst.migrated:
            return
        with inst.lock:
            damaged = None
            with self._attached(inst):
                try:
                    tables = {r[0] for r in inst.con.execute(
                        "SELECT table_name FROM duckdb_tables() WHERE database_name = ?",
                        [ALIAS]).fetchall()}
                    foreign = bool(tables) and "schema_migrations" not in tables
                    if not foreign:
                        migrations.migrate(inst.con)
                        inst.migrated = True
                except duckdb.IOException as exc:    # a truncated file attaches, then fails to read
                    damaged, foreign = _first_line(exc), False
            if damaged is not None:
                try:
                    inst.detach()
                except duckdb.Error:     # a damaged file may fail its checkpoint: the error below says why
                    inst.attached = False
                raise StoreError(f"{self.path}: not a readable store, truncated or damaged ({damaged})")
            if foreign:                    # let go of the file: it is not ours to keep open
                inst.detach()
                raise SchemaError(
                    f"{self.path} is a DuckDB file of another application ({len(tables)} tables, "
                    f"e.g. {sorted(tables)[0]!r}) and no prefloop store: refusing to add prefloop's "
                    "tables to it; create a store elsewhere with `prefloop init --db NEW.duckdb`")

    @contextmanager
    def atomic(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One unit of work: attach, ``BEGIN``, yield the connection, ``COMMIT``, detach.

        Any exception rolls back and propagates. Nested calls in the same thread join the outer
        transaction. Unqualified table names refer to the store; ``memory.<table>`` refers to
        the process's in-memory scratch database (used to stage imports).

        Raises:
            StoreBusyError: another process held the lock longer than ``lock_timeout``.
        """
        inst = _instance_for(self.key)
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
                except duckdb.IOException as exc:
                    if not _is_short_read(exc):
                        inst.con.execute("ROLLBACK")
                        raise
                    # a truncated file attaches and migrates, then fails on a page it lacks
                    inst.con.execute("ROLLBACK")
                    raise StoreError(f"{self.path}: not a readable store, truncated or damaged "
                                     f"({_first_line(exc)})") from None
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
        inst = _instance_for(self.key)
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


def fetch_records(con: duckdb.DuckDBPyConnection, cls: Callable[..., R], sql: str,
                  params: Any = None, **convert: Callable[[Any], Any]) -> list[R]:
    """Run ``sql`` and build one ``cls(**row)`` per row, by column name (never by position);
    ``convert[column]`` maps a non-NULL value first (e.g. ``messages=json.loads``)."""
    cur = con.execute(sql, params if params is not None else [])
    names = [d[0] for d in cur.description]
    out = []
    for row in cur.fetchall():
        values = dict(zip(names, row))
        for name, fn in convert.items():
            if values.get(name) is not None:
                values[name] = fn(values[name])
        out.append(cls(**values))
    return out


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> Iterator[None]:
    """``table`` visible to SQL as ``name`` for the duration (bulk inserts: one statement
    instead of one per row, which ``executemany`` costs)."""
    con.execute("SELECT 1").fetchall()  # DuckDB refuses register() while a result is pending
    con.register(name, table)
    try:
        yield
    finally:
        con.unregister(name)


def id_list(ids: Iterable[int]) -> str:
    """Ids inlined as an SQL list: DuckDB prunes row groups (and uses the primary key) for
    constant ``IN`` lists but not for ``IN (SELECT unnest(?))``. ``int()`` keeps it safe."""
    return ", ".join(str(int(i)) for i in ids) or "NULL"


def to_json(value: Any) -> str | None:
    """A JSON column's text (keys sorted, so equal values store equal text)."""
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def from_json(value: Any) -> Any:
    return None if value is None else json.loads(value)
