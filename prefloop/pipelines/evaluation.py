"""``prefloop eval``: did the round help? Compare model versions on held-out prompts.

Every model version answers each prompt once, with fixed sampling settings and a seed of its
own (stored as responses with run provenance in ``samples``; a later evaluation with the same
checkpoint, settings and seed reuses them). The responses are then compared with the
baseline's, prompt by prompt, in up to four views:

* **reward models**: the proxy RM (the one the policy trained against) and a **gold** RM it
  never saw (Gao et al. 2023, "Scaling Laws for Reward Model Overoptimization"): mean score,
  win rate against the baseline, and the length-controlled win rate (the judge view's
  regression on the length difference), so "it stopped early" and "it got better" differ;
* **AI judge**: pairwise, both orders (prefloop's judge backends): win / tie / loss, and a
  length-controlled win rate (Dubois et al. 2024);
* **people**: ``tasks`` blind pairwise tasks per version (model names never shown), marked as
  evaluation tasks so their votes stay out of training exports;
* **leaderboard**: Bradley-Terry ratings of every version from all votes between versions
  (:mod:`prefloop.store.leaderboard`), and beside them the ratings at equal length (style
  control as Chatbot Arena's) with the voters' length coefficient.

Win rates count ties as half and carry 95% bootstrap CIs over prompts. KL of each policy from
the reference (default: the baseline) is ``mean(log pi(y|x) - log pi_ref(y|x))`` over the
policy's own samples, at the sampling temperature (nats per response); it sits beside the mean
length, so a win bought by drift or by length shows.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from prefloop import store
from prefloop.core.models import DEFAULT_MODEL, ModelRef, resolve_model
from prefloop.core.stats import length_controlled_win_rate, win_rate
from prefloop.store.leaderboard import leaderboards
from prefloop.store.tracking import MetricsLogger, tracked_run

from .errors import EvalError
from .eval_config import EvalConfig

__all__ = ["EvalConfig", "EvalError", "EvalResult", "run_eval", "eval_prompts", "latest_eval"]

log = logging.getLogger(__name__)

EMPTY_RESPONSE = "(empty response)"


@dataclass
class _Version:
    key: str                     # the model version's name in samples and the leaderboard
    spec: str
    ref: ModelRef
    seed: int
    run: store.Run | None
    samples: dict[int, store.Sample] = field(default_factory=dict)


@dataclass
class EvalResult:
    """The eval run and its summary (``models``: a row per version; see :func:`run_eval`)."""

    run: store.Run
    summary: dict[str, Any]


def _version_key(ref: ModelRef, spec: str) -> str:
    if ref.run_id is not None:
        return f"run:{ref.run_id}"
    return DEFAULT_MODEL if ref.name == DEFAULT_MODEL else spec


def _versions(s: store.Store, cfg: EvalConfig) -> list[_Version]:
    """Resolve every spec (policies only); a repeated spec gets ``#2``, ``#3`` and its own seed."""
    out, seen = [], {}
    for spec in cfg.models:
        ref = resolve_model(spec, s, require="policy")
        key = _version_key(ref, spec)
        k = seen[key] = seen.get(key, 0) + 1
        run = s.runs.get(ref.run_id) if ref.run_id is not None else None
        out.append(_Version(key if k == 1 else f"{key}#{k}", spec, ref, cfg.seed + k - 1, run))
    return out


def eval_prompts(s: store.Store, source: str, limit: int, tokenizer, max_tokens: int) -> list[store.Prompt]:
    """The evaluation prompts (see :func:`prefloop.store.sources.prompts_from`): at most
    ``limit``, in id order, whose chat-formatted prompt fits in ``max_tokens`` tokens.

    Raises:
        prefloop.store.NotFoundError: the source names no prompt, or none fits.
    """
    from prefloop.store.sources import prompts_from

    def fits(p: store.Prompt) -> bool:
        return len(tokenizer.apply_chat_template(p.messages, add_generation_prompt=True, tokenize=True,
                                                 return_dict=True)["input_ids"]) <= max_tokens

    return prompts_from(s, source, limit=limit, keep=fits)


def _gen_key(v: _Version, cfg: EvalConfig) -> str:
    weights = sorted(v.ref.path.glob("*.safetensors"))
    stamp = [(w.name, w.stat().st_size, w.stat().st_mtime_ns) for w in weights]
    blob = json.dumps([str(v.ref.path), stamp, cfg.max_new_tokens, cfg.temperature, v.seed])
    return hashlib.sha256(blob.encode()).hexdigest()


