"""The platform's JSON API, served by ``prefloop annotate`` beside the Gradio app (same
process: the app stays the store's one writer), OpenAPI docs at ``/api/docs``.

Every route takes ``Authorization: Bearer <API key>`` (``prefloop users key create NAME``);
a key acts with its user's role (``annotator`` < ``reviewer`` < ``admin``), checked by one
dependency (:func:`require`). Routes, under ``/api/v1``:

==========================  =========  =====================================================
``GET /me``                 any        who the key belongs to
``GET /queue``              any        open tasks, comparisons, your progress
``GET /tasks/next``         any        your leased task, or the next one (blind: responses
                                       under labels A, B... in your random order, no models)
``POST /tasks/lease``       any        lease up to ``n`` tasks at once (bulk labeling)
``POST /tasks/{id}/label``  any        label your task (``choice``: A, B, tie or both_bad;
                                       ``rationale``, ``flags``, ``strength``, ``edit``)
``POST /tasks/{id}/skip``   any        skip it and get the next one
``POST /conversations``     any        start a conversation with the chat model (Chat view)
``GET /conversations``      any        your conversations; ``GET /conversations/{id}``: one
``POST /conversations/{id}/messages``  any   send a message: the stored turn's candidates
``POST /conversations/{id}/choice``    any   rank the turn (``turn``, ``choice``, ``edit``...)
``POST /prompts``           admin      add prompts with responses, optionally queue tasks
                                       (at most :data:`MAX_ITEMS`; idempotent; any bad item:
                                       422 naming each bad item, nothing written)
``GET /comparisons``        reviewer   labels after a comparison id (cursor: ``after``,
                                       ``limit``; ``next_after`` in the answer)
``POST /exports``           admin      a pair export (under the app's ``exports_root``)
``GET /exports/{id}``       reviewer   an export's record and its files
``GET /exports/{id}/files/{name}``     reviewer   one file of it
``GET /runs``               reviewer   runs with status and summary (``kind``, ``status``)
``POST /jobs``              admin      start ``train KIND``, ``judge MODE`` or a ``loop``
``GET /webhooks``, ``POST /webhooks``, ``DELETE /webhooks/{id}``, ``GET /webhooks/deliveries``
                            admin      webhook endpoints and their delivery attempts
==========================  =========  =====================================================

The routes authorize and delegate to the app's services (the labeling service the Gradio
view uses, :class:`~prefloop.annotate_app.services.platform.PlatformService`); request and
response models document every route in ``/api/openapi.json``. Errors are JSON ``{"detail":
message}``: 401 (no or bad key), 403 (role), 404, 409 (a lease that ran out, a turn not yet
ranked), 502 (the chat model's endpoint failed; nothing stored), 413 (a body over
:data:`MAX_BODY_BYTES`, however it is sent), 415 (not JSON), 422 (a field or item, named).
Input never causes a 500: integers are bounded where they are declared, text and names pass the
store's rules.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from prefloop import store
from prefloop.core.http import BodyLimit
from prefloop.core.signing import SigningKeyError
from prefloop.store.validation import MAX_ID, MAX_NAME_CHARS, MAX_TEXT_CHARS

from .auth import ROLE_RANK
from .errors import AppError, InvalidItems
from .services.chat import ModelUnavailable
from .services.platform import MAX_ITEMS, NewPrompt

__all__ = ["build_api", "MAX_ITEMS", "MAX_BODY_BYTES"]

log = logging.getLogger(__name__)

#: Bytes per request body, whether announced by Content-Length or sent in chunks.
MAX_BODY_BYTES = 8 << 20
_INT32 = 2**31 - 1
def _id():
    """A path parameter that is a row id (a new one per route: FastAPI binds each to its name)."""
    return PathParam(ge=1, le=MAX_ID, description="A row id.")

_Name = Field(None, max_length=MAX_NAME_CHARS)


class APIError(Exception):
    """An answer other than 2xx: ``status`` and the message."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


# ----------------------------------------------------------------------------- models
class Me(BaseModel):
    id: int
    name: str
    role: str


class Queue(BaseModel):
    open_tasks: int
    max_comparison_id: int
    you: dict[str, int]


class TaskResponse(BaseModel):
    """One response of a task, under its label."""

    label: str
    text: str


