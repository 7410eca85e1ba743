"""``prefloop eval``: did the round help? Compare model versions on held-out prompts.

Every model version answers each prompt once, with fixed sampling settings and a seed of its
own (stored as responses with run provenance in ``samples``; a later evaluation with the same
checkpoint, settings and seed reuses them). The responses are then compared with the
baseline's, prompt by prompt, in up to four views (:data:`~.eval_results.VIEWS`):

* **proxy** reward model (the one the policy trained against) and a **second** reward model
  (trained on other labels by the same recipe: it confirms the proxy's direction, it cannot
  tell whether that direction is quality; Gao et al. 2023): mean score and win rate;
* **AI judge**: pairwise, both orders (prefloop's judge backends);
* **people**: blind pairwise tasks (model names never shown, order randomized per annotator),
  marked as evaluation tasks so their votes stay out of training exports; the people column
  fills in as labels arrive (:func:`with_people`), and it is the headline: people are the
  arbiter, the rest are diagnostics.

Each view reports the win rate (ties count half, 95% bootstrap CI over prompts) and a
length-controlled win rate whose covariates are the length difference and whether each
response finished before the token budget (so "it stopped where the other was cut off" is
not read as quality). Figures come over all prompts and per recorded subset (``harmless``,
``benign``: :mod:`prefloop.store.prompt_sets`), with the refusal rate (XSTest's string match)
beside them: a policy that refuses benign requests shows it there.

KL of each policy from the reference (default: the baseline) is ``mean(log pi(y|x) - log
pi_ref(y|x))`` over the policy's own samples, at the sampling temperature (nats per response);
it sits beside the mean length, so a win bought by drift or by length shows. Before anything
is written, every compared policy's lineage is checked: a run that trained on an export
holding any of the evaluation prompts is refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prefloop import store
from prefloop.core.models import DEFAULT_MODEL, ModelRef, resolve_model
from prefloop.core.refusal import refusal_rate
from prefloop.core.stats import leaderboards, length_controlled_win_rate, win_rate
from prefloop.store.tracking import MetricsLogger, tracked_run

from .errors import EvalError
from .eval_config import EvalConfig
from .eval_results import EvalRow, EvalSummary, Slice, View

__all__ = ["EvalConfig", "EvalError", "EvalResult", "run_eval", "eval_prompts", "latest_eval",
           "with_people", "people_outcomes", "PeopleProgress"]

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
    """The eval run and its typed summary."""

    run: store.Run
    summary: EvalSummary


@dataclass
class _Plan:
    """What an evaluation compares, checked before anything is written."""

    versions: list[_Version]
    base: _Version
    prompts: list[store.Prompt]
    subsets: dict[int, str]
    proxy: str | None
    reference: ModelRef
    backend: object | None


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


def eval_prompts(s: store.Store, source: str, limit: int | None, tokenizer, max_tokens: int) -> list[store.Prompt]:
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


def _trained_prompt_ids(export: store.Export) -> set[int]:
    """The prompt ids of an export's train split (its held-out split only scores the run)."""
    import pyarrow.parquet as pq

    path = Path(export.path) / "train.parquet"
    return set(pq.read_table(path, columns=["prompt_id"])["prompt_id"].to_pylist()) if path.exists() else set()


def check_lineage(s: store.Store, versions: list[_Version], prompts: list[store.Prompt], source: str) -> None:
    """Refuse an evaluation whose prompts any compared policy (or a run it descends from)
    trained on: the train split of each run's export.

    Raises:
        EvalError: names the option, the run, its export and how many prompts overlap.
    """
    wanted = {p.id for p in prompts}
    seen: set[int] = set()
    for v in versions:
        run = v.run
        while run is not None and run.id not in seen:
            seen.add(run.id)
            if run.export_id is not None:
                overlap = wanted & _trained_prompt_ids(s.exports.get(run.export_id))
                if overlap:
                    raise EvalError(f"--prompts {source}: {len(overlap)} of its prompts are in export "
                                    f"{run.export_id}, which {run.kind} run {run.id} (behind {v.key}) "
                                    "trained on; evaluate on prompts no model trained on (set:test)")
            run = s.runs.get(run.parent_run_id) if run.parent_run_id else None


