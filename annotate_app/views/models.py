"""The Models tab (admins): every evaluated model version with its Bradley-Terry rating, the
ratings by round, and every labeler's reliability."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from ..handlers import handler
from ..services import AppServices

__all__ = ["ModelsView"]


def models_note(rows: list[dict]) -> str:
    """The line above the Models table: what there is to see, or what to do first."""
    rated = [r for r in rows if r["rating_all"] is not None]
    if not rows:
        return ("No model version has been evaluated yet: run `prefloop eval --models "
                "BASE,run:ID --prompts DATASET --tasks N` and label its blind tasks.")
    if not rated:
        return (f"{len(rows)} model versions evaluated, no votes between them yet: label "
                "the queued evaluation tasks (or run `prefloop eval --judge local`).")
    return (f"{len(rows)} model versions, {sum(r['votes'] for r in rated) // 2} votes "
            "between them (people's and AI judges'; each column kept apart).")


class ModelsView:
    """The Models tab's components (built inside the current ``gr.Tab``) and its handlers."""

    def __init__(self, app: AppServices):
        self.app = app
        self.note = gr.Markdown("", elem_id="pf-models-note")
        self.models_df = gr.Dataframe(label="Model versions (Bradley-Terry rating, Elo scale, 95% CI)",
                                      interactive=False, elem_id="pf-models")
        self.plot = gr.ScatterPlot(x="round", y="rating", color="model",
                                   label="Rating by round (all votes)", elem_id="pf-models-plot")
        self.labelers_df = gr.Dataframe(label="Labelers (Dawid-Skene accuracy with 95% CI; longer_chosen "
                                              "and first_shown: length and position bias, 0.5 is none)",
                                        interactive=False, elem_id="pf-labelers")
        self.b_refresh = gr.Button("Refresh", size="sm", elem_id="pf-models-refresh")

    def wire(self, tab: gr.Tab) -> None:
        """Register the tab's events (inside the Blocks context); ``tab``: the Models tab."""
        admin = self.app.admin

        @handler(self.app, role="admin")
        def admin_models(user):
            rows = admin.models()
            plot_rows = pd.DataFrame([{"round": str(r["round"]), "rating": r["rating_all"], "model": r["model"]}
                                      for r in rows if r["rating_all"] is not None],
                                     columns=["round", "rating", "model"])
            return models_note(rows), pd.DataFrame(rows), plot_rows, pd.DataFrame(admin.labelers())

        outputs = [self.note, self.models_df, self.plot, self.labelers_df]
        tab.select(admin_models, None, outputs, api_name="admin_models")
        self.b_refresh.click(admin_models, None, outputs, api_name=False)
