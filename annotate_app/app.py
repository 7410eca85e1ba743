"""The Gradio labeling app: an annotator view and an admin view on one store.

Every event handler takes the ``gr.Request``, asks :func:`annotate_app.auth.caller` who is
calling (and, for admin handlers, requires the admin role) before doing anything: Gradio
exposes handlers as API endpoints, so the check cannot live in the page. Errors reach the user
as ``gr.Error`` messages, never as tracebacks.
"""

from __future__ import annotations

import gc
import json
from typing import Any

import gradio as gr
import pandas as pd

from prefloop import store
from prefloop.errors import PrefloopError

from .auth import LoginGuard, authenticate
from .errors import AppError, NotAuthorized
from .render import CSS
from .service import FLAGS, MAX_K, AppConfig, LabelingService, TaskView

__all__ = ["build_app", "launch", "KEYBOARD_JS"]

KEYBOARD_JS = """
<script>
document.addEventListener('keydown', (e) => {
  const click = (id) => { const el = document.getElementById(id);
                          if (el && el.offsetParent !== null) { e.preventDefault(); el.click(); } };
  if (e.ctrlKey && e.key === 'Enter') { click('pf-submit'); return; }
  const tag = (e.target && e.target.tagName || '').toLowerCase();
  if (tag === 'textarea' || tag === 'input' || e.ctrlKey || e.altKey || e.metaKey) return;
  const keys = {'1': 'pf-a', '2': 'pf-b', '3': 'pf-tie', '4': 'pf-bad', 's': 'pf-skip', 'u': 'pf-undo'};
  if (keys[e.key]) click(keys[e.key]);
});
</script>
"""

RANKS = [str(i) for i in range(1, MAX_K + 1)]


def _guard(fn):
    """Run ``fn``; the packages' errors become ``gr.Error`` (a message, no traceback)."""
    try:
        return fn()
    except PrefloopError as exc:
        raise gr.Error(str(exc)) from None