class TaskOut(BaseModel):
    """A leased task as the annotator sees it: the conversation and the responses under labels,
    in this annotator's random order; no model names."""

    task_id: int
    prompt: list[dict[str, Any]]
    responses: list[TaskResponse]
    aspects: list[str] = Field(default_factory=list, description="Rate these per response (ratings tasks).")
    progress: dict[str, int] = Field(default_factory=dict)


class NextTask(BaseModel):
    task: TaskOut | None = Field(None, description="null: nothing left for you (or your queue is paused).")
    paused: str | None = Field(None, description="Why your queue is closed, if it is.")


class LeaseRequest(BaseModel):
    n: int = Field(10, ge=1, le=100, description="How many tasks to lease at once.")


class Leased(BaseModel):
    tasks: list[TaskOut]
    paused: str | None = Field(None, description="Why your queue is closed, if it is.")


class LabelRequest(BaseModel):
    choice: str = Field(..., max_length=16, description="A, B, tie or both_bad.")
    next: bool = Field(True, description="Lease and return your next task too (false in bulk labeling).")
    rationale: str = Field("", max_length=10_000)
    flags: list[str] = Field(default_factory=list, max_length=10)
    strength: str | None = Field(None, max_length=32)
    edit: str = Field("", max_length=100_000)


class Labeled(NextTask):
    comparison_id: int


class ChatCandidate(BaseModel):
    label: str
    response_id: int
    text: str
    finished: bool = Field(True, description="false: cut off at the chat section's max_tokens.")


class ChatOut(BaseModel):
    """A conversation: ``messages`` so far (chosen replies included) and, while a turn waits for
    its ranking, ``turn`` and its ``candidates``."""

    conversation_id: int
    model: str
    messages: list[dict[str, Any]]
    turns: int
    turn: int | None = None
    candidates: list[ChatCandidate] = Field(default_factory=list)


class ChatItem(BaseModel):
    id: int
    model: str
    turns: int


class ChatList(BaseModel):
    items: list[ChatItem]


class ChatMessage(BaseModel):
    message: str = Field(..., min_length=1, max_length=MAX_TEXT_CHARS)


class ChatChoice(BaseModel):
    turn: int = Field(..., ge=1, le=MAX_ID, description="The turn being ranked (a second submission writes nothing).")
    choice: str = Field(..., max_length=16, description="A candidate's label (A, B...), tie or both_bad.")
    strength: str | None = Field(None, max_length=32)
    edit: str = Field("", max_length=MAX_TEXT_CHARS, description="Your version of the chosen reply.")
    rationale: str = Field("", max_length=10_000)


class PromptItem(BaseModel):
    """One prompt to add: ``prompt`` (text, or chat messages ending with a user turn), its
    ``responses`` (texts), and whether to ``queue`` a labeling task over them."""

    prompt: str | list[dict[str, Any]]
    responses: list[str] = Field(default_factory=list, max_length=100)
    dataset: str | None = _Name
    queue: bool = False
    overlap: int = Field(1, ge=1, le=100)
    priority: int = Field(0, ge=-_INT32, le=_INT32)


class PromptBatch(BaseModel):
    items: list[PromptItem] = Field(..., min_length=1, max_length=MAX_ITEMS)
    source: str = Field("api", max_length=MAX_NAME_CHARS)


class AddedItem(BaseModel):
    prompt_id: int
    response_ids: list[int]
    task_id: int | None


class Added(BaseModel):
    items: list[AddedItem]


class ComparisonOut(BaseModel):
    id: int
    prompt_id: int
    ranking: list[list[int]]
    labeler_kind: str
    labeler: str | None
    task_id: int | None
    flags: list[str]
    confidence: float | None
    strength: str | None
    rationale: str | None
    created_at: str | None


class ComparisonPage(BaseModel):
    items: list[ComparisonOut]
    next_after: int | None


class ExportRequest(BaseModel):
    name: str = Field(..., max_length=4096, description="Folder name under the app's exports_root.")
    source: str = Field("all", pattern="^(human|ai|all)$")
    dataset: str | None = _Name
    format: str = Field("pairs", max_length=32)
    test_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    min_agreement: float = Field(0.0, ge=0.0, le=1.0)


class ExportOut(BaseModel):
    id: int
    n_pairs: int
    sha256: str | None
    filters: dict[str, Any]
    path: str
    files: list[str]