def _sample(s: store.Store, run: store.Run, v: _Version, prompts: list[store.Prompt],
            cfg: EvalConfig) -> int:
    """Fill ``v.samples``: reuse recorded samples, draw the missing ones; returns how many
    were drawn now."""
    from prefloop.core.models import load_causal_lm, load_tokenizer
    from prefloop.training.generate import GenParams, sample_responses

    key = _gen_key(v, cfg)
    v.samples = s.samples.find(key, [p.id for p in prompts])
    missing = [p for p in prompts if p.id not in v.samples]
    if not missing:
        return 0
    tok, model = load_tokenizer(v.ref.path), load_causal_lm(v.ref.path)
    params = GenParams(n=1, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                       top_p=1.0, batch_size=cfg.batch_size, seed=v.seed)
    drawn = [g[0] for g in sample_responses(model, tok, [p.messages for p in missing], params)]
    gen_params = {**asdict(params), "eval_gen_key": key, "policy_run_id": v.ref.run_id}
    rids = s.responses.add([store.ResponseIn(p.id, x.text or EMPTY_RESPONSE, origin="model",
                                             model=v.key, run_id=run.id, gen_params=gen_params)
                            for p, x in zip(missing, drawn)])
    s.samples.record([store.Sample(run.id, v.key, p.id, rid, key, x.n_tokens, x.finished,
                                   x.logprob, x.token_ids)
                      for p, x, rid in zip(missing, drawn, rids)])
    v.samples = s.samples.find(key, [p.id for p in prompts])
    log.info("  %s: %d responses sampled, %d reused", v.key, len(missing), len(prompts) - len(missing))
    return len(missing)


def _kl(v: _Version, ref: ModelRef, prompts: list[store.Prompt], cfg: EvalConfig,
        cache: dict) -> list[float] | None:
    """Per-prompt KL estimates (nats) of ``v`` against ``ref``; ``None`` for another vocabulary."""
    from prefloop.core.models import load_causal_lm, load_tokenizer
    from prefloop.training.generate import response_logprobs

    if v.ref.path == ref.path:
        return [0.0] * len(prompts)
    if "model" not in cache:
        cache["tok"], cache["model"] = load_tokenizer(ref.path), load_causal_lm(ref.path)
    if load_tokenizer(v.ref.path).get_vocab() != cache["tok"].get_vocab():
        return None
    samples = [v.samples[p.id] for p in prompts]
    ref_lp = response_logprobs(cache["model"], cache["tok"], [p.messages for p in prompts],
                               [list(x.token_ids) for x in samples], cfg.temperature, cfg.batch_size)
    return [x.logprob - r for x, r in zip(samples, ref_lp)]


def _proxy_reward_model(s: store.Store, versions: list[_Version]) -> str | None:
    """The reward model the compared policies trained against (ppo/grpo runs up their
    lineage), when they all share one."""
    found = set()
    for v in versions:
        run = v.run
        while run is not None:
            if run.config.get("reward_model"):
                found.add(str(run.config["reward_model"]))
            run = s.runs.get(run.parent_run_id) if run.parent_run_id else None
    return found.pop() if len(found) == 1 else None


def _rm_view(s: store.Store, spec: str, versions: list[_Version], base: _Version,
             prompts: list[store.Prompt]) -> dict[str, dict[str, Any]]:
    from prefloop.training.scoring import reward_scorer

    scorer = reward_scorer(resolve_model(spec, s, require="reward"))
    rids = sorted({v.samples[p.id].response_id for v in versions for p in prompts})
    texts = {r.id: r.text for r in s.responses.get_many(rids)}
    prompt_of = {v.samples[p.id].response_id: p.messages for v in versions for p in prompts}
    scores = dict(zip(rids, scorer.score([prompt_of[r] for r in rids], [texts[r] for r in rids]).tolist()))
    out = {}
    for v in versions:
        mine = [scores[v.samples[p.id].response_id] for p in prompts]
        theirs = [scores[base.samples[p.id].response_id] for p in prompts]
        outcomes = [1.0 if a > b else 0.0 if a < b else 0.5 for a, b in zip(mine, theirs)]
        diffs = [v.samples[p.id].n_tokens - base.samples[p.id].n_tokens for p in prompts]
        out[v.key] = {"mean": sum(mine) / len(mine), "win": win_rate(outcomes).as_dict(),
                      "length_controlled": length_controlled_win_rate(outcomes, diffs).as_dict()}
    return out


