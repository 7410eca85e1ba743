"""The annotator's side of the labeling app, without Gradio: lease a task, show it in a
per-annotator random order under labels A, B..., record a pair choice, a ranking or ratings (and
an edit), skip, undo, and the qualification / rolling-gold gate.

Every method that writes runs in one store transaction; errors are
:class:`~prefloop.annotate_app.errors.InvalidSubmission` (bad input) or the store's
``LeaseError`` (a lease that ran out while others completed the task).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prefloop import store
from prefloop.store.counts import annotator_progress

from ..config import AppConfig
from ..errors import InvalidSubmission
from ..render import (
    edit_diff,
    hash_unit,
    labels,
    render_conversation,
    render_response,
    shuffled,
)
from .quality import quality_reports

__all__ = ["TaskView", "LabelingService", "FLAGS", "PAIR_CHOICES"]

FLAGS = ("unsafe", "unusable", "needs_expert")
PAIR_CHOICES = ("A", "B", "tie", "both_bad")


@dataclass
class TaskView:
    """A leased task as shown: responses in a per-annotator random order under labels A, B..."""

    task_id: int
    labels: list[str]
    response_ids: list[int]          # in label order
    response_texts: list[str]
    prompt_markdown: str
    response_markdown: list[str]
    gold: bool
    progress: dict[str, int] = field(default_factory=dict)
    prompt_id: int | None = None
    leased_at: datetime | None = None    # when this annotator's lease began (time per task)
    annotator_id: int | None = None      # whose screen this is (session state is bound to it)
    suggestion: str | None = None        # the AI's choice as a label (A, B, tie), when assisted
    suggestion_before: bool = False      # shown before the choice (else after it)
    aspects: list[str] = field(default_factory=list)   # rate these per response (ratings tasks)
    ranked: bool = True                  # a ranking is asked for (else it follows the ratings)
    messages: list[dict] = field(default_factory=list)   # the prompt conversation, as stored

    @property
    def k(self) -> int:
        return len(self.labels)

    def id_of(self, label: str) -> int:
        if label not in self.labels:
            raise InvalidSubmission(f"unknown response label {label!r}; labels are {self.labels}")
        return self.response_ids[self.labels.index(label)]


class LabelingService:
    """Annotator operations on one store (``config``: the app's settings)."""

    def __init__(self, s: store.Store, config: AppConfig):
        self.store, self.config = s, config

    def current_task(self, annotator: store.Annotator) -> TaskView | None:
        """The annotator's leased task, or the next one (one store transaction)."""
        with self.store.atomic():
            return self.next_task(annotator)

    def submit_and_next(self, annotator: store.Annotator, task_id: int, *, choice: str | None = None,
                        ranks: dict[str, int | None] | None = None, rationale: str = "",
                        flags: list[str] | None = None, edit: str = "",
                        ratings: dict[str, dict[str, Any]] | None = None,
                        strength: str | None = None) -> tuple[int, TaskView | None]:
        """Record a submission (a pair ``choice``, per-label ``ranks``, or for a ratings-only
        task only ``ratings``; ``ratings``: ``{label: {aspect: value}}`` on ratings tasks) and
        lease the next task, in one store transaction: ``(comparison id, next task or None)``.

        Raises:
            InvalidSubmission: bad choice, ranks, flags, or a task that is not the caller's.
            store.LeaseError: the lease expired and others completed the task.
        """
        with self.store.atomic():
            if ranks is not None:
                cid = self.submit_ranks(annotator, task_id, ranks, rationale=rationale,
                                        flags=flags, edit=edit, ratings=ratings)
            elif choice is None and ratings is not None:
                cid = self.submit_ratings(annotator, task_id, ratings, rationale=rationale, flags=flags)
            else:
                cid = self.submit_pair(annotator, task_id, choice or "", rationale=rationale,
                                       flags=flags, edit=edit, ratings=ratings, strength=strength)
            return cid, self.next_task(annotator)

    def skip_and_next(self, annotator: store.Annotator, task_id: int | None) -> TaskView | None:
        """Skip the task on screen (if any) and lease the next, in one transaction."""
        with self.store.atomic():
            if task_id is not None:
                self.skip(annotator, task_id)
            return self.next_task(annotator)

    def undo_and_next(self, annotator: store.Annotator, comparison_id: int) -> TaskView | None:
        """Withdraw the last submission and show its task again, in one transaction."""
        with self.store.atomic():
            self.undo(annotator, comparison_id)
            return self.next_task(annotator)

    def gate(self, annotator: store.Annotator) -> tuple[str | None, bool]:
        """Qualification and hidden-gold checks before leasing: ``(paused reason or None,
        gold only)``. Annotators (not reviewers or admins) first answer
        ``qualification_tasks`` gold tasks; at least ``min_gold_accuracy`` of them right
        qualifies them, fewer pauses them; once qualified, a rolling accuracy over their last
        ``gold_window`` gold tasks (since an admin last re-enabled them) below the threshold
        pauses them; with the ``quality`` rules' ``pause``, so does a quality flag
        (:mod:`.quality`). A paused annotator's queue is closed until an admin re-enables them."""
        cfg = self.config
        quality = cfg.quality is not None and cfg.quality.pause
        if annotator.role != "annotator" or not (cfg.qualification_tasks or cfg.gold_window or quality):
            return None, False
        a = self.store.annotators.get_by_id(annotator.id)
        if a.paused_reason:
            return a.paused_reason, False
        thr = cfg.min_gold_accuracy
        if cfg.qualification_tasks and a.qualified_at is None:
            results = self.store.reviews.gold_results(a.id)
            n = cfg.qualification_tasks
            if len(results) < n:
                return None, True
            right = sum(results[:n])
            if right / n >= thr:
                self.store.annotators.set_qualification(a.id, qualified=True)
            else:
                reason = (f"qualification: {right} of {n} gold tasks right ({right / n:.0%}), "
                          f"below {thr:.0%}")
                self.store.annotators.set_qualification(a.id, paused_reason=reason)
                return reason, False
        if cfg.gold_window:
            recent = self.store.reviews.gold_results(a.id, since=a.gold_since)[-cfg.gold_window:]
            if len(recent) >= cfg.gold_window and sum(recent) / len(recent) < thr:
                reason = (f"gold accuracy {sum(recent)} of the last {len(recent)} gold tasks "
                          f"({sum(recent) / len(recent):.0%}), below {thr:.0%}")
                self.store.annotators.set_qualification(a.id, paused_reason=reason)
                return reason, False
        if quality:
            flagged = [r for r in quality_reports(self.store, cfg.quality, a.id, since=a.gold_since) if r.flags]
            if flagged:
                reason = "quality: " + "; ".join(flagged[0].flags)
                self.store.annotators.set_qualification(a.id, paused_reason=reason)
                return reason, False
        return None, False

    def next_task(self, annotator: store.Annotator) -> TaskView | None:
        """The annotator's current or next task, or ``None`` if nothing is left for them (or
        their queue is paused: :meth:`gate`)."""
        paused, gold_only = self.gate(annotator)
        if paused:
            return None
        lt = self.store.tasks.lease_next(annotator.id, lease_seconds=self.config.lease_seconds,
                                        gold_rate=self.config.gold_rate, gold_only=gold_only)
        return None if lt is None else self._task_view(lt, annotator)

    def lease_batch(self, annotator: store.Annotator, n: int) -> list[TaskView]:
        """Up to ``n`` tasks leased to the annotator at once (bulk labeling through the API),
        after the same qualification and gold checks as :meth:`next_task`; each is submitted
        with :meth:`submit_pair` (or :meth:`submit_ranks`) on its own."""
        with self.store.atomic():
            paused, gold_only = self.gate(annotator)
            if paused:
                return []
            leased = self.store.tasks.lease_many(annotator.id, n, lease_seconds=self.config.lease_seconds,
                                                 gold_rate=self.config.gold_rate, gold_only=gold_only)
            return [self._task_view(lt, annotator) for lt in leased]

    def _task_view(self, lt, annotator: store.Annotator) -> TaskView:
        """A leased task as this annotator sees it (their random order, progress, assistance)."""
        by_id = {r.id: r for r in lt.responses}
        order = shuffled([r.id for r in lt.responses], annotator.id, lt.task.id)
        view = TaskView(lt.task.id, labels(len(order)), order, [by_id[i].text for i in order],
                        render_conversation(lt.prompt.messages),
                        [render_response(by_id[i].text) for i in order], lt.task.gold_ranking is not None,
                        annotator_progress(self.store, annotator.id), lt.task.prompt_id,
                        lt.assignment.leased_at, annotator.id, messages=list(lt.prompt.messages))
        self._suggest(view, annotator)
        self._rating_mode(view, lt.prompt.dataset)
        return view

    def _rating_mode(self, view: TaskView, dataset: str | None) -> None:
        r = self.config.ratings
        if r is not None and r.applies_to(dataset):
            view.aspects = list(r.aspects)
            view.ranked = r.ranking

    def _check_ratings(self, view: TaskView, ratings: dict[str, dict[str, Any]] | None) -> dict[int, dict[str, int]] | None:
        """Per-label ratings -> per-response-id ratings, every aspect of every response given,
        each an integer in 1..scale. Raises InvalidSubmission."""
        if not view.aspects:
            return None
        scale = self.config.ratings.scale
        out: dict[int, dict[str, int]] = {}
        for lab in view.labels:
            given = (ratings or {}).get(lab) or {}
            row = {}
            for aspect in view.aspects:
                value = given.get(aspect)
                try:
                    value = int(value)
                except (TypeError, ValueError):
                    raise InvalidSubmission(f"rate {aspect} of response {lab} from 1 to {scale}") from None
                if not 1 <= value <= scale:
                    raise InvalidSubmission(f"{aspect} of response {lab}: {value} is outside 1..{scale}")
                row[aspect] = value
            out[view.id_of(lab)] = row
        return out

    def submit_ratings(self, annotator: store.Annotator, task_id: int,
                       ratings: dict[str, dict[str, Any]], *, rationale: str = "",
                       flags: list[str] | None = None) -> int:
        """Label a ratings-only task (``ratings: {ranking: false}``): the ranking is the order
        of the responses' mean ratings (equal means tie); the ratings are stored with it."""
        view = self._view(annotator, task_id)
        if not view.aspects or view.ranked:
            raise InvalidSubmission(f"task {task_id} asks for a ranking: rank the responses")
        by_id = self._check_ratings(view, ratings)
        mean = {lab: sum(by_id[view.id_of(lab)].values()) / len(view.aspects) for lab in view.labels}
        levels = sorted(set(mean.values()), reverse=True)
        groups = [[lab for lab in view.labels if mean[lab] == lvl] for lvl in levels]
        return self._submit(annotator, view, groups, rationale, list(flags or []) + ["from_ratings"],
                            "", ratings)

    def _suggest(self, view: TaskView, annotator: store.Annotator) -> dict | None:
        """Fill in ``view.suggestion`` from the store's AI labels (assisted labeling); returns
        what a submission records about it, or ``None`` (assist off, no AI label, k > 2)."""
        assist = self.config.assist
        if assist is None or view.k != 2 or view.gold:     # gold stays a clean test of the annotator
            return None
        found = self.store.comparisons.ai_suggestion(view.prompt_id, view.response_ids,
                                                     labeler=assist.labeler)
        if found is None:
            return None
        best, labeler = found
        when = assist.when
        before = when == "before" or (when == "random" and
                                      hash_unit(annotator.id, view.task_id) < 0.5)
        view.suggestion = "tie" if best is None else view.labels[view.response_ids.index(best)]
        view.suggestion_before = before
        return {"response_id": best, "labeler": labeler, "shown_before": before}

    def _view(self, annotator: store.Annotator, task_id: int) -> TaskView:
        """The submitted task as the annotator saw it (labels -> response ids), checking that
        they hold its lease. Lighter than :meth:`next_task`: no rendering, no new lease."""
        with self.store.atomic():
            leases = [a for a in self.store.tasks.assignments(annotator_id=annotator.id, task_id=task_id)
                      if a.state == "leased"]
            if not leases:
                raise InvalidSubmission(f"task {task_id} is not your current task; reload to get it")
            task = self.store.tasks.get(task_id)
            order = shuffled(task.response_ids, annotator.id, task_id)
            texts = {r.id: r.text for r in self.store.responses.get_many(order)}
            dataset = self.store.prompts.get(task.prompt_id).dataset if self.config.ratings else None
        view = TaskView(task_id, labels(len(order)), order, [texts[i] for i in order], "", [],
                        task.gold_ranking is not None, prompt_id=task.prompt_id,
                        leased_at=leases[0].leased_at)
        self._rating_mode(view, dataset)
        return view

    def submit_pair(self, annotator: store.Annotator, task_id: int, choice: str, *,
                    rationale: str = "", flags: list[str] | None = None, edit: str = "",
                    ratings: dict[str, dict[str, Any]] | None = None,
                    strength: str | None = None) -> int:
        """Label a 2-response task: ``A``, ``B`` (better), ``tie`` or ``both_bad`` (a tie
        flagged ``both_bad``: not a ranking). ``strength`` (app setting ``strength: true``): how
        much better ``A`` or ``B`` is, one of :data:`prefloop.store.STRENGTHS`."""
        if choice not in PAIR_CHOICES:
            raise InvalidSubmission(f"choice {choice!r}: expected one of {PAIR_CHOICES}")
        if strength is not None:
            if not self.config.strength:
                raise InvalidSubmission("strength: this app does not ask for it (setting strength: false)")
            if strength not in store.STRENGTHS:
                raise InvalidSubmission(f"strength {strength!r}: expected one of {store.STRENGTHS}")
            if choice not in ("A", "B"):
                raise InvalidSubmission("strength: only for a choice of A or B")
        view = self._view(annotator, task_id)
        if view.k != 2:
            raise InvalidSubmission(f"task {task_id} has {view.k} responses: rank them instead")
        extra = list(flags or [])
        if choice in ("A", "B"):
            other = "B" if choice == "A" else "A"
            groups = [[choice], [other]]
        else:
            groups = [["A", "B"]]
            if choice == "both_bad":
                extra.append("both_bad")
        return self._submit(annotator, view, groups, rationale, extra, edit, ratings, strength)

    def submit_ranks(self, annotator: store.Annotator, task_id: int, ranks: dict[str, int | None], *,
                     rationale: str = "", flags: list[str] | None = None, edit: str = "",
                     ratings: dict[str, dict[str, Any]] | None = None) -> int:
        """Label a task by rank per response label (1 = best; equal ranks are ties).

        Raises:
            InvalidSubmission: a response without a rank, or ranks with gaps (1, 3).
        """
        view = self._view(annotator, task_id)
        missing = [lab for lab in view.labels if ranks.get(lab) in (None, "")]
        if missing:
            raise InvalidSubmission(f"give every response a rank: {', '.join(missing)} "
                                    "has none (equal ranks mean a tie)")
        values = {lab: int(ranks[lab]) for lab in view.labels}
        levels = sorted(set(values.values()))
        if levels != list(range(1, len(levels) + 1)):
            raise InvalidSubmission(f"ranks must be 1, 2, ... without gaps; got {sorted(values.values())}")
        groups = [[lab for lab in view.labels if values[lab] == lvl] for lvl in levels]
        return self._submit(annotator, view, groups, rationale, list(flags or []), edit, ratings)

    def _submit(self, annotator, view: TaskView, groups: list[list[str]], rationale: str,
                flags: list[str], edit: str, ratings: dict[str, dict[str, Any]] | None = None,
                strength: str | None = None) -> int:
        bad = [f for f in flags if f not in FLAGS + ("both_bad", "from_ratings")]
        if bad:
            raise InvalidSubmission(f"unknown flags {bad}; flags are {list(FLAGS)}")
        ranking = [[view.id_of(lab) for lab in g] for g in groups]
        rated = self._check_ratings(view, ratings)        # before anything is written
        duration = int((store.utcnow() - view.leased_at).total_seconds() * 1000)
        with self.store.atomic():
            return self._record(annotator, view, ranking, rationale, flags, edit, rated, duration,
                                strength)

    def _record(self, annotator, view: TaskView, ranking, rationale, flags, edit, rated, duration,
                strength: str | None = None) -> int:
        """The submission's comparison, its ratings and an edit's comparison (one transaction)."""
        prompt_id = view.prompt_id
        cid = self.store.comparisons.record(
            prompt_id, ranking, labeler_kind="human", task_id=view.task_id,
            annotator_id=annotator.id, rationale=rationale.strip() or None, flags=flags,
            duration_ms=duration, suggestion=self._suggest(view, annotator), strength=strength)
        if rated:
            self.store.comparisons.rate(cid, rated, scale=self.config.ratings.scale)
        edit = (edit or "").strip()
        best = ranking[0][0]
        if edit and edit != view.response_texts[view.response_ids.index(best)]:
            new_id, = self.store.responses.add([store.ResponseIn(
                prompt_id, edit, origin="human_edit", model=None, parent_response_id=best,
                gen_params={"editor": annotator.name, "task_id": view.task_id})])
            self.store.comparisons.record(prompt_id, [[new_id], [best]], labeler_kind="human",
                                          annotator_id=annotator.id, rationale="human edit",
                                          dedup_key=f"edit:{view.task_id}:{annotator.id}")
        return cid

    def preview_edit(self, view: TaskView, edit: str) -> str:
        """The edit as a word diff (markdown/HTML, escaped) against the response it most likely
        improves: on two-response tasks the closer one (difflib's similarity ratio), else
        response A."""
        edit = (edit or "").strip()
        if not edit or view is None:
            return ""
        original = view.response_texts[0]
        if len(view.response_texts) == 2:
            original = min(view.response_texts, key=lambda t: _distance(t, edit))
        return "**Your edit, against the response it is closest to:**\n\n" + edit_diff(original, edit)

    def skip(self, annotator: store.Annotator, task_id: int) -> None:
        self.store.tasks.skip(task_id, annotator.id)

    def undo(self, annotator: store.Annotator, comparison_id: int) -> int:
        """Withdraw the annotator's last submission (within ``undo_seconds``); returns the task
        id, which is leased to them again."""
        return self.store.comparisons.undo(comparison_id, annotator.id,
                                          window_seconds=self.config.undo_seconds,
                                          lease_seconds=self.config.lease_seconds)

    def paused_reason(self, annotator: store.Annotator) -> str | None:
        """Why the annotator's queue is closed, if it is."""
        return self.store.annotators.get_by_id(annotator.id).paused_reason


def _distance(a: str, b: str) -> float:
    return 1.0 - difflib.SequenceMatcher(a=a[:2000], b=b[:2000], autojunk=False).ratio()
