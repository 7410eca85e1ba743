"""The reviewer's side of the labeling app, without Gradio: the review queue (tasks that the
config's ``review`` rules flag), one task with every label on it, and the decisions
(adjudicate a final ranking, or mark the task ambiguous so its pairs leave the exports); and
the Chat view's conversations, every annotator's, turn by turn."""

from __future__ import annotations

from typing import Any

from prefloop import store

from ..config import AppConfig
from ..errors import InvalidSubmission
from ..render import escape, labels, render_response, snippet

__all__ = ["ReviewService", "ReviewCounts"]

ReviewCounts = dict[str, int]


class ReviewService:
    """Reviewer operations on one store under ``config.review`` (:class:`prefloop.store.ReviewRules`)."""

    def __init__(self, s: store.Store, config: AppConfig):
        self.store, self.config = s, config

    def queue(self, limit: int = 200) -> list[dict[str, Any]]:
        """Tasks that need a second look, undecided: ``{task, prompt, submissions, agreement,
        reasons}`` rows (``prompt``: the last user turn, shortened)."""
        items = self.store.reviews.queue(self.config.review, limit=limit)
        texts = {p.id: p for p in self.store.prompts.get_many([i.prompt_id for i in items])} if items else {}
        return [{"task": i.task_id, "prompt": snippet(texts[i.prompt_id].messages[-1]["content"]),
                 "submissions": i.submissions,
                 "agreement": None if i.agreement is None else round(i.agreement, 2),
                 "reasons": ", ".join(i.reasons)} for i in items]

    def counts(self) -> ReviewCounts:
        """Decisions so far: ``{"adjudicated": n, "ambiguous": n}``."""
        return self.store.reviews.counts()

    def item(self, task_id: int) -> tuple[store.ReviewItem, store.Prompt, dict[int, str]]:
        """A task as a reviewer sees it: the review item (labels, gold ranking, reasons), its
        prompt and its responses' texts by id. Raises ``store.NotFoundError``."""
        item = self.store.reviews.item(task_id, self.config.review)
        prompt = self.store.prompts.get(item.prompt_id)
        texts = {r.id: r.text for r in self.store.responses.get_many(item.response_ids)}
        return item, prompt, texts

    def parse_ranking(self, task_id: int, text: str) -> list[list[int]]:
        """``"A > B = C"`` (the task's labels in its own order) -> tie groups of response ids.

        Raises:
            InvalidSubmission: an unknown label, an empty group, or a response left out or
                named twice.
        """
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
        groups = self.parse_ranking(task_id, ranking)
        reasons = self.store.reviews.item(task_id, self.config.review).reasons
        r = self.store.reviews.decide(task_id, reviewer.id, "adjudicated", ranking=groups,
                                      note=note, reasons=reasons)
        return f"Task {task_id}: final ranking saved (comparison {r.comparison_id})."

    def mark_ambiguous(self, reviewer: store.Annotator, task_id: int, note: str = "") -> str:
        """Mark a task ambiguous: its pairs are left out of exports (and counted)."""
        reasons = self.store.reviews.item(task_id, self.config.review).reasons
        self.store.reviews.decide(task_id, reviewer.id, "ambiguous", note=note, reasons=reasons)
        return f"Task {task_id}: marked ambiguous; its pairs are left out of exports."

    def conversations(self, limit: int = 200) -> list[dict[str, Any]]:
        """Every annotator's conversations (the Chat view), the latest first: ``{conversation,
        annotator, model, turns, updated}`` rows."""
        names = {a.id: a.name for a in self.store.annotators.list()}
        return [{"conversation": c.id, "annotator": names.get(c.annotator_id, c.annotator_id), "model": c.model,
                 "turns": n, "updated": c.updated_at.strftime("%Y-%m-%d %H:%M")}
                for c, n in self.store.conversations.list()[:limit]]

    def conversation(self, conversation_id: int) -> str:
        """A conversation as markdown, turn by turn: the message, the candidates, which one was
        chosen (and an edit). Raises ``store.NotFoundError``."""
        c = self.store.conversations.get(conversation_id)
        out = [f"### Conversation {c.id} · {c.model} · {len(c.turns)} turns"]
        for t in c.turns:
            prompt = self.store.prompts.get(t.prompt_id)
            texts = {r.id: r.text for r in self.store.responses.get_many(
                t.response_ids + ([t.chosen_response_id] if t.chosen_response_id else []))}
            out.append(f"**Turn {t.turn}.** User: {escape(snippet(prompt.messages[-1]['content'], 300))}")
            for lab, rid in zip(labels(len(t.response_ids)), t.response_ids):
                mark = " ✓ chosen" if rid == t.chosen_response_id else ""
                out.append(f"- **{lab}**{mark}: {render_response(texts[rid], limit=600)}")
            if t.chosen_response_id and t.chosen_response_id not in t.response_ids:
                out.append(f"- **edit** ✓ chosen: {render_response(texts[t.chosen_response_id], limit=600)}")
            if t.comparison_id is None:
                out.append("- *waiting for the annotator's ranking*")
        return "\n\n".join(out)
