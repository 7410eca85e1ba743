"""``prefloop loop --watch``: retraining that triggers itself.

Every ``poll_seconds`` the watch counts the human labels (evaluation labels left out) recorded
since the newest loop iteration began (its ``labels_at_start``; with no iteration yet, all of
them) and starts one iteration (:func:`~prefloop.pipelines.loop.run_loop`) when there are at
least ``trigger.new_labels`` of them and ``trigger.min_interval`` seconds have passed since that
iteration began. One iteration at a time; each records what triggered it (``trigger`` in its
summary: the count, the comparison id it counted from, the time). A failed iteration stops the
watch with its error (no silent retry loop); so does an interrupted one left by another process.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from prefloop import store
from prefloop.core.errors import PrefloopError
from prefloop.store.counts import labels_since_last_loop

from .errors import PipelineError
from .loop_config import LoopConfig

log = logging.getLogger(__name__)

__all__ = ["trigger_progress", "watch", "WatchError"]


class WatchError(PipelineError):
    """The watch cannot go on: no trigger in the config, or an iteration failed."""


def trigger_progress(s: store.Store, cfg: LoopConfig, now: datetime | None = None) -> dict[str, Any]:
    """Where the next trigger stands: ``{"new_labels", "needed", "after_comparison_id",
    "seconds_since_last", "min_interval", "due"}`` (``seconds_since_last`` is ``None`` before
    the first iteration)."""
    if cfg.trigger is None:
        raise WatchError("the loop config has no trigger: add trigger: {new_labels: N, min_interval: 1h}")
    p = labels_since_last_loop(s, now)
    n, since = p["new_labels"], p["seconds_since_last"]
    due = n >= cfg.trigger.new_labels and (since is None or since >= cfg.trigger.min_interval)
    return {"new_labels": n, "needed": cfg.trigger.new_labels,
            "after_comparison_id": p["after_comparison_id"], "seconds_since_last": since,
            "min_interval": cfg.trigger.min_interval, "due": due}


def watch(s: store.Store, cfg: LoopConfig, *, poll_seconds: float = 30.0,
          max_iterations: int | None = None) -> int:
    """Start loop iterations as the trigger says (see the module docstring) until
    ``max_iterations`` have run (``None``: until interrupted); returns how many ran.

    Raises:
        WatchError: no trigger; an iteration failed (the error is in the message) or another
            iteration is still running or was interrupted (resume it with ``prefloop loop``).
    """
    from .loop import run_loop

    ran = 0
    while max_iterations is None or ran < max_iterations:
        s.runs.reap()
        loops = s.runs.list(kind="loop")
        if loops and loops[-1].status in ("running", "interrupted", "failed"):
            last = loops[-1]
            why = (last.summary or {}).get("error", "")
            raise WatchError(f"loop iteration {last.id} is {last.status}{': ' + why if why else ''}; "
                             "the watch stops (resume or fix it with `prefloop loop --config ...`)")
        p = trigger_progress(s, cfg)
        if p["due"]:
            log.info("Trigger: %d new human labels since comparison %s (needed %d): starting an iteration",
                     p["new_labels"], p["after_comparison_id"], p["needed"])
            trigger = {"by": "watch", "new_labels": p["new_labels"],
                       "after_comparison_id": p["after_comparison_id"],
                       "at": store.utcnow().isoformat()}
            try:
                run_loop(s, cfg, fresh=True, trigger=trigger)
            except PrefloopError as exc:     # a bug is not a user error: it keeps its traceback
                raise WatchError(f"the triggered loop iteration failed: {exc}; the watch stops") from exc
            ran += 1
            continue
        time.sleep(poll_seconds)
    return ran
