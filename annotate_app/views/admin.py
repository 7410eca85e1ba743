"""The Admin tab: progress and agreement figures, activity plots, people, the queue, exports,
training and judge jobs, and the runs with their metric plots."""

from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd

from prefloop.core.display import cell

from ..handlers import handler
from ..services import JOB_KINDS, AppServices

__all__ = ["AdminView", "dashboard_markdown"]

DEFAULT_METRICS = ["loss", "accuracy", "reward", "kl", "eval/all/accuracy"]


def _fmt(v: float | None) -> str:
    return cell(v, 3)


def dashboard_markdown(board: dict[str, Any], review_waiting: int, review_counts: dict[str, int],
                       assist: list[dict[str, Any]], notes: list[str]) -> str:
    """The figures above the admin tables: inter-annotator agreement, the review queue, the
    assisted-labeling report (agreement with the AI suggestion, shown before or after the
    choice, with 95% CIs) and the empty-state notes."""
    a = board["agreement"]
    if a["units_with_overlap"]:
        text = (f"**Inter-annotator agreement** (task pairs labeled by 2+ people: "
                f"{a['units_with_overlap']}): Krippendorff's alpha {_fmt(a['krippendorff_alpha'])}, "
                f"pairwise agreement {_fmt(a['pairwise_agreement'])}")
    else:
        text = ("**Inter-annotator agreement**: no task has 2+ submissions yet (queue "
                "tasks with overlap 2 to measure it).")
    text += (f"  \n**Review**: {review_waiting} tasks waiting, "
             f"{review_counts['adjudicated']} adjudicated, {review_counts['ambiguous']} ambiguous")
    if assist:
        text += "  \n**Assisted labeling** (agreement with the AI suggestion, 95% CI): " + "; ".join(
            f"{'shown before the choice' if r['shown_before'] else 'not shown before'} "
            f"{r['rate']:.2f} [{r['low']:.2f}, {r['high']:.2f}] over {r['labels']} labels" for r in assist)
    if notes:
        text += "\n\n" + "\n".join(f"* {n}" for n in notes)
    return text


def trigger_markdown(t: dict[str, Any] | None) -> str:
    """One line on the next self-triggered retraining (``AdminService.retraining_trigger``)."""
    if t is None:
        return ("**Retraining trigger:** none recorded: a loop iteration started by `prefloop loop "
                "--watch` with `trigger: {new_labels: N, min_interval: 1h}` in its config shows here.")
    ago = "" if t["minutes_since_last"] is None else f", {t['minutes_since_last']:.0f} min ago"
    gap = t["min_interval"]
    gap = f"{gap:g} s" if isinstance(gap, (int, float)) else str(gap)
    return (f"**Retraining trigger:** {t['new_labels']} of {t['needed']} new human labels since "
            f"loop iteration {t['loop_run']} ({t['status']}{ago}; counted after comparison "
            f"{t['after_comparison_id']}; min interval {gap}).")


def _table(rows, empty: str):
    """A table that is shown only with rows, and its note otherwise (no placeholder)."""
    df = pd.DataFrame(rows)
    return gr.update(value=df, visible=not df.empty), ("" if not df.empty else empty)


def _line(rows, x: str, y: str):
    df = pd.DataFrame(rows, columns=[x, y])
    return gr.update(value=df, visible=len(df) > 0)


