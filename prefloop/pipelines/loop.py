"""``prefloop loop --config loop.yaml``: the demo's cycle for real use.

One iteration: export the labels added since the last iteration -> train a reward model ->
update the policy (any method: DPO, iterative DPO, PPO, GRPO, RLOO, rejection-sampling SFT,
ORPO, KTO) -> evaluate the new policy against its parent
(:mod:`prefloop.pipelines.evaluation`; with ``min_second_rm_win_rate``, a policy that loses ground under the
second reward model is recorded as ``rejected`` and not promoted) -> sample new responses from
the promoted policy -> judge them -> queue the most uncertain pairs. Every step is a recorded
run with lineage; any step can be skipped (``skip: true``); re-running after an interruption
resumes the unfinished iteration.

The config is :class:`~prefloop.pipelines.loop_config.LoopConfig` (``loop.yaml``, read by
:func:`~prefloop.pipelines.loop_config.load_loop_config`).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from prefloop import store
from prefloop.core.kinds import ONPOLICY_KINDS
from prefloop.store.export_files import export_pairs
from prefloop.store.pairs import NoPairsMatch, PairFilters

from .base import Pipeline, stage_output
from .loop_config import REWARDED_UPDATES, EvalStep, LoopConfig, TrainStep, load_loop_config

log = logging.getLogger(__name__)

__all__ = ["load_loop_config", "run_loop", "LoopConfig"]


#: The loop trains its reward model as an ensemble of this many members unless ``rm.ensemble``
#: says otherwise (``null``: one model): the queue's ``select: uncertain`` then ranks pairs by
#: the members' disagreement, which needed a third of random selection's labels in
#: ``bench/label_efficiency.py`` (README: "Labels that go further").
DEFAULT_RM_ENSEMBLE = 3


def run_loop(s: store.Store, cfg: LoopConfig, *, fresh: bool = False,
             trigger: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run (or resume) one loop iteration; returns the stage results (stage name -> its
    recorded result: ``run_id`` and the step's figures). ``trigger``: what started it (from
    :func:`watch`), recorded in the run's summary; every iteration records the newest
    comparison id at its start (``labels_at_start``), from which the next trigger counts."""
    pipe = Pipeline(s, "loop", cfg.raw, resume=not fresh, reuse_finished=False)
    loop_id = pipe.run.id
    if "labels_at_start" not in (pipe.run.summary or {}):
        s.runs.update(loop_id, summary={"labels_at_start": s.comparisons.max_id(),
                                        "trigger": trigger or {"by": "hand"}})
    previous = [r for r in s.runs.list(kind="loop") if r.status == "finished" and r.id != loop_id]

    def export():
        since = None
        if cfg.export.since_last and previous:
            since = stage_output(previous[-1], "export").get("export_id")
        out = s.path.resolve().parent / "runs" / f"loop-{loop_id}-export"
        try:
            r = export_pairs(s, out, replace(cfg.export.filters, since_export=since), overwrite=True)
        except NoPairsMatch:
            log.info("  no new labels since export %s: training steps are skipped", since)
            return {"export_id": None, "since_export": since, "pairs": 0}
        log.info("  export %d: %d pairs (since export %s)", r.export.id, r.export.n_pairs, since)
        return {"export_id": r.export.id, "since_export": since, "pairs": r.export.n_pairs}

    ex = pipe.stage("export", "Export labels since the last iteration", export)
    policy, rm_ref = cfg.policy, None
    if ex["export_id"] is not None and not cfg.rm.skip:
        res = pipe.stage("rm", "Train the reward model", lambda: _train(
            s, cfg.rm, {"model": "minilm", "ensemble": DEFAULT_RM_ENSEMBLE, **cfg.rm.settings,
                        "export_id": ex["export_id"]}, loop_id))
        rm_ref = f"run:{res['run_id']}"
    update = cfg.update
    if ex["export_id"] is not None and update is not None and not update.skip:
        overrides = {"model": policy, **update.settings, "export_id": ex["export_id"]}
        if update.kind in REWARDED_UPDATES:
            overrides.setdefault("reward_model", rm_ref)
        if update.kind in ONPOLICY_KINDS:
            step = lambda: _onpolicy(s, update, overrides, loop_id)  # noqa: E731
        elif update.kind == "kto":
            step = lambda: _train(s, update, {**overrides, "export_id": _kto_export(  # noqa: E731
                s, cfg, ex["export_id"], loop_id)}, loop_id)
        else:
            step = lambda: _train(s, update, overrides, loop_id)  # noqa: E731
        res = pipe.stage(update.kind, f"Update the policy ({update.kind})", step)
        candidate = f"run:{res['run_id']}"
        if cfg.eval.skip:
            policy = candidate
        else:
            ev = pipe.stage("eval", "Evaluate the new policy against its parent", lambda: _evaluate(
                s, policy, candidate, ex["export_id"], rm_ref, cfg.eval, loop_id))
            policy = candidate if ev["promoted"] else policy
    if not cfg.generate.skip:
        pipe.stage("generate", "Sample new responses", lambda: _generate(s, cfg, policy, rm_ref, loop_id))
    if not cfg.judge.skip:
        pipe.stage("judge", "Judge the new responses", lambda: _judge(s, cfg, loop_id))
    pipe.stage("queue", "Queue for people", lambda: {"open_tasks": s.tasks.count_open()})
    run = pipe.finish()
    log.info("Loop iteration %d finished: %s", run.id, ", ".join(
        f"{k} {v.get('run_id', '')}".strip() for k, v in pipe.stages.items()))
    return pipe.stages


