"""The model-version leaderboard: Bradley-Terry ratings of every model version evaluated in the
store, from all pairwise votes between their responses (people's and AI judges', kept apart
and combined), beside each version's lineage, KL and length from its latest evaluation.

Torch-free: the CLI, the demo and the labeling app's Models view all read it.
"""

from __future__ import annotations

from typing import Any

from prefloop import store
from prefloop.core.models import DEFAULT_MODEL, POLICY_RUN_KINDS
from prefloop.core.stats import Leaderboard, bradley_terry, bradley_terry_style, length_feature

__all__ = ["GROUPS", "leaderboards", "version_info", "models_table"]

#: Vote groups: people only, AI judges only, and both together.
GROUPS = ("human", "ai", "all")


def leaderboards(s: store.Store, *, anchor: str | None = None, n_resamples: int = 200,
                 style_control: bool = False) -> dict[str, Leaderboard]:
    """A :class:`Leaderboard` per vote group that has votes (``human``, ``ai``, ``all``), on the
    Elo scale with ``anchor`` at 1000 (default: the embedded base model when rated, else the
    first model by name). With ``style_control`` each group also gets ``<group>-length``: the
    ratings at equal length (:func:`~prefloop.core.stats.bradley_terry_style` on
    :func:`~prefloop.core.stats.length_feature`, FastChat's style control), whose ``style``
    holds the length coefficient; a rating that drops there was bought by length."""
    votes = s.samples.model_votes(with_tokens=True)
    out = {}
    for group in GROUPS:
        sel = [v for v in votes if group == "all" or v[3] == group]
        if not sel:
            continue
        pairs = [(a, b, o) for a, b, o, *_ in sel]
        rated = {m for a, b, _ in pairs for m in (a, b)}
        chosen = anchor if anchor in rated else DEFAULT_MODEL if DEFAULT_MODEL in rated else None
        out[group] = bradley_terry(pairs, anchor=chosen, n_resamples=n_resamples)
        if style_control:
            length = length_feature([v[4] for v in sel], [v[5] for v in sel])
            out[f"{group}-length"] = bradley_terry_style(pairs, {"length": length}, anchor=chosen,
                                                         n_resamples=n_resamples)
    return out


def _round(s: store.Store, run: store.Run | None) -> int:
    """How many policy updates separate a version from its base model."""
    n = 0
    while run is not None:
        n += run.kind in POLICY_RUN_KINDS
        run = s.runs.get(run.parent_run_id) if run.parent_run_id else None
    return n


def version_info(s: store.Store) -> dict[str, dict[str, Any]]:
    """Per model version (``run:ID``, a base model name or a path): its training run's kind,
    parent run and round (policy updates since the base), and from the newest evaluation that
    included it: KL to that evaluation's reference (nats per response), mean length (tokens)
    and the eval run's id."""
    info: dict[str, dict[str, Any]] = {}
    for model in s.samples.models():
        run = None
        if model.startswith("run:") and model.split("#")[0][4:].isdigit():
            run = s.runs.get(int(model.split("#")[0][4:]))
        info[model] = {"kind": run.kind if run else "base", "run_id": run.id if run else None,
                       "parent_run_id": run.parent_run_id if run else None,
                       "status": run.status if run else None, "round": _round(s, run),
                       "kl": None, "mean_tokens": None, "eval_run_id": None}
    for ev in s.runs.list(kind="eval", status="finished"):
        for row in (ev.summary or {}).get("rows", []):
            if row["model"] in info:
                info[row["model"]].update(kl=row["overall"].get("kl"),
                                          mean_tokens=row["overall"].get("mean_tokens"), eval_run_id=ev.id)
    return info


def models_table(s: store.Store, *, anchor: str | None = None) -> list[dict[str, Any]]:
    """One row per model version for the admin page: combined rating with its CI and votes,
    people's and AI's ratings, parent run, round, KL to the reference, mean length. Versions
    without votes have no rating."""
    boards = leaderboards(s, anchor=anchor)
    rows = []
    for model, meta in version_info(s).items():
        row = {"model": model, "kind": meta["kind"], "round": meta["round"],
               "parent_run": meta["parent_run_id"], "status": meta["status"]}
        for group in GROUPS:
            b = boards.get(group)
            rated = b is not None and model in b.ratings
            row[f"rating_{group}"] = round(b.ratings[model], 1) if rated else None
            if group == "all":
                row["ci"] = (f"{b.low[model]:.0f} .. {b.high[model]:.0f}" if rated else None)
                row["votes"] = b.votes.get(model, 0) if b else 0
        row.update(kl=meta["kl"], mean_tokens=meta["mean_tokens"], eval_run=meta["eval_run_id"])
        rows.append(row)
    return sorted(rows, key=lambda r: (r["rating_all"] is None, -(r["rating_all"] or 0), r["model"]))