class AdminView:
    """The Admin tab's components (built inside the current ``gr.Tab``) and its handlers."""

    def __init__(self, app: AppServices):
        self.app = app
        self.b_refresh = gr.Button("Refresh", size="sm", elem_id="pf-refresh")
        self.agreement_md = gr.Markdown("Loading figures\u2026", elem_id="pf-agreement")
        self.annot_df = gr.Dataframe(label="Annotators", interactive=False, visible=False, elem_id="pf-annotators")
        self.data_df = gr.Dataframe(label="Datasets", interactive=False, visible=False, elem_id="pf-datasets")
        self.ai_df = gr.Dataframe(label="Human vs AI labels", interactive=False, visible=False,
                                  elem_id="pf-human-ai")
        self.ratings_df = gr.Dataframe(label="Ratings by dataset and aspect", interactive=False,
                                       visible=False, elem_id="pf-ratings-summary")
        with gr.Row():
            self.subs_plot = gr.BarPlot(x="hour", y="submissions", label="Submissions per hour (48 h)",
                                        visible=False, elem_id="pf-plot-submissions")
            self.agree_plot = gr.ScatterPlot(x="hour", y="agreement", y_lim=[0, 1],
                                             label="Agreement over time (pairs of submissions on one task)",
                                             visible=False, elem_id="pf-plot-agreement")
            self.burn_plot = gr.LinePlot(x="hour", y="open", label="Open tasks (burn-down)", visible=False,
                                         elem_id="pf-plot-burndown")
        with gr.Accordion("People: roles, qualification, pauses, quality control", open=False):
            self.people_df = gr.Dataframe(label="Users", interactive=False, visible=False, elem_id="pf-people")
            self.quality_df = gr.Dataframe(label="Quality control (each annotator's last submissions: time per "
                                                 "item, the answer given most, gold; flags with their evidence)",
                                           interactive=False, visible=False, elem_id="pf-quality")
            with gr.Row():
                self.p_name = gr.Textbox(label="User to re-enable", elem_id="pf-reenable-name")
                self.b_reenable = gr.Button("Re-enable", size="sm", elem_id="pf-reenable")
        self._queue_controls()
        self._job_controls()
        self.status = gr.Markdown("", elem_id="pf-admin-status")
        self.timer = gr.Timer(10.0)

    def _queue_controls(self) -> None:
        with gr.Accordion("Queue", open=False):
            with gr.Row():
                self.q_dataset = gr.Textbox(label="Dataset (empty: all)")
                self.q_overlap = gr.Number(1, label="Overlap", precision=0)
                self.q_priority = gr.Number(0, label="Priority", precision=0)
                self.q_limit = gr.Number(100, label="Max tasks", precision=0)
            with gr.Row():
                self.b_add = gr.Button("Create tasks from prompts' responses")
                self.b_gold = gr.Button("Create gold tasks from imported human labels")
            self.queue_df = gr.Dataframe(label="Open tasks (highest priority first)", interactive=False,
                                         visible=False, elem_id="pf-queue")
        with gr.Accordion("Export", open=False):
            with gr.Row():
                self.e_out = gr.Textbox(label=f"Export folder (inside {self.app.admin.exports_root()})",
                                        value="latest")
                self.e_source = gr.Dropdown(["all", "human", "ai"], value="human", label="Source")
                self.e_agree = gr.Number(0.0, label="Min agreement")
                self.e_test = gr.Number(0.1, label="Test fraction")
            self.b_export = gr.Button("Export pairs")

    def _job_controls(self) -> None:
        with gr.Accordion("Training and judge jobs", open=False):
            with gr.Row():
                self.j_cmd = gr.Dropdown(list(JOB_KINDS), value="train", label="Job")
                self.j_kind = gr.Dropdown([k for kinds in JOB_KINDS.values() for k in kinds], value="rm",
                                          label="Kind / mode")
                self.j_model = gr.Textbox(label="Model", value="")
                self.j_steps = gr.Number(None, label="Max steps (train)", precision=0)
                self.j_limit = gr.Number(None, label="Limit (judge)", precision=0)
            self.b_start = gr.Button("Start job")
        self.runs_df = gr.Dataframe(label="Runs", interactive=False, visible=False, elem_id="pf-runs")
        with gr.Accordion("Webhooks and retraining trigger", open=False):
            self.trigger_md = gr.Markdown(elem_id="pf-trigger")
            self.hooks_df = gr.Dataframe(label="Webhook deliveries (newest first)", interactive=False,
                                         visible=False, elem_id="pf-deliveries")
        with gr.Row():
            self.m_run = gr.Number(None, label="Run id (its summary and metrics)", precision=0)
            self.m_names = gr.Textbox(label="Metrics (comma separated; empty: loss, accuracy, reward, kl)")
        self.run_summary_df = gr.Dataframe(label="Run summary", interactive=False, visible=False,
                                           elem_id="pf-run-summary")
        self.plot = gr.LinePlot(x="step", y="value", color="metric", label="Run metrics", visible=False,
                                elem_id="pf-run-plot")

    # ------------------------------------------------------------------ figures
    def _run_summary(self, run_id):
        if not run_id:
            return gr.update(visible=False)
        rows = self.app.admin.run_summary(int(run_id))
        return gr.update(value=pd.DataFrame(rows, columns=["field", "value"]), visible=True)

    def _run_plot(self, run_id, names):
        if not run_id:
            return gr.update(value=pd.DataFrame({"step": [], "value": [], "metric": []}), visible=False)
        wanted = [n.strip() for n in (names or "").split(",") if n.strip()] or DEFAULT_METRICS
        df = pd.DataFrame(self.app.admin.run_metrics(int(run_id), wanted), columns=["step", "metric", "value"])
        return gr.update(value=df, visible=len(df) > 0)

    def figures(self, run_id, names) -> tuple:
        """Every figure of the tab, in the order of :meth:`wire`'s outputs."""
        admin = self.app.admin
        self.app.jobs.reap()
        board = admin.dashboard()
        annot, _ = _table(board["annotators"], "")
        n1 = ("" if any(r.get("total") for r in board["annotators"])
              else "No submissions yet: nobody has labeled a task.")
        data, n2 = _table(board["datasets"], "No prompts imported yet (`prefloop import FILE`).")
        ai, _ = _table(board["human_vs_ai"], "")
        queue, n4 = _table(admin.queue(), "The queue is empty: create tasks below.")
        runs, n5 = _table(admin.runs(), "No training or judge runs yet.")
        act = admin.activity()
        people, _ = _table(admin.people(), "")
        quality_rows = admin.quality()
        quality, _ = _table(quality_rows, "")
        flagged = [r["annotator"] for r in quality_rows if r["flags"] != "-"]
        n7 = (f"Quality flags on {', '.join(flagged)}: see People, quality control." if flagged else "")
        text = dashboard_markdown(board, len(self.app.review.queue()), self.app.review.counts(),
                                  self.app.store.comparisons.assist_report(),
                                  [n for n in (n7, n1, n2, n4, n5) if n])
        rated, _ = _table(admin.ratings(), "")
        hooks, n6 = _table(admin.webhook_deliveries(), "No webhook deliveries yet (`prefloop webhooks add URL`).")
        return (text, annot, data, ai, queue, runs, self._run_plot(run_id, names),
                _line(act["submissions"], "hour", "submissions"), _line(act["agreement"], "hour", "agreement"),
                _line(act["burndown"], "hour", "open"), people, rated,
                trigger_markdown(admin.retraining_trigger()) + ("\n\n" + n6 if n6 else ""), hooks,
                self._run_summary(run_id), quality)

    # ------------------------------------------------------------------ handlers
    def wire(self, tab: gr.Tab) -> None:
        """Register the tab's events (inside the Blocks context); ``tab``: the Admin tab."""
        app, admin = self.app, self.app.admin

        @handler(app, role="admin")
        def admin_refresh(user, run_id, names):
            return self.figures(run_id, names)

        @handler(app, role="admin")
        def admin_add_tasks(user, dataset, overlap, priority, limit):
            r = admin.add_tasks(dataset=dataset, overlap=int(overlap or 1), priority=int(priority or 0),
                                limit=int(limit) if limit else None)
            return f"{r.created} tasks created, {r.existing} already queued, for {dataset or 'all datasets'}."

        @handler(app, role="admin")
        def admin_add_gold(user, dataset, limit):
            n = admin.add_gold(dataset=dataset, limit=int(limit) if limit else None)
            return f"{n} gold tasks (served at rate {app.config.gold_rate})."

        @handler(app, role="admin")
        def admin_export(user, out, source, agree, test):
            return admin.export(out, source=source, min_agreement=float(agree or 0),
                                test_fraction=float(test or 0))

        @handler(app, role="admin")
        def admin_start_job(user, cmd, kind, model, steps, limit):
            args: dict[str, Any] = {"model": model or None}
            if cmd == "train":
                args["max_steps"] = int(steps) if steps else None
            else:
                args["limit"] = int(limit) if limit else None
            pid, log = app.jobs.start(cmd, kind, args)
            return f"Started {cmd} {kind} (pid {pid}); log: {log}"

        @handler(app, role="admin")
        def admin_reenable(user, name):
            return admin.reenable(name), gr.update(value=pd.DataFrame(admin.people()), visible=True)

        outputs = [self.agreement_md, self.annot_df, self.data_df, self.ai_df, self.queue_df, self.runs_df,
                   self.plot, self.subs_plot, self.agree_plot, self.burn_plot, self.people_df, self.ratings_df,
                   self.trigger_md, self.hooks_df, self.run_summary_df, self.quality_df]
        plot_in = [self.m_run, self.m_names]
        self.b_refresh.click(admin_refresh, plot_in, outputs, api_name="admin_refresh")
        self.m_run.change(admin_refresh, plot_in, outputs, api_name=False)
        self.timer.tick(admin_refresh, plot_in, outputs, api_name=False)
        tab.select(admin_refresh, plot_in, outputs, api_name=False)   # figures on open
        self.b_reenable.click(admin_reenable, [self.p_name], [self.status, self.people_df],
                              api_name="admin_reenable")
        self.b_add.click(admin_add_tasks, [self.q_dataset, self.q_overlap, self.q_priority, self.q_limit],
                         self.status, api_name="admin_add_tasks")
        self.b_gold.click(admin_add_gold, [self.q_dataset, self.q_limit], self.status, api_name="admin_add_gold")
        self.b_export.click(admin_export, [self.e_out, self.e_source, self.e_agree, self.e_test], self.status,
                            api_name="admin_export")
        self.b_start.click(admin_start_job, [self.j_cmd, self.j_kind, self.j_model, self.j_steps, self.j_limit],
                           self.status, api_name="admin_start_job")