def _plan(s: store.Store, cfg: EvalConfig) -> _Plan:
    """Resolve and check everything (models, prompts, lineage, reward models, judge) before
    any row is written."""
    from prefloop.core.models import load_tokenizer
    from prefloop.store.sources import prompts_from

    prompts_from(s, cfg.prompts)     # a source without prompts fails before any model is resolved
    versions = _versions(s, cfg)
    baseline = cfg.baseline or cfg.models[0]
    base = next((v for v in versions if v.spec == baseline), None)
    if base is None:
        raise EvalError(f"--baseline {baseline!r} is not among --models {list(cfg.models)}")
    prompts = eval_prompts(s, cfg.prompts, None if cfg.per_subset else cfg.limit,
                           load_tokenizer(base.ref.path), cfg.max_prompt_tokens)
    subsets = {pid: sub for pid, (_, sub) in s.prompt_sets.of([p.id for p in prompts]).items() if sub}
    if cfg.per_subset:
        taken: dict[str | None, int] = {}
        kept = []
        for p in prompts:
            key = subsets.get(p.id)
            if taken.get(key, 0) < cfg.per_subset:
                taken[key] = taken.get(key, 0) + 1
                kept.append(p)
        prompts = kept
    check_lineage(s, versions, prompts, cfg.prompts)
    proxy = cfg.reward_model or _proxy_reward_model(s, versions)
    for spec in (proxy, cfg.second_reward_model):
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
    return _Plan(versions, base, prompts, subsets, proxy, reference, backend)


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


@dataclass
class _Outcomes:
    """One view's per-prompt results for one version, aligned with the plan's prompts: the
    outcome against the baseline (1 / 0.5 / 0, ``None``: no usable verdict) and a score."""

    outcomes: list[float | None]
    scores: list[float] | None = None


def _rm_outcomes(s: store.Store, spec: str, plan: _Plan) -> dict[str, _Outcomes]:
    from prefloop.training.scoring import reward_scorer

    scorer = reward_scorer(resolve_model(spec, s, require="reward"))
    rids = sorted({v.samples[p.id].response_id for v in plan.versions for p in plan.prompts})
    texts = {r.id: r.text for r in s.responses.get_many(rids)}
    prompt_of = {v.samples[p.id].response_id: p.messages for v in plan.versions for p in plan.prompts}
    scores = dict(zip(rids, scorer.score([prompt_of[r] for r in rids], [texts[r] for r in rids]).tolist()))
    out = {}
    for v in plan.versions:
        mine = [scores[v.samples[p.id].response_id] for p in plan.prompts]
        theirs = [scores[plan.base.samples[p.id].response_id] for p in plan.prompts]
        out[v.key] = _Outcomes([1.0 if a > b else 0.0 if a < b else 0.5 for a, b in zip(mine, theirs)], mine)
    return out


def _judge_outcomes(s: store.Store, run: store.Run, cfg: EvalConfig, plan: _Plan) -> tuple[dict[str, _Outcomes], dict]:
    from prefloop.judge.constitution import load_constitution
    from prefloop.judge.modes import judge_pairwise
    from prefloop.judge.runner import JudgeSession

    cons = load_constitution(cfg.constitution)
    principle = cons.get(cfg.principle) if cfg.principle else cons.principles[0]
    base = plan.base
    judged = [v for v in plan.versions if v is not base and (cfg.judge_models is None or v.spec in cfg.judge_models)]
    pairs = sorted({(p.id, v.samples[p.id].response_id, base.samples[p.id].response_id)
                    for v in judged for p in plan.prompts
                    if v.samples[p.id].response_id != base.samples[p.id].response_id})

    async def go():
        async with JudgeSession(s, plan.backend, concurrency=cfg.concurrency) as session:
            return await judge_pairwise(s, session, pairs, [principle], eval_run_id=run.id)

    verdicts = asyncio.run(go()).verdicts if pairs else {}
    value = {"a": 1.0, "b": 0.0, "tie": 0.5}
    out = {}
    for v in judged:
        outcomes = []
        for p in plan.prompts:
            mine, theirs = v.samples[p.id].response_id, base.samples[p.id].response_id
            outcomes.append(0.5 if mine == theirs else     # the same text: a tie
                            value.get(verdicts[(p.id, mine, theirs, principle.id)][0]))
        out[v.key] = _Outcomes(outcomes)
    return out, {"judge": plan.backend.model, "principle": principle.id}


