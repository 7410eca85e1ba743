"""The Label tab: one task at a time, pair buttons or rank radios (and rating radios), the
rationale, flags and edit, skip / undo / next. Every handler is wrapped by
:func:`~prefloop.annotate_app.handlers.handler`; the rules live in
:class:`~prefloop.annotate_app.services.labeling.LabelingService`."""

from __future__ import annotations

import json
from typing import Any

import gradio as gr

from prefloop import store

from ..config import MAX_K
from ..errors import AppError
from ..handlers import handler, owned
from ..services import FLAGS, AppServices, TaskView

__all__ = ["LabelView", "RANKS"]

RANKS = [str(i) for i in range(1, MAX_K + 1)]
#: The strength buttons' captions, in :data:`prefloop.store.STRENGTHS` order (keys 1-4).
STRENGTH_LABELS = ("Significantly better", "Better", "Slightly better", "Negligibly better / unsure")
#: Browser side of a graded choice: A/B remember the choice and show the strength buttons
#: (``window.pfPendingShow`` of the app's keyboard script); Escape or a strength button ends it.
PENDING_JS = "() => { window.pfPendingShow(true); window.pfPending = '%s'; " \
             "const n = document.getElementById('pf-pending-note'); " \
             "if (n) n.textContent = 'How much better is %s? Press 1-4 (Esc: back).'; }"
STRENGTH_JS = ("(...v) => { v[v.length - 1] = window.pfPending || ''; "
               "window.pfPendingShow(false); return v; }")


def _layout(view: TaskView | None):
    """What decides which components show: between two views with the same layout only values
    change, and plain values cost Gradio far less than updates (each update builds a new
    component: about 0.2-0.5 ms of the event loop apiece)."""
    return None if view is None else (view.k, view.ranked, tuple(view.aspects or ()))


def _hint(view: TaskView | None) -> str:
    if view is None or not (view.suggestion and view.suggestion_before):
        return ""
    return (f"**AI suggestion:** {'a tie' if view.suggestion == 'tie' else view.suggestion + ' is better'} "
            "(your own judgment counts)")


def _on_screen(view, user):
    """The view, if the task on screen is ``user``'s; raises AppError otherwise."""
    if owned(view, user) is None:
        raise AppError("no task on screen; reload the page")
    return view


