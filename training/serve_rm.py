"""``prefloop serve-rm``: a reward model behind HTTP, in OpenRLHF's remote reward contract.

``POST /get_reward`` with ``{"query": [text, ...]}`` (each text a whole formatted sequence,
prompt and response, as OpenRLHF's ``--remote_rm_url`` sends it; OpenRLHF's extra fields
``prompts`` and ``labels`` are accepted and ignored) answers ``{"rewards": [float, ...],
"scores": [...]}`` (the same list under both names: OpenRLHF >= 0.10 reads ``scores`` first), in
the reward model's logit units. A text is scored exactly as the reward model was trained: its
end of turn is normalized (OpenRLHF's decoded query ends in ``<|im_end|>`` without ChatML's
newline; :meth:`~prefloop.training.scoring.RewardScorer.normalize_text`). ``{"messages": [[message, ...], ...], "responses": [text,
...]}`` instead scores (conversation, response) pairs formatted exactly as the reward model
was trained (verl's reward function uses it). ``GET /health`` answers ``{"status": "ok", "model": ...}``.
Concurrent requests are batched: a worker takes what has queued (up to ``batch_size`` texts)
and scores it in one forward pass per batch. Bad requests get a 4xx with a message (and leave
no traceback in the log): a Content-Type other than ``application/json`` (415), a body over
``MAX_BODY_BYTES`` (413), not JSON, nested too deeply or not an object (400), ``query``
missing, empty or not a list of strings (422), more than ``max_texts`` texts or a text over
``MAX_TEXT_CHARS`` characters (413).

Built on FastAPI and uvicorn (both already installed with Gradio). See
:mod:`prefloop.training.verl_reward` for verl's ``custom_reward_function`` that calls it.
"""


import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from prefloop.store.validation import MAX_TEXT_CHARS

__all__ = ["build_reward_app", "serve_reward_model", "RewardBatcher"]


@dataclass
class _Item:
    texts: list[str]
    future: asyncio.Future
    rewards: list[float] = field(default_factory=list)


class RewardBatcher:
    """Gathers the texts of concurrent requests into batches of at most ``batch_size`` and
    scores each batch with ``score(texts) -> list[float]`` in a worker thread (the event loop
    stays free to accept requests). ``batches`` and ``texts`` count what it did."""

    def __init__(self, score, batch_size: int = 32):
        self.score, self.batch_size = score, batch_size
        self.queue: asyncio.Queue[_Item] | None = None
        self.batches = self.texts = 0
        self._lock = threading.Lock()         # one forward pass at a time

    async def run(self) -> None:
        self.queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        while True:
            items = [await self.queue.get()]
            n = len(items[0].texts)
            while n < self.batch_size and not self.queue.empty():
                nxt = self.queue.get_nowait()
                items.append(nxt)
                n += len(nxt.texts)
            texts = [t for it in items for t in it.texts]
            try:
                rewards = await loop.run_in_executor(None, self._score, texts)
            except Exception as exc:          # the requests get the error, the worker goes on
                for it in items:
                    if not it.future.done():
                        it.future.set_exception(exc)
                continue
            self.batches, self.texts = self.batches + 1, self.texts + len(texts)
            k = 0
            for it in items:
                if not it.future.done():
                    it.future.set_result(rewards[k:k + len(it.texts)])
                k += len(it.texts)

    def _score(self, texts: list[str]) -> list[float]:
        with self._lock:
            out: list[float] = []
            for i in range(0, len(texts), self.batch_size):
                out += [float(x) for x in self.score(texts[i:i + self.batch_size])]
            return out

    async def submit(self, texts: list[str]) -> list[float]:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put(_Item(texts, future))
        return await future


