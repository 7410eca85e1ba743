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
    yield from _serve(tmp_path_factory, str(reward_model))


@pytest.fixture(scope="module")
def chat_ensemble(tmp_path_factory):
    """Two tiny Llama reward models (ChatML template, different random heads) saved as an
    ensemble's directory."""
    import torch

    from prefloop.core.models import load_reward_model
    from prefloop.training.scoring import (
        prepare_reward_tokenizer,
        write_ensemble_manifest,
        write_reward_config,
    )
    from prefloop.training.tiny import build_tiny_llama

    root = tmp_path_factory.mktemp("ensemble")
    base = build_tiny_llama(root / "base")
    tok = prepare_reward_tokenizer(base)
    for k in range(2):
        torch.manual_seed(k)
        load_reward_model(base, tok.pad_token_id).save_pretrained(root / "rm" / f"member-{k}")
        tok.save_pretrained(root / "rm" / f"member-{k}")
        write_reward_config(root / "rm" / f"member-{k}", 256)
    write_ensemble_manifest(root / "rm", ["member-0", "member-1"], [0.1, -0.1], "wco")
    return root / "rm"


def _serve(tmp_path_factory, model: str):
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    proc = subprocess.Popen([sys.executable, "-m", "prefloop", "serve-rm", "--model", model,
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


def test_an_ensemble_scores_openrlhf_query_text_as_it_was_trained(tmp_path_factory, chat_ensemble):
    """OpenRLHF's remote client sends prompt + response decoded, ending in <|im_end|> without
    ChatML's newline (or with no end at all when cut); it must score like the trained format."""
    from prefloop.training.scoring import reward_scorer

    conv = [{"role": "user", "content": "hi"}]
    local = reward_scorer(f"{chat_ensemble}@mean")
    tok = local.tokenizer
    trained = tok.apply_chat_template(conv + [{"role": "assistant", "content": "hello there"}], tokenize=False)
    openrlhf = tok.apply_chat_template(conv, add_generation_prompt=True, tokenize=False) + "hello there" + tok.eos_token
    assert trained != openrlhf and trained.startswith(openrlhf)
    server = _serve(tmp_path_factory, f"{chat_ensemble}@mean")
    url = next(server)
    try:
        status, out = _post(url + "/get_reward", {"query": [openrlhf, trained, openrlhf.removesuffix(tok.eos_token)],
                                                  "prompts": [""], "labels": [""]})
        _, pair = _post(url + "/get_reward", {"messages": [conv], "responses": ["hello there"]})
    finally:
        next(server, None)
    assert status == 200 and out["scores"] == out["rewards"]
    assert out["rewards"] == pytest.approx([pair["rewards"][0]] * 3, abs=1e-5)
    assert pair["rewards"][0] == pytest.approx(local.score([conv], ["hello there"]).item(), abs=1e-5)
    per = local.member_scores([conv], ["hello there"])[:, 0]
    assert not torch_close(per[0], per[1])
    assert reward_scorer(chat_ensemble).score([conv], ["hello there"]).item() == pytest.approx(
        float(per.min()), abs=1e-6)                          # the manifest's default: wco


def torch_close(a, b) -> bool:
    return abs(float(a) - float(b)) < 1e-6
