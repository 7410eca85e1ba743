"""What other tools do through the JSON API (:mod:`prefloop.annotate_app.api`), without FastAPI:
add prompts (and queue them), page through labels, export, read runs, manage webhooks. The
routes authorize and delegate here; every write is one store transaction, and every input is
checked by the store's own rules (:mod:`prefloop.store.validation`) before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefloop import store
from prefloop.store.validation import validate_name

from ..config import AppConfig
from ..errors import InvalidItems, InvalidSubmission

__all__ = ["PlatformService", "NewPrompt", "AddedPrompt", "MAX_ITEMS"]

#: Prompts per ``add_prompts`` call.
MAX_ITEMS = 1000


@dataclass(frozen=True)
class NewPrompt:
    """A prompt to add: chat ``messages`` (ending with a user turn), its ``responses`` (texts),
    its ``dataset``, and whether to ``queue`` a labeling task over the responses."""

    messages: list[dict[str, Any]]
    responses: list[str]
    dataset: str | None = None
    queue: bool = False
    overlap: int = 1
    priority: int = 0


@dataclass(frozen=True)
class AddedPrompt:
    prompt_id: int
    response_ids: list[int]
    task_id: int | None


class PlatformService:
    """The API's operations on one store (``config``: the app's settings)."""

    def __init__(self, s: store.Store, config: AppConfig):
        self.store, self.config = s, config

    def add_prompts(self, items: list[NewPrompt], source: str = "api") -> list[AddedPrompt]:
        """Add prompts with responses, and tasks where asked, in one transaction; idempotent (the
        same content gives the same ids and no second task).

        Raises:
            InvalidSubmission: one message per bad item (``items[3].responses[0]: ...``),
                nothing written.
        """
        if len(items) > MAX_ITEMS:
            raise InvalidSubmission(f"items: at most {MAX_ITEMS} per call, found {len(items)}")
        try:
            validate_name(source, "source")
        except store.ValidationError as exc:
            raise InvalidSubmission(str(exc)) from None
        problems = self._check(items)
        if problems:
            raise InvalidItems(problems, len(items))
        out = []
        with self.store.atomic():
            for item in items:
                pid = self.store.prompts.add([item.messages], source=source, dataset=item.dataset)[0]
                rids = self.store.responses.add([store.ResponseIn(pid, r, origin="dataset") for r in item.responses])
                task = None
                if item.queue:
                    task = self.store.tasks.create([store.TaskIn(pid, sorted(set(rids)), overlap=item.overlap,
                                                                 priority=item.priority, reason="api")])[0]
                out.append(AddedPrompt(pid, rids, task))
        return out

    @staticmethod
    def _check(items: list[NewPrompt]) -> list[dict[str, Any]]:
        """Every item checked by the store's rules: ``{"index", "reason"}`` per bad item."""
        from prefloop.store.validation import validate_messages, validate_response_text

        problems = []
        for i, item in enumerate(items):
            try:
                validate_messages(item.messages, field_name=f"items[{i}].prompt")
                validate_name(item.dataset, f"items[{i}].dataset")
                for j, text in enumerate(item.responses):
                    try:
                        validate_response_text(text, 0)
                    except store.ValidationError as exc:
                        raise store.ValidationError(f"items[{i}].responses[{j}]: {str(exc).split(': ', 1)[-1]}") from None
                if item.queue and len(set(item.responses)) < 2:
                    raise store.ValidationError(f"items[{i}].queue: a task needs at least 2 different responses")
            except store.ValidationError as exc:
                problems.append({"index": i, "reason": str(exc)})
        return problems

    def comparisons(self, after: int, limit: int) -> list[store.Comparison]:
        """Labels after comparison id ``after``, at most ``limit`` (cursor pagination)."""
        return self.store.comparisons.page(after=after, limit=limit)

    def export(self, root: Path, name: str, filters: dict[str, Any], fmt: str) -> store.Export:
        """Export pairs into folder ``name`` under ``root`` (the app's exports root).

        Raises:
            InvalidSubmission: a name that is not one plain folder name inside ``root``.
        """
        from prefloop.store.export_files import ExportOptions, export_pairs
        from prefloop.store.pairs import PairFilters

        target = self._inside(root, name, "name")
        root.mkdir(parents=True, exist_ok=True)
        return export_pairs(self.store, target, PairFilters(**filters), ExportOptions(format=fmt)).export

    @staticmethod
    def _inside(root: Path, name: str, field: str) -> Path:
        """``root / name`` for a plain relative name (no NUL, at most 255 bytes a part)."""
        if not isinstance(name, str) or not name.strip():
            raise InvalidSubmission(f"{field}: a folder name inside the exports root {root}")
        try:
            validate_name(name, field, optional=False)
        except store.ValidationError as exc:
            raise InvalidSubmission(str(exc)) from None
        if any(len(part.encode()) > 255 for part in Path(name).parts):
            raise InvalidSubmission(f"{field}: a path part longer than 255 bytes")
        target = (root / name.strip()).resolve()
        if target == root or not target.is_relative_to(root):
            raise InvalidSubmission(f"{field}: a folder name inside the exports root {root}")
        return target

    def export_file(self, export_id: int, name: str) -> Path:
        """The path of one file of an export.

        Raises:
            store.NotFoundError: no such export, or no such file in it.
        """
        e = self.store.exports.get(export_id)
        root = Path(e.path).resolve()
        try:
            target = self._inside(root, name, "file")
        except InvalidSubmission:
            target = None
        if target is None or not target.is_file():
            raise store.NotFoundError(f"export {export_id} has no file {name!r} (see GET /api/v1/exports/{export_id})")
        return target

    def export_files(self, e: store.Export) -> list[str]:
        root = Path(e.path)
        return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                      if p.is_file() and "dataset" not in p.relative_to(root).parts[:1])

    def runs(self, kind: str | None, status: str | None) -> list[store.Run]:
        self.store.runs.reap()
        return self.store.runs.list(kind=kind, status=status)