def _check_query(body: Any, max_texts: int) -> list:
    """The request's inputs (texts, or (messages, response) tuples), or an HTTPException with
    a 4xx and a message."""
    from fastapi import HTTPException

    from prefloop.store.errors import ValidationError
    from prefloop.store.validation import validate_messages

    if not isinstance(body, dict):
        raise HTTPException(400, "expected a JSON object {\"query\": [text, ...]}")
    if "responses" in body:
        responses, convs = body["responses"], body.get("messages")
        if not isinstance(responses, list) or not responses or not isinstance(convs, list) \
                or len(convs) != len(responses):
            raise HTTPException(422, "fields 'messages' and 'responses': expected two non-empty "
                                     "lists of the same length")
        if len(responses) > max_texts:
            raise HTTPException(413, f"field 'responses': {len(responses)} items, more than {max_texts}")
        out = []
        for i, (m, r) in enumerate(zip(convs, responses)):
            if not isinstance(r, str) or len(r) > MAX_TEXT_CHARS:
                raise HTTPException(422, f"field 'responses[{i}]': expected a string of at most "
                                         f"{MAX_TEXT_CHARS} characters")
            try:
                out.append((validate_messages(m, field_name=f"messages[{i}]"), r))
            except ValidationError as exc:
                raise HTTPException(422, str(exc)) from None
        return out
    query = body.get("query")
    if query is None:
        raise HTTPException(422, "field 'query': missing (a list of texts)")
    if not isinstance(query, list) or not query:
        raise HTTPException(422, "field 'query': expected a non-empty list of texts")
    if len(query) > max_texts:
        raise HTTPException(413, f"field 'query': {len(query)} texts, more than {max_texts}")
    for i, t in enumerate(query):
        if not isinstance(t, str):
            raise HTTPException(422, f"field 'query[{i}]': expected a string, found {type(t).__name__}")
        if len(t) > MAX_TEXT_CHARS:
            raise HTTPException(413, f"field 'query[{i}]': {len(t)} characters, more than {MAX_TEXT_CHARS}")
    return query


#: The largest request body ``/get_reward`` reads (bytes): 1024 texts of 16k characters fit.
MAX_BODY_BYTES = 32 << 20


def build_reward_app(score, *, model_name: str, batch_size: int = 32, max_texts: int = 1024):
    """The FastAPI app of the module docstring around ``score(texts) -> rewards``."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    from prefloop.core.http import BodyLimit

    batcher = RewardBatcher(score, batch_size)

    @asynccontextmanager
    async def lifespan(app):
        task = asyncio.create_task(batcher.run())
        while batcher.queue is None:
            await asyncio.sleep(0)
        yield
        task.cancel()

    app = FastAPI(title="prefloop reward model", lifespan=lifespan)
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)     # 415, 413 while the body streams in
    app.state.batcher = batcher

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": model_name, "batches": batcher.batches, "texts": batcher.texts}

    @app.post("/get_reward")
    async def get_reward(request: Request):
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            return JSONResponse({"detail": "the body is not JSON"}, status_code=400)
        except RecursionError:
            return JSONResponse({"detail": "the body is nested too deeply"}, status_code=400)
        texts = _check_query(body, max_texts)
        rewards = await batcher.submit(texts)
        return {"rewards": rewards, "scores": rewards}

    return app


def serve_reward_model(path, *, host: str = "127.0.0.1", port: int = 5000, batch_size: int = 32,
                       model_name: str | None = None, max_texts: int = 1024) -> None:
    """Load the reward model ``path`` (a :class:`~prefloop.core.models.ModelRef` or a path; an
    ensemble too, see :func:`~prefloop.training.scoring.reward_scorer`) and serve it until
    interrupted."""
    import uvicorn

    from .scoring import reward_scorer

    scorer = reward_scorer(path, batch_size=batch_size)
    app = build_reward_app(lambda inputs: scorer.score_inputs(inputs).tolist(),
                           model_name=model_name or str(path), batch_size=batch_size,
                           max_texts=max_texts)
    uvicorn.run(app, host=host, port=port, log_level="warning")
