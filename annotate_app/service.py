"""What the labeling app does, without Gradio: tasks for annotators, admin queries and actions.

The Gradio layer (:mod:`annotate_app.app`) checks the caller and calls these methods; tests call
them directly too. Nothing here imports torch: training and judge batches start as
subprocesses (``prefloop train ...``, ``prefloop judge run ...``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from prefloop.leaderboard import models_table
from prefloop.store.pairs import PairFilters, export_pairs, labeler_reliability
from prefloop.store.stats import (
    annotator_progress,
    labeling_activity,
    labeling_dashboard,
    ratings_summary,
    task_rankings,
)

from prefloop import store

from .auth import SessionGuard, caller
from .errors import AppError, InvalidSubmission
from .metrics import krippendorff_alpha, pairwise_agreement, ranking_units
from .render import edit_diff, escape, hash_unit, labels, render_conversation, render_response, shuffled

__all__ = ["AppConfig", "TaskView", "LabelingService", "FLAGS", "PAIR_CHOICES", "MAX_K", "MAX_ASPECTS"]

MAX_K = 6
MAX_ASPECTS = 6
FLAGS = ("unsafe", "unusable", "needs_expert")
PAIR_CHOICES = ("A", "B", "tie", "both_bad")
DEFAULT_GUIDELINES = """\
**Rank the responses by how well they answer the conversation's last message.**

* Prefer responses that are helpful, honest and harmless: a polite refusal beats help with harm.
* Judge the content, not the length; a short correct answer beats a long wrong one.
* *Tie* when neither is better; *Both bad* when neither is acceptable.
* Flag anything unsafe, unusable, or that needs an expert. You may fix the best response in
  *Edit the best response*: your edit is saved as a new, better response.

