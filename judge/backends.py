"""Judge backends behind one interface: ``await backend.complete(messages, max_tokens)``.

* :class:`OpenAIBackend`: any OpenAI-compatible ``/v1/chat/completions`` endpoint (OpenAI,
  vLLM, llama.cpp, ``transformers serve``) through the ``openai`` package. The API key comes
  from ``PREFLOOP_JUDGE_API_KEY`` or ``OPENAI_API_KEY`` and is never stored or logged. The
  client is an argument (httpx's ``transport=`` idea), so tests point it at real local
  servers. Retries are the batch runner's (the client's own are turned off).
* :class:`LocalBackend`: transformers in-process, default the embedded SmolLM2-135M-Instruct;
  greedy decoding; for ``choices`` (a pairwise verdict) it reads the normalized next-token
  probabilities of the options in one forward pass (a soft label, as in Constitutional AI)
  and answers with the likelier option, without generating.

Both are deterministic at temperature 0, so a resumed batch reproduces an uninterrupted one.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .errors import JudgeError

__all__ = ["Completion", "JudgeBackend", "OpenAIBackend", "LocalBackend", "api_key_from_env",
           "make_backend", "BACKENDS"]


@dataclass
class Completion:
    """One judge call's result: ``text``; token counts; ``latency_ms`` (wall clock of the call);
    ``choice_probs`` (option -> probability, normalized over the options) where available."""

    text: str
    tokens_in: int | None
    tokens_out: int | None
    latency_ms: float
    choice_probs: dict[str, float] | None = None


class JudgeBackend(Protocol):
    """What the batch runner needs from a backend."""

    model: str

    async def complete(self, messages: list[dict], *, max_tokens: int,
                       choices: tuple[str, ...] | None = None) -> Completion: ...


def api_key_from_env() -> str:
    """``PREFLOOP_JUDGE_API_KEY``, else ``OPENAI_API_KEY``, else a placeholder for local
    servers that need none."""
    return os.environ.get("PREFLOOP_JUDGE_API_KEY") or os.environ.get("OPENAI_API_KEY") or "unused"


class OpenAIBackend:
    """An OpenAI-compatible chat endpoint.

    Args:
        model: the model name the server expects.
        base_url: e.g. ``http://127.0.0.1:8000/v1``; ignored when ``client`` is given.
        client: an ``openai.AsyncOpenAI`` (tests, custom transports); built from ``base_url``
            and the environment's key otherwise, with ``max_retries=0``.
        timeout: seconds per request.
        logprobs: ask for top log-probs of the first token to get soft labels (servers that do
            not return them fall back to parsing the text).
        seed: sent with each request when given; calls are greedy (temperature 0) and need
            none, and ``transformers serve`` runs seeded requests one at a time (a seed is
            process state), which cut the batch runner to 0.27 of a bare loop at concurrency 16.
    """

    def __init__(self, model: str, base_url: str | None = None, *, client=None,
                 timeout: float = 60.0, logprobs: bool = True, seed: int | None = None):
        self.model, self.logprobs, self.seed = model, logprobs, seed
        self._given, self._timeout = client, timeout
        self._clients: dict[int, Any] = {}
        self.base_url = str(client.base_url) if client is not None else base_url

    @property
    def client(self):
        """The given client, or one per event loop (an ``AsyncOpenAI`` client's connection
        pool belongs to the loop it first ran in; each ``asyncio.run`` is a new loop)."""
        if self._given is not None:
            return self._given
        import openai

        loop = id(asyncio.get_running_loop())
        if loop not in self._clients:
            self._clients = {loop: openai.AsyncOpenAI(base_url=self.base_url, api_key=api_key_from_env(),
                                                      timeout=self._timeout, max_retries=0)}
        return self._clients[loop]

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r})"

    async def aclose(self) -> None:
        """Close the client this event loop made (not a given one), inside that loop: a client
        left to the garbage collector after ``asyncio.run`` returned closes its connections on
        a closed loop ("Event loop is closed" at exit)."""
        client = self._clients.pop(id(asyncio.get_running_loop()), None)
        if client is not None:
            await client.close()

    def check(self, timeout: float = 10.0) -> None:
        """Fail fast when the server cannot be reached, refuses the key, or does not serve
        :attr:`model` (``GET {base_url}/models``, the OpenAI API's model list; a server without
        that route counts as reachable), before a batch records anything.

        Raises:
            JudgeError: one line naming the URL (no key): connection refused, timeout, an HTTP
                error status, or a model list without :attr:`model`.
        """
        import httpx

        if self._given is not None:
            return
        url = self.base_url.rstrip("/") + "/models"
        try:
            r = httpx.get(url, timeout=timeout,
                          headers={"Authorization": f"Bearer {api_key_from_env()}"})
            if r.status_code in (404, 405, 501):     # up, without a model list: reachable
                return
            r.raise_for_status()
            served = [m.get("id") for m in (r.json().get("data") or []) if isinstance(m, dict)]
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            reason = (f"HTTP {exc.response.status_code}" if isinstance(exc, httpx.HTTPStatusError)
                      else type(exc).__name__ if not str(exc) else str(exc))
            raise JudgeError(f"judge at {self.base_url} cannot be reached ({reason}); check "
                             "--base-url and that the server is up") from None
        if served and self.model not in served:
            raise JudgeError(f"judge at {self.base_url} does not serve model {self.model!r} "
                             f"(it serves {', '.join(map(str, served[:5]))})")

    async def complete(self, messages: list[dict], *, max_tokens: int,
                       choices: tuple[str, ...] | None = None) -> Completion:
        kwargs: dict[str, Any] = {}
        if choices and self.logprobs:
            kwargs = {"logprobs": True, "top_logprobs": 5}
        if self.seed is not None:         # greedy needs none; a server may serialize seeded requests
            kwargs["seed"] = self.seed
        t0 = time.perf_counter()
        resp = await self.client.chat.completions.create(
            model=self.model, messages=messages, max_tokens=max_tokens, temperature=0.0, **kwargs)
        latency = (time.perf_counter() - t0) * 1000
        choice = resp.choices[0]
        probs = None
        lp = getattr(choice, "logprobs", None)
        if choices and lp is not None and lp.content:
            import math

            top = {t.token.strip(): math.exp(t.logprob) for t in lp.content[0].top_logprobs or []}
            mass = {c: top.get(c, 0.0) for c in choices}
            if sum(mass.values()) > 0:
                probs = {c: v / sum(mass.values()) for c, v in mass.items()}
        usage = resp.usage
        return Completion(choice.message.content or "", getattr(usage, "prompt_tokens", None),
                          getattr(usage, "completion_tokens", None), latency, probs)


class LocalBackend:
    """A transformers causal LM in this process (greedy decoding).

    Pairwise calls (``choices``) that are in flight together share one padded forward pass
    (up to ``max_batch``): the next-token probabilities of the options, read at the last
    position only; free-text calls (critique, revision) generate one at a time.

    Args:
        model_path: a local checkpoint (default: the embedded SmolLM2-135M-Instruct).
        max_batch: pairwise calls per forward pass.
    """

    def __init__(self, model_path: str | Path | None = None, *, name: str | None = None,
                 max_batch: int = 8):
        from prefloop.core.models import (
            default_model_path,
            load_causal_lm,
            load_tokenizer,
        )

        path = Path(model_path) if model_path else default_model_path()
        self.model = name or path.name
        self.tokenizer = load_tokenizer(path)
        self.lm = load_causal_lm(path).eval()
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._pending: list[tuple[list[dict], tuple[str, ...], asyncio.Future]] = []

    def __repr__(self) -> str:
        return f"LocalBackend(model={self.model!r})"

    def check(self) -> None:
        """In-process: nothing to reach (the model loaded in ``__init__``)."""

    def _choose_batch(self, batch: list[tuple[list[dict], tuple[str, ...]]]) -> list[Completion]:
        import torch

        tok = self.tokenizer
        with self._lock, torch.inference_mode():
            t0 = time.perf_counter()
            texts = [tok.apply_chat_template(m, add_generation_prompt=True, tokenize=False)
                     for m, _ in batch]
            side, tok.padding_side = tok.padding_side, "left"
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            tok.padding_side = side
            positions = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)   # padding-independent
            logits = self.lm(**enc, position_ids=positions, logits_to_keep=1).logits[:, -1].float()
            ms = (time.perf_counter() - t0) * 1000 / len(batch)
            out = []
            for row, mask, (_, choices) in zip(logits, enc["attention_mask"], batch):
                ids = [tok.encode(c, add_special_tokens=False)[0] for c in choices]
                p = torch.softmax(row[ids], dim=-1)
                probs = {c: float(v) for c, v in zip(choices, p)}
                out.append(Completion(max(probs, key=probs.get), int(mask.sum()), 1, ms, probs))
            return out

    def _generate_sync(self, messages, max_tokens):
        import torch

        tok = self.tokenizer
        with self._lock, torch.inference_mode():
            t0 = time.perf_counter()
            enc = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                          return_dict=True)
            n_in = enc["input_ids"].shape[1]
            out = self.lm.generate(**enc, do_sample=False, max_new_tokens=max_tokens,
                                   pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
            new = out[0, n_in:]
            text = tok.decode(new, skip_special_tokens=True)
            return Completion(text, n_in, int(new.shape[0]), (time.perf_counter() - t0) * 1000)

    async def _flush(self) -> None:
        await asyncio.sleep(0)                       # let the calls in flight join the batch
        batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
        if self._pending:
            asyncio.ensure_future(self._flush())
        try:
            results = await asyncio.to_thread(self._choose_batch, [(m, c) for m, c, _ in batch])
        except BaseException as exc:                 # every waiting call sees the failure
            for _, _, fut in batch:
                fut.set_exception(exc)
            return
        for (_, _, fut), res in zip(batch, results):
            fut.set_result(res)

    async def complete(self, messages: list[dict], *, max_tokens: int,
                       choices: tuple[str, ...] | None = None) -> Completion:
        if not choices:
            return await asyncio.to_thread(self._generate_sync, messages, max_tokens)
        fut = asyncio.get_running_loop().create_future()
        self._pending.append((messages, choices, fut))
        if len(self._pending) == 1:
            asyncio.ensure_future(self._flush())
        return await fut


BACKENDS = ("local", "openai")


def make_backend(kind: str = "local", *, model: str | None = None, base_url: str | None = None,
                 timeout: float = 60.0, store=None) -> JudgeBackend:
    """The judge backend the CLI, the loop, the demo and evaluation use.

    Args:
        kind: ``openai`` (any OpenAI-compatible URL; needs ``base_url`` and ``model``, the
            served model's name) or ``local`` (transformers in-process; ``model`` is a model
            spec, default the embedded SmolLM2).
        store: resolves ``run:ID`` model specs for the local backend.

    Raises:
        JudgeError: unknown kind, or the openai backend without ``base_url``/``model``.
        prefloop.core.models.ModelNotFoundError: the local model spec names no policy.
    """
    if kind == "openai":
        if not base_url or not model:
            raise JudgeError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1) "
                             "and --model; the key comes from PREFLOOP_JUDGE_API_KEY or OPENAI_API_KEY")
        return OpenAIBackend(model, base_url, timeout=timeout)
    if kind == "local":
        from prefloop.core.models import resolve_model

        ref = resolve_model(model, store, require="policy")
        return LocalBackend(ref.path, name=ref.name)
    raise JudgeError(f"--backend {kind!r}: expected one of {', '.join(BACKENDS)}")