class RunOut(BaseModel):
    id: int
    kind: str
    status: str
    parent_run_id: int | None
    export_id: int | None
    started_at: str | None
    finished_at: str | None
    summary: dict[str, Any]


class Runs(BaseModel):
    items: list[RunOut]


class JobRequest(BaseModel):
    command: str = Field(..., max_length=32, description="train, judge or loop")
    kind: str = Field("", max_length=32, description="train: a method (rm, dpo, ...); judge: a mode; loop: -")
    options: dict[str, Any] = Field(default_factory=dict)


class JobOut(BaseModel):
    pid: int
    log: str


class WebhookRequest(BaseModel):
    url: str = Field(..., max_length=2000)
    events: list[str] = Field(..., min_length=1, max_length=20)


class WebhookOut(BaseModel):
    id: int
    url: str
    events: list[str]
    active: bool


class WebhookCreated(WebhookOut):
    secret: str = Field(..., description="Shown once: verify the webhook-signature header with it.")


class Webhooks(BaseModel):
    items: list[WebhookOut]


class DeliveryOut(BaseModel):
    id: int
    webhook_id: int
    event: str
    status: str
    attempts: int
    last_status: int | None
    last_error: str | None


class Removed(BaseModel):
    id: int
    active: bool = False


class Deliveries(BaseModel):
    items: list[DeliveryOut]


# ----------------------------------------------------------------------------- plumbing
def _handlers(api: FastAPI) -> None:
    from fastapi.exceptions import RequestValidationError

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return JSONResponse({"detail": f"field '{where}': {first.get('msg', 'invalid')}",
                             "errors": [{"field": ".".join(str(x) for x in e.get("loc", ()) if x != "body"),
                                         "reason": e.get("msg")} for e in errors[:100]]}, 422)

    @api.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError):
        return JSONResponse({"detail": exc.detail}, exc.status, headers=exc.headers)

    @api.exception_handler(store.StoreError)
    async def store_error(request: Request, exc: store.StoreError):
        status = (404 if isinstance(exc, store.NotFoundError) else
                  409 if isinstance(exc, (store.LeaseError, store.ConversationError)) else 422)
        return JSONResponse({"detail": str(exc)}, status)

    @api.exception_handler(SigningKeyError)
    async def not_configured(request: Request, exc: SigningKeyError):
        return JSONResponse({"detail": f"this server cannot sign webhooks: {exc}"}, 503)

    @api.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError):
        extra = {"errors": exc.errors} if isinstance(exc, InvalidItems) else {}
        return JSONResponse({"detail": str(exc), **extra}, 502 if isinstance(exc, ModelUnavailable) else 422)


def require(s: store.Store, role: str):
    """The FastAPI dependency of a route open to ``role`` and above: the key's annotator.

    Raises (as answers): 401 without a key or with an unknown, revoked or malformed one (or a
    disabled user's); 403 below ``role``."""
    def check(request: Request) -> store.Annotator:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise APIError(401, "send Authorization: Bearer <API key> (prefloop users key create NAME)",
                           {"WWW-Authenticate": "Bearer"})
        user = s.api_keys.authenticate(token.strip())
        if user is None:
            raise APIError(401, "unknown, revoked or malformed API key", {"WWW-Authenticate": "Bearer"})
        if ROLE_RANK[user.role] < ROLE_RANK[role]:
            raise APIError(403, f"this needs the {role} role; the key's user is {user.role}")
        return user
    return check


def _iso(t) -> str | None:
    return t.isoformat() if t else None


# ----------------------------------------------------------------------------- routes
def build_api(services) -> FastAPI:
    """The API app over an :class:`~prefloop.annotate_app.services.AppServices` (mounted at
    ``/api`` by :func:`~prefloop.annotate_app.app.launch`)."""
    api = FastAPI(title="prefloop API", version="1", docs_url="/docs", openapi_url="/openapi.json",
                  redoc_url=None)
    api.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    _handlers(api)
    s: store.Store = services.store
    anyone, reviewer, admin = (Depends(require(s, r)) for r in ("annotator", "reviewer", "admin"))
    _labeling_routes(api, services, anyone)
    _chat_routes(api, services, anyone)
    _data_routes(api, services, reviewer, admin)
    _webhook_routes(api, s, admin)
    return api


