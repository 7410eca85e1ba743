"""``prefloop board``: every policy method on the same labels, over several end-to-end seeds,
judged on the test prompts with the people column beside the diagnostics.

Per seed: the demo's data (:mod:`prefloop.pipelines.demo`: the prompt sets, halves A and B drawn
with the seed, a proxy and a second reward model), then each method trained from the base under
the same wall-clock budget (LoRA), then one evaluation of them all on the test prompts (the base
against itself too: the A/A row) with blind tasks queued for people. A method's row is its
per-seed win rates and a two-level bootstrap CI over seeds and prompts
(:func:`~prefloop.core.stats.seed_win_rate`), per subset (harmless, benign), with KL, length,
EOS and refusal rates. ``dpo-random`` is DPO on randomly swapped labels: what drift alone does.

The board is a pipeline run of kind ``board`` (resumable: each seed's setup, each method and
each evaluation is a recorded stage).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from prefloop import store
from prefloop.core.stats import WinRate, seed_win_rate
from prefloop.store.export_files import ExportOptions, export_pairs
from prefloop.store.pairs import PairFilters

from .base import Pipeline
from .errors import PipelineError

__all__ = ["BOARD_METHODS", "BoardConfig", "BoardRow", "run_board", "board_rows", "seed_rows", "BoardError"]

log = logging.getLogger(__name__)

#: The board's methods, in its order. ``aa`` is the base sampled again (no training);
#: ``sft+dpo`` is SFT, then on-policy (iterative) DPO from it.
BOARD_METHODS = ("aa", "sft", "dpo", "dpo-random", "iterative-dpo", "sft+dpo", "rs-sft", "ppo", "grpo",
                 "rloo", "orpo", "kto")


class BoardError(PipelineError):
    """A board setting that cannot be used (an unknown method, no seed, a bad budget); the
    message names the option."""


@dataclass(frozen=True)
class BoardConfig:
    """What the board runs: ``methods`` (of :data:`BOARD_METHODS`), ``seeds``, ``budget``
    seconds of training per method, ``per_subset`` test prompts per subset, ``tasks`` blind
    tasks per method for people, and the token budgets."""

    methods: tuple[str, ...] = BOARD_METHODS
    seeds: tuple[int, ...] = (1, 2, 3)
    budget: float = 150.0
    per_subset: int = 32
    tasks: int = 16
    max_new_tokens: int = 128
    max_prompt_tokens: int = 256
    rm_steps: int = 60

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in BOARD_METHODS]
        if unknown:
            raise BoardError(f"--methods: unknown method {unknown[0]!r}; the board's methods: "
                             f"{', '.join(BOARD_METHODS)}")
        if not self.methods:
            raise BoardError("--methods: name at least one method")
        if "sft+dpo" in self.methods and ("sft" not in self.methods
                                          or self.methods.index("sft") > self.methods.index("sft+dpo")):
            raise BoardError("--methods: sft+dpo starts from the sft policy: name sft before it")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise BoardError(f"--seeds: expected distinct seeds, found {list(self.seeds)}")
        if not self.budget > 0:
            raise BoardError(f"--budget: expected seconds > 0, found {self.budget!r}")
        for name in ("per_subset", "max_new_tokens", "max_prompt_tokens", "rm_steps"):
            if getattr(self, name) < 1:
                raise BoardError(f"--{name.replace('_', '-')}: expected an integer >= 1, found {getattr(self, name)!r}")
        if self.tasks < 0:
            raise BoardError(f"--tasks: expected an integer >= 0, found {self.tasks!r}")


@dataclass
class BoardRow:
    """One method across seeds: per view (``people``, ``second_rm``, ``proxy``) and subset
    (``all``, ``harmless``, ``benign``), its per-seed win rates and the seed-level win rate with
    its CI; KL (nats per response), tokens, EOS and refusal rates, mean over seeds."""

    method: str
    seeds: list[int]
    per_seed: dict[str, dict[str, list[float | None]]] = field(default_factory=dict)
    win: dict[str, dict[str, WinRate | None]] = field(default_factory=dict)
    kl: float | None = None
    tokens: float = 0.0
    eos_rate: float = 0.0
    refusal_rate: dict[str, float] = field(default_factory=dict)


def _lora(budget: float, base: str) -> dict[str, Any]:
    return {"model": base, "max_seconds": budget, "save_steps": 10_000, "use_lora": True, "max_steps": 10_000}


class _Seed:
    """One seed's data and methods."""

    def __init__(self, s: store.Store, cfg: BoardConfig, seed: int, pipe: Pipeline):
        self.s, self.cfg, self.seed, self.pipe = s, cfg, seed, pipe
        self.out = s.path.resolve().parent / "runs" / f"board-{pipe.run.id}-seed-{seed}"

    def setup(self) -> dict[str, Any]:
        from prefloop.training.train import run_config, train

        data = {}
        for half, shard in (("a", 0), ("b", 1)):
            e = export_pairs(self.s, self.out / f"export-{half}", PairFilters(
                source="all", test_fraction=0.1, seed=self.seed, shard=shard, shards=2), overwrite=True)
            data[f"half_{half}"] = e.export.id
        f = PairFilters(source="all", test_fraction=0.1, seed=self.seed, shard=0, shards=2, random_labels=True)
        data["random"] = export_pairs(self.s, self.out / "export-random", f, overwrite=True).export.id
        f = PairFilters(source="all", test_fraction=0.1, seed=self.seed, shard=0, shards=2)
        data["kto"] = export_pairs(self.s, self.out / "export-kto", f, ExportOptions(format="kto", kto_pairs=True),
                                   overwrite=True).export.id
        for name, half in (("proxy", "half_a"), ("second", "half_b")):
            rm = run_config("rm", model="minilm", export_id=data[half], max_steps=self.cfg.rm_steps,
                            max_length=256, per_device_train_batch_size=8, learning_rate=5e-5,
                            max_eval_pairs=96, save_steps=10_000, logging_steps=10, seed=self.seed)
            r = train(self.s, "rm", config=rm, pipeline_run_id=self.pipe.run.id)
            data[name] = f"run:{r.run.id}"
        return data

    def method(self, method: str, data: dict[str, Any], base: str, budget: float) -> dict[str, Any]:
        from prefloop.training.train import run_config, train

        from .onpolicy import onpolicy_config, run_onpolicy

        t0, cfg, pid = time.perf_counter(), self.cfg, self.pipe.run.id
        common = {**_lora(budget, base), "seed": self.seed}
        offline = {**common, "max_length": 320, "max_train_pairs": 600, "max_eval_pairs": 16, "logging_steps": 5}
        rl = {**common, "export_id": data["half_a"], "reward_model": data["proxy"],
              "second_reward_model": data["second"]}
        if method in ("dpo", "orpo", "sft"):
            kind, fields = method, {**offline, "export_id": data["half_a"]}
        elif method == "dpo-random":
            kind, fields = "dpo", {**offline, "export_id": data["random"]}
        elif method == "kto":
            kind, fields = "kto", {**offline, "export_id": data["kto"], "per_device_train_batch_size": 4}
        elif method == "ppo":
            kind, fields = "ppo", {**rl, "max_new_tokens": cfg.max_new_tokens, "batch_size": 16,
                                   "max_prompt_length": cfg.max_prompt_tokens, "mini_batch_size": 8}
        elif method in ("grpo", "rloo"):
            kind, fields = method, {**rl, "max_completion_length": cfg.max_new_tokens, "logging_steps": 1}
        else:                                           # iterative-dpo, rs-sft: sample, label, train
            sampling = 48 * 4 * cfg.max_new_tokens / 70.0           # 70 tokens/s on 2 cores
            oc = onpolicy_config("rs-sft" if method == "rs-sft" else "iterative-dpo", {
                "model": base, "export_id": data["half_a"], "reward_model": data["proxy"], "rounds": 1,
                "prompts_per_round": 48, "n": 4, "max_new_tokens": cfg.max_new_tokens,
                "max_prompt_tokens": cfg.max_prompt_tokens, "max_steps": 10_000, "save_steps": 10_000,
                "max_seconds": max(30.0, budget - sampling), "logging_steps": 5, "seed": self.seed}, "board")
            res = run_onpolicy(self.s, oc, pipeline_run_id=pid, fresh=True)
            return {"run_id": res.final_run_id, "seconds": round(time.perf_counter() - t0, 1)}
        r = train(self.s, kind, config=run_config(kind, **fields), pipeline_run_id=pid)
        return {"run_id": r.run.id, "seconds": round(time.perf_counter() - t0, 1), "steps": r.steps}

    def evaluate(self, trained: dict[str, dict[str, Any]], data: dict[str, Any]) -> dict[str, Any]:
        from prefloop.core.models import DEFAULT_MODEL

        from .evaluation import EvalConfig, run_eval

        specs = [DEFAULT_MODEL] + [DEFAULT_MODEL if m == "aa" else f"run:{trained[m]['run_id']}"
                                   for m in self.cfg.methods]
        ev = run_eval(self.s, EvalConfig(
            models=tuple(specs), prompts="set:test", per_subset=self.cfg.per_subset,
            max_prompt_tokens=self.cfg.max_prompt_tokens, reward_model=data["proxy"],
            second_reward_model=data["second"], tasks=self.cfg.tasks, overlap=1,
            max_new_tokens=self.cfg.max_new_tokens, seed=self.seed, batch_size=16), pipeline_run_id=self.pipe.run.id)
        keys = [r.model for r in ev.summary.rows][1:]
        return {"run_id": ev.run.id, "models": dict(zip(self.cfg.methods, keys))}