def build_app(s: store.Store, config: AppConfig | None = None) -> gr.Blocks:
    """The Blocks app (not launched). See :func:`launch`."""
    svc = LabelingService(s, config)
    cfg = svc.config
    # rating radios per response slot: only as many as the configured aspects (each component
    # costs every event a serialization: 36 unused radios made submit -> next 60% slower)
    n_asp = len(cfg.ratings.get("aspects") or []) if cfg.ratings else 0

    with gr.Blocks(title=cfg.title, analytics_enabled=False) as demo:
        view_state = gr.State(None)      # the TaskView on screen (server side)
        last_state = gr.State(None)      # id of the last submission, for undo
        with gr.Row():
            who = gr.Markdown("", elem_id="pf-who")
            gr.Button("Log out", link="/logout", size="sm", scale=0, elem_id="pf-logout")
        with gr.Tabs():
            with gr.Tab("Label", id="label"):
                progress = gr.Markdown("", elem_id="pf-progress")
                with gr.Accordion("Guidelines", open=False):
                    gr.Markdown(cfg.guidelines, elem_id="pf-guidelines")
                prompt_md = gr.Markdown("", elem_id="pf-prompt")
                slots, ranks, rates = [], [], []
                with gr.Row(equal_height=False):
                    for i in range(MAX_K):
                        with gr.Column(visible=False, min_width=240) as col:
                            md = gr.Markdown("", elem_id=f"pf-response-{i}")
                            rk = gr.Radio(RANKS, label="Rank (1 = best; equal = tie)", visible=False,
                                          elem_id=f"pf-rank-{i}")
                            for j in range(n_asp):   # per-response ratings (ratings tasks)
                                rates.append(gr.Radio(["1", "2"], label="", visible=False,
                                                      elem_id=f"pf-rate-{i}-{j}", elem_classes="pf-rate"))
                        slots.append((col, md))
                        ranks.append(rk)
                # the ratings as JSON (filled in the browser; read by the submit handlers)
                ratings_json = gr.Textbox("", visible=False, elem_id="pf-ratings-json")
                suggest_md = gr.Markdown("", visible=False, elem_id="pf-suggestion")
                with gr.Row(visible=False) as pair_row:
                    b_a = gr.Button("A is better [1]", variant="primary", elem_id="pf-a")
                    b_b = gr.Button("B is better [2]", variant="primary", elem_id="pf-b")
                    b_tie = gr.Button("Tie [3]", elem_id="pf-tie")
                    b_bad = gr.Button("Both bad [4]", elem_id="pf-bad")
                b_rate = gr.Button("Submit ratings", variant="primary", visible=False, elem_id="pf-rate")
                b_submit = gr.Button("Submit ranking [Ctrl+Enter]", variant="primary", visible=False,
                                     elem_id="pf-submit")
                with gr.Accordion("Rationale, flags and edit (optional)", open=False):
                    rationale = gr.Textbox(label="Rationale", lines=2, elem_id="pf-rationale")
                    flags = gr.CheckboxGroup(list(FLAGS), label="Flags", elem_id="pf-flags")
                    edit = gr.Textbox(label="Edit the best response (saved as a new, better response)",
                                      lines=4, elem_id="pf-edit")
                    diff_md = gr.Markdown("", elem_id="pf-edit-diff")
                with gr.Row():
                    b_skip = gr.Button("Skip [S]", elem_id="pf-skip")
                    b_undo = gr.Button("Undo last [U]", elem_id="pf-undo")
                    b_next = gr.Button("Next task", elem_id="pf-next")
                status = gr.Markdown("", elem_id="pf-status")

            with gr.Tab("Review", id="review", visible=False) as review_tab:
                review_note = gr.Markdown("", elem_id="pf-review-note")
                review_df = gr.Dataframe(label="Tasks that need a second look (click a row to open it)",
                                         interactive=False, visible=False, elem_id="pf-review-queue")
                with gr.Row():
                    r_task = gr.Number(None, label="Task", precision=0, elem_id="pf-review-task", scale=0,
                                       min_width=120)
                    b_r_open = gr.Button("Open", size="sm", scale=0, elem_id="pf-review-open")
                    b_r_refresh = gr.Button("Refresh", size="sm", scale=0, elem_id="pf-review-refresh")
                review_md = gr.Markdown("", elem_id="pf-review-item")
                with gr.Row():
                    r_ranking = gr.Textbox(label="Final ranking (A > B, A = B, A > B = C)", scale=1,
                                           elem_id="pf-review-ranking")
                    r_note = gr.Textbox(label="Note (optional)", scale=2, elem_id="pf-review-note-text")
                with gr.Row():
                    b_r_save = gr.Button("Save final ranking", variant="primary", elem_id="pf-review-save")
                    b_r_amb = gr.Button("Mark ambiguous (left out of exports)", elem_id="pf-review-ambiguous")
                review_status = gr.Markdown("", elem_id="pf-review-status")

            with gr.Tab("Admin", id="admin", visible=False) as admin_tab:
                b_refresh = gr.Button("Refresh", size="sm", elem_id="pf-refresh")
                agreement_md = gr.Markdown("Loading figures\u2026", elem_id="pf-agreement")
                annot_df = gr.Dataframe(label="Annotators", interactive=False, visible=False,
                                        elem_id="pf-annotators")
                data_df = gr.Dataframe(label="Datasets", interactive=False, visible=False,
                                       elem_id="pf-datasets")
                ai_df = gr.Dataframe(label="Human vs AI labels", interactive=False, visible=False,
                                     elem_id="pf-human-ai")
                ratings_sum_df = gr.Dataframe(label="Ratings by dataset and aspect", interactive=False,
                                              visible=False, elem_id="pf-ratings-summary")
                with gr.Row():
                    subs_plot = gr.BarPlot(x="hour", y="submissions", label="Submissions per hour (48 h)",
                                            visible=False, elem_id="pf-plot-submissions")
                    agree_plot = gr.ScatterPlot(x="hour", y="agreement", y_lim=[0, 1], label="Agreement over time (pairs of "
                                             "submissions on one task)", visible=False,
                                             elem_id="pf-plot-agreement")
                    burn_plot = gr.LinePlot(x="hour", y="open", label="Open tasks (burn-down)",
                                            visible=False, elem_id="pf-plot-burndown")
                with gr.Accordion("People: roles, qualification, pauses", open=False):
                    people_df = gr.Dataframe(label="Users", interactive=False, visible=False,
                                             elem_id="pf-people")
                    with gr.Row():
                        p_name = gr.Textbox(label="User to re-enable", elem_id="pf-reenable-name")
                        b_reenable = gr.Button("Re-enable", size="sm", elem_id="pf-reenable")
                with gr.Accordion("Queue", open=False):
                    with gr.Row():
                        q_dataset = gr.Textbox(label="Dataset (empty: all)")
                        q_overlap = gr.Number(1, label="Overlap", precision=0)
                        q_priority = gr.Number(0, label="Priority", precision=0)
                        q_limit = gr.Number(100, label="Max tasks", precision=0)
                    with gr.Row():
                        b_add = gr.Button("Create tasks from prompts' responses")
                        b_gold = gr.Button("Create gold tasks from imported human labels")
                    queue_df = gr.Dataframe(label="Open tasks (highest priority first)", interactive=False,
                                            visible=False, elem_id="pf-queue")
                with gr.Accordion("Export", open=False):
                    with gr.Row():
                        e_out = gr.Textbox(label=f"Export folder (inside {svc.exports_root()})", value="latest")
                        e_source = gr.Dropdown(["all", "human", "ai"], value="human", label="Source")
                        e_agree = gr.Number(0.0, label="Min agreement")
                        e_test = gr.Number(0.1, label="Test fraction")
                    b_export = gr.Button("Export pairs")
                with gr.Accordion("Training and judge jobs", open=False):
                    with gr.Row():
                        j_cmd = gr.Dropdown(["train", "judge"], value="train", label="Job")
                        j_kind = gr.Dropdown(["rm", "dpo", "sft", "ppo", "grpo", "pairwise", "critique",
                                              "score", "rank"], value="rm", label="Kind / mode")
                        j_model = gr.Textbox(label="Model", value="")
                        j_steps = gr.Number(None, label="Max steps (train)", precision=0)
                        j_limit = gr.Number(None, label="Limit (judge)", precision=0)
                    b_start = gr.Button("Start job")
                runs_df = gr.Dataframe(label="Runs", interactive=False, visible=False, elem_id="pf-runs")
                with gr.Row():
                    m_run = gr.Number(None, label="Run id to plot", precision=0)
                    m_names = gr.Textbox(label="Metrics (comma separated; empty: loss, accuracy, reward, kl)")
                plot = gr.LinePlot(x="step", y="value", color="metric", label="Run metrics", visible=False,
                                   elem_id="pf-run-plot")
                admin_status = gr.Markdown("", elem_id="pf-admin-status")
                timer = gr.Timer(10.0)

            with gr.Tab("Models", id="models", visible=False) as models_tab:
                models_md = gr.Markdown("", elem_id="pf-models-note")
                models_df = gr.Dataframe(label="Model versions (Bradley-Terry rating, Elo scale, 95% CI)",
                                         interactive=False, elem_id="pf-models")
                models_plot = gr.ScatterPlot(x="round", y="rating", color="model",
                                             label="Rating by round (all votes)", elem_id="pf-models-plot")
                labelers_df = gr.Dataframe(label="Labelers (Dawid-Skene accuracy with 95% CI; longer_chosen "
                                                 "and first_shown: length and position bias, 0.5 is none)",
                                           interactive=False, elem_id="pf-labelers")
                b_models = gr.Button("Refresh", size="sm", elem_id="pf-models-refresh")

        outputs = [view_state, who, progress, prompt_md, pair_row, b_submit, status, rationale, flags,
                   edit] + [c for c, _ in slots] + [m for _, m in slots] + ranks + [suggest_md, diff_md,
                                                                                       b_rate, ratings_json] + rates

        def layout(view: TaskView | None):
            """What decides which components show: between two views with the same layout only
            values change, and plain values cost Gradio far less than updates (each update
            builds a new component: about 0.2-0.5 ms of the event loop apiece)."""
            return None if view is None else (view.k, view.ranked, tuple(view.aspects or ()))

        def hint_of(view: TaskView | None) -> str:
            if view is None or not (view.suggestion and view.suggestion_before):
                return ""
            return (f"**AI suggestion:** {'a tie' if view.suggestion == 'tie' else view.suggestion + ' is better'} "
                    "(your own judgment counts)")

        def show(view: TaskView | None, user: store.Annotator, message: str = "", prev: TaskView | None = None):
            """The outputs for ``view`` (``None``: nothing to label). ``prev``: the view that was on
            screen, whose layout, when the same, lets components keep their properties."""
            head = f"Logged in as **{user.name}** ({user.role})"
            if view is None:
                hidden = [gr.update(visible=False)] * MAX_K
                paused = svc.paused_reason(user) if user.role == "annotator" else None
                empty = (f"### Your queue is paused\n\n{paused}.\n\nAn admin can re-enable you."
                         if paused else "### Nothing to label right now. Thank you!")
                return ([None, head, "", "" if message.startswith("Press") else empty,
                         gr.update(visible=False),
                         gr.update(visible=False), message, "", [], ""] + hidden
                        + [""] * MAX_K + [gr.update(visible=False, value=None)] * MAX_K
                        + [gr.update(value="", visible=False), "", gr.update(visible=False), ""]
                        + [gr.update(visible=False, value=None)] * (MAX_K * n_asp))
            p = view.progress
            prog = (f"Task {view.task_id} - today: {p.get('today', 0)}, "   # gold tasks look like any other
                    f"total: {p.get('total', 0)}")
            same = prev is not None and layout(prev) == layout(view)
            cols = [gr.update(visible=i < view.k) for i in range(MAX_K)]
            mds = [f"### Response {view.labels[i]}\n\n{view.response_markdown[i]}" if i < view.k else ""
                   for i in range(MAX_K)]
            hint = hint_of(view)
            suggest = (hint if prev is not None and bool(hint_of(prev)) == bool(hint)
                       else gr.update(value=hint, visible=bool(hint)))
            if same:            # values only: cleared radios, the buttons' own labels
                pair_v, submit_v, rate_v = gr.update(), b_submit.value, b_rate.value
                rank_radios = [None] * MAX_K
                rate_radios = [None] * (MAX_K * n_asp)
            else:
                pair_v = gr.update(visible=view.k == 2 and view.ranked)
                submit_v = gr.update(visible=view.k > 2 and view.ranked)
                rate_v = gr.update(visible=bool(view.aspects) and not view.ranked)
                rank_radios = [gr.update(visible=view.k > 2 and view.ranked and i < view.k, value=None,
                                         choices=RANKS[:view.k]) for i in range(MAX_K)]
                scale = [str(v) for v in range(1, int(cfg.ratings.get("scale", 5)) + 1)] if view.aspects else []
                rate_radios = [gr.update(visible=i < view.k and j < len(view.aspects), value=None,
                                         label=view.aspects[j] if j < len(view.aspects) else "",
                                         choices=scale or ["1", "2"])
                               for i in range(MAX_K) for j in range(n_asp)]
            return ([view, head, prog, view.prompt_markdown, pair_v, submit_v, message, "", [], ""]
                    + cols + mds + rank_radios + [suggest, "", rate_v, ""] + rate_radios)

        def on_load(request: gr.Request):
            def go():
                user = svc.authorize(request)
                admin, reviewer = user.role == "admin", user.role in ("admin", "reviewer")
                tabs = [gr.update(visible=admin), gr.update(visible=admin), gr.update(visible=reviewer)]
                if reviewer:  # looking at the dashboard or the review queue must not lease a task
                    return show(None, user, "Press **Next task** to label.") + tabs
                return show(svc.current_task(user), user) + tabs
            return _guard(go)

        def on_next(request: gr.Request):
            def go():
                user = svc.authorize(request)
                return show(svc.current_task(user), user)
            return _guard(go)

        def owned(value, user):
            """Session state is bound to the user who made it: a request carrying another
            user's session (Gradio's session_hash) cannot read or overwrite it."""
            owner = getattr(value, "annotator_id", None) if not isinstance(value, (list, tuple)) \
                else value[0]
            if value is not None and owner != user.id:
                raise NotAuthorized("this page's state belongs to another user; reload the page")
            return value

        def table_ratings(view, text) -> dict[str, dict[str, Any]] | None:
            """The rating radios (JSON of their values, slot-major) as ``{label: {aspect: value}}``
            (``None`` on tasks without ratings)."""
            if view is None or not view.aspects:
                return None
            try:
                values = json.loads(text or "[]")
            except ValueError:
                raise AppError("ratings: reload the page") from None
            values = values if isinstance(values, list) else []
            get = lambda i, j: values[i * n_asp + j] if i * n_asp + j < len(values) else None  # noqa: E731
            return {lab: {a: get(i, j) for j, a in enumerate(view.aspects)} for i, lab in enumerate(view.labels)}

        def on_pair(choice: str):
            def handler(view, rationale_v, flags_v, edit_v, table, request: gr.Request):
                def go():
                    user = svc.authorize(request)
                    if owned(view, user) is None:
                        raise AppError("no task on screen; reload the page")
                    cid, nxt = svc.submit_and_next(user, view.task_id, choice=choice,
                                                   rationale=rationale_v or "", flags=flags_v or [],
                                                   edit=edit_v or "", ratings=table_ratings(view, table))
                    note = " with your edit" if (edit_v or "").strip() else ""
                    if view.suggestion and not view.suggestion_before:   # shown after the choice
                        note += (f". The AI suggested {'a tie' if view.suggestion == 'tie' else view.suggestion}"
                                 f"{' too' if view.suggestion == choice else ''}")
                    return show(nxt, user, f"Saved ({choice}){note}.", prev=view) + [[user.id, cid]]
                return _guard(go)
            return handler

        def on_ranks(view, rationale_v, flags_v, edit_v, table, r0, r1, r2, r3, r4, r5, request: gr.Request):
            # one parameter per rank slot (MAX_K = 6): Gradio injects gr.Request by signature
            rank_values = (r0, r1, r2, r3, r4, r5)

            def go():
                user = svc.authorize(request)
                if owned(view, user) is None:
                    raise AppError("no task on screen; reload the page")
                ranks_by_label = {lab: rank_values[i] for i, lab in enumerate(view.labels)}
                cid, nxt = svc.submit_and_next(user, view.task_id, ranks=ranks_by_label,
                                               rationale=rationale_v or "", flags=flags_v or [],
                                               edit=edit_v or "", ratings=table_ratings(view, table))
                note = " with your edit" if (edit_v or "").strip() else ""
                return show(nxt, user, f"Saved ranking{note}.", prev=view) + [[user.id, cid]]
            return _guard(go)

        def on_rate(view, rationale_v, flags_v, edit_v, table, request: gr.Request):
            def go():
                user = svc.authorize(request)
                if owned(view, user) is None:
                    raise AppError("no task on screen; reload the page")
                cid, nxt = svc.submit_and_next(user, view.task_id, ratings=table_ratings(view, table) or {},
                                               rationale=rationale_v or "", flags=flags_v or [])
                return show(nxt, user, "Saved ratings.", prev=view) + [[user.id, cid]]
            return _guard(go)

        def on_skip(view, request: gr.Request):
            def go():
                user = svc.authorize(request)
                owned(view, user)
                nxt = svc.skip_and_next(user, view.task_id if view is not None else None)
                return show(nxt, user, "Skipped.", prev=view)
            return _guard(go)

        def on_undo(last, request: gr.Request):
            def go():
                user = svc.authorize(request)
                if owned(last, user) is None:
                    raise AppError("nothing to undo")
                nxt = svc.undo_and_next(user, int(last[1]))
                return show(nxt, user, "Last submission withdrawn: label it again.") + [None]
            return _guard(go)

        def on_edit(view, edit_v, request: gr.Request):
            def go():
                user = svc.authorize(request)
                return svc.preview_edit(owned(view, user), edit_v or "")
            return _guard(go)

        form = [view_state, rationale, flags, edit, ratings_json]
        for r in rates:       # browser-side only: the radios' values -> the JSON the handlers read
            r.change(None, rates, ratings_json, js="(...v) => JSON.stringify(v)")
        demo.load(on_load, None, outputs + [admin_tab, models_tab, review_tab], api_name="load_task")
        for button, choice in ((b_a, "A"), (b_b, "B"), (b_tie, "tie"), (b_bad, "both_bad")):
            button.click(on_pair(choice), form, outputs + [last_state], api_name=f"submit_{choice}")
        b_submit.click(on_ranks, form + ranks, outputs + [last_state], api_name="submit_ranking")
        b_rate.click(on_rate, form, outputs + [last_state], api_name="submit_ratings")
        b_skip.click(on_skip, [view_state], outputs, api_name="skip")
        b_next.click(on_next, None, outputs, api_name="next_task")
        b_undo.click(on_undo, [last_state], outputs + [last_state], api_name="undo")
        edit.input(on_edit, [view_state, edit], diff_md, api_name="preview_edit", trigger_mode="always_last")

        # -------------------------------------------------------------- admin handlers
        def table(rows, empty: str):
            """A table that is shown only with rows, and its note otherwise (no placeholder)."""
            df = pd.DataFrame(rows)
            return gr.update(value=df, visible=not df.empty), ("" if not df.empty else empty)

        def line(rows, x, y):
            df = pd.DataFrame(rows, columns=[x, y])
            return gr.update(value=df, visible=len(df) > 0)

        def refresh(run_id, names, request: gr.Request):
            def go():
                svc.authorize(request, role="admin")
                board = svc.dashboard()
                a = board["agreement"]
                fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
                annot, _ = table(board["annotators"], "")
                n1 = ("" if any(r.get("total") for r in board["annotators"])
                      else "No submissions yet: nobody has labeled a task.")
                data, n2 = table(board["datasets"], "No prompts imported yet (`prefloop import FILE`).")
                ai, _ = table(board["human_vs_ai"], "")
                queue, n4 = table(svc.queue(), "The queue is empty: create tasks below.")
                runs, n5 = table(svc.runs(), "No training or judge runs yet.")
                notes = [n for n in (n1, n2, n4, n5) if n]
                if a["units_with_overlap"]:
                    agreement = (f"**Inter-annotator agreement** (task pairs labeled by 2+ people: "
                                 f"{a['units_with_overlap']}): Krippendorff's alpha "
                                 f"{fmt(a['krippendorff_alpha'])}, pairwise agreement "
                                 f"{fmt(a['pairwise_agreement'])}")
                else:
                    agreement = ("**Inter-annotator agreement**: no task has 2+ submissions yet (queue "
                                 "tasks with overlap 2 to measure it).")
                rv = svc.store.reviews.counts()
                agreement += (f"  \n**Review**: {len(svc.review_queue())} tasks waiting, "
                              f"{rv['adjudicated']} adjudicated, {rv['ambiguous']} ambiguous")
                assist = svc.store.comparisons.assist_report()
                if assist:
                    agreement += "  \n**Assisted labeling** (agreement with the AI suggestion, 95% CI): " + "; ".join(
                        f"{'shown before the choice' if r['shown_before'] else 'not shown before'} "
                        f"{r['rate']:.2f} [{r['low']:.2f}, {r['high']:.2f}] over {r['labels']} labels"
                        for r in assist)
                if notes:
                    agreement += "\n\n" + "\n".join(f"* {n}" for n in notes)
                act = svc.activity()
                people, _ = table(svc.people(), "")
                rated, _ = table(svc.ratings(), "")
                return (agreement, annot, data, ai, queue, runs, _plot(run_id, names),
                        line(act["submissions"], "hour", "submissions"),
                        line(act["agreement"], "hour", "agreement"),
                        line(act["burndown"], "hour", "open"), people, rated)
            return _guard(go)

        def _plot(run_id, names):
            if not run_id:
                return gr.update(value=pd.DataFrame({"step": [], "value": [], "metric": []}), visible=False)
            wanted = [n.strip() for n in (names or "").split(",") if n.strip()] or [
                "loss", "accuracy", "reward", "kl", "eval/all/accuracy"]
            df = pd.DataFrame(svc.run_metrics(int(run_id), wanted), columns=["step", "metric", "value"])
            return gr.update(value=df, visible=len(df) > 0)

        def models(request: gr.Request):
            def go():
                svc.authorize(request, role="admin")
                rows = svc.models()
                rated = [r for r in rows if r["rating_all"] is not None]
                if not rows:
                    note = ("No model version has been evaluated yet: run `prefloop eval --models "
                            "BASE,run:ID --prompts DATASET --tasks N` and label its blind tasks.")
                elif not rated:
                    note = (f"{len(rows)} model versions evaluated, no votes between them yet: label "
                            "the queued evaluation tasks (or run `prefloop eval --judge local`).")
                else:
                    note = (f"{len(rows)} model versions, {sum(r['votes'] for r in rated) // 2} votes "
                            "between them (people's and AI judges'; each column kept apart).")
                plot_rows = pd.DataFrame([{"round": r["round"], "rating": r["rating_all"],
                                           "model": r["model"]} for r in rated],
                                         columns=["round", "rating", "model"])
                labeler_rows = svc.labelers()
                return note, pd.DataFrame(rows), plot_rows, pd.DataFrame(labeler_rows)
            return _guard(go)

        models_out = [models_md, models_df, models_plot, labelers_df]
        models_tab.select(models, None, models_out, api_name="admin_models")
        b_models.click(models, None, models_out, api_name=False)

        admin_out = [agreement_md, annot_df, data_df, ai_df, queue_df, runs_df, plot, subs_plot,
                     agree_plot, burn_plot, people_df, ratings_sum_df]
        b_refresh.click(refresh, [m_run, m_names], admin_out, api_name="admin_refresh")
        timer.tick(refresh, [m_run, m_names], admin_out, api_name=False)
        admin_tab.select(refresh, [m_run, m_names], admin_out, api_name=False)   # figures on open

        def add_tasks(dataset, overlap, priority, limit, request: gr.Request):
            def go():
                svc.authorize(request, role="admin")
                r = svc.add_tasks(dataset=dataset, overlap=int(overlap or 1), priority=int(priority or 0),
                                  limit=int(limit) if limit else None)
                return (f"{r.created} tasks created, {r.existing} already queued, for "
                        f"{dataset or 'all datasets'}.")
            return _guard(go)

        def add_gold(dataset, limit, request: gr.Request):
            def go():
                svc.authorize(request, role="admin")
                n = svc.add_gold(dataset=dataset, limit=int(limit) if limit else None)
                return f"{n} gold tasks (served at rate {cfg.gold_rate})."
            return _guard(go)

        def export(out, source, agree, test, request: gr.Request):
            def go():
                svc.authorize(request, role="admin")
                return svc.export(out, source=source, min_agreement=float(agree or 0),
                                  test_fraction=float(test or 0))
            return _guard(go)

        def start(cmd, kind, model, steps, limit, request: gr.Request):
            def go():
                svc.authorize(request, role="admin")
                args: dict[str, Any] = {"model": model or None}
                if cmd == "train":
                    args["max_steps"] = int(steps) if steps else None
                else:
                    args["limit"] = int(limit) if limit else None
                pid, log = svc.start_job(cmd, kind, args)
                return f"Started {cmd} {kind} (pid {pid}); log: {log}"
            return _guard(go)

        def reenable(name, request: gr.Request):
            def go():
                svc.authorize(request, role="admin")
                return svc.reenable(name), gr.update(value=pd.DataFrame(svc.people()), visible=True)
            return _guard(go)

        b_reenable.click(reenable, [p_name], [admin_status, people_df], api_name="admin_reenable")

        # -------------------------------------------------------------- review handlers
        def review_list(request: gr.Request):
            def go():
                svc.authorize(request, role="reviewer")
                rows = svc.review_queue()
                c = svc.store.reviews.counts()
                note = (f"**{len(rows)} tasks need a second look** ({c['adjudicated']} adjudicated and "
                        f"{c['ambiguous']} marked ambiguous so far)." if rows else
                        f"**Nothing to review.** No task matches the review rules "
                        f"({c['adjudicated']} adjudicated, {c['ambiguous']} ambiguous so far).")
                return note, gr.update(value=pd.DataFrame(rows), visible=bool(rows))
            return _guard(go)

        def review_open(task_id, request: gr.Request):
            def go():
                svc.authorize(request, role="reviewer")
                if not task_id:
                    raise AppError("give a task id (or click a row of the queue)")
                md, _ = svc.review_item(int(task_id))
                return md, "", "", ""
            return _guard(go)

        def review_pick(evt: gr.SelectData, request: gr.Request):
            def go():
                svc.authorize(request, role="reviewer")
                row = evt.row_value if evt is not None else None
                if not row:
                    raise AppError("click a row of the queue")
                md, _ = svc.review_item(int(row[0]))
                return int(row[0]), md, "", "", ""
            return _guard(go)

        def review_decide(decision: str):
            def handler(task_id, ranking_v, note_v, request: gr.Request):
                def go():
                    user = svc.authorize(request, role="reviewer")
                    if not task_id:
                        raise AppError("open a task first")
                    if decision == "adjudicated":
                        msg = svc.adjudicate(user, int(task_id), ranking_v or "", note_v or "")
                    else:
                        msg = svc.mark_ambiguous(user, int(task_id), note_v or "")
                    note, df = review_list(request)
                    return msg, note, df
                return _guard(go)
            return handler

        review_list_out = [review_note, review_df]
        review_tab.select(review_list, None, review_list_out, api_name="review_queue")
        b_r_refresh.click(review_list, None, review_list_out, api_name=False)
        b_r_open.click(review_open, [r_task], [review_md, r_ranking, r_note, review_status],
                       api_name="review_open")
        review_df.select(review_pick, None, [r_task, review_md, r_ranking, r_note, review_status],
                         api_name=False)
        b_r_save.click(review_decide("adjudicated"), [r_task, r_ranking, r_note],
                       [review_status, review_note, review_df], api_name="review_adjudicate")
        b_r_amb.click(review_decide("ambiguous"), [r_task, r_ranking, r_note],
                      [review_status, review_note, review_df], api_name="review_ambiguous")

        b_add.click(add_tasks, [q_dataset, q_overlap, q_priority, q_limit], admin_status, api_name="admin_add_tasks")
        b_gold.click(add_gold, [q_dataset, q_limit], admin_status, api_name="admin_add_gold")
        b_export.click(export, [e_out, e_source, e_agree, e_test], admin_status, api_name="admin_export")
        b_start.click(start, [j_cmd, j_kind, j_model, j_steps, j_limit], admin_status, api_name="admin_start_job")
    demo.prefloop_service = svc      # launch() wires the login check to its sessions
    return demo


