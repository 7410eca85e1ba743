"""Each model version evaluated in the store: its training run, lineage round, and KL and length
from its newest evaluation (the admin page's Models tab reads it beside the leaderboards of
:func:`prefloop.core.stats.leaderboards`)."""

from __future__ import annotations

from typing import Any

from prefloop.core.models import POLICY_RUN_KINDS

from .db import Store
from .records import Run

__all__ = ["version_info"]


def _round(s: Store, run: Run | None) -> int:
    """How many policy updates separate a version from its base model."""
    n = 0
    while run is not None:
        n += run.kind in POLICY_RUN_KINDS
        run = s.runs.get(run.parent_run_id) if run.parent_run_id else None
    return n


def version_info(s: Store) -> dict[str, dict[str, Any]]:
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