def run_board(s: store.Store, cfg: BoardConfig, *, fresh: bool = False) -> store.Run:
    """Run (or resume) the board (see the module docstring); returns its finished pipeline run,
    whose summary maps each seed to its eval run and the methods' model versions in it.

    Raises:
        BoardError: bad settings (before anything is written); PrefloopError: a stage failed.
    """
    from .demo import import_shared, record_demo_prompt_sets, shared_data_dir

    pipe = Pipeline(s, "board", {"board": asdict(cfg), "version": 1}, resume=not fresh, reuse_finished=not fresh)
    data_dir = shared_data_dir()
    pipe.stage("import", "Import the shared data", lambda: import_shared(s, data_dir))
    pipe.stage("prompt_sets", "Record the prompt sets", lambda: record_demo_prompt_sets(s))
    seeds = {str(seed): _run_seed(s, cfg, seed, pipe) for seed in cfg.seeds}
    return pipe.finish({"seeds": seeds})


def _run_seed(s: store.Store, cfg: BoardConfig, seed: int, pipe: Pipeline) -> dict[str, Any]:
    """One seed's stages: its data, each method, the evaluation; returns its eval run and the
    methods' model versions in it."""
    from prefloop.core.models import DEFAULT_MODEL

    sd = _Seed(s, cfg, seed, pipe)
    data = pipe.stage(f"s{seed}.setup", f"seed {seed}: halves A/B and reward models", sd.setup)
    trained: dict[str, dict[str, Any]] = {}
    for m in cfg.methods:
        if m == "aa":
            continue
        if m == "sft+dpo":             # on-policy DPO from this seed's SFT policy
            start = f"run:{trained['sft']['run_id']}"
            trained[m] = pipe.stage(f"s{seed}.{m}", f"seed {seed}: {m}",
                                    lambda start=start: sd.method("iterative-dpo", data, start, cfg.budget))
        else:
            trained[m] = pipe.stage(f"s{seed}.{m}", f"seed {seed}: {m} ({cfg.budget:.0f} s)",
                                    lambda m=m: sd.method(m, data, DEFAULT_MODEL, cfg.budget))
    ev = pipe.stage(f"s{seed}.eval", f"seed {seed}: evaluate every method on the test prompts",
                    lambda: sd.evaluate(trained, data))
    return {"eval_run_id": ev["run_id"], "models": ev["models"]}