def launch(s: store.Store, *, host: str = "127.0.0.1", port: int = 7860, config: AppConfig | None = None,
           block: bool = True):
    """Serve the app with Gradio's login (active annotators, argon2-checked passwords)."""
    if not any(a.active for a in s.annotators.list()):
        raise AppError("no active users: create one with `prefloop users add NAME --role admin`")
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:   # a busy port: one line
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise AppError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                           "choose another with --port") from None
    demo = build_app(s, config)
    svc = demo.prefloop_service
    demo.queue(default_concurrency_limit=16)
    cfg = config or AppConfig()
    guard = LoginGuard(max_failures=cfg.max_failed_logins, lockout_seconds=cfg.lockout_seconds)
    out = demo.launch(server_name=host, server_port=port, auth=lambda u, p: authenticate(s, u, p, guard, svc.sessions),
                      auth_message="Log in with your prefloop user.", head=KEYBOARD_JS, css=CSS,
                      prevent_thread_lock=True, quiet=not block, show_error=True)
    # Everything built so far (Gradio, the app, the imports: ~200k objects) lives as long as the
    # process: move it out of the collector's reach, or every full (generation 2) collection
    # scans it again and stalls the event loop, once for 152 ms under the app bench's load
    # (timed with a gc.callbacks hook; gc.freeze, Python docs: "Garbage Collector Interface").
    gc.collect()
    gc.freeze()
    if block:
        demo.block_thread()
    return out
