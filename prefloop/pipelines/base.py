"""Resumable multi-stage jobs (``prefloop demo``, ``prefloop loop``) recorded as runs.

A pipeline is a ``demo``, ``loop``, ``iterative-dpo`` or ``rs-sft`` run whose summary records each finished stage (its result
and seconds). Running the same pipeline again resumes: finished stages are skipped and their
recorded results reused, so an interrupted demo continues where it stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from prefloop import store
from prefloop.core.secrets import redact

__all__ = ["Pipeline"]

log = logging.getLogger(__name__)


def stage_output(run: store.Run, stage: str) -> dict[str, Any]:
    """What stage ``stage`` of the pipeline run ``run`` returned (``{}`` when it did not run)."""
    return dict(((run.summary or {}).get("stages") or {}).get(stage) or {})


class Pipeline:
    """Stages of one ``kind`` run (``demo`` or ``loop``) with the given ``config``.

    Args:
        resume: continue the newest unfinished run of this kind with an equal config (or,
            with ``reuse_finished``, return the results of a finished one) instead of starting
            a new run.
        pipeline_run_id: the pipeline this one is a stage of (an on-policy method in the demo).
    """

    def __init__(self, s: store.Store, kind: str, config: dict[str, Any], *, resume: bool = True,
                 reuse_finished: bool = True, pipeline_run_id: int | None = None):
        self.store, self.kind = s, kind
        s.runs.reap()
        previous = [r for r in s.runs.list(kind=kind) if r.config == config] if resume else []
        self.already_finished = False
        if previous and (previous[-1].status != "finished" or reuse_finished):
            run = previous[-1]
            self.already_finished = run.status == "finished"
            if not self.already_finished:
                run = s.runs.update(run.id, status="running", claim=True)
            log.info("Resuming %s run %d (%d stages done)", kind, run.id,
                     len((run.summary or {}).get("stages") or {}))
        else:
            run = s.runs.create(kind, config, pipeline_run_id=pipeline_run_id)
        self.run = run
        self.stages: dict[str, dict[str, Any]] = dict((run.summary or {}).get("stages", {}))

    def stage(self, name: str, title: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Run ``fn`` unless stage ``name`` already finished; ``fn`` returns a JSON-able dict
        (its result, kept in the pipeline run's summary)."""
        if name in self.stages:
            log.info("- %s: done earlier (%.0f s), skipped", title, self.stages[name]["seconds"])
            return self.stages[name]
        log.info("%s", title)
        t0 = time.perf_counter()
        try:
            result = fn()
        except KeyboardInterrupt:
            self.store.runs.update(self.run.id, status="interrupted")
            raise
        except BaseException as exc:
            self.store.runs.update(self.run.id, status="failed",
                                  summary={"error": redact(f"{name}: {type(exc).__name__}: {exc}")})
            raise
        result = {**result, "seconds": round(time.perf_counter() - t0, 1)}
        self.stages[name] = result
        self.store.runs.update(self.run.id, summary={"stages": self.stages})
        return result

    def finish(self, summary: dict[str, Any] | None = None) -> store.Run:
        self.run = self.store.runs.update(self.run.id, status="finished",
                                         summary={**(summary or {}), "stages": self.stages})
        return self.run