def _view(o: _Outcomes, idx: list[int], v: _Version, base: _Version, prompts: list[store.Prompt]) -> View:
    """A view on the prompts at ``idx``: win rate, length-controlled win rate, mean score."""
    keep = [i for i in idx if o.outcomes[i] is not None]
    xs = [o.outcomes[i] for i in keep]
    mine = [v.samples[prompts[i].id] for i in keep]
    theirs = [base.samples[prompts[i].id] for i in keep]
    lc = length_controlled_win_rate(xs, [a.n_tokens - b.n_tokens for a, b in zip(mine, theirs)],
                                    [int(a.finished) - int(b.finished) for a, b in zip(mine, theirs)])
    mean = sum(o.scores[i] for i in idx) / len(idx) if o.scores is not None and idx else None
    return View(win_rate(xs), lc, mean, len(idx) - len(keep))


def _slice(idx: list[int], v: _Version, plan: _Plan, kl: list[float] | None, texts: dict[int, str],
           views: dict[str, dict[str, _Outcomes]]) -> Slice:
    xs = [v.samples[plan.prompts[i].id] for i in idx]
    out = Slice(n=len(idx), mean_tokens=sum(x.n_tokens for x in xs) / len(xs),
                eos_rate=sum(bool(x.finished) for x in xs) / len(xs),
                kl=None if kl is None else sum(kl[i] for i in idx) / len(idx),
                refusal_rate=refusal_rate([texts[x.response_id] for x in xs]))
    for name, by_version in views.items():
        o = by_version.get(v.key)
        if o is None:
            continue
        view = _view(o, idx, v, plan.base, plan.prompts)
        if v is plan.base:            # the baseline against itself: only its mean score means anything
            view = View(win_rate([]), None, view.mean) if view.mean is not None else None
        setattr(out, name, view)
    return out


def _rows(s: store.Store, plan: _Plan, kls: dict[str, list[float] | None],
          views: dict[str, dict[str, _Outcomes]]) -> list[EvalRow]:
    rids = sorted({v.samples[p.id].response_id for v in plan.versions for p in plan.prompts})
    texts = {r.id: r.text for r in s.responses.get_many(rids)}
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(plan.prompts):
        if p.id in plan.subsets:
            groups.setdefault(plan.subsets[p.id], []).append(i)
    everything = list(range(len(plan.prompts)))
    rows = []
    for v in plan.versions:
        rows.append(EvalRow(v.key, v.spec, v.run.kind if v.run else "base", v.ref.run_id,
                            v.run.parent_run_id if v.run else None,
                            _slice(everything, v, plan, kls[v.key], texts, views),
                            {g: _slice(idx, v, plan, kls[v.key], texts, views) for g, idx in sorted(groups.items())}))
    return rows


