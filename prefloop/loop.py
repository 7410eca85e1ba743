"""``prefloop loop --config loop.yaml``: the demo's cycle for real use.

One iteration: export the labels added since the last iteration -> train a reward model ->
update the policy (DPO or PPO) -> evaluate the new policy against its parent
(:mod:`prefloop.evaluation`; with ``min_gold_win_rate``, a policy that loses ground under the
gold reward model is recorded as ``rejected`` and not promoted) -> sample new responses from
the promoted policy -> judge them -> queue the most uncertain pairs. Every step is a recorded
run with lineage; any step can be skipped (``skip: true``); re-running after an interruption
resumes the unfinished iteration.

Config (all keys optional except where noted)::

    policy: smollm2-135m-instruct      # or run:ID / a path; the starting policy
    export: {source: human, min_agreement: 0.0, test_fraction: 0.1, dataset: null,
             since_last: true,         # only comparisons newer than the previous iteration's export
             aggregate: majority, min_confidence: 0.0,     # or dawid-skene (soft labels)
             ai_min_agreement: null, ai_min_overlap: 30}   # judge gating (PairFilters)
    rm: {model: minilm, max_steps: 200, max_length: 384}          # any RewardRunConfig field
    policy_update: dpo                 # dpo, ppo or none
    dpo: {max_steps: 50}               # any DPORunConfig field
    ppo: {max_steps: 10}               # any PPORunConfig field
    eval: {prompts: held-out, limit: 32, max_new_tokens: 64, gold_reward_model: null,
           judge: null, min_gold_win_rate: null}   # held-out: this export's test split; or a
                                                   # dataset / prompts file (EvalConfig fields)
    generate: {prompts: mt-bench, limit: 20, n: 4, max_new_tokens: 128, tasks: 10,
               select: uncertain, overlap: 1}
    judge: {modes: [pairwise, critique], backend: local, model: null, base_url: null,
            limit: 20, rounds: 1, constitution: null}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from prefloop import store
from prefloop.store.pairs import PairFilters, export_pairs

from .pipeline import Pipeline

__all__ = ["load_loop_config", "run_loop", "LOOP_KEYS"]

LOOP_KEYS = {"policy", "export", "rm", "policy_update", "dpo", "ppo", "eval", "generate", "judge"}


def load_loop_config(path: str | Path) -> dict[str, Any]:
    """Read and check a loop config.

    Raises:
        store.ValidationError: unknown keys or a bad ``policy_update``; names the file.
    """
    raw = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(raw, dict):
        raise store.ValidationError(f"{path}: expected a mapping of loop settings")
    unknown = set(raw) - LOOP_KEYS
    if unknown:
        raise store.ValidationError(f"{path}: unknown keys {sorted(unknown)}; known: {sorted(LOOP_KEYS)}")
    if raw.get("policy_update", "dpo") not in ("dpo", "ppo", "none"):
        raise store.ValidationError(f"{path}: policy_update must be dpo, ppo or none")
    ev = raw.get("eval") or {}
    if ev.get("min_gold_win_rate") is not None and not ev.get("gold_reward_model"):
        raise store.ValidationError(f"{path}: eval.min_gold_win_rate needs eval.gold_reward_model "
                                    "(a reward model the policy never trained against)")
    return raw


def _skipped(section: dict | None) -> bool:
    return bool(section and section.get("skip"))


def run_loop(s: store.Store, cfg: dict[str, Any], *, fresh: bool = False,
             console: Console | None = None) -> dict[str, Any]:
    """Run (or resume) one loop iteration; returns the stage results."""
    from prefloop.judge.batch import run_batch
    from prefloop.training.generate import GenParams, generate

    console = console or Console()
    pipe = Pipeline(s, "loop", cfg, resume=not fresh, reuse_finished=False, console=console)
    loop_id = pipe.run.id
    ex_cfg = dict(cfg.get("export") or {})
    previous = [r for r in s.runs.list(kind="loop") if r.status == "finished" and r.id != loop_id]

    def export():
        since = None
        if ex_cfg.get("since_last", True) and previous:
            since = (previous[-1].summary or {}).get("stages", {}).get("export", {}).get("export_id")
        out = s.path.resolve().parent / "runs" / f"loop-{loop_id}-export"
        try:
            r = export_pairs(s, out, PairFilters(
                source=ex_cfg.get("source", "human"), min_agreement=ex_cfg.get("min_agreement", 0.0),
                dataset=ex_cfg.get("dataset"), since_export=since,
                test_fraction=ex_cfg.get("test_fraction", 0.1),
                aggregate=ex_cfg.get("aggregate", "majority"),
                min_confidence=ex_cfg.get("min_confidence", 0.0),
                ai_min_agreement=ex_cfg.get("ai_min_agreement"),
                ai_min_overlap=ex_cfg.get("ai_min_overlap", 30)), overwrite=True)
        except store.ExportError as exc:
            if "no pairs match" not in str(exc):
                raise
            console.print(f"  no new labels since export {since}: training steps are skipped")
            return {"export_id": None, "since_export": since, "pairs": 0}
        console.print(f"  export {r.export.id}: {r.export.n_pairs} pairs (since export {since})")
        return {"export_id": r.export.id, "since_export": since, "pairs": r.export.n_pairs}

    ex = pipe.stage("export", "Export labels since the last iteration", export)
    policy = cfg.get("policy") or "smollm2-135m-instruct"
    rm_ref = None
    if ex["export_id"] is not None and not _skipped(cfg.get("rm")):
        rm_cfg = {k: v for k, v in (cfg.get("rm") or {}).items() if k != "skip"}
        res = pipe.stage("rm", "Train the reward model", lambda: _train(
            s, "rm", {"model": "minilm", **rm_cfg, "export_id": ex["export_id"]}, loop_id))
        rm_ref = f"run:{res['run_id']}"
    update = cfg.get("policy_update", "dpo")
    if ex["export_id"] is not None and update != "none" and not _skipped(cfg.get(update)):
        upd_cfg = {k: v for k, v in (cfg.get(update) or {}).items() if k != "skip"}
        overrides = {"model": policy, **upd_cfg, "export_id": ex["export_id"]}
        if update == "ppo":
            overrides.setdefault("reward_model", rm_ref)
        res = pipe.stage(update, f"Update the policy ({update})",
                         lambda: _train(s, update, overrides, loop_id))
        ev_cfg = {k: v for k, v in (cfg.get("eval") or {}).items() if k != "skip"}
        if _skipped(cfg.get("eval")):
            policy = f"run:{res['run_id']}"
        else:
            ev = pipe.stage("eval", "Evaluate the new policy against its parent", lambda: _evaluate(
                s, policy, f"run:{res['run_id']}", ex["export_id"], rm_ref, ev_cfg, loop_id, console))
            policy = f"run:{res['run_id']}" if ev["promoted"] else policy
    gen_cfg = dict(cfg.get("generate") or {})
    if not _skipped(gen_cfg):
        def gen():
            params = GenParams(n=gen_cfg.get("n", 4), max_new_tokens=gen_cfg.get("max_new_tokens", 128),
                               temperature=gen_cfg.get("temperature", 0.7),
                               batch_size=gen_cfg.get("batch_size", 16))
            r = generate(s, policy, gen_cfg.get("prompts", "mt-bench"), limit=gen_cfg.get("limit", 20),
                         params=params, reward_model=gen_cfg.get("reward_model", rm_ref),
                         select=gen_cfg.get("select", "uncertain" if rm_ref else "random"),
                         n_tasks=gen_cfg.get("tasks", 10), overlap=gen_cfg.get("overlap", 1),
                         pipeline_run_id=loop_id)
            return {"run_id": r.run.id, "responses": r.n_responses, "tasks": len(r.task_ids)}

        pipe.stage("generate", "Sample new responses", gen)
    judge_cfg = dict(cfg.get("judge") or {})
    if not _skipped(judge_cfg):
        def judging():
            from prefloop.judge.backends import make_backend

            backend = make_backend(judge_cfg.get("backend", "local"), model=judge_cfg.get("model"),
                                   base_url=judge_cfg.get("base_url"), store=s)
            out = {}
            for mode in judge_cfg.get("modes", ["pairwise", "critique"]):
                r = run_batch(s, mode, backend, source=judge_cfg.get("source", "generated"),
                              limit=judge_cfg.get("limit", 20), rounds=judge_cfg.get("rounds", 1),
                              constitution=judge_cfg.get("constitution"),
                              pipeline_run_id=loop_id)
                out[mode] = {"run_id": r.run.id, "comparisons": r.summary["comparisons"],
                             "calls": r.summary["calls"]}
            return out

        pipe.stage("judge", "Judge the new responses", judging)
    pipe.stage("queue", "Queue for people", lambda: {
        "open_tasks": s.tasks.count_open()})
    run = pipe.finish()
    console.print(f"Loop iteration {run.id} finished: " + ", ".join(
        f"{k} {v.get('run_id', '')}".strip() for k, v in pipe.stages.items()))
    return pipe.stages


def _evaluate(s: store.Store, parent: str, candidate: str, export_id: int, rm_ref: str | None,
              ev_cfg: dict[str, Any], loop_id: int, console: Console) -> dict[str, Any]:
    """Evaluate ``candidate`` against ``parent``; with ``min_gold_win_rate``, mark it
    ``rejected`` (and do not promote it) when its gold win rate falls short."""
    from prefloop.evaluation import EvalConfig, print_eval, run_eval

    threshold = ev_cfg.pop("min_gold_win_rate", None)
    prompts = ev_cfg.pop("prompts", "held-out")
    cfg = EvalConfig(models=(parent, candidate), baseline=parent,
                     prompts=f"export:{export_id}" if prompts == "held-out" else prompts,
                     **{"limit": 32, "reward_model": rm_ref, **ev_cfg})
    r = run_eval(s, cfg, console=console, pipeline_run_id=loop_id)
    print_eval(console, r.run)
    row = r.summary["models"][1]
    gold = row.get("gold", {}).get("win", {}).get("rate")
    promoted = threshold is None or (gold is not None and gold >= threshold)
    run_id = int(candidate.split(":")[1])
    if not promoted:
        s.runs.update(run_id, status="rejected", summary={
            "rejected": f"gold win rate {gold:.3f} against {parent} is below min_gold_win_rate "
                        f"{threshold} (eval run {r.run.id})"})
        console.print(f"  [bold]run {run_id} rejected[/]: gold win rate {gold:.3f} < {threshold}; "
                      f"{parent} stays the policy")
    return {"run_id": r.run.id, "promoted": promoted, "gold_win_rate": gold,
            "proxy_win_rate": row.get("proxy", {}).get("win", {}).get("rate"), "kl": row.get("kl")}


def _train(s, kind, overrides, loop_id) -> dict[str, Any]:
    from prefloop.training.train import train

    r = train(s, kind, overrides=overrides, pipeline_run_id=loop_id)
    ev = r.summary.get("eval", {})
    head = ev.get("all", ev) if isinstance(ev, dict) else {}
    return {"run_id": r.run.id, **{k: v for k, v in head.items() if isinstance(v, (int, float))}}
