"""``loop.yaml``, typed: :class:`LoopConfig` is built once by :func:`load_loop_config` from the
file and composed of the configs the steps already have (the export's
:class:`~prefloop.store.pairs.PairFilters`, the sampler's
:class:`~prefloop.training.generate.GenParams`, the evaluation's
:class:`~prefloop.pipelines.eval_config.EvalConfig` fields, each trainer's run config), so no
default is restated here. Every key is checked at load, with an error naming the file and the
key, before any run row is written.

Config (all keys optional)::

    policy: smollm2-135m-instruct      # or run:ID / a path; the starting policy
    export: {source: human, min_agreement: 0.0, test_fraction: 0.1, dataset: null,
             since_last: true,         # only comparisons newer than the previous iteration's export
             aggregate: majority, min_confidence: 0.0,     # or dawid-skene (soft labels)
             ai_min_agreement: null, ai_min_overlap: 30}   # judge gating (any PairFilters field)
    rm: {model: minilm, max_steps: 200, max_length: 384, ensemble: 3}   # any RewardRunConfig
                                       # field; ensemble: null trains one model
    policy_update: dpo                 # dpo, iterative-dpo, ppo, grpo, rloo, rs-sft, orpo, kto or none
    dpo: {max_steps: 50}               # any DPORunConfig field
    ppo: {max_steps: 10}               # any PPORunConfig field (grpo, rloo, orpo, kto: theirs)
    iterative-dpo: {rounds: 2, n: 4, labeler: reward-model, beta: 0.1}
                                       # OnPolicyConfig fields and any DPORunConfig field
    rs-sft: {n: 4, prompts_per_round: 64}   # OnPolicyConfig fields and any SFTRunConfig field
    eval: {prompts: held-out, limit: 32, max_new_tokens: 64, second_reward_model: null,
           judge: null, min_second_rm_win_rate: null}   # held-out: this export's test split; or a
                                                   # dataset / prompts file (EvalConfig fields)
    generate: {prompts: mt-bench, limit: 20, n: 4, max_new_tokens: 128, tasks: 10,
               select: uncertain, overlap: 1}      # and any GenParams field
    judge: {modes: [pairwise, critique], backend: local, model: null, base_url: null,
            limit: 20, rounds: 1, constitution: null, source: generated}
    trigger: {new_labels: 200, min_interval: 1h}   # prefloop loop --watch: start an iteration
                                       # when this many new human labels arrived since the last
                                       # one began, at most one per min_interval (s, m, h, d)

Every section also takes ``skip: true``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefloop.core.errors import PrefloopError
from prefloop.core.kinds import ONPOLICY_KINDS, POLICY_KINDS, REWARDED_METHODS
from prefloop.core.models import DEFAULT_MODEL
from prefloop.store.pairs import PairFilters

from .errors import LoopConfigError
from .eval_config import EvalConfig

__all__ = ["Trigger", "parse_duration", "LoopConfig", "ExportStep", "TrainStep", "EvalStep", "GenerateStep", "JudgeStep",
           "load_loop_config", "POLICY_UPDATES", "REWARDED_UPDATES", "LOOP_KEYS"]

#: ``policy_update`` values: the method that updates the policy each iteration.
#: Every policy method but SFT (which learns from demonstrations, not preferences), or none.
POLICY_UPDATES = (*(m for m in (*POLICY_KINDS, *ONPOLICY_KINDS) if m != "sft"), "none")
#: The updates that sample from the policy and need the reward model trained this iteration.
REWARDED_UPDATES = REWARDED_METHODS
LOOP_KEYS = ("policy", "export", "rm", "policy_update", *POLICY_UPDATES[:-1], "eval", "generate", "judge",
             "trigger")


@dataclass(frozen=True)
class Trigger:
    """When ``prefloop loop --watch`` starts an iteration: ``new_labels`` human labels
    (evaluation labels left out) recorded since the previous iteration began, and at least
    ``min_interval`` seconds since it began."""

    new_labels: int
    min_interval: float = 0.0

    def __post_init__(self):
        if isinstance(self.new_labels, bool) or not isinstance(self.new_labels, int) or self.new_labels < 1:
            raise ValueError(f"new_labels: expected an integer >= 1, found {self.new_labels!r}")
        if not self.min_interval >= 0:
            raise ValueError(f"min_interval: expected a duration >= 0, found {self.min_interval!r}")


def parse_duration(value: Any, where: str) -> float:
    """``90``, ``"90s"``, ``"30m"``, ``"1h"``, ``"2d"`` -> seconds.

    Raises:
        LoopConfigError: anything else (naming ``where``).
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    text = str(value).strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if text and text[-1] in units:
            seconds = float(text[:-1]) * units[text[-1]]
        else:
            seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise LoopConfigError(f"{where}: expected a duration like 90s, 30m, 1h or 2d, found {value!r}")
    return seconds