def _generate(s: store.Store, cfg: LoopConfig, policy: str, rm_ref: str | None, loop_id: int) -> dict[str, Any]:
    from prefloop.training.generate import generate

    g = cfg.generate
    r = generate(s, policy, g.prompts, limit=g.limit, params=g.params,
                 reward_model=g.reward_model or rm_ref,
                 select=g.select or ("uncertain" if rm_ref else "random"),
                 n_tasks=g.tasks, overlap=g.overlap, pipeline_run_id=loop_id)
    return {"run_id": r.run.id, "responses": r.n_responses, "tasks": len(r.task_ids)}


def _judge(s: store.Store, cfg: LoopConfig, loop_id: int) -> dict[str, Any]:
    from prefloop.judge.backends import make_backend
    from prefloop.judge.batch import run_batch

    j = cfg.judge
    backend = make_backend(j.backend, model=j.model, base_url=j.base_url, store=s)
    out = {}
    for mode in j.modes:
        r = run_batch(s, mode, backend, source=j.source, limit=j.limit, rounds=j.rounds,
                      constitution=j.constitution, pipeline_run_id=loop_id)
        out[mode] = {"run_id": r.run.id, "comparisons": r.comparisons, "calls": r.calls}
    return out


def _evaluate(s: store.Store, parent: str, candidate: str, export_id: int, rm_ref: str | None,
              step: EvalStep, loop_id: int) -> dict[str, Any]:
    """Evaluate ``candidate`` against ``parent``; with ``min_second_rm_win_rate``, mark it
    ``rejected`` (and do not promote it) when its win rate under the second reward model falls
    short."""
    from prefloop.pipelines.evaluation import EvalConfig, run_eval

    threshold = step.min_second_rm_win_rate
    cfg = EvalConfig(models=(parent, candidate), baseline=parent,
                     prompts=f"export:{export_id}" if step.prompts == "held-out" else step.prompts,
                     **{"reward_model": rm_ref, **step.settings})
    r = run_eval(s, cfg, pipeline_run_id=loop_id)
    row = r.summary.row(candidate).overall
    gold = row.second_rm.win.rate if row.second_rm is not None else None
    promoted = threshold is None or (gold is not None and gold >= threshold)
    run_id = int(candidate.split(":")[1])
    if not promoted:
        s.runs.update(run_id, status="rejected", summary={
            "rejected": f"second-RM win rate {gold:.3f} against {parent} is below min_second_rm_win_rate "
                        f"{threshold}", **(s.runs.get(run_id).summary or {})})
        log.info("  run %d rejected: second-RM win rate %.3f < %s; the loop keeps %s", run_id, gold,
                 threshold, parent)
    return {"run_id": r.run.id, "promoted": promoted, "second_rm_win_rate": gold,
            "proxy_win_rate": row.proxy.win.rate if row.proxy is not None else None, "kl": row.kl}


def _onpolicy(s: store.Store, step: TrainStep, overrides: dict[str, Any], loop_id: int,
              ) -> dict[str, Any]:
    """An on-policy method (iterative DPO, rejection-sampling SFT) from the current policy, on
    this iteration's export's training prompts; ``run_id`` is its last training run."""
    from .onpolicy import onpolicy_config, run_onpolicy

    cfg = onpolicy_config(step.kind, overrides, step.kind)
    r = run_onpolicy(s, cfg, pipeline_run_id=loop_id)
    return {"run_id": r.final_run_id, "pipeline_run_id": r.run.id,
            "rounds": len(r.rounds), "pairs": sum(x["pairs"] for x in r.rounds)}


def _kto_export(s: store.Store, cfg: LoopConfig, pairs_export_id: int, loop_id: int) -> int:
    """KTO reads unpaired labels: the iteration's selection again, in the KTO format (feedback,
    "both bad" labels and each pair's two sides)."""
    from prefloop.store.export_files import ExportOptions

    filters = s.exports.get(pairs_export_id).filters or {}
    known = set(PairFilters.__dataclass_fields__)
    out = s.path.resolve().parent / "runs" / f"loop-{loop_id}-export-kto"
    r = export_pairs(s, out, PairFilters(**{k: v for k, v in filters.items() if k in known}),
                     ExportOptions(format="kto", kto_pairs=True), overwrite=True)
    return r.export.id


def _train(s: store.Store, step: TrainStep, overrides: dict[str, Any], loop_id: int) -> dict[str, Any]:
    from prefloop.training.train import train

    r = train(s, step.kind, overrides=overrides, pipeline_run_id=loop_id)
    return {"run_id": r.run.id, **{k: v for k, v in r.eval_metrics.items() if isinstance(v, (int, float))}}