def _queue_tasks(s: store.Store, run: store.Run, cfg: EvalConfig, plan: _Plan) -> list[int]:
    """Up to ``cfg.tasks`` blind tasks per compared version, on prompts where it answered
    differently from the baseline. With several versions each gets its own prompts (taken in
    turn, each subset evenly), so that no annotator meets the baseline's response twice and
    learns to recognise it: the pairs stay blind. ``cfg.task_weights`` gives a version that
    many prompts in each turn of the round robin (the headline row more labels)."""
    compared = [v for v in plan.versions if v is not plan.base
                and (cfg.task_models is None or v.spec in cfg.task_models or v.key in cfg.task_models)]
    weights = dict(zip(cfg.task_models or (), getattr(cfg, "task_weights", None) or ()))
    compared = [v for v in compared for _ in range(weights.get(v.spec, weights.get(v.key, 1)))]
    groups: dict[str | None, list[store.Prompt]] = {}
    for p in plan.prompts:
        groups.setdefault(plan.subsets.get(p.id), []).append(p)
    order = [p for batch in itertools.zip_longest(*groups.values()) for p in batch if p is not None]
    taken: dict[str, list[store.Prompt]] = {v.key: [] for v in compared}      # each version once
    for i, p in enumerate(order):            # round robin over the versions, one prompt each
        for k in range(len(compared)):
            v = compared[(i + k) % len(compared)]
            if len(taken[v.key]) < cfg.tasks and v.samples[p.id].response_id != plan.base.samples[p.id].response_id:
                taken[v.key].append(p)
                break
    tasks = [store.TaskIn(p.id, [v.samples[p.id].response_id, plan.base.samples[p.id].response_id],
                          overlap=cfg.overlap, priority=100,
                          reason=f"eval run {run.id}: a blind comparison of two model versions",
                          eval_run_id=run.id) for v in {v.key: v for v in compared}.values()
             for p in taken[v.key]]
    return s.tasks.create(tasks)


def _timed(seconds: dict[str, float], name: str, fn):
    t0 = time.perf_counter()
    out = fn()
    seconds[name] = round(time.perf_counter() - t0, 1)
    return out


def run_eval(s: store.Store, cfg: EvalConfig, *, pipeline_run_id: int | None = None) -> EvalResult:
    """Run an evaluation (see the module docstring) and record it as an ``eval`` run whose
    summary is an :class:`~.eval_results.EvalSummary` (as JSON).

    Raises:
        prefloop.core.models.ModelNotFoundError: a spec names no policy (a reward model, an eval run).
        EvalError: no prompts, a policy that trained on them, a bad baseline; store and model
            errors as they come. Nothing is written before every spec and the prompts are checked.
    """
    plan = _plan(s, cfg)
    config = {**asdict(cfg), "models": list(cfg.models), "baseline": plan.base.spec,
              "reward_model": plan.proxy, "versions": [v.key for v in plan.versions],
              "compared_runs": [v.ref.run_id for v in plan.versions if v.ref.run_id is not None],
              "prompt_ids": [p.id for p in plan.prompts]}
    seconds: dict[str, float] = {}
    with tracked_run(s, "eval", config, pipeline_run_id=pipeline_run_id) as run:
        drawn = _timed(seconds, "sample", lambda: sum(_sample(s, run, v, plan.prompts, cfg) for v in plan.versions))
        cache: dict = {}
        kls = _timed(seconds, "kl", lambda: {v.key: _kl(v, plan.reference, plan.prompts, cfg, cache)
                                             for v in plan.versions})
        cache.clear()
        views: dict[str, dict[str, _Outcomes]] = {}
        for name, spec in (("proxy", plan.proxy), ("second_rm", cfg.second_reward_model)):
            if spec:
                views[name] = _timed(seconds, name, lambda spec=spec: _rm_outcomes(s, spec, plan))
        judge = None
        if cfg.judge:
            views["judge"], judge = _timed(seconds, "judge", lambda: _judge_outcomes(s, run, cfg, plan))
        rows = _rows(s, plan, kls, views)
        task_ids = _queue_tasks(s, run, cfg, plan) if cfg.tasks else []
        lbs = leaderboards(s.samples.model_votes(with_tokens=True), anchor=plan.base.key,
                           fallback_anchor=DEFAULT_MODEL, style_control=True)
        summary = EvalSummary(
            baseline=plan.base.key, prompts=len(plan.prompts), prompt_source=cfg.prompts, rows=rows,
            reward_model=plan.proxy, second_reward_model=cfg.second_reward_model,
            reference=str(plan.reference.path), judge=judge,
            responses={v.key: {p.id: v.samples[p.id].response_id for p in plan.prompts} for v in plan.versions},
            outcomes={name: {key: {p.id: o for p, o in zip(plan.prompts, x.outcomes) if o is not None}
                             for key, x in by_version.items() if key != plan.base.key}
                      for name, by_version in views.items()},
            responses_sampled=drawn, tasks=len(task_ids), max_new_tokens=cfg.max_new_tokens,
            leaderboard={g: b.rows() for g, b in lbs.items()},
            leaderboard_length_coef={g: b.style["length"] for g, b in lbs.items() if "length" in b.style},
            seconds=seconds)
        MetricsLogger(s, run.id).log(0, {f"{name}_win/{r.model}": getattr(r.overall, name).win.rate
                                         for r in summary.compared() for name in ("proxy", "second_rm", "judge")
                                         if getattr(r.overall, name) is not None})
        run = s.runs.update(run.id, status="finished", summary=summary.to_json())
    return EvalResult(run, summary)