def _judge_view(s: store.Store, run: store.Run, cfg: EvalConfig, versions: list[_Version],
                base: _Version, prompts: list[store.Prompt], backend) -> dict[str, dict[str, Any]]:
    from prefloop.judge.constitution import load_constitution
    from prefloop.judge.modes import judge_pairwise
    from prefloop.judge.runner import JudgeSession

    cons = load_constitution(cfg.constitution)
    principle = cons.get(cfg.principle) if cfg.principle else cons.principles[0]
    judged = [v for v in versions if v is not base
              and (cfg.judge_models is None or v.spec in cfg.judge_models)]
    pairs = sorted({(p.id, v.samples[p.id].response_id, base.samples[p.id].response_id)
                    for v in judged for p in prompts
                    if v.samples[p.id].response_id != base.samples[p.id].response_id})

    async def go():
        async with JudgeSession(s, backend, concurrency=cfg.concurrency) as session:
            return await judge_pairwise(s, session, pairs, [principle], eval_run_id=run.id)

    verdicts = asyncio.run(go()).verdicts if pairs else {}
    value = {"a": 1.0, "b": 0.0, "tie": 0.5}
    out = {}
    for v in judged:
        outcomes, diffs, unusable = [], [], 0
        for p in prompts:
            mine, theirs = v.samples[p.id], base.samples[p.id]
            if mine.response_id == theirs.response_id:
                outcome = 0.5                                  # the same text: a tie
            else:
                outcome = value.get(verdicts[(p.id, mine.response_id, theirs.response_id,
                                              principle.id)][0])
            if outcome is None:
                unusable += 1
                continue
            outcomes.append(outcome)
            diffs.append(mine.n_tokens - theirs.n_tokens)
        out[v.key] = {"win": win_rate(outcomes).as_dict(),
                      "length_controlled": length_controlled_win_rate(outcomes, diffs).as_dict(),
                      "unusable": unusable}
    return {"judge": backend.model, "principle": principle.id, "models": out}


def _queue_tasks(s: store.Store, run: store.Run, cfg: EvalConfig, versions: list[_Version],
                 base: _Version, prompts: list[store.Prompt]) -> list[int]:
    tasks = []
    for v in versions:
        if v is base:
            continue
        distinct = [p for p in prompts if v.samples[p.id].response_id != base.samples[p.id].response_id]
        tasks += [store.TaskIn(p.id, [v.samples[p.id].response_id, base.samples[p.id].response_id],
                               overlap=cfg.overlap, priority=100,
                               reason=f"eval run {run.id}: a blind comparison of two model versions",
                               eval_run_id=run.id) for p in distinct[:cfg.tasks]]
    return s.tasks.create(tasks)


