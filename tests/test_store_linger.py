"""The store stays attached between units of work while no other process waits, and gives the
file up as soon as one does (store/engine.py, store/locking.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import duckdb

from prefloop import store
from prefloop.store import engine

from .conftest import ROOT

WRITE = """
import sys
from prefloop import store
s = store.Store(sys.argv[1])
s.prompts.add([[{"role": "user", "content": "from the other process"}]], dataset="other")
"""


def _instance(s: store.Store) -> engine._Instance:
    return engine._instance_for(s.engine.key)


def test_an_idle_holder_hands_the_file_to_a_waiting_process(store_path, monkeypatch):
    monkeypatch.setattr(engine, "LINGER_SECONDS", 600.0)  # only a waiter can make it detach
    s = store.Store(store_path)
    s.prompts.add([[{"role": "user", "content": "mine"}]], dataset="mine")
    assert _instance(s).attached                                  # kept after the unit of work
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", WRITE, str(store_path)], check=True, timeout=120,
                   cwd=ROOT, env={**os.environ, "PREFLOOP_LOCK_TIMEOUT": "60"})
    waited = time.monotonic() - t0
    assert waited < 60, waited                                    # not the linger time
    assert [p.messages[0]["content"] for p in s.prompts.list(dataset="other")] == ["from the other process"]
    assert len(s.prompts.list(dataset="mine")) == 1


def test_a_busy_holder_detaches_when_its_unit_ends_if_someone_waits(store_path, monkeypatch):
    monkeypatch.setattr(engine, "LINGER_SECONDS", 600.0)
    s = store.Store(store_path)
    proc = None
    with s.atomic():
        s.prompts.add([[{"role": "user", "content": "first"}]], dataset="mine")
        proc = subprocess.Popen([sys.executable, "-c", WRITE, str(store_path)], cwd=ROOT)
        deadline = time.monotonic() + 60
        while not _instance(s).turnstile.others_waiting():   # the other process announces itself
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
    assert not _instance(s).attached                          # given up as the unit ended
    assert proc.wait(timeout=60) == 0
    assert len(s.prompts.list(dataset="other")) == 1


def test_after_the_linger_time_tools_outside_prefloop_can_open_the_file(store_path, monkeypatch):
    monkeypatch.setattr(engine, "LINGER_SECONDS", 0.05)
    s = store.Store(store_path)
    s.prompts.add([[{"role": "user", "content": "x"}]])
    deadline = time.monotonic() + 10
    while _instance(s).attached:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    con = duckdb.connect(str(store_path), read_only=True)       # DuckDB's own lock is free
    assert con.execute("SELECT count(*) FROM prompts").fetchone() == (1,)
    con.close()


def test_linger_zero_detaches_after_every_unit(store_path, monkeypatch):
    monkeypatch.setattr(engine, "LINGER_SECONDS", 0.0)
    s = store.Store(store_path)
    s.prompts.add([[{"role": "user", "content": "x"}]])
    assert not _instance(s).attached
    s.prompts.add([[{"role": "user", "content": "y"}]])
    s.close()
    assert len(s.prompts.list()) == 2
    s.close()
    assert not _instance(s).attached