@dataclass(frozen=True)
class ExportStep:
    """The export step: which labels (``filters``), and only those newer than the previous
    iteration's export (``since_last``)."""

    filters: PairFilters = PairFilters(source="human", test_fraction=0.1)
    since_last: bool = True


@dataclass(frozen=True)
class TrainStep:
    """A training step: ``settings`` are fields of the kind's run config, or for the on-policy
    methods (``iterative-dpo``, ``rs-sft``) of :class:`~prefloop.pipelines.onpolicy.OnPolicyConfig`
    and its trainer's (checked at load)."""

    kind: str
    settings: dict[str, Any] = field(default_factory=dict)
    skip: bool = False


@dataclass(frozen=True)
class EvalStep:
    """The evaluation of the new policy against its parent: ``prompts`` (``held-out``: the
    export's test split), ``min_second_rm_win_rate`` (below it the new policy is rejected), and
    ``settings``: other :class:`EvalConfig` fields (``limit`` defaults to 32 here)."""

    prompts: str = "held-out"
    min_second_rm_win_rate: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    skip: bool = False


@dataclass(frozen=True)
class GenerateStep:
    """Sampling new responses from the promoted policy and queueing tasks for people;
    ``params`` is a :class:`~prefloop.training.generate.GenParams`; ``select`` defaults to
    ``uncertain`` when a reward model was trained this iteration, else ``random``."""

    params: Any = None
    prompts: str = "mt-bench"
    limit: int = 20
    tasks: int = 10
    select: str | None = None
    overlap: int = 1
    reward_model: str | None = None
    skip: bool = False


@dataclass(frozen=True)
class JudgeStep:
    """AI-judge batches over the new responses, one per mode."""

    modes: tuple[str, ...] = ("pairwise", "critique")
    backend: str = "local"
    model: str | None = None
    base_url: str | None = None
    limit: int = 20
    rounds: int = 1
    constitution: str | None = None
    source: str = "generated"
    skip: bool = False


@dataclass(frozen=True)
class LoopConfig:
    """One loop iteration's settings; ``raw`` is the mapping it was built from (recorded as
    the loop run's config, so an interrupted iteration with the same file resumes)."""

    policy: str = DEFAULT_MODEL
    export: ExportStep = ExportStep()
    rm: TrainStep = TrainStep("rm")
    policy_update: str = "dpo"
    update: TrainStep | None = TrainStep("dpo")
    eval: EvalStep = EvalStep()
    generate: GenerateStep = GenerateStep()
    judge: JudgeStep = JudgeStep()
    trigger: Trigger | None = None
    raw: dict[str, Any] = field(default_factory=dict)