def _task_out(view) -> TaskOut | None:
    if view is None:
        return None
    return TaskOut(task_id=view.task_id, prompt=view.messages, aspects=view.aspects, progress=view.progress,
                   responses=[TaskResponse(label=lab, text=t) for lab, t in zip(view.labels, view.response_texts)])


def _labeling_routes(api: FastAPI, services, anyone) -> None:
    labeling = services.labeling

    def next_task(user, view) -> NextTask:
        return NextTask(task=_task_out(view), paused=None if view else labeling.paused_reason(user))

    @api.get("/v1/me", response_model=Me)
    def me(user: store.Annotator = anyone):
        return Me(id=user.id, name=user.name, role=user.role)

    @api.get("/v1/queue", response_model=Queue)
    def queue(user: store.Annotator = anyone):
        from prefloop.store.counts import annotator_progress

        return Queue(open_tasks=services.store.tasks.count_open(), you=annotator_progress(services.store, user.id),
                     max_comparison_id=services.store.comparisons.max_id())

    @api.get("/v1/tasks/next", response_model=NextTask)
    def lease_task(user: store.Annotator = anyone):
        return next_task(user, labeling.current_task(user))

    @api.post("/v1/tasks/lease", response_model=Leased)
    def lease_tasks(req: LeaseRequest, user: store.Annotator = anyone):
        views = labeling.lease_batch(user, req.n)
        return Leased(tasks=[_task_out(v) for v in views], paused=None if views else labeling.paused_reason(user))

    @api.post("/v1/tasks/{task_id}/label", response_model=Labeled)
    def label_task(req: LabelRequest, task_id: int = _id(), user: store.Annotator = anyone):
        kw = {"rationale": req.rationale, "flags": req.flags, "edit": req.edit, "strength": req.strength}
        if req.next:
            cid, view = labeling.submit_and_next(user, task_id, choice=req.choice, **kw)
        else:
            cid, view = labeling.submit_pair(user, task_id, req.choice, **kw), None
        return Labeled(comparison_id=cid, **next_task(user, view).model_dump())

    @api.post("/v1/tasks/{task_id}/skip", response_model=NextTask)
    def skip_task(task_id: int = _id(), user: store.Annotator = anyone):
        return next_task(user, labeling.skip_and_next(user, task_id))


def _chat_out(st) -> ChatOut:
    return ChatOut(conversation_id=st.conversation_id, model=st.model, messages=st.messages, turns=st.turns,
                   turn=st.turn, candidates=[ChatCandidate(label=c.label, response_id=c.response_id, text=c.text,
                                                           finished=c.finished) for c in st.candidates])


def _chat_routes(api: FastAPI, services, anyone) -> None:
    """Live conversations (:class:`~prefloop.annotate_app.services.chat.ChatService`): only
    their own annotator sees them; 502 when the chat model's endpoint fails (nothing stored)."""
    chat = services.chat

    @api.post("/v1/conversations", response_model=ChatOut)
    def start_conversation(user: store.Annotator = anyone):
        return _chat_out(chat.start(user))

    @api.get("/v1/conversations", response_model=ChatList)
    def list_conversations(user: store.Annotator = anyone):
        return ChatList(items=[ChatItem(id=i, model=m, turns=n) for i, m, n in chat.conversations(user)])

    @api.get("/v1/conversations/{conversation_id}", response_model=ChatOut)
    def get_conversation(conversation_id: int = _id(), user: store.Annotator = anyone):
        return _chat_out(chat.state(user, conversation_id))

    @api.post("/v1/conversations/{conversation_id}/messages", response_model=ChatOut)
    def send_message(req: ChatMessage, conversation_id: int = _id(), user: store.Annotator = anyone):
        return _chat_out(chat.send(user, conversation_id, req.message))

    @api.post("/v1/conversations/{conversation_id}/choice", response_model=ChatOut)
    def choose_reply(req: ChatChoice, conversation_id: int = _id(), user: store.Annotator = anyone):
        return _chat_out(chat.choose(user, conversation_id, req.turn, req.choice, strength=req.strength,
                                     edit=req.edit, rationale=req.rationale))


