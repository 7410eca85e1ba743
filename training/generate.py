"""New samples that loop back for labeling: sample K responses per prompt, store them with
provenance, score them with a reward model, and queue the most informative pairs.

``select="uncertain"`` queues, per prompt, the pair the reward model is least sure about, most
uncertain prompts first: with one reward model the two responses whose rewards are closest;
with an ensemble (``prefloop train rm --set ensemble=K``) the pair its members disagree on most
(the std over members of the reward difference: query by committee, Seung et al. 1992, as
ensemble-based active reward learning does). ``"random"`` queues a random pair of random
prompts. ``bench/label_efficiency.py`` measures what each saves.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field

import torch

from prefloop import store
from prefloop.core.models import load_causal_lm, load_tokenizer, resolve_model
from prefloop.store.tracking import MetricsLogger, tracked_run

from .errors import TrainingError
from .scoring import EnsembleScorer, reward_scorer

#: ``generate --pairs``: which pairs of a prompt's samples a reward model labels.
PAIR_MODES = ("best-worst", "all")

__all__ = ["PAIR_MODES", "GenParams", "Sample", "sample_responses", "response_logprobs", "prompt_texts",
           "GenerateResult", "generate", "reward_labeler"]


@dataclass
class GenParams:
    """Sampling parameters (saved with every response as ``gen_params``)."""

    n: int = 4
    max_new_tokens: int = 128
    temperature: float = 0.7
    top_p: float = 0.95
    batch_size: int = 16
    seed: int = 0


@dataclass
class Sample:
    """One sampled response: ``text`` (special tokens removed), ``n_tokens`` generated
    (EOS included), ``finished`` (emitted EOS before ``max_new_tokens``), ``token_ids`` (the
    generated ids, EOS included, padding not) and ``logprob``: the sum over those tokens of
    log-softmax(logits / temperature), in nats, i.e. the log-probability under the tempered
    policy before top-p truncation."""

    text: str
    n_tokens: int
    finished: bool
    token_ids: list[int] = field(default_factory=list)
    logprob: float | None = None


def prompt_texts(tokenizer, prompts: list[list[dict]]) -> list[str]:
    """Each conversation through the chat template, ending with the assistant's turn opening."""
    return [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False)
            for p in prompts]


@torch.no_grad()
def sample_responses(model, tokenizer, prompts: list[list[dict]], params: GenParams,
                     batched: bool = True) -> list[list[Sample]]:
    """``params.n`` samples per prompt, shape ``[len(prompts)][n]``, with their log-probs.

    Batched (default): prompts are left-padded into batches of ``batch_size`` sequences
    (``batch_size // n`` prompts x ``n`` samples), one ``generate`` call (KV cache) each; with
    ``n > 1`` each prompt is encoded once and its key-value cache repeated for its ``n``
    samples (prefill is most of the cost of short responses on a CPU). ``batched=False``
    generates one sequence at a time (the baseline of ``bench/training_bench.py``).
    """
    torch.manual_seed(params.seed)
    tokenizer.padding_side = "left"
    model.eval()
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    out: list[list[Sample]] = []
    per_batch = max(1, params.batch_size // params.n) if batched else 1
    for i in range(0, len(prompts), per_batch):
        chunk = prompts[i:i + per_batch]
        enc = tokenizer(prompt_texts(tokenizer, chunk), return_tensors="pt", padding=True,
                        add_special_tokens=False)
        reps = params.n if batched else 1
        rounds = 1 if batched else params.n
        groups: list[list[Sample]] = [[] for _ in chunk]
        for _ in range(rounds):
            inputs = dict(enc)
            if reps > 1 and enc["input_ids"].shape[1] > 1:   # prefill once, share the cache
                cache = model(input_ids=enc["input_ids"][:, :-1],
                              attention_mask=enc["attention_mask"][:, :-1], use_cache=True).past_key_values
                cache.batch_repeat_interleave(reps)
                inputs = {k: v.repeat_interleave(reps, 0) for k, v in enc.items()}
                inputs["past_key_values"] = cache
            gen = model.generate(**inputs, do_sample=True, temperature=params.temperature,
                                 top_p=params.top_p, top_k=0, max_new_tokens=params.max_new_tokens,
                                 num_return_sequences=1 if "past_key_values" in inputs else reps,
                                 pad_token_id=pad, eos_token_id=eos, output_logits=True,
                                 return_dict_in_generate=True)
            new = gen.sequences[:, enc["input_ids"].shape[1]:]                   # (B, R)
            logits = torch.stack(gen.logits, 1).float() / params.temperature      # (B, R, V)
            token_lp = torch.log_softmax(logits, -1).gather(2, new.unsqueeze(-1)).squeeze(-1)
            for j, row in enumerate(new):
                ids = row.tolist()          # padding only follows the EOS
                finished = eos in ids
                n = ids.index(eos) + 1 if finished else len(ids)
                text = tokenizer.decode(ids[:n - 1] if finished else ids[:n], skip_special_tokens=True)
                groups[j // reps].append(Sample(text.strip(), n, finished, ids[:n],
                                                float(token_lp[j, :n].sum())))
        out.extend(groups)
    return out


