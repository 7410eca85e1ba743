"""The platform's JSON API, served by ``prefloop annotate`` beside the Gradio app (same
process: the app stays the store's one writer), OpenAPI docs at ``/api/docs``.

Every route takes ``Authorization: Bearer <API key>`` (``prefloop users key create NAME``);
a key acts with its user's role (``annotator`` < ``reviewer`` < ``admin``). Routes, under
``/api/v1``:

==========================  =========  =====================================================
``GET /me``                 any        who the key belongs to
``GET /queue``              any        open tasks, comparisons, people's progress
``POST /prompts``           admin      add prompts with responses, optionally queue tasks
                                       (batch of at most :data:`MAX_ITEMS`; idempotent: the
                                       same content gives the same ids and no second task;
                                       any bad item: 422 with one error per bad item, nothing
                                       written)
``GET /comparisons``        reviewer   labels after a comparison id (cursor pagination:
                                       ``after``, ``limit``; ``next_after`` in the answer)
``POST /exports``           admin      a pair export (under the app's ``exports_root``)
``GET /exports/{id}``       reviewer   an export's record and its files
``GET /exports/{id}/files/{name}``     reviewer   download one file of it
``GET /runs``               reviewer   runs with status and summary (``kind``, ``status``)
``POST /jobs``              admin      start ``train KIND``, ``judge MODE`` or a ``loop``
                                       iteration (a subprocess; its run appears in /runs)
``GET /webhooks``, ``POST /webhooks``, ``DELETE /webhooks/{id}``, ``GET /webhooks/deliveries``
                            admin      webhook endpoints and their delivery attempts
==========================  =========  =====================================================

Errors are JSON ``{"detail": message}``: 401 (no or bad key), 403 (role), 404, 413 (body over
:data:`MAX_BODY_BYTES`), 415 (not JSON), 422 (a field, named in the message). Never a 500 for
bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from prefloop import store

__all__ = ["build_api", "MAX_ITEMS", "MAX_BODY_BYTES", "ROLE_RANK"]

#: Items per ``POST /prompts``; bytes per request body.
MAX_ITEMS = 1000
MAX_BODY_BYTES = 8 << 20
ROLE_RANK = {"annotator": 0, "reviewer": 1, "admin": 2}


class PromptItem(BaseModel):
    """One prompt to add: ``prompt`` (text, or chat messages ending with a user turn), its
    ``responses`` (texts), and whether to ``queue`` a labeling task over them."""

    prompt: str | list[dict[str, Any]]
    responses: list[str] = Field(default_factory=list)
    dataset: str | None = None
    queue: bool = False
    overlap: int = Field(1, ge=1, le=100)
    priority: int = 0


class PromptBatch(BaseModel):
    items: list[PromptItem] = Field(..., min_length=1)
    source: str = "api"


class ExportRequest(BaseModel):
    name: str = Field(..., description="Folder name under the app's exports_root.")
    source: str = "all"
    dataset: str | None = None
    format: str = "pairs"
    test_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    min_agreement: float = Field(0.0, ge=0.0, le=1.0)


class JobRequest(BaseModel):
    command: str = Field(..., description="train, judge or loop")
    kind: str = Field("", description="train: a method (rm, dpo, ...); judge: a mode; loop: -")
    options: dict[str, Any] = Field(default_factory=dict)


class WebhookRequest(BaseModel):
    url: str
    events: list[str]


def _error(status: int, message: str) -> HTTPException:
    return HTTPException(status, message)


def build_api(services) -> FastAPI:
    """The API app over an :class:`~prefloop.annotate_app.services.AppServices` (mounted at
    ``/api`` by :func:`~prefloop.annotate_app.app.launch`)."""
    s: store.Store = services.store
    api = FastAPI(title="prefloop API", version="1", docs_url="/docs", openapi_url="/openapi.json",
                  redoc_url=None)

    @api.middleware("http")
    async def limits(request: Request, call_next):
        if request.method in ("POST", "PUT", "PATCH"):
            size = request.headers.get("content-length")
            if size is not None and (not size.isdigit() or int(size) > MAX_BODY_BYTES):
                return JSONResponse({"detail": f"the body is over {MAX_BODY_BYTES >> 20} MiB"}, 413)
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind != "application/json":
                return JSONResponse({"detail": f"Content-Type {kind or 'missing'}: send application/json"}, 415)
        return await call_next(request)

    from fastapi.exceptions import RequestValidationError

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return JSONResponse({"detail": f"field '{where}': {first.get('msg', 'invalid')}",
                             "errors": [{"field": ".".join(str(x) for x in e.get("loc", ()) if x != "body"),
                                         "reason": e.get("msg")} for e in errors[:100]]}, 422)

    @api.exception_handler(store.StoreError)
    async def store_error(request: Request, exc: store.StoreError):
        status = 404 if isinstance(exc, store.NotFoundError) else 422
        return JSONResponse({"detail": str(exc)}, status)

    def caller(role: str = "annotator"):
        def check(request: Request) -> store.Annotator:
            header = request.headers.get("authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise HTTPException(401, "send Authorization: Bearer <API key> (prefloop users key create NAME)",
                                    headers={"WWW-Authenticate": "Bearer"})
            user = s.api_keys.authenticate(token.strip())
            if user is None:
                raise HTTPException(401, "unknown, revoked or malformed API key",
                                    headers={"WWW-Authenticate": "Bearer"})
            if ROLE_RANK[user.role] < ROLE_RANK[role]:
                raise HTTPException(403, f"this needs the {role} role; the key's user is {user.role}")
            return user
        return check

    anyone, reviewer, admin = caller("annotator"), caller("reviewer"), caller("admin")

    @api.get("/v1/me")
    def me(user: store.Annotator = Depends(anyone)) -> dict[str, Any]:
        return {"id": user.id, "name": user.name, "role": user.role}

    @api.get("/v1/queue")
    def queue(user: store.Annotator = Depends(anyone)) -> dict[str, Any]:
        from prefloop.store.reports import annotator_progress

        return {"open_tasks": s.tasks.count_open(), "max_comparison_id": s.comparisons.max_id(),
                "you": annotator_progress(s, user.id)}

    @api.post("/v1/prompts")
    def add_prompts(batch: PromptBatch, user: store.Annotator = Depends(admin)) -> dict[str, Any]:
        from prefloop.store.validation import MAX_TEXT_CHARS, validate_messages

        if len(batch.items) > MAX_ITEMS:
            raise _error(413, f"field 'items': {len(batch.items)} items, more than {MAX_ITEMS}")
        errors, clean = [], []
        for i, item in enumerate(batch.items):
            try:
                msgs = ([{"role": "user", "content": item.prompt}] if isinstance(item.prompt, str)
                        else item.prompt)
                msgs = validate_messages(msgs, field_name=f"items[{i}].prompt", end_with_user=True)
                for j, r in enumerate(item.responses):
                    if not r.strip() or len(r) > MAX_TEXT_CHARS:
                        raise store.ValidationError(f"items[{i}].responses[{j}]: expected a non-empty "
                                                    f"text of at most {MAX_TEXT_CHARS} characters")
                if item.queue and len(set(item.responses)) < 2:
                    raise store.ValidationError(f"items[{i}].queue: a task needs at least 2 "
                                                "different responses")
                clean.append((item, msgs))
            except store.ValidationError as exc:
                errors.append({"index": i, "reason": str(exc)})
        if errors:
            return JSONResponse({"detail": f"{len(errors)} of {len(batch.items)} items are invalid; "
                                 "nothing was written", "errors": errors}, 422)
        out = []
        with s.atomic():
            for item, msgs in clean:
                pid = s.prompts.add([msgs], source=batch.source, dataset=item.dataset)[0]
                rids = s.responses.add([store.ResponseIn(pid, r, origin="dataset") for r in item.responses])
                task = None
                if item.queue:
                    task = s.tasks.create([store.TaskIn(pid, sorted(set(rids)), overlap=item.overlap,
                                                        priority=item.priority, reason="api")])[0]
                out.append({"prompt_id": pid, "response_ids": rids, "task_id": task})
        return {"items": out}

    @api.get("/v1/comparisons")
    def comparisons(after: int = 0, limit: int = 100, user: store.Annotator = Depends(reviewer)):
        if limit < 1 or limit > 1000:
            raise _error(422, "field 'limit': expected 1..1000")
        if after < 0:
            raise _error(422, "field 'after': expected a comparison id >= 0")
        rows = s.comparisons.page(after=after, limit=limit)
        items = [{"id": c.id, "prompt_id": c.prompt_id, "ranking": c.ranking,
                  "labeler_kind": c.labeler_kind, "labeler": c.labeler, "task_id": c.task_id,
                  "flags": c.flags, "confidence": c.confidence, "strength": c.strength,
                  "rationale": c.rationale, "created_at": c.created_at.isoformat() if c.created_at else None}
                 for c in rows]
        return {"items": items, "next_after": items[-1]["id"] if len(items) == limit else None}

    @api.post("/v1/exports")
    def create_export(req: ExportRequest, user: store.Annotator = Depends(admin)) -> dict[str, Any]:
        from prefloop.store.export import ExportOptions, export_pairs
        from prefloop.store.pairs import PairFilters

        root = services.admin.exports_root()
        target = (root / req.name.strip()).resolve()
        if not req.name.strip() or target == root or not target.is_relative_to(root):
            raise _error(422, f"field 'name': a folder name inside the exports root {root}")
        root.mkdir(parents=True, exist_ok=True)
        r = export_pairs(s, target, PairFilters(source=req.source, dataset=req.dataset,
                                                test_fraction=req.test_fraction,
                                                min_agreement=req.min_agreement),
                         ExportOptions(format=req.format))
        return _export(r.export)

    def _export(e: store.Export) -> dict[str, Any]:
        root = Path(e.path)
        files = sorted(str(p.relative_to(root)) for p in root.rglob("*")
                       if p.is_file() and "dataset" not in p.relative_to(root).parts[:1])
        return {"id": e.id, "n_pairs": e.n_pairs, "sha256": e.sha256, "filters": e.filters,
                "path": e.path, "files": files}

    @api.get("/v1/exports/{export_id}")
    def get_export(export_id: int, user: store.Annotator = Depends(reviewer)) -> dict[str, Any]:
        return _export(s.exports.get(export_id))

    @api.get("/v1/exports/{export_id}/files/{name:path}")
    def export_file(export_id: int, name: str, user: store.Annotator = Depends(reviewer)):
        e = s.exports.get(export_id)
        root = Path(e.path).resolve()
        target = (root / name).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise _error(404, f"export {export_id} has no file {name!r} (see GET /api/v1/exports/{export_id})")
        return FileResponse(target, filename=target.name)

    @api.get("/v1/runs")
    def runs(kind: str | None = None, status: str | None = None,
             user: store.Annotator = Depends(reviewer)) -> dict[str, Any]:
        s.runs.reap()
        out = [{"id": r.id, "kind": r.kind, "status": r.status, "parent_run_id": r.parent_run_id,
                "export_id": r.export_id, "started_at": r.started_at.isoformat() if r.started_at else None,
                "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                "summary": {k: v for k, v in (r.summary or {}).items() if not isinstance(v, (dict, list))}}
               for r in s.runs.list(kind=kind, status=status)]
        return {"items": out}

    @api.post("/v1/jobs")
    def start_job(req: JobRequest, user: store.Annotator = Depends(admin)) -> dict[str, Any]:
        from .errors import AppError

        try:
            pid, log = services.jobs.start(req.command, req.kind, req.options)
        except AppError as exc:
            raise _error(422, str(exc)) from None
        return {"pid": pid, "log": str(log)}

    @api.get("/v1/webhooks")
    def webhooks(user: store.Annotator = Depends(admin)) -> dict[str, Any]:
        return {"items": [{"id": w.id, "url": w.url, "events": w.events, "active": w.active}
                          for w in s.webhooks.list()]}

    @api.post("/v1/webhooks")
    def add_webhook(req: WebhookRequest, user: store.Annotator = Depends(admin)) -> dict[str, Any]:
        w, secret = s.webhooks.add(req.url, req.events)
        return {"id": w.id, "url": w.url, "events": w.events, "secret": secret}

    @api.delete("/v1/webhooks/{webhook_id}")
    def remove_webhook(webhook_id: int, user: store.Annotator = Depends(admin)) -> dict[str, Any]:
        s.webhooks.remove(webhook_id)
        return {"id": webhook_id, "active": False}

    @api.get("/v1/webhooks/deliveries")
    def deliveries(webhook_id: int | None = None, user: store.Annotator = Depends(admin)) -> dict[str, Any]:
        return {"items": [{"id": d.id, "webhook_id": d.webhook_id, "event": d.event,
                           "status": d.status, "attempts": d.attempts, "last_status": d.last_status,
                           "last_error": d.last_error} for d in s.webhooks.deliveries(webhook_id)]}

    return api