def run_eval(s: store.Store, cfg: EvalConfig, *, pipeline_run_id: int | None = None) -> EvalResult:
    """Run an evaluation (see the module docstring) and record it as an ``eval`` run.

    The run's summary holds ``models``: one row per version (``model``, ``spec``, ``kind``,
    ``run_id``, ``n``, ``mean_tokens``, ``eos_rate``, ``kl`` (nats per response), and per view
    ``proxy``/``gold`` (``mean`` score, ``win`` vs the baseline) and ``judge`` (``win``,
    ``length_controlled``)); each ``win`` is ``{rate, low, high, n, wins, ties, losses}``;
    ``seconds`` per stage; ``leaderboard`` rows.

    Raises:
        prefloop.core.models.ModelNotFoundError: a spec names no policy (a reward model, an eval run).
        EvalError: no prompts; store and model errors as they come. Nothing is written before
            every spec and the prompts are checked.
    """
    from prefloop.core.models import load_tokenizer

    versions = _versions(s, cfg)
    baseline = cfg.baseline or cfg.models[0]
    base = next((v for v in versions if v.spec == baseline), None)
    if base is None:
        raise EvalError(f"the baseline {baseline!r} is not among --models {list(cfg.models)}")
    prompts = eval_prompts(s, cfg.prompts, cfg.limit, load_tokenizer(base.ref.path),
                           cfg.max_prompt_tokens)
    proxy = cfg.reward_model or _proxy_reward_model(s, versions)
    for spec in (proxy, cfg.gold_reward_model):
        if spec:
            resolve_model(spec, s, require="reward")
    reference = resolve_model(cfg.reference, s, require="policy") if cfg.reference else base.ref
    backend = None
    if cfg.judge:      # a bad or unreachable judge fails here, before any response or run row
        from prefloop.judge.backends import make_backend
        from prefloop.judge.constitution import load_constitution

        cons = load_constitution(cfg.constitution)
        if cfg.principle:
            cons.get(cfg.principle)
        backend = make_backend(cfg.judge, model=cfg.judge_model, base_url=cfg.judge_base_url, store=s)
        backend.check()
    config = {**asdict(cfg), "models": list(cfg.models), "baseline": baseline,
              "reward_model": proxy, "versions": [v.key for v in versions],
              "compared_runs": [v.ref.run_id for v in versions if v.ref.run_id is not None],
              "prompt_ids": [p.id for p in prompts]}
    seconds: dict[str, float] = {}
    with tracked_run(s, "eval", config, pipeline_run_id=pipeline_run_id) as run:
        t0 = time.perf_counter()
        drawn = sum(_sample(s, run, v, prompts, cfg) for v in versions)
        seconds["sample"] = time.perf_counter() - t0
        t0, cache = time.perf_counter(), {}
        rows = []
        for v in versions:
            xs = [v.samples[p.id] for p in prompts]
            kl = _kl(v, reference, prompts, cfg, cache)
            rows.append({"model": v.key, "spec": v.spec, "kind": v.run.kind if v.run else "base",
                         "run_id": v.ref.run_id, "parent_run_id": v.run.parent_run_id if v.run else None,
                         "n": len(xs), "mean_tokens": sum(x.n_tokens for x in xs) / len(xs),
                         "eos_rate": sum(bool(x.finished) for x in xs) / len(xs),
                         "kl": None if kl is None else sum(kl) / len(kl)})
        cache.clear()
        seconds["kl"] = time.perf_counter() - t0
        for name, spec in (("proxy", proxy), ("gold", cfg.gold_reward_model)):
            if spec:
                t0 = time.perf_counter()
                view = _rm_view(s, spec, versions, base, prompts)
                for row in rows:
                    row[name] = view[row["model"]]
                seconds[name] = time.perf_counter() - t0
        judge = None
        if cfg.judge:
            t0 = time.perf_counter()
            judge = _judge_view(s, run, cfg, versions, base, prompts, backend)
            for row in rows:
                if row["model"] in judge["models"]:
                    row["judge"] = judge["models"][row["model"]]
            seconds["judge"] = time.perf_counter() - t0
        task_ids = _queue_tasks(s, run, cfg, versions, base, prompts) if cfg.tasks else []
        lbs = leaderboards(s, anchor=base.key, style_control=True)
        boards = {g: b.rows() for g, b in lbs.items()}
        length_coef = {g: b.style["length"] for g, b in lbs.items() if "length" in b.style}
        summary = {"baseline": base.key, "prompts": len(prompts), "prompt_source": cfg.prompts,
                   "reward_model": proxy, "gold_reward_model": cfg.gold_reward_model,
                   "reference": str(reference.path), "judge": {k: v for k, v in (judge or {}).items()
                                                               if k != "models"} or None,
                   "models": rows, "responses_sampled": drawn, "tasks": len(task_ids),
                   "leaderboard": boards, "leaderboard_length_coef": length_coef, "seconds": {k: round(v, 1) for k, v in seconds.items()}}
        MetricsLogger(s, run.id).log(0, {f"{view}_win/{r['model']}": r[view]["win"]["rate"]
                                         for r in rows for view in ("proxy", "gold", "judge")
                                         if view in r and r["model"] != base.key})
        run = s.runs.update(run.id, status="finished", summary=summary)
    return EvalResult(run, summary)


def latest_eval(s: store.Store, run_id: int | None = None) -> store.Run:
    """Eval run ``run_id`` (or the newest finished one).

    Raises:
        EvalError: no such eval run.
    """
    if run_id is not None:
        run = s.runs.get(run_id)
        if run.kind != "eval":
            raise EvalError(f"run {run_id} is a {run.kind} run, not an eval run")
        return run
    runs = s.runs.list(kind="eval", status="finished")
    if not runs:
        raise EvalError("no finished eval run yet: run `prefloop eval --models ... --prompts ...`")
    return runs[-1]