def _section(raw: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise LoopConfigError(f"{where}: {key}: expected a mapping, found {value!r}")
    return dict(value)


def _build(cls, values: dict[str, Any], where: str):
    """``cls(**values)`` with unknown keys and bad values as one line naming ``where``."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise LoopConfigError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    try:
        return cls(**values)
    except (TypeError, ValueError, PrefloopError) as exc:
        raise LoopConfigError(f"{where}: {exc}") from None


def _train_step(raw: dict[str, Any], kind: str, where: str) -> TrainStep:
    from prefloop.training.configs import load_config

    settings = _section(raw, kind, where)
    skip = bool(settings.pop("skip", False))
    try:   # every field and value checked now, not when the step runs
        if kind in ONPOLICY_KINDS:
            from .onpolicy import onpolicy_config

            for fixed in ("model", "policy", "export_id", "prompts"):
                if fixed in settings:
                    raise LoopConfigError(f"{where}: {kind}.{fixed}: set by the loop (the policy and "
                                          "this iteration's export)")
            # the reward model trained this iteration stands in for an unset one
            onpolicy_config(kind, {"reward_model": "run:0", **settings, "export_id": 0}, kind)
        else:
            load_config(kind, overrides={**settings, "export_id": settings.get("export_id", 0)})
    except LoopConfigError:
        raise
    except PrefloopError as exc:
        raise LoopConfigError(f"{where}: {kind}: {exc}") from None
    return TrainStep(kind, settings, skip)


def load_loop_config(path: str | Path) -> LoopConfig:
    """Read and check a loop config.

    Raises:
        LoopConfigError: the file is unreadable or not YAML, a key is unknown, a value has the
            wrong type or range, ``policy_update`` is not one of :data:`POLICY_UPDATES`, or
            ``eval.min_second_rm_win_rate`` has no ``eval.second_reward_model``; names the file.
    """
    where = str(path)
    from prefloop.core.files import read_config_file

    raw = read_config_file(path, LoopConfigError, what="loop config") or {}
    if not isinstance(raw, dict):
        raise LoopConfigError(f"{where}: expected a mapping of loop settings")
    return loop_config_from_dict(raw, where)


def loop_config_from_dict(raw: dict[str, Any], where: str = "loop config") -> LoopConfig:
    """Build and check a :class:`LoopConfig` from a parsed mapping (see :func:`load_loop_config`)."""
    from prefloop.training.generate import GenParams

    unknown = set(raw) - set(LOOP_KEYS)
    if unknown:
        raise LoopConfigError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(LOOP_KEYS)}")
    update = raw.get("policy_update", "dpo")
    if update not in POLICY_UPDATES:
        raise LoopConfigError(f"{where}: policy_update: expected one of {', '.join(POLICY_UPDATES)}, "
                              f"found {update!r}")
    ex = _section(raw, "export", where)
    since_last = ex.pop("since_last", True)
    filters = _build(PairFilters, {**dataclasses.asdict(ExportStep().filters), **ex}, f"{where}: export")
    ev = _section(raw, "eval", where)
    ev_skip = bool(ev.pop("skip", False))
    threshold, prompts = ev.pop("min_second_rm_win_rate", None), ev.pop("prompts", "held-out")
    if threshold is not None and not ev.get("second_reward_model"):
        raise LoopConfigError(f"{where}: eval.min_second_rm_win_rate needs eval.second_reward_model "
                              "(a reward model the policy never trained against)")
    ev = {"limit": 32, **ev}
    for fixed in ("models", "baseline"):
        if fixed in ev:
            raise LoopConfigError(f"{where}: eval.{fixed}: set by the loop (the parent and the new policy)")
    _build(EvalConfig, {"models": ("parent", "candidate"), "prompts": prompts, **ev}, f"{where}: eval")
    gen = _section(raw, "generate", where)
    gen_skip = bool(gen.pop("skip", False))
    param_names = {f.name for f in dataclasses.fields(GenParams)}
    params = _build(GenParams, {k: v for k, v in gen.items() if k in param_names}, f"{where}: generate")
    generate = _build(GenerateStep, {k: v for k, v in gen.items() if k not in param_names} | {
        "params": params, "skip": gen_skip}, f"{where}: generate")
    for kind in POLICY_UPDATES[:-1]:       # sections of methods not selected are checked too
        if kind != update and kind in raw:
            _train_step(raw, kind, where)
    trig = _section(raw, "trigger", where)
    if "min_interval" in trig:
        trig["min_interval"] = parse_duration(trig["min_interval"], f"{where}: trigger.min_interval")
    if trig and "new_labels" not in trig:
        raise LoopConfigError(f"{where}: trigger.new_labels: missing (how many new human labels "
                              "start an iteration)")
    trigger = _build(Trigger, trig, f"{where}: trigger") if trig else None
    judge = _section(raw, "judge", where)
    if "modes" in judge:
        judge["modes"] = tuple(judge["modes"])
    return LoopConfig(
        policy=raw.get("policy") or DEFAULT_MODEL,
        export=ExportStep(filters, bool(since_last)),
        rm=_train_step(raw, "rm", where),
        policy_update=update,
        update=None if update == "none" else _train_step(raw, update, where),
        eval=EvalStep(prompts, threshold, ev, ev_skip),
        generate=generate,
        judge=_build(JudgeStep, judge, f"{where}: judge"),
        trigger=trigger,
        raw=raw)
