"""New samples that loop back for labeling: sample K responses per prompt, store them with
provenance, score them with a reward model, and queue the most informative pairs.

``select="uncertain"`` queues, per prompt, the two responses whose rewards are closest (the pair
the reward model is least sure about), most uncertain prompts first; ``"random"`` queues a
random pair of random prompts.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from prefloop.store.importer import import_file

from prefloop import store
from prefloop.models import load_causal_lm, load_tokenizer, resolve_model
from prefloop.runs import MetricsLogger, tracked_run

from .errors import TrainingError
from .scoring import RewardScorer

__all__ = ["GenParams", "Sample", "sample_responses", "GenerateResult", "generate"]


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
    """One sampled response: ``text`` (special tokens removed), ``n_tokens`` generated,
    ``finished`` (emitted EOS before ``max_new_tokens``)."""

    text: str
    n_tokens: int
    finished: bool


@torch.no_grad()
def sample_responses(model, tokenizer, prompts: list[list[dict]], params: GenParams,
                     batched: bool = True) -> list[list[Sample]]:
    """``params.n`` samples per prompt, shape ``[len(prompts)][n]``.

    Batched (default): prompts are left-padded into batches of ``batch_size`` sequences
    (``batch_size // n`` prompts x ``n`` samples). ``batched=False`` generates one sequence
    at a time (the baseline of ``bench/training_bench.py``).
    """
    torch.manual_seed(params.seed)
    tokenizer.padding_side = "left"
    model.eval()
    eos = tokenizer.eos_token_id
    out: list[list[Sample]] = []
    per_batch = max(1, params.batch_size // params.n) if batched else 1
    for i in range(0, len(prompts), per_batch):
        chunk = prompts[i:i + per_batch]
        texts = [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False)
                 for p in chunk]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        reps = params.n if batched else 1
        rounds = 1 if batched else params.n
        groups: list[list[Sample]] = [[] for _ in chunk]
        for _ in range(rounds):
            seq = model.generate(**enc, do_sample=True, temperature=params.temperature,
                                 top_p=params.top_p, max_new_tokens=params.max_new_tokens,
                                 num_return_sequences=reps, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=eos)
            new = seq[:, enc["input_ids"].shape[1]:]
            for j, row in enumerate(new):
                ids = row.tolist()
                finished = eos in ids
                if finished:
                    ids = ids[:ids.index(eos)]
                ids = [t for t in ids if t != tokenizer.pad_token_id]
                groups[j // reps].append(Sample(tokenizer.decode(ids, skip_special_tokens=True).strip(),
                                                len(ids) + int(finished), finished))
        out.extend(groups)
    return out


@dataclass
class GenerateResult:
    run: store.Run
    n_prompts: int
    n_responses: int
    task_ids: list[int] = field(default_factory=list)
    tokens_per_second: float = 0.0
    mean_reward: float | None = None


def _prompts(s: store.Store, source: str, limit: int | None) -> list[store.Prompt]:
    path = Path(source)
    if path.is_file():
        dataset = path.name.split(".")[0]
        import_file(s, path, "prompts", dataset=dataset)
        source = dataset
    prompts = s.prompts.list(dataset=source, limit=limit)
    if not prompts:
        raise TrainingError(f"no prompts in dataset {source!r}: import some with `prefloop import "
                            "FILE --format prompts`, or pass a prompts file")
    return prompts


def generate(s: store.Store, model_spec: str | None, prompts_source: str, *, limit: int | None = None,
             params: GenParams | None = None, reward_model: str | None = None,
             select: str = "uncertain", n_tasks: int = 0, overlap: int = 1,
             pipeline_run_id: int | None = None) -> GenerateResult:
    """Sample, store, score and queue; recorded as a ``generate`` run whose parent is the
    policy's run (model lineage) and whose pipeline run is ``pipeline_run_id``.

    Raises:
        TrainingError: no prompts, or ``select="uncertain"`` without a reward model.
    """
    params = params or GenParams()
    if select not in ("uncertain", "random"):
        raise TrainingError(f"--select {select!r}: expected uncertain or random")
    if n_tasks and select == "uncertain" and not reward_model:
        raise TrainingError("--select uncertain needs --reward-model to measure uncertainty "
                            "(or use --select random)")
    model_ref = resolve_model(model_spec, s, require="policy")
    prompts = _prompts(s, prompts_source, limit)
    config = {"model": model_ref.name, "model_path": str(model_ref.path), "prompts": prompts_source,
              "limit": limit, "reward_model": reward_model, "select": select, "tasks": n_tasks,
              **asdict(params)}
    with tracked_run(s, "generate", config, parent_run_id=model_ref.run_id,
                     pipeline_run_id=pipeline_run_id) as run:
        tok = load_tokenizer(model_ref.path)
        model = load_causal_lm(model_ref.path)
        t0 = time.perf_counter()
        samples = sample_responses(model, tok, [p.messages for p in prompts], params)
        seconds = time.perf_counter() - t0
        n_tokens = sum(x.n_tokens for group in samples for x in group)
        gen_params = {**asdict(params), "policy_run_id": model_ref.run_id}
        items = [store.ResponseIn(p.id, x.text, origin="model", model=model_ref.name, run_id=run.id,
                                  gen_params={**gen_params, "finished": x.finished})
                 for p, group in zip(prompts, samples) for x in group if x.text.strip()]
        ids = s.responses.add(items)
        by_prompt: dict[int, list[int]] = {}
        for item, rid in zip(items, ids):
            if rid not in by_prompt.setdefault(item.prompt_id, []):
                by_prompt[item.prompt_id].append(rid)
        rewards: dict[int, float] = {}
        if reward_model:
            scorer = RewardScorer(resolve_model(reward_model, s, require="reward").path)
            flat = [(p.id, p.messages, rid) for p in prompts for rid in by_prompt.get(p.id, [])]
            texts = {r.id: r.text for r in s.responses.get_many([f[2] for f in flat])}
            scores = scorer.score([f[1] for f in flat], [texts[f[2]] for f in flat])
            rewards = {f[2]: float(v) for f, v in zip(flat, scores)}
        task_ids = _queue(s, by_prompt, rewards, select, n_tasks, overlap, params.seed)
        metrics = {"tokens_per_second": n_tokens / max(seconds, 1e-9), "responses": len(ids),
                   "eos_rate": sum(x.finished for g in samples for x in g) / max(1, len(items))}
        if rewards:
            metrics["mean_reward"] = sum(rewards.values()) / len(rewards)
        MetricsLogger(s, run.id).log(0, metrics)
        summary = {**metrics, "prompts": len(prompts), "tasks": len(task_ids)}
        run = s.runs.update(run.id, status="finished", summary=summary)
    return GenerateResult(run, len(prompts), len(ids), task_ids, metrics["tokens_per_second"],
                          metrics.get("mean_reward"))


def _queue(s: store.Store, by_prompt: dict[int, list[int]], rewards: dict[int, float], select: str,
           n_tasks: int, overlap: int, seed: int) -> list[int]:
    if n_tasks <= 0:
        return []
    rng = random.Random(seed)
    candidates: list[tuple[float, int, list[int], str]] = []
    for pid, rids in by_prompt.items():
        if len(rids) < 2:
            continue
        if select == "uncertain":
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
