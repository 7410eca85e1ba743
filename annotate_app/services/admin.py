"""The admin's side of the labeling app, without Gradio: progress and agreement figures, the
people (roles, qualification, pauses), the queue, exports confined to one folder, the Models
and Labelers views, and the runs' table and metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefloop import store
from prefloop.core.agreement import (
    judge_agreement,
    krippendorff_alpha,
    pairwise_agreement,
    ranking_units,
)
from prefloop.core.display import cell, interval
from prefloop.store.counts import (
    ai_labelers,
    labeling_activity,
    labeling_dashboard,
    labels_since_last_loop,
    ratings_summary,
    task_rankings,
)
from prefloop.store.export_files import export_pairs
from prefloop.store.judge_rows import agreement_rows
from prefloop.store.pairs import PairFilters
from prefloop.store.reliability import labeler_reliability

from ..config import AppConfig
from ..errors import InvalidSubmission

__all__ = ["AdminService"]


class AdminService:
    """Admin operations on one store (``config``: the app's settings)."""

    def __init__(self, s: store.Store, config: AppConfig):
        self.store, self.config = s, config

    def activity(self) -> dict[str, list[dict[str, Any]]]:
        """Submissions per hour, agreement over time and the queue's burn-down (48 hours);
        see :func:`prefloop.store.counts.labeling_activity`."""
        return labeling_activity(self.store)

    def ratings(self) -> list[dict[str, Any]]:
        """Per-response ratings by dataset and aspect (:func:`prefloop.store.counts.ratings_summary`)."""
        return ratings_summary(self.store)

    def people(self) -> list[dict[str, Any]]:
        """Users with their role, qualification, pause reason and gold accuracy."""
        gold = self.store.reviews.gold_tally()
        return [{"user": a.name, "role": a.role, "active": a.active,
                 "qualified": "" if a.qualified_at is None else a.qualified_at.strftime("%Y-%m-%d %H:%M"),
                 "gold": "{}/{}".format(*gold[a.id]) if a.id in gold else "",
                 "paused": a.paused_reason or ""} for a in self.store.annotators.list()]

    def quality(self) -> list[dict[str, Any]]:
        """Quality control (:mod:`.quality`): per annotator, items read, median seconds, the
        share under the time floor, the answer they give most, gold right, and the flags with
        their evidence; under the app's ``quality`` rules, else the defaults."""
        from ..config import QualityConfig
        from .quality import quality_reports

        cfg = self.config.quality or QualityConfig()
        return [r.row() for r in quality_reports(self.store, cfg)]

    def reenable(self, name: str) -> str:
        """Re-open a paused annotator's queue (qualified now, rolling gold window restarted)."""
        a = self.store.annotators.get((name or "").strip())
        self.store.annotators.set_qualification(a.id, reenable=True)
        return f"{a.name} re-enabled" + (f" (was paused: {a.paused_reason})" if a.paused_reason else "")

    def dashboard(self) -> dict[str, Any]:
        """Progress per annotator and dataset, inter-annotator and human-vs-AI agreement."""
        board = labeling_dashboard(self.store)
        units = ranking_units(task_rankings(self.store))
        board["agreement"] = {"krippendorff_alpha": krippendorff_alpha(units),
                              "pairwise_agreement": pairwise_agreement(units),
                              "units_with_overlap": sum(len(u) >= 2 for u in units)}
        ai = ai_labelers(self.store)
        board["human_vs_ai"] = []
        for name in ai:
            m = judge_agreement(agreement_rows(self.store, name))["all"]
            board["human_vs_ai"].append({"ai_labeler": name, "pairs": m["pairs"],
                                         "accuracy": m["accuracy"], "kappa": m["kappa"]})
        return board

    def models(self) -> list[dict[str, Any]]:
        """The Models view: one row per evaluated model version (Bradley-Terry rating on the Elo
        scale with its 95% CI and votes, people's and AI's ratings, parent run, round, KL to the
        reference, mean length); see :func:`models_table`."""
        return models_table(self.store)

    def labelers(self) -> list[dict[str, Any]]:
        """Per labeler (people, datasets' crowds, AI judges under a principle): votes,
        Dawid-Skene accuracy with its 95% CI, gold accuracy, agreement with the others,
        length and position bias; see :func:`prefloop.store.pairs.labeler_reliability`."""
        def na(v, why: str = "") -> str:
            return cell(v, 2) if v is not None else f"n/a ({why})" if why else "n/a"

        return [{"labeler": x.labeler, "kind": x.kind, "votes": x.votes,
                 "accuracy": (interval(x.accuracy, x.accuracy_low, x.accuracy_high)
                              if x.accuracy is not None and x.accuracy_low is not None
                              else na(x.accuracy, x.extra.get("why", ""))),
                 "gold": na(x.gold_accuracy, "" if x.gold_votes else "no gold"), "gold_votes": x.gold_votes,
                 "agreement": na(x.consensus_agreement, "" if x.consensus_votes else "no overlap"),
                 "longer_chosen": na(x.extra.get("longer_chosen")), "first_shown": na(x.extra.get("first_shown"))}
                for x in labeler_reliability(self.store)]

    def queue(self, limit: int = 50) -> list[dict[str, Any]]:
        """Open tasks, highest priority first: ``{task, prompt, k, overlap, done, leased,
        priority, gold, reason}``."""
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
        """Gold tasks from imported human labels; returns how many were created."""
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

    def runs(self) -> list[dict[str, Any]]:
        """Every run, newest first: ``{run, kind, status, parent, export, started, headline}``,
        the headline a few of its summary's figures (:data:`HEADLINE`; the whole summary is
        :meth:`run_summary`); runs whose process died are marked interrupted first."""
        self.store.runs.reap()
        return [{"run": r.id, "kind": r.kind, "status": r.status, "parent": r.parent_run_id,
                 "export": r.export_id,
                 "started": r.started_at.strftime("%Y-%m-%d %H:%M") if r.started_at else "",
                 "headline": "; ".join(f"{label} {cell(v, sig=True)}" for label, v in _headline(r.summary or {}))}
                for r in reversed(self.store.runs.list())]

    def run_summary(self, run_id: int) -> list[dict[str, str]]:
        """A run's summary as rows ``{field, value}``: nested figures under dotted names
        (``eval.all.accuracy``), numbers to 4 significant digits, lists shortened.

        Raises:
            prefloop.store.NotFoundError: no such run."""
        return [{"field": k, "value": v} for k, v in _flatten(self.store.runs.get(run_id).summary or {})]

    def webhook_deliveries(self, limit: int = 50) -> list[dict[str, Any]]:
        """Recent webhook deliveries, newest first: ``{delivery, url, event, status, attempts,
        last_status, last_error, created, delivered}`` (status ``pending``, ``delivered`` or
        ``failed``; times UTC)."""
        urls = {w.id: w.url for w in self.store.webhooks.list()}
        t = lambda d: d.strftime("%Y-%m-%d %H:%M:%S") if d else ""  # noqa: E731
        return [{"delivery": d.id, "url": urls.get(d.webhook_id, f"webhook {d.webhook_id} (removed)"),
                 "event": d.event, "status": d.status, "attempts": d.attempts,
                 "last_status": d.last_status, "last_error": (d.last_error or "")[:120],
                 "created": t(d.created_at), "delivered": t(d.delivered_at)}
                for d in self.store.webhooks.deliveries(limit=limit)]

    def retraining_trigger(self) -> dict[str, Any] | None:
        """Where the next self-triggered retraining stands (``prefloop loop --watch``), read from
        the newest loop iteration whose config has a ``trigger``: ``{loop_run, status,
        new_labels, needed, min_interval, after_comparison_id, minutes_since_last}``, counted
        as the watch counts (human labels, evaluation labels left out, after the iteration's
        ``labels_at_start``); ``None`` when no iteration had a trigger."""
        with_trigger = [r for r in self.store.runs.list(kind="loop")
                        if isinstance((r.config or {}).get("trigger"), dict)]
        if not with_trigger:
            return None
        trig, p = with_trigger[-1].config["trigger"], labels_since_last_loop(self.store)
        since = p["seconds_since_last"]
        return {"loop_run": p["loop_run"], "status": p["status"], "new_labels": p["new_labels"],
                "needed": trig.get("new_labels"), "min_interval": trig.get("min_interval", 0),
                "after_comparison_id": p["after_comparison_id"],
                "minutes_since_last": None if since is None else since / 60}

    def run_metrics(self, run_id: int, names: list[str] | None = None) -> list[dict[str, Any]]:
        """A run's metrics as ``{step, metric, value}`` rows (only ``names``, when given)."""
        rows = self.store.runs.metrics(run_id)
        return [{"step": m.step, "metric": m.name, "value": m.value} for m in rows
                if names is None or m.name in names]


#: The runs table's headline: (label, dotted summary key), the first few that a run has.
HEADLINE = (("steps", "steps"), ("loss", "train_loss"), ("accuracy", "eval.all.accuracy"),
            ("eval acc.", "eval.rewards/accuracies"), ("reward", "mean_reward"), ("tasks", "tasks"),
            ("comparisons", "comparisons"), ("responses", "responses"), ("labeled", "labeled"),
            ("revisions", "revisions"), ("prompts", "prompts"), ("seconds", "seconds"))


def _headline(summary: dict[str, Any], n: int = 4) -> list[tuple[str, Any]]:
    flat = dict(_flatten(summary, raw=True))
    return [(label, flat[key]) for label, key in HEADLINE if isinstance(flat.get(key), (int, float))][:n]


def _flatten(d: dict[str, Any], prefix: str = "", *, raw: bool = False) -> list[tuple[str, Any]]:
    """``(dotted key, value)`` of a nested summary; values formatted unless ``raw``."""
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out += _flatten(v, key + ".", raw=raw)
        elif raw:
            out.append((key, v))
        elif isinstance(v, list):
            shown = ", ".join(cell(x, sig=True) for x in v[:6] if not isinstance(x, (dict, list)))
            out.append((key, f"{shown}{' ...' if len(v) > 6 else ''} ({len(v)} items)" if shown else f"{len(v)} items"))
        else:
            out.append((key, cell(v, sig=True)))
    return out


def models_table(s: store.Store, *, anchor: str | None = None) -> list[dict[str, Any]]:
    """One row per model version for the admin page: combined rating with its CI and votes,
    people's and AI's ratings, parent run, round, KL to the reference, mean length. Versions
    without votes have no rating."""
    from prefloop.core.models import DEFAULT_MODEL
    from prefloop.core.stats import VOTE_GROUPS, leaderboards
    from prefloop.store.versions import version_info

    boards = leaderboards(s.samples.model_votes(with_tokens=True), anchor=anchor, fallback_anchor=DEFAULT_MODEL)
    rows = []
    for model, meta in version_info(s).items():
        row = {"model": model, "kind": meta["kind"], "round": meta["round"],
               "parent_run": meta["parent_run_id"], "status": meta["status"]}
        for group in VOTE_GROUPS:
            b = boards.get(group)
            rated = b is not None and model in b.ratings
            row[f"rating_{group}"] = round(b.ratings[model]) if rated else None
            if group == "all":
                row["ci"] = (f"{b.low[model]:.0f} .. {b.high[model]:.0f}" if rated else None)
                row["votes"] = b.votes.get(model, 0) if b else 0
        row.update(kl=None if meta["kl"] is None else round(meta["kl"], 2),
                   mean_tokens=None if meta["mean_tokens"] is None else round(meta["mean_tokens"], 1),
                   eval_run=meta["eval_run_id"])
        rows.append(row)
    return sorted(rows, key=lambda r: (r["rating_all"] is None, -(r["rating_all"] or 0), r["model"]))
