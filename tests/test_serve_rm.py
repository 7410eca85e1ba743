"""``prefloop serve-rm``: real HTTP on loopback, OpenRLHF's remote reward contract, batching of
concurrent requests, 4xx on bad requests, and verl's compute_score through it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.model


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body, raw: bytes | None = None, content_type: str = "application/json"):
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory):
    """MiniLM with a (random) one-output reward head, saved as a reward-model checkpoint."""
    from prefloop.core.models import load_reward_model, minilm_path
    from prefloop.training.scoring import prepare_reward_tokenizer, write_reward_config

    out = tmp_path_factory.mktemp("rm") / "model"
    tok = prepare_reward_tokenizer(minilm_path())
    load_reward_model(minilm_path(), tok.pad_token_id).save_pretrained(out)
    tok.save_pretrained(out)
    write_reward_config(out, 128)
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory, reward_model):
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    proc = subprocess.Popen([sys.executable, "-m", "prefloop", "serve-rm", "--model", str(reward_model),
                             "--port", str(port), "--batch-size", "16"],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=open(log, "w"),
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/health", timeout=1)
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(log.read_text()) from None
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=30)
    assert "Traceback" not in log.read_text()      # bad requests leave no traceback in the log


def test_rewards_match_in_process_scoring(server, reward_model):
    from prefloop.training.scoring import RewardScorer

    texts = ["user: hi\nassistant: hello there!", "user: hi\nassistant: go away"]
    status, out = _post(server + "/get_reward", {"query": texts, "prompts": ["user: hi"], "labels": [""]})
    assert status == 200 and len(out["rewards"]) == 2
    local = RewardScorer(reward_model).score_inputs(texts).tolist()
    assert out["rewards"] == pytest.approx(local, abs=1e-4)
    conv = [{"role": "user", "content": "hi"}]
    status, pair = _post(server + "/get_reward", {"messages": [conv], "responses": ["hello there!"]})
    assert status == 200 and pair["rewards"] == pytest.approx(
        RewardScorer(reward_model).score([conv], ["hello there!"]).tolist(), abs=1e-4)


def test_concurrent_requests_are_batched(server):
    before = json.loads(urllib.request.urlopen(server + "/health").read())
    with ThreadPoolExecutor(16) as pool:
        outs = list(pool.map(lambda i: _post(server + "/get_reward", {"query": [f"text {i}"]}), range(32)))
    assert all(s == 200 and len(o["rewards"]) == 1 for s, o in outs)
    after = json.loads(urllib.request.urlopen(server + "/health").read())
    assert after["texts"] - before["texts"] == 32
    assert after["batches"] - before["batches"] < 32                 # some requests shared a pass


@pytest.mark.parametrize("raw,body,status,message", [
    (b"{not json", None, 400, "not JSON"),
    (None, [1, 2], 400, "JSON object"),
    (None, {}, 422, "'query': missing"),
    (None, {"query": []}, 422, "non-empty list"),
    (None, {"query": ["ok", 3]}, 422, "'query[1]': expected a string"),
    (None, {"query": ["x" * 400_001]}, 413, "characters"),
    (None, {"query": ["a"] * 1025}, 413, "more than 1024"),
    (None, {"messages": [[{"role": "robot", "content": "x"}]], "responses": ["r"]}, 422, "role"),
    (b"[" * 100_000 + b"]" * 100_000, None, 400, "nested too deeply"),
    (b'{"query": ["a text"]}', "text/plain", 415, "send application/json"),
])
def test_bad_requests_get_a_4xx_with_a_message_and_the_server_lives_on(server, raw, body, status, message):
    kind = body if isinstance(body, str) else "application/json"
    code, out = _post(server + "/get_reward", None if isinstance(body, str) else body, raw=raw,
                      content_type=kind)
    assert code == status and message in json.dumps(out["detail"])
    assert _post(server + "/get_reward", {"query": ["still up"]})[0] == 200


def test_verl_compute_score_calls_the_server(server, monkeypatch):
    from prefloop.training.verl_reward import compute_score

    monkeypatch.setenv("PREFLOOP_RM_URL", server)
    conv = [{"role": "user", "content": "hi"}]
    with_prompt = compute_score("prefloop/x", "hello there!", "", {"messages": json.dumps(conv)})
    _, direct = _post(server + "/get_reward", {"messages": [conv], "responses": ["hello there!"]})
    assert with_prompt == pytest.approx(direct["rewards"][0])
    assert isinstance(compute_score("prefloop/x", "hello", None, None), float)
