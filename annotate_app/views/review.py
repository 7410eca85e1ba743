"""The Review tab (reviewers and admins): the queue of tasks the ``review`` rules flag, one task
with every label on it, and the decision (a final ranking, or ambiguous)."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from ..errors import AppError
from ..handlers import handler
from ..render import render_review_item
from ..services import AppServices

__all__ = ["ReviewView"]


class ReviewView:
    """The Review tab's components (built inside the current ``gr.Tab``) and its handlers."""

    def __init__(self, app: AppServices):
        self.app = app
        self.note = gr.Markdown("", elem_id="pf-review-note")
        self.queue_df = gr.Dataframe(label="Tasks that need a second look (click a row to open it)",
                                     interactive=False, visible=False, elem_id="pf-review-queue")
        with gr.Row():
            self.task = gr.Number(None, label="Task", precision=0, elem_id="pf-review-task", scale=0,
                                  min_width=120)
            self.b_open = gr.Button("Open", size="sm", scale=0, elem_id="pf-review-open")
            self.b_refresh = gr.Button("Refresh", size="sm", scale=0, elem_id="pf-review-refresh")
        self.item_md = gr.Markdown("", elem_id="pf-review-item")
        with gr.Row():
            self.ranking = gr.Textbox(label="Final ranking (A > B, A = B, A > B = C)", scale=1,
                                      elem_id="pf-review-ranking")
            self.note_text = gr.Textbox(label="Note (optional)", scale=2, elem_id="pf-review-note-text")
        with gr.Row():
            self.b_save = gr.Button("Save final ranking", variant="primary", elem_id="pf-review-save")
            self.b_ambiguous = gr.Button("Mark ambiguous (left out of exports)", elem_id="pf-review-ambiguous")
        self.status = gr.Markdown("", elem_id="pf-review-status")
        self.chats_df = gr.Dataframe(label="Conversations in the Chat view (click a row to read it)",
                                     interactive=False, visible=False, elem_id="pf-review-chats")
        self.chat_md = gr.Markdown("", elem_id="pf-review-chat")

    def _listing(self):
        rows = self.app.review.queue()
        c = self.app.review.counts()
        note = (f"**{len(rows)} tasks need a second look** ({c['adjudicated']} adjudicated and "
                f"{c['ambiguous']} marked ambiguous so far)." if rows else
                f"**Nothing to review.** No task matches the review rules "
                f"({c['adjudicated']} adjudicated, {c['ambiguous']} ambiguous so far).")
        return note, gr.update(value=pd.DataFrame(rows), visible=bool(rows))

    def _chats(self):
        rows = self.app.review.conversations()
        return gr.update(value=pd.DataFrame(rows), visible=bool(rows))

    def _item(self, task_id: int) -> str:
        return render_review_item(task_id, *self.app.review.item(task_id))

    def wire(self, tab: gr.Tab) -> None:
        """Register the tab's events (inside the Blocks context); ``tab``: the Review tab."""
        app, review = self.app, self.app.review

        @handler(app, role="reviewer")
        def review_queue(user):
            return self._listing()

        @handler(app, role="reviewer")
        def review_open(user, task_id):
            if not task_id:
                raise AppError("give a task id (or click a row of the queue)")
            return self._item(int(task_id)), "", "", ""

        @handler(app, role="reviewer")
        def review_pick(user, evt: gr.SelectData):
            row = evt.row_value if evt is not None else None
            if not row:
                raise AppError("click a row of the queue")
            return int(row[0]), self._item(int(row[0])), "", "", ""

        @handler(app, role="reviewer")
        def review_adjudicate(user, task_id, ranking_v, note_v):
            if not task_id:
                raise AppError("open a task first")
            return (review.adjudicate(user, int(task_id), ranking_v or "", note_v or ""), *self._listing())

        @handler(app, role="reviewer")
        def review_ambiguous(user, task_id, ranking_v, note_v):
            if not task_id:
                raise AppError("open a task first")
            return (review.mark_ambiguous(user, int(task_id), note_v or ""), *self._listing())

        @handler(app, role="reviewer")
        def review_chats(user):
            return self._chats()

        @handler(app, role="reviewer")
        def review_chat(user, evt: gr.SelectData):
            row = evt.row_value if evt is not None else None
            if not row:
                raise AppError("click a row of the conversations")
            return review.conversation(int(row[0]))

        tab.select(review_chats, None, [self.chats_df], api_name="review_chats")
        self.chats_df.select(review_chat, None, [self.chat_md], api_name=False)
        listing = [self.note, self.queue_df]
        decided = [self.status, self.note, self.queue_df]
        form = [self.task, self.ranking, self.note_text]
        tab.select(review_queue, None, listing, api_name="review_queue")
        self.b_refresh.click(review_queue, None, listing, api_name=False)
        self.b_open.click(review_open, [self.task], [self.item_md, self.ranking, self.note_text, self.status],
                          api_name="review_open")
        self.queue_df.select(review_pick, None,
                             [self.task, self.item_md, self.ranking, self.note_text, self.status],
                             api_name=False)
        self.b_save.click(review_adjudicate, form, decided, api_name="review_adjudicate")
        self.b_ambiguous.click(review_ambiguous, form, decided, api_name="review_ambiguous")