def _subset_outcomes(outcomes: dict[int, list[float]] | dict[int, float], subsets: dict[int, str],
                     name: str) -> list[float]:
    out = []
    for pid, o in outcomes.items():
        if name == "all" or subsets.get(pid) == name:
            out += o if isinstance(o, list) else [o]
    return out


def board_rows(s: store.Store, board: store.Run) -> list[BoardRow]:
    """The board's rows from its eval runs and people's labels as they are now."""
    seeds = (board.summary or {}).get("seeds", {})
    if not seeds:
        raise BoardError(f"board run {board.id} has no finished seed yet")
    return seed_rows(s, seeds)


def seed_rows(s: store.Store, seeds: dict[str, dict[str, Any]]) -> list[BoardRow]:
    """One :class:`BoardRow` per method over end-to-end seeds: ``seeds`` maps each seed to
    ``{"eval_run_id": ID, "models": {method: the eval's version name}}``; people's column
    from the blind labels given so far. A seed-level win rate needs every seed to have
    outcomes in that view (else ``None``)."""
    from .eval_results import EvalSummary
    from .evaluation import people_outcomes

    per_method: dict[str, BoardRow] = {}
    raw: dict[str, dict[str, list[list[float]]]] = {}
    for seed, info in seeds.items():
        run = s.runs.get(info["eval_run_id"])
        summary = EvalSummary.from_json(run.summary)
        people = people_outcomes(s, run, summary)
        subsets = {pid: sub for pid, (_, sub) in s.prompt_sets.of(list(summary.responses[summary.baseline])).items()}
        for method, model in info["models"].items():
            row = per_method.setdefault(method, BoardRow(method, []))
            row.seeds.append(int(seed))
            views = {"people": people.get(model, {}), **{v: summary.outcomes.get(v, {}).get(model, {})
                                                         for v in ("second_rm", "proxy")}}
            for view, outcomes in views.items():
                for name in ("all", "harmless", "benign"):
                    xs = _subset_outcomes(outcomes, subsets, name)
                    row.per_seed.setdefault(f"{view}:{name}", []).append(sum(xs) / len(xs) if xs else None)
                    raw.setdefault(method, {}).setdefault(f"{view}:{name}", []).append(xs)
            _add_means(row, summary.row(model), len(seeds))
    for method, row in per_method.items():
        for key, groups in raw[method].items():
            view, name = key.split(":")
            complete = all(groups)
            row.win.setdefault(view, {})[name] = seed_win_rate(groups) if complete else None
    return list(per_method.values())


def _add_means(row: BoardRow, r, n_seeds: int) -> None:
    """Add one seed's KL, length, EOS and refusal rates to the row's means over seeds."""
    row.kl = (row.kl or 0.0) + (r.overall.kl or 0.0) / n_seeds
    row.tokens += r.overall.mean_tokens / n_seeds
    row.eos_rate += r.overall.eos_rate / n_seeds
    for name in ("harmless", "benign"):
        sl = r.slice(name)
        if sl is not None:
            row.refusal_rate[name] = row.refusal_rate.get(name, 0.0) + sl.refusal_rate / n_seeds