@dataclass(frozen=True)
class PeopleProgress:
    """An evaluation's blind tasks: how many were queued, labels asked for and given."""

    tasks: int
    asked: int
    given: int

    @property
    def waiting(self) -> int:
        """Blind labels still to give."""
        return max(0, self.asked - self.given)


def people_outcomes(s: store.Store, run: store.Run, summary: EvalSummary) -> dict[str, dict[int, list[float]]]:
    """People's blind labels on an eval run's tasks, as outcomes per compared version and prompt
    (1 its response won, 0.5 tie or both bad, 0 lost); a prompt where the version gave the
    baseline's very text counts as one tie without a label. Versions without a single label
    are left out."""
    labels = s.comparisons.list(labeler_kind="human", eval_run_id=run.id)
    base = summary.responses.get(summary.baseline, {})
    by_prompt: dict[int, list] = {}
    for c in labels:
        by_prompt.setdefault(c.prompt_id, []).append(c)
    out: dict[str, dict[int, list[float]]] = {}
    for row in summary.compared():
        mine, found, labeled = summary.responses.get(row.model, {}), {}, 0
        for pid, rid in mine.items():
            theirs = base.get(pid)
            if theirs is None:
                continue
            if rid == theirs:
                found[pid] = [0.5]
                continue
            xs = [o for o in (_label_outcome(c, rid, theirs) for c in by_prompt.get(pid, [])) if o is not None]
            if xs:
                found[pid], labeled = xs, labeled + len(xs)
        if labeled:
            out[row.model] = found
    return out


def with_people(s: store.Store, run: store.Run) -> tuple[EvalSummary, PeopleProgress]:
    """The eval run's summary with the people view filled in from the human labels its blind
    tasks have now (:func:`people_outcomes`; each label one outcome), and the labeling
    progress."""
    summary = EvalSummary.from_json(run.summary or {})
    progress = PeopleProgress(*s.tasks.eval_progress(run.id))
    people = people_outcomes(s, run, summary)
    subsets = {pid: sub for pid, (_, sub) in s.prompt_sets.of(list(summary.responses.get(summary.baseline, {}))).items() if sub}
    for row in summary.compared():
        found = people.get(row.model)
        if not found:
            continue
        row.overall.people = View(win_rate([o for xs in found.values() for o in xs]))
        for name, sl in row.subsets.items():
            xs = [o for pid, os_ in found.items() if subsets.get(pid) == name for o in os_]
            sl.people = View(win_rate(xs)) if xs else None
    return summary, progress


def _label_outcome(c: store.Comparison, mine: int, theirs: int) -> float | None:
    """1 / 0.5 / 0 for ``mine`` against ``theirs`` in one ranking (``None``: it ranks only one)."""
    rank = {rid: i for i, group in enumerate(c.ranking) for rid in group}
    if mine not in rank or theirs not in rank:
        return None
    if "both_bad" in (c.flags or []) or rank[mine] == rank[theirs]:
        return 0.5
    return 1.0 if rank[mine] < rank[theirs] else 0.0


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
