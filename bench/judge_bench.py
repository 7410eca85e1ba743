"""Judge batch runner throughput against a local ``transformers serve``; prints figures.

    python bench/judge_bench.py [--model PATH|smollm2-135m-instruct] [--calls 48] [--max-tokens 8] [--concurrency 1 4 16 64]

For concurrency 1, 4, 16 and 64 (``--concurrency``): calls/s and completion tokens/s of the batch runner
(:class:`judge.runner.JudgeSession`: cache lookup, retries, store writes) and of a bare loop
of the ``openai`` client making the same calls, and their ratio; then the per-call cost of the
cache lookup and of the store write, measured directly.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import openai

from prefloop import store
from prefloop.judge.backends import OpenAIBackend
from prefloop.judge.runner import CallSpec, JudgeSession, cache_key


def serve(model_path: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exe = shutil.which("transformers", path=os.path.dirname(sys.executable)) or "transformers"
    proc = subprocess.Popen([exe, "serve", model_path, "--port", str(port), "--device", "cpu"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            urllib.request.urlopen(url + "/health", timeout=1)
            return proc, url + "/v1"
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("transformers serve did not start")


def messages(i: int, tag: str) -> list[dict]:
    return [{"role": "user", "content": f"[{tag}] Question {i}: is {i} prime? Answer A for yes or B for no."}]


async def bare(client, model: str, n: int, conc: int, max_tokens: int, tag: str):
    sem = asyncio.Semaphore(conc)
    tokens = 0

    async def one(i):
        nonlocal tokens
        async with sem:
            r = await client.chat.completions.create(model=model, messages=messages(i, tag),
                                                     max_tokens=max_tokens, temperature=0.0)
            tokens += r.usage.completion_tokens or 0

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - t0, tokens


async def runner(s: store.Store, backend, n: int, conc: int, max_tokens: int, tag: str):
    specs = [CallSpec("bench@1", messages(i, tag), max_tokens, parse=lambda c: (c.text[:1] or None, None),
                      meta={"i": i}) for i in range(n)]
    t0 = time.perf_counter()
    async with JudgeSession(s, backend, concurrency=conc) as session:
        session.prefetch([session.key(x) for x in specs])   # as the modes do
        await asyncio.gather(*(session.call(x) for x in specs))
    return time.perf_counter() - t0, session.stats.tokens_out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="checkpoint dir (default: a tiny random Llama)")
    ap.add_argument("--calls", type=int, default=48)
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="judge-bench-"))
    if args.model in (None, "tiny"):
        from prefloop.training.tiny import build_tiny_llama

        model_path = str(build_tiny_llama(tmp / "tiny"))
    else:
        from prefloop.core.models import resolve_model

        model_path = str(resolve_model(args.model).path)
    proc, url = serve(model_path)
    try:
        s = store.Store.init(tmp / "bench.duckdb")
        print(f"model {model_path}, {args.calls} calls per measurement, max_tokens {args.max_tokens}")
        for conc in args.concurrency:
            async def both(conc: int = conc):
                client = openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0, timeout=120)
                backend = OpenAIBackend(model_path, client=client, logprobs=False)
                await bare(client, model_path, 4, conc, args.max_tokens, "warmup")
                b = await bare(client, model_path, args.calls, conc, args.max_tokens, f"bare{conc}")
                r = await runner(s, backend, args.calls, conc, args.max_tokens, f"run{conc}")
                await client.close()          # in its own loop: no "Event loop is closed" at exit
                return b, r

            (tb, kb), (tr, kr) = asyncio.run(both())
            print(f"concurrency {conc:>2}: runner {args.calls / tr:6.2f} calls/s {kr / tr:7.1f} tok/s | "
                  f"bare openai loop {args.calls / tb:6.2f} calls/s {kb / tb:7.1f} tok/s | "
                  f"ratio {tb / tr:.2f}")
        keys = [cache_key("m", "t", None, None, messages(i, "x")) for i in range(200)]
        rows = [store.JudgmentIn(k, "m", "t", "A", "A") for k in keys]
        t0 = time.perf_counter()
        for k in keys[:50]:
            s.judgments.by_cache_key([k])
        lookup = (time.perf_counter() - t0) / 50
        t0 = time.perf_counter()
        for j in rows[:50]:
            s.judgments.record([j])
        single = (time.perf_counter() - t0) / 50
        t0 = time.perf_counter()
        s.judgments.record(rows[50:])
        batched = (time.perf_counter() - t0) / len(rows[50:])
        print(f"overhead per call: cache lookup {lookup * 1000:.1f} ms (one key; the modes prefetch "
              f"all keys in one query), store write {single * 1000:.1f} ms alone / "
              f"{batched * 1000:.2f} ms in a batch of {len(rows[50:])}")
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
