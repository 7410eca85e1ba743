"""The OpenAI backend against a real ``transformers serve`` subprocess on loopback."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from prefloop.judge.backends import OpenAIBackend
from prefloop.judge.batch import run_batch

from .conftest import make_pairs

pytestmark = pytest.mark.model


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served_tiny(tiny_model, tmp_path_factory):
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


def test_pairwise_and_critique_through_transformers_serve(db, served_tiny, monkeypatch):
    monkeypatch.setenv("PREFLOOP_JUDGE_API_KEY", "sk-test-secret")
    base_url, model = served_tiny
    for p, (a, b) in make_pairs(db, 2):
        db.comparisons.record(p, [[a], [b]], labeler_kind="human", labeler="h")
    backend = OpenAIBackend(model, base_url, timeout=60)
    assert "sk-test-secret" not in repr(backend)
    r = run_batch(db, "pairwise", backend, concurrency=2, progress=False)
    assert r.summary["calls"] == 4 and r.summary["failed"] == 0
    js = db.judgments.list(judge_model=model)
    assert len(js) == 4 and all(j.raw_output is not None and j.tokens_in > 0 for j in js)
    # the tiny random model rarely says A or B: whatever it says is kept, parsed or not
    assert r.summary["unparseable"] == sum(j.verdict is None for j in js)
    c = run_batch(db, "critique", backend, limit=1, progress=False, max_tokens=16)
    assert c.summary["calls"] >= 2 and c.summary["failed"] == 0, c.summary.get("errors")
    run = db.runs.get(c.run.id)
    assert "sk-test-secret" not in str(run.config) and run.status == "finished"
