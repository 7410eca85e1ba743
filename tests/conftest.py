"""Shared fixtures: a real DuckDB store file per test, the shared real data, the CLI runner.

Opt-in groups (as datasette does with ``--playwright``): ``--browser`` (Debian chromium through
Playwright), ``--soak`` (several processes for a minute) and ``--slow`` (real SmolLM2 training,
the quick demo, accelerate with two processes). ``.ci/run`` opts in to all three. Tests that
read ``../shared/data`` skip with a reason when it is absent.

The ``model`` marker names the tests that load a model or start a server (every test that
uses the ``tiny_model`` fixture gets it here; modules that load models otherwise declare
``pytestmark = pytest.mark.model``). ``pytest -m "not model"`` is the fast tier: the store,
the app's services and the CLI, in under a minute.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prefloop import store

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("PREFLOOP_SHARED_DATA", ROOT.parent / "shared" / "data"))
HH = SHARED_DATA / "hh-rlhf" / "harmless-base-test-dev.jsonl.gz"
ALPACA = SHARED_DATA / "alpaca-eval" / "alpaca-7b_vs_text-davinci-003_gpt4-judge.json"
MT_BENCH = SHARED_DATA / "mt-bench" / "question.jsonl"
CAI = SHARED_DATA / "constitutions" / "anthropic-cai-principles.json"
OPT_IN = {"browser": "--browser", "soak": "--soak", "slow": "--slow"}


def pytest_addoption(parser):
    for marker, option in OPT_IN.items():
        parser.addoption(option, action="store_true", default=False,
                         help=f"also run the tests marked {marker}")


def pytest_ignore_collect(collection_path, config):
    """In the fast tier (``-m "not model"``), a module marked ``model`` as a whole is not even
    imported: importing the training stack (torch, transformers, TRL) at collection costs
    seconds that the tier exists to save."""
    if config.getoption("markexpr", "") != "not model" or collection_path.suffix != ".py":
        return None
    head = collection_path.read_text(encoding="utf-8").splitlines()
    marked = any(line.startswith("pytestmark") and "mark.model" in line for line in head)
    return True if marked else None


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tiny_model" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.model)
        for marker, option in OPT_IN.items():
            if marker in item.keywords and not config.getoption(option):
                item.add_marker(pytest.mark.skip(reason=f"opt-in: pass {option} to run it"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or ``$PREFLOOP_SHARED_DATA``); the test is skipped without it."""
    if not HH.exists():
        pytest.skip(f"the shared real data is not at {SHARED_DATA} (clone ../shared beside the "
                    "repository or set PREFLOOP_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """Path of a fresh store file (created)."""
    path = tmp_path / "prefloop.duckdb"
    store.Store.init(path).close()
    return path


@pytest.fixture
def db(store_path: Path) -> store.Store:
    """A fresh store."""
    return store.Store(store_path)


@pytest.fixture
def cli():
    """Run ``prefloop`` in-process: ``cli("--db", path, "stats")`` -> click Result."""
    from prefloop.cli import app

    runner = CliRunner()

    def run(*args: str | os.PathLike):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return run


def make_pairs(db: store.Store, n_prompts: int = 3, k: int = 2, dataset: str = "toy"):
    """Add ``n_prompts`` prompts with ``k`` responses each; returns ``[(prompt_id, [rids])]``."""
    out = []
    pids = db.prompts.add([[{"role": "user", "content": f"question {i}"}] for i in range(n_prompts)],
                          source="test", dataset=dataset)
    for pid in pids:
        rids = db.responses.add([store.ResponseIn(pid, f"answer {j} to {pid}") for j in range(k)])
        out.append((pid, rids))
    return out


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random Llama (2 layers, hidden 32) with a byte-level BPE tokenizer."""
    from prefloop.training.tiny import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def hh_store(store_path, shared_data) -> store.Store:
    """A store with the shared HH-RLHF pairs imported."""
    from prefloop.store.importer import import_file

    s = store.Store(store_path)
    import_file(s, HH, "hh")
    return s


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def served_tiny(tiny_model, tmp_path_factory):
    """The tiny model behind a real ``transformers serve`` on loopback: ``(base_url, model)``."""
    exe = shutil.which("transformers", path=os.path.dirname(sys.executable)) or shutil.which("transformers")
    assert exe, "the transformers CLI is not installed (pip install 'transformers[serving]')"
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path_factory.mktemp("hf"))}
    log = open(tmp_path_factory.mktemp("serve") / "serve.log", "w")
    proc = subprocess.Popen([exe, "serve", str(tiny_model), "--port", str(port), "--device", "cpu"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/health", timeout=1)
            break
        except OSError:
            assert proc.poll() is None, open(log.name).read()[-2000:]
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("transformers serve did not come up")
    yield url + "/v1", str(tiny_model)
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
