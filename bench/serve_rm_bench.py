"""``prefloop serve-rm`` throughput: rewards per second over HTTP at client batch 1, 8 and 32
(16 concurrent clients), against scoring in-process with the same model. Prints figures;
asserts nothing.

    python bench/serve_rm_bench.py [--model PATH_OR_run:ID] [--texts 512]

Default model: MiniLM with a fresh one-output head (the speed does not depend on training).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _model(spec: str | None) -> Path:
    if spec:
        return Path(spec)
    from prefloop.core.models import load_reward_model, minilm_path
    from prefloop.training.scoring import prepare_reward_tokenizer, write_reward_config

    out = Path(tempfile.mkdtemp()) / "rm"
    tok = prepare_reward_tokenizer(minilm_path())
    load_reward_model(minilm_path(), tok.pad_token_id).save_pretrained(out)
    tok.save_pretrained(out)
    write_reward_config(out, 256)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model")
    ap.add_argument("--texts", type=int, default=512)
    ap.add_argument("--server-batch-size", type=int, default=32)
    args = ap.parse_args()
    path = _model(args.model)
    texts = [f"user: question {i} about baking bread at home\nassistant: knead the dough {i} "
             "times, let it rise for an hour, then bake at 220 C for 30 minutes" for i in range(args.texts)]

    from prefloop.training.scoring import RewardScorer

    scorer = RewardScorer(path, batch_size=args.server_batch_size)
    scorer.score_inputs(texts[:32])
    t0 = time.perf_counter()
    scorer.score_inputs(texts)
    local = len(texts) / (time.perf_counter() - t0)
    print(f"in-process: {local:.0f} rewards/s (batch {args.server_batch_size})")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "prefloop", "serve-rm", "--model", str(path),
                             "--port", str(port), "--batch-size", str(args.server_batch_size)],
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/get_reward"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.2)

        def post(chunk):
            req = urllib.request.Request(url, data=json.dumps({"query": chunk}).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=300) as r:
                return len(json.loads(r.read())["rewards"])

        for batch in (1, 8, 32):
            chunks = [texts[i:i + batch] for i in range(0, len(texts), batch)]
            post(chunks[0])
            t0 = time.perf_counter()
            with ThreadPoolExecutor(16) as pool:
                n = sum(pool.map(post, chunks))
            rate = n / (time.perf_counter() - t0)
            print(f"HTTP, client batch {batch:2d}, 16 clients: {rate:.0f} rewards/s "
                  f"({rate / local:.2f} of in-process)")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