class LabelView:
    """The Label tab's components (built inside the current ``gr.Tab``) and its handlers."""

    def __init__(self, app: AppServices):
        self.app = app
        cfg = app.config
        # rating radios per response slot: only as many as the configured aspects (each
        # component costs every event a serialization: 36 unused radios made submit -> next
        # 60% slower)
        self.n_asp = len(cfg.ratings.aspects) if cfg.ratings else 0
        self.view_state = gr.State(None)      # the TaskView on screen (server side)
        self.last_state = gr.State(None)      # [user id, comparison id] of the last submission
        self.progress = gr.Markdown("", elem_id="pf-progress")
        with gr.Accordion("Guidelines", open=False):
            gr.Markdown(cfg.guidelines, elem_id="pf-guidelines")
        self.prompt_md = gr.Markdown("", elem_id="pf-prompt")
        self.cols, self.mds, self.ranks, self.rates = [], [], [], []
        with gr.Row(equal_height=False):
            for i in range(MAX_K):
                with gr.Column(visible=False, min_width=240) as col:
                    self.mds.append(gr.Markdown("", elem_id=f"pf-response-{i}"))
                    self.ranks.append(gr.Radio(RANKS, label="Rank (1 = best; equal = tie)", visible=False,
                                               elem_id=f"pf-rank-{i}"))
                    for j in range(self.n_asp):   # per-response ratings (ratings tasks)
                        self.rates.append(gr.Radio(["1", "2"], label="", visible=False,
                                                   elem_id=f"pf-rate-{i}-{j}", elem_classes="pf-rate"))
                self.cols.append(col)
        # the ratings as JSON (filled in the browser; read by the submit handlers)
        self.ratings_json = gr.Textbox("", visible=False, elem_id="pf-ratings-json")
        self.suggest_md = gr.Markdown("", visible=False, elem_id="pf-suggestion")
        with gr.Row(visible=False, elem_id="pf-pair-row") as self.pair_row:
            self.pair_buttons = {"A": gr.Button("A is better [1]", variant="primary", elem_id="pf-a"),
                                 "B": gr.Button("B is better [2]", variant="primary", elem_id="pf-b"),
                                 "tie": gr.Button("Tie [3]", elem_id="pf-tie"),
                                 "both_bad": gr.Button("Both bad [4]", elem_id="pf-bad")}
            # graded strength (setting strength: true): shown in the browser after A or B
            self.strength_buttons = []
            self.pending = gr.Textbox("", visible=False)
            if cfg.strength:
                with gr.Column(elem_id="pf-strength-row", min_width=480):
                    gr.HTML("<div id='pf-pending-note'></div>")
                    with gr.Row():
                        self.strength_buttons = [
                            gr.Button(f"{caption} [{i + 1}]", elem_id=f"pf-strength-{i}", size="sm")
                            for i, caption in enumerate(STRENGTH_LABELS)]
        self.b_rate = gr.Button("Submit ratings", variant="primary", visible=False, elem_id="pf-rate")
        self.b_submit = gr.Button("Submit ranking [Ctrl+Enter]", variant="primary", visible=False,
                                  elem_id="pf-submit")
        with gr.Accordion("Rationale, flags and edit (optional)", open=False):
            self.rationale = gr.Textbox(label="Rationale", lines=2, elem_id="pf-rationale")
            self.flags = gr.CheckboxGroup(list(FLAGS), label="Flags", elem_id="pf-flags")
            self.edit = gr.Textbox(label="Edit the best response (saved as a new, better response)",
                                   lines=4, elem_id="pf-edit")
            self.diff_md = gr.Markdown("", elem_id="pf-edit-diff")
        with gr.Row():
            self.b_skip = gr.Button("Skip [S]", elem_id="pf-skip")
            self.b_undo = gr.Button("Undo last [U]", elem_id="pf-undo")
            self.b_next = gr.Button("Next task", elem_id="pf-next")
        self.status = gr.Markdown("", elem_id="pf-status")

    def outputs(self, who: gr.Markdown) -> list:
        """The components :meth:`show` fills, in its order (``who``: the header line)."""
        return ([self.view_state, who, self.progress, self.prompt_md, self.pair_row, self.b_submit,
                 self.status, self.rationale, self.flags, self.edit] + self.cols + self.mds + self.ranks
                + [self.suggest_md, self.diff_md, self.b_rate, self.ratings_json] + self.rates)

    # ------------------------------------------------------------------ rendering
    def _empty(self, user: store.Annotator, head: str, message: str) -> list:
        paused = self.app.labeling.paused_reason(user) if user.role == "annotator" else None
        empty = (f"### Your queue is paused\n\n{paused}.\n\nAn admin can re-enable you."
                 if paused else "### Nothing to label right now. Thank you!")
        hidden = gr.update(visible=False)
        return ([None, head, "", "" if message.startswith("Press") else empty, hidden, hidden,
                 message, "", [], ""] + [hidden] * MAX_K + [""] * MAX_K
                + [gr.update(visible=False, value=None)] * MAX_K
                + [gr.update(value="", visible=False), "", hidden, ""]
                + [gr.update(visible=False, value=None)] * (MAX_K * self.n_asp))

    def show(self, view: TaskView | None, user: store.Annotator, message: str = "",
             prev: TaskView | None = None) -> list:
        """The outputs for ``view`` (``None``: nothing to label). ``prev``: the view that was on
        screen, whose layout, when the same, lets components keep their properties."""
        head = f"Logged in as **{user.name}** ({user.role})"
        if view is None:
            return self._empty(user, head, message)
        p = view.progress
        prog = (f"Task {view.task_id} · {p.get('left', 0)} left in your queue · {p.get('today', 0)} done "
                f"today · {p.get('total', 0)} in all")
        cols = [gr.update(visible=i < view.k) for i in range(MAX_K)]
        mds = [f"### Response {view.labels[i]}\n\n{view.response_markdown[i]}" if i < view.k else ""
               for i in range(MAX_K)]
        hint = _hint(view)
        suggest = (hint if prev is not None and bool(_hint(prev)) == bool(hint)
                   else gr.update(value=hint, visible=bool(hint)))
        if prev is not None and _layout(prev) == _layout(view):   # values only
            pair_v, submit_v, rate_v = gr.update(), self.b_submit.value, self.b_rate.value
            rank_radios, rate_radios = [None] * MAX_K, [None] * (MAX_K * self.n_asp)
        else:
            pair_v = gr.update(visible=view.k == 2 and view.ranked)
            submit_v = gr.update(visible=view.k > 2 and view.ranked)
            rate_v = gr.update(visible=bool(view.aspects) and not view.ranked)
            rank_radios = [gr.update(visible=view.k > 2 and view.ranked and i < view.k, value=None,
                                     choices=RANKS[:view.k]) for i in range(MAX_K)]
            scale = ([str(v) for v in range(1, self.app.config.ratings.scale + 1)]
                     if view.aspects else ["1", "2"])
            rate_radios = [gr.update(visible=i < view.k and j < len(view.aspects), value=None,
                                     label=view.aspects[j] if j < len(view.aspects) else "", choices=scale)
                           for i in range(MAX_K) for j in range(self.n_asp)]
        return ([view, head, prog, view.prompt_markdown, pair_v, submit_v, message, "", [], ""]
                + cols + mds + rank_radios + [suggest, "", rate_v, ""] + rate_radios)

    def _ratings(self, view: TaskView, text: str) -> dict[str, dict[str, Any]] | None:
        """The rating radios (JSON of their values, slot-major) as ``{label: {aspect: value}}``
        (``None`` on tasks without ratings)."""
        if view is None or not view.aspects:
            return None
        try:
            values = json.loads(text or "[]")
        except ValueError:
            raise AppError("ratings: reload the page") from None
        values = values if isinstance(values, list) else []
        n = self.n_asp

        def get(i: int, j: int):
            return values[i * n + j] if i * n + j < len(values) else None

        return {lab: {a: get(i, j) for j, a in enumerate(view.aspects)} for i, lab in enumerate(view.labels)}

    # ------------------------------------------------------------------ handlers
    def _submit_handlers(self):
        """The submit handlers: ``(on_pair(choice), submit_ranking, submit_ratings,
        on_strength(level))``, each saving the label and showing the next task."""
        app, labeling = self.app, self.app.labeling

        def on_pair(choice: str):
            @handler(app)
            def submit_pair(user, view, rationale_v, flags_v, edit_v, table):
                _on_screen(view, user)
                cid, nxt = labeling.submit_and_next(user, view.task_id, choice=choice,
                                                    rationale=rationale_v or "", flags=flags_v or [],
                                                    edit=edit_v or "", ratings=self._ratings(view, table))
                note = " with your edit" if (edit_v or "").strip() else ""
                if view.suggestion and not view.suggestion_before:   # shown after the choice
                    note += (f". The AI suggested {'a tie' if view.suggestion == 'tie' else view.suggestion}"
                             f"{' too' if view.suggestion == choice else ''}")
                return self.show(nxt, user, f"Saved ({choice}){note}.", prev=view) + [[user.id, cid]]
            return submit_pair

        @handler(app)   # one parameter per rank slot (MAX_K = 6): Gradio passes inputs by position
        def submit_ranking(user, view, rationale_v, flags_v, edit_v, table, r0, r1, r2, r3, r4, r5):
            _on_screen(view, user)
            rank_values = (r0, r1, r2, r3, r4, r5)
            ranks_by_label = {lab: rank_values[i] for i, lab in enumerate(view.labels)}
            cid, nxt = labeling.submit_and_next(user, view.task_id, ranks=ranks_by_label,
                                                rationale=rationale_v or "", flags=flags_v or [],
                                                edit=edit_v or "", ratings=self._ratings(view, table))
            note = " with your edit" if (edit_v or "").strip() else ""
            return self.show(nxt, user, f"Saved ranking{note}.", prev=view) + [[user.id, cid]]

        @handler(app)
        def submit_ratings(user, view, rationale_v, flags_v, edit_v, table):
            _on_screen(view, user)
            cid, nxt = labeling.submit_and_next(user, view.task_id, ratings=self._ratings(view, table) or {},
                                                rationale=rationale_v or "", flags=flags_v or [])
            return self.show(nxt, user, "Saved ratings.", prev=view) + [[user.id, cid]]

        def on_strength(level: str):
            @handler(app)
            def submit_graded(user, view, rationale_v, flags_v, edit_v, table, pending):
                _on_screen(view, user)
                if pending not in ("A", "B"):
                    raise AppError("press A or B first, then how much better")
                cid, nxt = labeling.submit_and_next(user, view.task_id, choice=pending,
                                                    rationale=rationale_v or "", flags=flags_v or [],
                                                    edit=edit_v or "", ratings=self._ratings(view, table),
                                                    strength=level)
                caption = STRENGTH_LABELS[store.STRENGTHS.index(level)].lower()
                return self.show(nxt, user, f"Saved ({pending}, {caption}).", prev=view) + [[user.id, cid]]
            return submit_graded
        return on_pair, submit_ranking, submit_ratings, on_strength

    def _nav_handlers(self):
        """``(skip, next_task, undo, preview_edit)``: the handlers that save no label."""
        app, labeling = self.app, self.app.labeling

        @handler(app)
        def skip(user, view):
            owned(view, user)
            nxt = labeling.skip_and_next(user, view.task_id if view is not None else None)
            return self.show(nxt, user, "Skipped.", prev=view)

        @handler(app)
        def next_task(user):
            return self.show(labeling.current_task(user), user)

        @handler(app)
        def undo(user, last):
            if owned(last, user) is None:
                raise AppError("nothing to undo")
            nxt = labeling.undo_and_next(user, int(last[1]))
            return self.show(nxt, user, "Last submission withdrawn: label it again.") + [None]

        @handler(app)
        def preview_edit(user, view, edit_v):
            return labeling.preview_edit(owned(view, user), edit_v or "")
        return skip, next_task, undo, preview_edit

    def wire(self, who: gr.Markdown) -> None:
        """Register the tab's events (inside the Blocks context)."""
        outputs = self.outputs(who)
        form = [self.view_state, self.rationale, self.flags, self.edit, self.ratings_json]
        on_pair, submit_ranking, submit_ratings, on_strength = self._submit_handlers()
        skip, next_task, undo, preview_edit = self._nav_handlers()
        for r in self.rates:   # browser-side only: the radios' values -> the JSON the handlers read
            r.change(None, self.rates, self.ratings_json, js="(...v) => JSON.stringify(v)")
        for choice, button in self.pair_buttons.items():
            if self.strength_buttons and choice in ("A", "B"):     # first step of a graded choice
                button.click(None, None, None, js=PENDING_JS % (choice, choice))
                continue
            button.click(on_pair(choice), form, outputs + [self.last_state], api_name=f"submit_{choice}")
        for level, button in zip(store.STRENGTHS, self.strength_buttons):
            button.click(on_strength(level), form + [self.pending], outputs + [self.last_state],
                         api_name=f"submit_strength_{level}", js=STRENGTH_JS)
        self.b_submit.click(submit_ranking, form + self.ranks, outputs + [self.last_state],
                            api_name="submit_ranking")
        self.b_rate.click(submit_ratings, form, outputs + [self.last_state], api_name="submit_ratings")
        self.b_skip.click(skip, [self.view_state], outputs, api_name="skip")
        self.b_next.click(next_task, None, outputs, api_name="next_task")
        self.b_undo.click(undo, [self.last_state], outputs + [self.last_state], api_name="undo")
        self.edit.input(preview_edit, [self.view_state, self.edit], self.diff_md, api_name="preview_edit",
                        trigger_mode="always_last")