Keys: **1** A better, **2** B better, **3** tie, **4** both bad, **S** skip, **U** undo,
**Ctrl+Enter** submit a ranking.
"""


@dataclass
class AppConfig:
    """Labeling-app settings (``prefloop annotate --config app.yaml``)."""

    guidelines: str = DEFAULT_GUIDELINES
    lease_seconds: float = store.DEFAULT_LEASE_SECONDS
    undo_seconds: float = 60.0
    gold_rate: float = 0.0
    title: str = "prefloop labeling"
    max_failed_logins: int = 5          # wrong passwords in a row before a name is locked
    lockout_seconds: float = 900.0
    exports_root: str | None = None     # admin exports go under it (default: <store dir>/exports)
    session_hours: float = 12.0         # a login lasts this long; a password change ends it
    # qualification: a new annotator first gets this many gold tasks and reaches the queue only
    # with at least min_gold_accuracy of them right; afterwards, a rolling gold accuracy over the
    # last gold_window gold tasks below it pauses them (0: off). Needs gold tasks in the queue.
    qualification_tasks: int = 0
    min_gold_accuracy: float = 0.8
    gold_window: int = 0
    # which tasks the Review tab lists (prefloop.store.ReviewRules): min_agreement, flags,
    # gold_miss, ai_disagreement
    review: dict = field(default_factory=dict)
    # assisted labeling (off unless set): an AI label already in the store is suggested on
    # two-response tasks, shown after the annotator's choice (when: after), before it (before),
    # or before it on a random half of the tasks (random: measures anchoring); labeler: only
    # that AI labeler (a judge model, reward-model:run:ID)
    assist: dict = field(default_factory=dict)
    # per-response ratings of named aspects (UltraFeedback style), off unless set:
    # {aspects: [helpfulness, harmlessness, honesty], scale: 5, datasets: [NAME] (default all),
    #  ranking: true (also rank; false: the ranking is the order of the mean ratings)}
    ratings: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path | None) -> "AppConfig":
        """Defaults, overridden by a YAML file; ``guidelines_file`` reads markdown from a file."""
        if path is None:
            return cls()
        raw = yaml.safe_load(Path(path).read_text()) or {}
        if "guidelines_file" in raw:
            raw["guidelines"] = (Path(path).parent / raw.pop("guidelines_file")).read_text()
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise AppError(f"{path}: unknown settings {sorted(unknown)}")
        assist = raw.get("assist") or {}
        if set(assist) - {"when", "labeler"} or assist.get("when", "after") not in ("after", "before", "random"):
            raise AppError(f"{path}: assist: expected {{when: after|before|random, labeler: NAME}}, "
                           f"found {assist}")
        ratings = raw.get("ratings") or {}
        if ratings:
            aspects, scale = ratings.get("aspects"), ratings.get("scale", 5)
            if (set(ratings) - {"aspects", "scale", "datasets", "ranking"} or not aspects
                    or not isinstance(aspects, list) or len(aspects) > MAX_ASPECTS
                    or not all(isinstance(a, str) and a.strip() for a in aspects)
                    or not isinstance(scale, int) or not 2 <= scale <= 10):
                raise AppError(f"{path}: ratings: expected {{aspects: [1 to {MAX_ASPECTS} names], "
                               f"scale: 2..10, datasets: [NAME], ranking: true|false}}, found {ratings}")
        bad = set(raw.get("review") or {}) - set(store.ReviewRules.__dataclass_fields__)
        if bad:
            raise AppError(f"{path}: review: unknown settings {sorted(bad)}; known: "
                           f"{sorted(store.ReviewRules.__dataclass_fields__)}")
        return cls(**raw)

    @property
    def review_rules(self) -> store.ReviewRules:
        return store.ReviewRules(**(self.review or {}))


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

    @property
    def k(self) -> int:
        return len(self.labels)

    def id_of(self, label: str) -> int:
        if label not in self.labels:
            raise InvalidSubmission(f"unknown response label {label!r}; labels are {self.labels}")
        return self.response_ids[self.labels.index(label)]


class LabelingService:
    """Annotator and admin operations on one store."""

    def __init__(self, s: store.Store, config: AppConfig | None = None):
        self.store = s
        self.config = config or AppConfig()
        self.jobs: dict[int, subprocess.Popen] = {}
        self.sessions = SessionGuard(self.config.session_hours * 3600.0)

    # ------------------------------------------------------------------ callers
    def authorize(self, request, role: str | None = None) -> store.Annotator:
        """The logged-in, active annotator behind a Gradio request (``role="admin"``: only
        admins), whose session is neither older than ``session_hours`` nor from before a
        password change. Raises :class:`~prefloop.annotate_app.errors.NotAuthorized`."""
        annotator = caller(self.store, request, role)
        self.sessions.check(request, annotator)
        return annotator

    # ------------------------------------------------------------------ annotators
    def current_task(self, annotator: store.Annotator) -> TaskView | None:
        """The annotator's leased task, or the next one (one store transaction)."""
        with self.store.atomic():
            return self.next_task(annotator)

    def submit_and_next(self, annotator: store.Annotator, task_id: int, *, choice: str | None = None,
                        ranks: dict[str, int | None] | None = None, rationale: str = "",
                        flags: list[str] | None = None, edit: str = "",
                        ratings: dict[str, dict[str, Any]] | None = None) -> tuple[int, TaskView | None]:
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
                                       flags=flags, edit=edit, ratings=ratings)
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
        pauses them. A paused annotator's queue is closed until an admin re-enables them."""
        cfg = self.config
        if annotator.role != "annotator" or not (cfg.qualification_tasks or cfg.gold_window):
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
        return None, False

    def next_task(self, annotator: store.Annotator) -> TaskView | None:
        """The annotator's current or next task, or ``None`` if nothing is left for them (or
        their queue is paused: :meth:`gate`)."""
        paused, gold_only = self.gate(annotator)
        if paused:
            return None
        lt = self.store.tasks.lease_next(annotator.id, lease_seconds=self.config.lease_seconds,
                                        gold_rate=self.config.gold_rate, gold_only=gold_only)
        if lt is None:
            return None
        by_id = {r.id: r for r in lt.responses}
        order = shuffled([r.id for r in lt.responses], annotator.id, lt.task.id)
        view = TaskView(lt.task.id, labels(len(order)), order, [by_id[i].text for i in order],
                        render_conversation(lt.prompt.messages),
                        [render_response(by_id[i].text) for i in order], lt.task.gold_ranking is not None,
                        annotator_progress(self.store, annotator.id), lt.task.prompt_id,
                        lt.assignment.leased_at, annotator.id)
        self._suggest(view, annotator)
        self._rating_mode(view, lt.prompt.dataset)
        return view

    def _rating_mode(self, view: TaskView, dataset: str | None) -> None:
        r = self.config.ratings
        if r and (r.get("datasets") is None or dataset in r["datasets"]):
            view.aspects = [a.strip() for a in r["aspects"]]
            view.ranked = bool(r.get("ranking", True))

    def _check_ratings(self, view: TaskView, ratings: dict[str, dict[str, Any]] | None) -> dict[int, dict[str, int]] | None:
        """Per-label ratings -> per-response-id ratings, every aspect of every response given,
        each an integer in 1..scale. Raises InvalidSubmission."""
        if not view.aspects:
            return None
        scale = int(self.config.ratings.get("scale", 5))
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
        if not assist or view.k != 2 or view.gold:     # gold stays a clean test of the annotator
            return None
        found = self.store.comparisons.ai_suggestion(view.prompt_id, view.response_ids,
                                                     labeler=assist.get("labeler"))
        if found is None:
            return None
        best, labeler = found
        when = assist.get("when", "after")
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
                    ratings: dict[str, dict[str, Any]] | None = None) -> int:
        """Label a 2-response task: ``A``, ``B`` (better), ``tie`` or ``both_bad`` (a tie
        flagged ``both_bad``: not a ranking)."""
        if choice not in PAIR_CHOICES:
            raise InvalidSubmission(f"choice {choice!r}: expected one of {PAIR_CHOICES}")
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
        return self._submit(annotator, view, groups, rationale, extra, edit, ratings)

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
                flags: list[str], edit: str, ratings: dict[str, dict[str, Any]] | None = None) -> int:
        bad = [f for f in flags if f not in FLAGS + ("both_bad", "from_ratings")]
        if bad:
            raise InvalidSubmission(f"unknown flags {bad}; flags are {list(FLAGS)}")
        ranking = [[view.id_of(lab) for lab in g] for g in groups]
        rated = self._check_ratings(view, ratings)        # before anything is written
        duration = int((store.utcnow() - view.leased_at).total_seconds() * 1000)
        with self.store.atomic():
            return self._record(annotator, view, ranking, rationale, flags, edit, rated, duration)

    def _record(self, annotator, view: TaskView, ranking, rationale, flags, edit, rated, duration) -> int:
        """The submission's comparison, its ratings and an edit's comparison (one transaction)."""
        prompt_id = view.prompt_id
        cid = self.store.comparisons.record(
            prompt_id, ranking, labeler_kind="human", task_id=view.task_id,
            annotator_id=annotator.id, rationale=rationale.strip() or None, flags=flags,
            duration_ms=duration, suggestion=self._suggest(view, annotator))
        if rated:
            self.store.comparisons.rate(cid, rated, scale=int(self.config.ratings.get("scale", 5)))
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

    # ------------------------------------------------------------------ reviewers
    def review_queue(self, limit: int = 200) -> list[dict[str, Any]]:
        """Tasks that need a second look under the config's ``review`` rules, undecided:
        ``{task, prompt, submissions, agreement, reasons}`` rows."""
        items = self.store.reviews.queue(self.config.review_rules, limit=limit)
        texts = {p.id: p for p in self.store.prompts.get_many([i.prompt_id for i in items])} if items else {}
        return [{"task": i.task_id, "prompt": _snippet(texts[i.prompt_id].messages[-1]["content"]),
                 "submissions": i.submissions,
                 "agreement": None if i.agreement is None else round(i.agreement, 2),
                 "reasons": ", ".join(i.reasons)} for i in items]

    def review_item(self, task_id: int) -> tuple[str, list[str]]:
        """A task as a reviewer sees it (markdown: the conversation, its responses under fixed
        labels A, B... in the task's order, every label with its labeler, rationale and
        flags, the gold ranking and an earlier decision), and the labels."""
        item = self.store.reviews.item(task_id, self.config.review_rules)
        prompt = self.store.prompts.get(item.prompt_id)
        texts = {r.id: r.text for r in self.store.responses.get_many(item.response_ids)}
        labs = labels(len(item.response_ids))
        name = dict(zip(item.response_ids, labs))
        show = lambda ranking: " > ".join(" = ".join(name.get(r, f"#{r}") for r in g)  # noqa: E731
                                          for g in ranking)
        parts = [f"### Task {task_id}" + (f" - needs review: {', '.join(item.reasons)}" if item.reasons else ""),
                 render_conversation(prompt.messages)]
        for lab, rid in zip(labs, item.response_ids):
            parts.append(f"**Response {lab}**\n\n{escape(texts[rid])}")
        if item.gold_ranking:
            parts.append(f"**Gold ranking:** {show(item.gold_ranking)}")
        rows = ["| labeler | kind | ranking | flags | rationale | seconds |", "|---|---|---|---|---|---|"]
        for c in item.labels:
            secs = "" if c.duration_ms is None else f"{c.duration_ms / 1000:.0f}"
            rows.append(f"| {escape(c.labeler or '')} | {c.labeler_kind} | {show(c.ranking)} | "
                        f"{', '.join(c.flags)} | {escape((c.rationale or '').replace(chr(10), ' '))[:300]} | {secs} |")
        parts.append("**Labels**\n\n" + ("\n".join(rows) if item.labels else "none yet"))
        return "\n\n".join(parts), labs

    def _parse_ranking(self, task_id: int, text: str) -> list[list[int]]:
        task = self.store.tasks.get(task_id)
        labs = labels(len(task.response_ids))
        by_label = dict(zip(labs, task.response_ids))
        groups = []
        for part in (text or "").replace(" ", "").upper().split(">"):
            group = [x for x in part.split("=") if x]
            unknown = [x for x in group if x not in by_label]
            if unknown or not group:
                raise InvalidSubmission(f"final ranking {text!r}: write it like A > B or A = B with "
                                        f"the labels {', '.join(labs)}")
            groups.append([by_label[x] for x in group])
        if sorted(r for g in groups for r in g) != sorted(task.response_ids):
            raise InvalidSubmission(f"final ranking {text!r}: rank each of {', '.join(labs)} once")
        return groups

    def adjudicate(self, reviewer: store.Annotator, task_id: int, ranking: str, note: str = "") -> str:
        """Record the final ranking (``"A > B"``, ``"A = B"``) of a task; returns a message."""
        groups = self._parse_ranking(task_id, ranking)
        reasons = self.store.reviews.item(task_id, self.config.review_rules).reasons
        r = self.store.reviews.decide(task_id, reviewer.id, "adjudicated", ranking=groups,
                                      note=note, reasons=reasons)
        return f"Task {task_id}: final ranking saved (comparison {r.comparison_id})."

    def mark_ambiguous(self, reviewer: store.Annotator, task_id: int, note: str = "") -> str:
        """Mark a task ambiguous: its pairs are left out of exports (and counted)."""
        reasons = self.store.reviews.item(task_id, self.config.review_rules).reasons
        self.store.reviews.decide(task_id, reviewer.id, "ambiguous", note=note, reasons=reasons)
        return f"Task {task_id}: marked ambiguous; its pairs are left out of exports."

    def paused_reason(self, annotator: store.Annotator) -> str | None:
        """Why the annotator's queue is closed, if it is."""
        return self.store.annotators.get_by_id(annotator.id).paused_reason

    # ------------------------------------------------------------------ admin
    def activity(self) -> dict[str, list[dict[str, Any]]]:
        """Submissions per hour, agreement over time and the queue's burn-down (48 hours);
        see :func:`prefloop.store.stats.labeling_activity`."""
        return labeling_activity(self.store)

    def ratings(self) -> list[dict[str, Any]]:
        """Per-response ratings by dataset and aspect (:func:`prefloop.store.stats.ratings_summary`)."""
        return ratings_summary(self.store)

    def people(self) -> list[dict[str, Any]]:
        """Users with their role, qualification, pause reason and gold accuracy."""
        gold = self.store.reviews.gold_tally()
        return [{"user": a.name, "role": a.role, "active": a.active,
                 "qualified": "" if a.qualified_at is None else a.qualified_at.strftime("%Y-%m-%d %H:%M"),
                 "gold": "{}/{}".format(*gold[a.id]) if a.id in gold else "",
                 "paused": a.paused_reason or ""} for a in self.store.annotators.list()]

    def reenable(self, name: str) -> str:
        """Re-open a paused annotator's queue (qualified now, rolling gold window restarted)."""
        a = self.store.annotators.get((name or "").strip())
        self.store.annotators.set_qualification(a.id, reenable=True)
        return f"{a.name} re-enabled" + (f" (was paused: {a.paused_reason})" if a.paused_reason else "")

    def dashboard(self) -> dict[str, Any]:
        """Progress per annotator and dataset, inter-annotator and human-vs-AI agreement."""
        from prefloop.judge.agreement import (
            judge_agreement,  # no torch: store queries only
        )

        board = labeling_dashboard(self.store)
        units = ranking_units(task_rankings(self.store))
        board["agreement"] = {"krippendorff_alpha": krippendorff_alpha(units),
                              "pairwise_agreement": pairwise_agreement(units),
                              "units_with_overlap": sum(len(u) >= 2 for u in units)}
        ai = sorted({row["labeler"] for row in _ai_labelers(self.store)})
        board["human_vs_ai"] = []
        for name in ai:
            m = judge_agreement(self.store, name)["all"]
            board["human_vs_ai"].append({"ai_labeler": name, "pairs": m["pairs"],
                                         "accuracy": m["accuracy"], "kappa": m["kappa"]})
        return board

    def models(self) -> list[dict[str, Any]]:
        """The Models view: one row per evaluated model version (Bradley-Terry rating on the Elo
        scale with its 95% CI and votes, people's and AI's ratings, parent run, round, KL to the
        reference, mean length); see :func:`prefloop.leaderboard.models_table`."""
        return models_table(self.store)

    def labelers(self) -> list[dict[str, Any]]:
        """Per labeler (people, datasets' crowds, AI judges under a principle): votes,
        Dawid-Skene accuracy with its 95% CI, gold accuracy, agreement with the others,
        length and position bias; see :func:`prefloop.store.pairs.labeler_reliability`."""
        r2 = lambda v: None if v is None else round(v, 3)  # noqa: E731
        return [{"labeler": x.labeler, "kind": x.kind, "votes": x.votes, "accuracy": r2(x.accuracy),
                 "ci": "" if x.accuracy_low is None else f"{x.accuracy_low:.2f} .. {x.accuracy_high:.2f}",
                 "gold": r2(x.gold_accuracy), "gold_votes": x.gold_votes,
                 "agreement": r2(x.consensus_agreement), "longer_chosen": r2(x.extra.get("longer_chosen")),
                 "first_shown": r2(x.extra.get("first_shown"))}
                for x in labeler_reliability(self.store)]

    def queue(self, limit: int = 50) -> list[dict[str, Any]]:
        return [{"task": t.id, "prompt": t.prompt_id, "k": len(t.response_ids), "overlap": t.overlap,
                 "done": done, "leased": leased, "priority": t.priority,
                 "gold": t.gold_ranking is not None, "reason": t.reason or ""}
                for t, done, leased in self.store.tasks.list(limit=limit, open_only=True)]

    def add_tasks(self, *, dataset: str | None, overlap: int, priority: int, limit: int | None,
                  k: int | None = None, update: bool = False) -> store.QueueReport:
        """Queue a task per prompt with 2+ responses; tasks already queued keep their overlap
        and priority unless ``update``."""
        if overlap < 1:
            raise InvalidSubmission("overlap must be at least 1")
        return self.store.tasks.create_for_prompts(dataset=dataset or None, overlap=overlap,
                                                   priority=priority, limit=limit, k=k,
                                                   update_existing=update)

    def add_gold(self, *, dataset: str | None, limit: int | None) -> int:
        return len(self.store.tasks.create_gold(dataset=dataset or None, limit=limit))

    def exports_root(self) -> Path:
        """Where the admin page may write exports (``exports_root`` of the config, default
        ``<store dir>/exports``)."""
        root = self.config.exports_root or self.store.path.resolve().parent / "exports"
        return Path(root).resolve()

    def export(self, out: str, *, source: str = "all", min_agreement: float = 0.0,
               dataset: str | None = None, test_fraction: float = 0.0) -> str:
        """Export pairs to ``out``, a path under :meth:`exports_root` (a relative one is taken
        from there). Raises InvalidSubmission for a path outside it."""
        root = self.exports_root()
        target = (root / (out or "").strip()).resolve()
        if not out or not out.strip() or target == root or not target.is_relative_to(root):
            raise InvalidSubmission(f"export path {out!r}: give a folder name inside {root}")
        root.mkdir(parents=True, exist_ok=True)
        out = str(target)
        r = export_pairs(self.store, out, PairFilters(source=source, min_agreement=min_agreement,
                                                      dataset=dataset or None,
                                                      test_fraction=test_fraction))
        return (f"export {r.export.id}: {r.export.n_pairs} pairs ({r.n_train} train, {r.n_test} "
                f"test) -> {r.export.path}")

    JOB_KINDS = {"train": ("rm", "dpo", "sft", "ppo", "grpo"),
                 "judge": ("pairwise", "rank", "critique", "score")}

    def start_job(self, command: str, kind: str, args: dict[str, Any]) -> tuple[int, Path]:
        """Start ``prefloop train KIND ...`` or ``prefloop judge run --mode KIND ...`` in a
        subprocess (its run appears in the store); returns (pid, log file)."""
        if command not in self.JOB_KINDS or kind not in self.JOB_KINDS[command]:
            raise InvalidSubmission(f"unknown job {command} {kind}")
        argv = [sys.executable, "-m", "prefloop", "--db", str(self.store.path.resolve())]
        argv += ["train", kind] if command == "train" else ["judge", "run", "--mode", kind, "--no-progress"]
        allowed = {"model", "reward_model", "max_steps", "source", "limit", "backend", "base_url",
                   "export", "dataset"}
        for key, value in args.items():
            if value in (None, ""):
                continue
            if key not in allowed:
                raise InvalidSubmission(f"option {key} is not allowed here")
            argv += [f"--{key.replace('_', '-')}", str(value)]
        logs = self.store.path.resolve().parent / "runs" / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / f"{command}-{kind}-{time.strftime('%Y%m%d-%H%M%S')}.log"
        with open(log, "w") as f:
            proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.jobs[proc.pid] = proc
        return proc.pid, log

    def runs(self) -> list[dict[str, Any]]:
        self.store.runs.reap()
        for pid, proc in list(self.jobs.items()):  # collect finished children
            if proc.poll() is not None:
                del self.jobs[pid]
        return [{"run": r.id, "kind": r.kind, "status": r.status, "parent": r.parent_run_id,
                 "export": r.export_id,
                 "started": r.started_at.strftime("%H:%M:%S") if r.started_at else "",
                 "summary": ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                      for k, v in (r.summary or {}).items()
                                      if not isinstance(v, (dict, list)) and k != "output_dir")[:120]}
                for r in reversed(self.store.runs.list())]

    def run_metrics(self, run_id: int, names: list[str] | None = None) -> list[dict[str, Any]]:
        rows = self.store.runs.metrics(run_id)
        return [{"step": m.step, "metric": m.name, "value": m.value} for m in rows
                if names is None or m.name in names]


def _distance(a: str, b: str) -> float:
    import difflib

    return 1.0 - difflib.SequenceMatcher(a=a[:2000], b=b[:2000], autojunk=False).ratio()


def _snippet(text: str, n: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def _ai_labelers(s: store.Store) -> list[dict[str, Any]]:
    from prefloop.store.stats import store_stats

    return [r for r in store_stats(s).comparisons_by_source if r["labeler_kind"] == "ai"]