def _data_routes(api: FastAPI, services, reviewer, admin) -> None:
    platform = services.platform

    @api.post("/v1/prompts", response_model=Added)
    def add_prompts(batch: PromptBatch, user: store.Annotator = admin):
        items = [NewPrompt([{"role": "user", "content": it.prompt}] if isinstance(it.prompt, str) else it.prompt,
                           it.responses, it.dataset, it.queue, it.overlap, it.priority) for it in batch.items]
        added = platform.add_prompts(items, source=batch.source)
        return Added(items=[AddedItem(prompt_id=a.prompt_id, response_ids=a.response_ids, task_id=a.task_id)
                            for a in added])

    @api.get("/v1/comparisons", response_model=ComparisonPage)
    def comparisons(after: int = Query(0, ge=0, le=MAX_ID), limit: int = Query(100, ge=1, le=1000),
                    user: store.Annotator = reviewer):
        rows = platform.comparisons(after, limit)
        items = [ComparisonOut(id=c.id, prompt_id=c.prompt_id, ranking=c.ranking, labeler_kind=c.labeler_kind,
                               labeler=c.labeler, task_id=c.task_id, flags=c.flags, confidence=c.confidence,
                               strength=c.strength, rationale=c.rationale, created_at=_iso(c.created_at))
                 for c in rows]
        return ComparisonPage(items=items, next_after=items[-1].id if len(items) == limit else None)

    def export_out(e: store.Export) -> ExportOut:
        return ExportOut(id=e.id, n_pairs=e.n_pairs, sha256=e.sha256, filters=e.filters, path=e.path,
                         files=platform.export_files(e))

    @api.post("/v1/exports", response_model=ExportOut)
    def create_export(req: ExportRequest, user: store.Annotator = admin):
        filters = {"source": req.source, "dataset": req.dataset, "test_fraction": req.test_fraction,
                   "min_agreement": req.min_agreement}
        return export_out(platform.export(services.admin.exports_root(), req.name, filters, req.format))

    @api.get("/v1/exports/{export_id}", response_model=ExportOut)
    def get_export(export_id: int = _id(), user: store.Annotator = reviewer):
        return export_out(services.store.exports.get(export_id))

    @api.get("/v1/exports/{export_id}/files/{name:path}", response_class=FileResponse)
    def export_file(name: str, export_id: int = _id(), user: store.Annotator = reviewer):
        target = platform.export_file(export_id, name)
        return FileResponse(target, filename=target.name)

    @api.get("/v1/runs", response_model=Runs)
    def runs(kind: str | None = Query(None, max_length=32), status: str | None = Query(None, max_length=32),
             user: store.Annotator = reviewer):
        return Runs(items=[RunOut(id=r.id, kind=r.kind, status=r.status, parent_run_id=r.parent_run_id,
                                  export_id=r.export_id, started_at=_iso(r.started_at),
                                  finished_at=_iso(r.finished_at),
                                  summary={k: v for k, v in (r.summary or {}).items() if not isinstance(v, (dict, list))})
                           for r in platform.runs(kind, status)])

    @api.post("/v1/jobs", response_model=JobOut)
    def start_job(req: JobRequest, user: store.Annotator = admin):
        pid, log_path = services.jobs.start(req.command, req.kind, req.options)
        return JobOut(pid=pid, log=str(log_path))


def _webhook_routes(api: FastAPI, s: store.Store, admin) -> None:
    def out(w) -> WebhookOut:
        return WebhookOut(id=w.id, url=w.url, events=w.events, active=w.active)

    @api.get("/v1/webhooks", response_model=Webhooks)
    def webhooks(user: store.Annotator = admin):
        return Webhooks(items=[out(w) for w in s.webhooks.list()])

    @api.post("/v1/webhooks", response_model=WebhookCreated)
    def add_webhook(req: WebhookRequest, user: store.Annotator = admin):
        w, secret = s.webhooks.add(req.url, req.events)
        return WebhookCreated(**out(w).model_dump(), secret=secret)

    @api.delete("/v1/webhooks/{webhook_id}", response_model=Removed)
    def remove_webhook(webhook_id: int = _id(), user: store.Annotator = admin):
        s.webhooks.remove(webhook_id)
        return Removed(id=webhook_id)

    @api.get("/v1/webhooks/deliveries", response_model=Deliveries)
    def deliveries(webhook_id: int | None = Query(None, ge=1, le=MAX_ID), user: store.Annotator = admin):
        return Deliveries(items=[DeliveryOut(id=d.id, webhook_id=d.webhook_id, event=d.event, status=d.status,
                                             attempts=d.attempts, last_status=d.last_status, last_error=d.last_error)
                                 for d in s.webhooks.deliveries(webhook_id)])