@torch.no_grad()
def response_logprobs(model, tokenizer, prompts: list[list[dict]], responses: list[list[int]],
                      temperature: float, batch_size: int = 16) -> list[float]:
    """Sum of log-softmax(logits / temperature) of each response's token ids given its prompt
    (teacher forcing), in nats; ``responses`` are :attr:`Sample.token_ids`. Used with a
    reference model to estimate KL(policy || reference) = E[logprob_policy - logprob_ref] over
    the policy's samples."""
    model.eval()
    out: list[float] = []
    for i in range(0, len(prompts), batch_size):
        rows = [tokenizer(t, add_special_tokens=False)["input_ids"]
                for t in prompt_texts(tokenizer, prompts[i:i + batch_size])]
        resp = responses[i:i + batch_size]
        length = max(len(p) + len(r) for p, r in zip(rows, resp))
        keep = max(len(r) for r in resp) + 1
        ids = torch.full((len(rows), length), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for j, (p, r) in enumerate(zip(rows, resp)):         # left padding: responses end together
            ids[j, length - len(p) - len(r):] = torch.tensor(p + r)
            mask[j, length - len(p) - len(r):] = 1
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():                                 # logits of the response positions only
            logits = model(input_ids=ids, attention_mask=mask, position_ids=position_ids,
                           logits_to_keep=keep).logits.float() / temperature
        lp = torch.log_softmax(logits[:, :-1], -1).gather(2, ids[:, -keep + 1:].unsqueeze(-1)).squeeze(-1)
        for j, r in enumerate(resp):
            out.append(float(lp[j, lp.shape[1] - len(r):].sum()) if r else 0.0)
    return out


@dataclass
class GenerateResult:
    """A generate run: ``response_groups`` maps each prompt id to its distinct samples'
    response ids; ``comparison_ids`` are the labels it recorded (best-of-n or pairs)."""

    run: store.Run
    n_prompts: int
    n_responses: int
    task_ids: list[int] = field(default_factory=list)
    tokens_per_second: float = 0.0
    mean_reward: float | None = None
    response_groups: dict[int, list[int]] = field(default_factory=dict)
    comparison_ids: list[int] = field(default_factory=list)


def generate(s: store.Store, model_spec: str | None, prompts_source: str, *, limit: int | None = None,
             offset: int = 0, params: GenParams | None = None, reward_model: str | None = None,
             select: str = "uncertain", n_tasks: int = 0, overlap: int = 1,
             label_best: bool = False, pairs: str | None = None, margin: float = 0.0,
             max_prompt_tokens: int | None = None, label_truncated: bool = False,
             pipeline_run_id: int | None = None) -> GenerateResult:
    """Sample, store, score and queue; recorded as a ``generate`` run whose parent is the
    policy's run (model lineage) and whose pipeline run is ``pipeline_run_id``.

    ``prompts_source``: see :func:`prefloop.store.sources.prompts_from` (a dataset, a prompts
    file, ``export:ID`` or ``export:ID:train``); prompts longer than ``max_prompt_tokens``
    (chat-formatted) are left out; ``offset`` skips the first prompts (wrapping around).
    With ``label_best`` the reward model labels each prompt's samples as an AI labeler
    (``reward-model:<spec>``): one comparison, the best-scored finished sample (one that
    emitted EOS within ``max_new_tokens``; a cut-off sample is never chosen) over the others,
    the data of rejection-sampling fine-tuning (best-of-n SFT; Touvron et al. 2023,
    Dong et al. 2023): export it with ``--labeler`` and train SFT on it.

    With ``pairs`` the reward model labels on-policy preference pairs of each prompt's finished
    samples
    (the data of iterative DPO; Xiong et al. 2024): ``best-worst``, one comparison of the
    highest- over the lowest-scored sample, or ``all``, every pair whose reward gap is at least
    ``margin``; each an AI comparison by ``reward-model:<spec>`` with confidence
    sigmoid(gap), so judge gating and Dawid-Skene apply to them. Select one round's pairs with
    ``PairFilters(labeler=..., after_comparison_id=<the newest id before this run>)``.
    ``label_truncated`` lets cut-off samples be labeled too (tests on tiny random models, which
    rarely emit EOS). Labels by an AI judge or by the policy itself
    are :func:`prefloop.pipelines.onpolicy.sample_pairs`.

    Raises:
        TrainingError: ``select="uncertain"``, ``label_best`` or ``pairs`` without a reward
            model; ``pairs`` not one of :data:`PAIR_MODES`; ``label_best`` or ``pairs`` with
            ``params.n < 2``; a negative ``margin``.
        prefloop.store.NotFoundError: no prompts.
    """
    from prefloop.store.sources import prompts_from

    params = params or GenParams()
    _check_options(params, reward_model, select, n_tasks, label_best, pairs, margin)
    model_ref = resolve_model(model_spec, s, require="policy")
    rm_ref = resolve_model(reward_model, s, require="reward") if reward_model else None
    tok = load_tokenizer(model_ref.path)

    def fits(p: store.Prompt) -> bool:
        return max_prompt_tokens is None or len(tok.apply_chat_template(
            p.messages, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]) <= max_prompt_tokens

    prompts = prompts_from(s, prompts_source, limit=None if limit is None else offset + limit,
                           keep=fits)
    if offset:   # a later round of on-policy sampling: the next prompts, from the start again when out
        prompts = (prompts[offset % len(prompts):] + prompts)[:limit or len(prompts)]
    config = {"model": model_ref.name, "model_path": str(model_ref.path), "prompts": prompts_source,
              "limit": limit, "offset": offset, "reward_model": reward_model, "select": select,
              "tasks": n_tasks,
              "label_best": label_best, "pairs": pairs, "margin": margin, "label_truncated": label_truncated,
              "max_prompt_tokens": max_prompt_tokens, **asdict(params)}
    with tracked_run(s, "generate", config, parent_run_id=model_ref.run_id,
                     pipeline_run_id=pipeline_run_id) as run:
        model = load_causal_lm(model_ref.path)
        t0 = time.perf_counter()
        samples = sample_responses(model, tok, [p.messages for p in prompts], params)
        seconds = time.perf_counter() - t0
        n_tokens = sum(x.n_tokens for group in samples for x in group)
        items, ids, by_prompt, complete = _store_samples(s, prompts, samples, model_ref, run.id, params,
                                                         label_truncated)
        rewards, members = _score(s, rm_ref, prompts, by_prompt) if rm_ref is not None else ({}, {})
        task_ids = _queue(s, by_prompt, rewards, select, n_tasks, overlap, params.seed, members)
        labeled = _label_best(s, run.id, by_prompt, complete, rewards, reward_model) if label_best else []
        pair_ids = (_label_pairs(s, run.id, complete, rewards, reward_model, pairs, margin)
                    if pairs else [])
        metrics = _metrics(n_tokens / max(seconds, 1e-9), samples, items, complete, rewards,
                           len(labeled) if label_best else None, len(pair_ids) if pairs else None)
        MetricsLogger(s, run.id).log(0, metrics)
        summary = {**metrics, "prompts": len(prompts), "tasks": len(task_ids)}
        run = s.runs.update(run.id, status="finished", summary=summary)
    return GenerateResult(run, len(prompts), len(ids), task_ids, metrics["tokens_per_second"],
                          metrics.get("mean_reward"), by_prompt, labeled + pair_ids)


def _check_options(params: GenParams, reward_model: str | None, select: str, n_tasks: int,
                   label_best: bool, pairs: str | None, margin: float) -> None:
    """The option checks of :func:`generate` (its ``Raises``), before anything loads."""
    if select not in ("uncertain", "random"):
        raise TrainingError(f"--select {select!r}: expected uncertain or random")
    if pairs is not None and pairs not in PAIR_MODES:
        raise TrainingError(f"--pairs {pairs!r}: expected one of {', '.join(PAIR_MODES)}")
    if (label_best or pairs) and params.n < 2:
        raise TrainingError(f"--n {params.n}: labeling the best sample or pairs needs at least 2 "
                            "samples per prompt")
    if margin < 0:
        raise TrainingError(f"--margin {margin}: expected a reward gap >= 0")
    if (n_tasks and select == "uncertain" or label_best or pairs) and not reward_model:
        raise TrainingError("--select uncertain, --label-best and --pairs need --reward-model "
                            "(or use --select random; judge labels: prefloop train iterative-dpo)")


def _store_samples(s: store.Store, prompts, samples, model_ref, run_id: int, params: GenParams,
                   label_truncated: bool):
    """Store the non-empty samples as responses of run ``run_id``. Returns ``(items, ids,
    by_prompt, complete)``: the stored :class:`~prefloop.store.ResponseIn` rows, their ids,
    ``{prompt_id: [response_id, ...]}`` (distinct ids, in order) and the same restricted to
    the samples a label may use: a sample cut off at ``max_new_tokens`` is never a label's
    chosen or rejected side (closed by the chat template, it would teach stopping
    mid-sentence) unless ``label_truncated``."""
    gen_params = {**asdict(params), "policy_run_id": model_ref.run_id}
    # a byte-level vocabulary can decode a NUL, which the store refuses as text: drop it
    items = [store.ResponseIn(p.id, text, origin="model", model=model_ref.name, run_id=run_id,
                              gen_params={**gen_params, "finished": x.finished})
             for p, group in zip(prompts, samples) for x in group
             if (text := x.text.replace("\x00", "")).strip()]
    ids = s.responses.add(items)
    by_prompt: dict[int, list[int]] = {}
    finished: set[int] = set()
    for item, rid in zip(items, ids):
        if rid not in by_prompt.setdefault(item.prompt_id, []):
            by_prompt[item.prompt_id].append(rid)
        if item.gen_params["finished"]:
            finished.add(rid)
    complete = {pid: [r for r in rids if r in finished or label_truncated] for pid, rids in by_prompt.items()}
    return items, ids, by_prompt, complete


def _score(s: store.Store, rm_ref, prompts, by_prompt: dict[int, list[int]]):
    """Reward-model scores of every stored sample: ``({response_id: reward},
    {response_id: (K,) centred member rewards})``, the second empty unless an ensemble."""
    scorer = reward_scorer(rm_ref)
    flat = [(p.id, p.messages, rid) for p in prompts for rid in by_prompt.get(p.id, [])]
    texts = {r.id: r.text for r in s.responses.get_many([f[2] for f in flat])}
    convs, outs = [f[1] for f in flat], [texts[f[2]] for f in flat]
    members: dict[int, torch.Tensor] = {}
    if isinstance(scorer, EnsembleScorer):
        per_member = scorer.member_scores(convs, outs)
        scores = scorer.combine(per_member)
        members = {f[2]: per_member[:, i] for i, f in enumerate(flat)}
    else:
        scores = scorer.score(convs, outs)
    return {f[2]: float(v) for f, v in zip(flat, scores)}, members


def _metrics(tokens_per_second: float, samples, items, complete: dict[int, list[int]],
             rewards: dict[int, float], n_labeled: int | None, n_pairs: int | None) -> dict[str, float]:
    """The run's metrics: throughput (tokens/s), responses, EOS rate, and with labels the
    prompts without two finished samples, labels, mean best reward, pairs, mean reward."""
    metrics = {"tokens_per_second": tokens_per_second, "responses": len(items),
               "eos_rate": sum(x.finished for g in samples for x in g) / max(1, len(items))}
    if n_labeled is not None or n_pairs is not None:
        metrics["prompts_without_two_finished"] = sum(len(r) < 2 for r in complete.values())
    if n_labeled is not None:
        best = [max(rewards[r] for r in rids) for rids in complete.values() if rids]
        metrics.update(labeled=n_labeled, mean_best_reward=sum(best) / max(1, len(best)))
    if n_pairs is not None:
        metrics["pairs"] = n_pairs
    if rewards:
        metrics["mean_reward"] = sum(rewards.values()) / len(rewards)
    return metrics


def reward_labeler(reward_model: str) -> str:
    """The labeler name of a reward model's AI labels (``reward-model:run:3``)."""
    return f"reward-model:{reward_model}"


def _label_best(s: store.Store, run_id: int, by_prompt: dict[int, list[int]],
                complete: dict[int, list[int]], rewards: dict[int, float], reward_model: str) -> list[int]:
    """One AI comparison per prompt with 2+ distinct samples of which 1+ finished: the
    best-scored finished sample over every other sample (finished or cut off: a finished
    answer over one cut off is a preference people share), its confidence the Bradley-Terry
    probability that it beats the best of the others under the reward model."""
    import math

    out = []
    with s.atomic():                          # one transaction for the whole batch of labels
        for pid, rids in by_prompt.items():
            finished = complete.get(pid, [])
            if len(rids) < 2 or not finished:
                continue
            best = max(finished, key=lambda r: rewards[r])
            others = sorted((r for r in rids if r != best), key=lambda r: -rewards[r])
            gap = rewards[best] - rewards[others[0]]
            out.append(s.comparisons.record(
                pid, [[best], others], labeler_kind="ai",
                labeler=reward_labeler(reward_model), rationale=f"best finished of {len(rids)}",
                confidence=1 / (1 + math.exp(-gap)), dedup_key=f"best-of-n:{run_id}:{pid}"))
    return out


def _label_pairs(s: store.Store, run_id: int, by_prompt: dict[int, list[int]],
                 rewards: dict[int, float], reward_model: str, mode: str, margin: float) -> list[int]:
    """On-policy pairs (see :func:`generate`): per prompt with 2+ distinct samples, the best
    over the worst (``best-worst``) or every pair with a reward gap >= ``margin`` (``all``);
    returns the comparison ids."""
    import math

    out = []
    with s.atomic():
        for pid, rids in by_prompt.items():
            ranked = sorted(rids, key=lambda r: -rewards[r])
            if len(ranked) < 2:
                continue
            if mode == "best-worst":
                candidates = [(ranked[0], ranked[-1])]
            else:
                candidates = [(a, b) for i, a in enumerate(ranked) for b in ranked[i + 1:]]
            for a, b in candidates:
                gap = rewards[a] - rewards[b]
                if gap < margin or gap <= 0:
                    continue
                out.append(s.comparisons.record(
                    pid, [[a], [b]], labeler_kind="ai", labeler=reward_labeler(reward_model),
                    rationale=f"reward {rewards[a]:.3f} vs {rewards[b]:.3f} ({mode} of {len(rids)})",
                    confidence=1 / (1 + math.exp(-gap)), dedup_key=f"pairs:{run_id}:{pid}:{a}:{b}"))
    return out


def _queue(s: store.Store, by_prompt: dict[int, list[int]], rewards: dict[int, float], select: str,
           n_tasks: int, overlap: int, seed: int,
           members: dict[int, torch.Tensor] | None = None) -> list[int]:
    if n_tasks <= 0:
        return []
    rng = random.Random(seed)
    candidates: list[tuple[float, int, list[int], str]] = []
    for pid, rids in by_prompt.items():
        if len(rids) < 2:
            continue
        if select == "uncertain" and members:
            pairs = [(float(EnsembleScorer.disagreement(members[a][:, None], members[b][:, None])), a, b)
                     for i, a in enumerate(rids) for b in rids[i + 1:]]
            spread, a, b = max(pairs)
            candidates.append((-spread, pid, [a, b], f"uncertain: ensemble disagreement {spread:.3f} "
                               f"({rewards[a]:.2f} vs {rewards[b]:.2f})"))
        elif select == "uncertain":
            pairs = [(abs(rewards[a] - rewards[b]), a, b) for i, a in enumerate(rids) for b in rids[i + 1:]]
            gap, a, b = min(pairs)
            candidates.append((gap, pid, [a, b], f"uncertain: reward gap {gap:.3f} "
                               f"({rewards[a]:.2f} vs {rewards[b]:.2f})"))
        else:
            a, b = rng.sample(rids, 2)
            candidates.append((rng.random(), pid, [a, b], "random pair"))
    candidates.sort()
    chosen = candidates[:n_tasks]
    return s.tasks.create([store.TaskIn(pid, pair, overlap=overlap, priority=len(chosen) - i, reason=why)
                           for i, (_, pid, pair, why) in enumerate(chosen)])
