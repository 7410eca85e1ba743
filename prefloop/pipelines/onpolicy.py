"""On-policy methods: the policy's own samples, labeled, then trained on.

* **iterative DPO** (Xiong et al. 2024, "RLHF Workflow"; DPO: Rafailov et al. 2023): each round
  samples ``n`` responses per prompt from the current policy, labels on-policy preference pairs,
  and runs DPO from the current policy against a fixed reference (the first round's model);
* **rejection-sampling SFT** (best-of-n fine-tuning; Touvron et al. 2023, Dong et al. 2023):
  the reward model labels the best of each prompt's samples, and SFT learns them.

Labels come from a reward model (``labeler: reward-model``: the best over the worst sample,
or every pair above a reward ``margin``), an AI judge (``judge``: the judge ranks each
prompt's samples, both orders of every pair) or the policy itself as its own judge (``self``:
Self-Rewarding LMs, Yuan et al. 2024). Every label is an AI comparison with its labeler named,
so judge gating and Dawid-Skene apply to it like to any label; each round's labels are
exported (``PairFilters(labeler=..., after_comparison_id=...)``) and the trainer reads that
snapshot.

Each method is a pipeline run of its own kind (``iterative-dpo``, ``rs-sft``) whose stages are
the rounds' generate, export and train runs; ``prefloop train iterative-dpo|rs-sft`` and
``prefloop loop`` (``policy_update``) run it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from prefloop import store
from prefloop.core.errors import PrefloopError
from prefloop.core.kinds import ONPOLICY_KINDS
from prefloop.core.models import DEFAULT_MODEL
from prefloop.store.export_files import export_pairs
from prefloop.store.pairs import NoPairsMatch, PairFilters

from .base import Pipeline
from .errors import OnPolicyConfigError, PipelineError

__all__ = ["OnPolicyConfig", "OnPolicyConfigError", "OnPolicyResult", "LABELERS", "onpolicy_config", "run_onpolicy",
           "sample_pairs"]

#: Who labels the policy's samples.
LABELERS = ("reward-model", "judge", "self")
_TRAINER = {"iterative-dpo": "dpo", "rs-sft": "sft"}


@dataclass(frozen=True)
class OnPolicyConfig:
    """The settings of an on-policy method (``method``: ``iterative-dpo`` or ``rs-sft``).

    Attributes:
        policy: the starting policy (model spec); also the fixed DPO reference.
        prompts: where the prompts come from (:func:`prefloop.store.sources.prompts_from`);
            default ``export:<export_id>:train``.
        export_id: the export whose training prompts are sampled when ``prompts`` is unset.
        rounds: sample-label-train rounds (each on the next ``prompts_per_round`` prompts).
        prompts_per_round: prompts sampled per round.
        n: samples per prompt (K >= 2).
        labeler: ``reward-model``, ``judge`` or ``self`` (:data:`LABELERS`).
        reward_model: the reward model spec (``labeler: reward-model``).
        pairs: ``best-worst`` or ``all`` (reward-model labels; a judge ranks all samples).
        margin: with ``pairs: all``, the smallest reward gap that makes a pair.
        judge_backend, judge_model, judge_base_url: the AI judge (``labeler: judge``).
        max_new_tokens, temperature: sampling (tokens, softmax temperature).
        max_prompt_tokens: prompts longer than this (chat-formatted tokens) are left out.
        label_truncated: also label samples cut off at ``max_new_tokens`` (by default only
            finished samples are a pair's side or a best-of-n target).
        seed: sampling seed of round 1 (round r uses seed + r - 1).
        train: settings of the trainer (DPO's or SFT's run config fields), checked at build.
    """

    method: str = "iterative-dpo"
    policy: str = DEFAULT_MODEL
    prompts: str | None = None
    export_id: int | None = None
    rounds: int = 2
    prompts_per_round: int = 64
    n: int = 4
    labeler: str = "reward-model"
    reward_model: str | None = None
    pairs: str = "best-worst"
    margin: float = 0.0
    judge_backend: str = "local"
    judge_model: str | None = None
    judge_base_url: str | None = None
    max_new_tokens: int = 48
    temperature: float = 0.7
    max_prompt_tokens: int | None = 256
    label_truncated: bool = False
    seed: int = 0
    train: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from prefloop.training.generate import PAIR_MODES

        if self.method not in ONPOLICY_KINDS:
            raise OnPolicyConfigError(f"method {self.method!r}: expected one of {', '.join(ONPOLICY_KINDS)}")
        checks = [("rounds", self.rounds >= 1, "an integer >= 1"),
                  ("prompts_per_round", self.prompts_per_round >= 1, "an integer >= 1"),
                  ("n", self.n >= 2, "at least 2 samples per prompt (a pair needs two)"),
                  ("labeler", self.labeler in LABELERS, f"one of {', '.join(LABELERS)}"),
                  ("pairs", self.pairs in PAIR_MODES, f"one of {', '.join(PAIR_MODES)}"),
                  ("margin", self.margin >= 0, "a reward gap >= 0"),
                  ("max_new_tokens", self.max_new_tokens >= 1, "an integer >= 1"),
                  ("temperature", self.temperature > 0, "a number > 0")]
        for name, ok, expected in checks:
            if not ok:
                raise OnPolicyConfigError(f"{name}: expected {expected}, found {getattr(self, name)!r}")
        if self.labeler == "reward-model" and not self.reward_model:
            raise OnPolicyConfigError("reward_model: labeler reward-model needs a reward model "
                                      "(run:ID of an rm run, or a path)")
        if self.method == "rs-sft" and self.labeler != "reward-model":
            raise OnPolicyConfigError(f"labeler {self.labeler!r}: rs-sft keeps the best sample under "
                                      "a reward model (labeler: reward-model)")
        if self.labeler == "judge" and self.judge_backend == "openai" and not (
                self.judge_base_url and self.judge_model):
            raise OnPolicyConfigError("judge_base_url and judge_model: the openai judge backend needs both")
        if not self.prompts and self.export_id is None:
            raise OnPolicyConfigError("prompts: set prompts (a dataset, a prompts file, export:ID:train) "
                                      "or export_id")

    @property
    def prompt_source(self) -> str:
        return self.prompts or f"export:{self.export_id}:train"

    @property
    def trainer(self) -> str:
        """The training kind of each round: ``dpo`` or ``sft``."""
        return _TRAINER[self.method]


def onpolicy_config(method: str, settings: dict[str, Any], where: str = "settings") -> OnPolicyConfig:
    """An :class:`OnPolicyConfig` from one flat mapping: its own fields, and the trainer's
    (DPO or SFT run config) fields gathered into ``train``; ``model`` is read as ``policy``.

    Raises:
        OnPolicyConfigError: one line naming ``where`` and the key: a key neither the method
            nor its trainer knows, or a bad value.
    """
    from prefloop.training.configs import CONFIGS, load_config

    if method not in ONPOLICY_KINDS:
        raise OnPolicyConfigError(f"{where}: method {method!r}: expected one of {', '.join(ONPOLICY_KINDS)}")
    values = {("policy" if k == "model" else k): v for k, v in settings.items() if v is not None}
    own = {f.name for f in dataclasses.fields(OnPolicyConfig)} - {"method", "train"}
    trainer_fields = {f.name for f in dataclasses.fields(CONFIGS[_TRAINER[method]])}
    train = dict(values.pop("train", None) or {})
    for k in list(values):
        if k not in own:
            if k not in trainer_fields:
                raise OnPolicyConfigError(
                    f"{where}: unknown key {k!r} for {method}; its keys: {sorted(own)}, and any "
                    f"{_TRAINER[method]} run config field")
            train[k] = values.pop(k)
    for fixed in ("model", "export_id", "ref_model", "output_dir"):
        if fixed in train:      # each round trains its own model into its own directory
            raise OnPolicyConfigError(f"{where}: {fixed}: set by {method} each round")
    try:
        load_config(_TRAINER[method], overrides={**train, "export_id": 0})
        return OnPolicyConfig(method=method, train=train, **values)
    except OnPolicyConfigError as exc:
        raise OnPolicyConfigError(f"{where}: {exc}") from None
    except (PrefloopError, TypeError, ValueError) as exc:
        raise OnPolicyConfigError(f"{where}: {exc}") from None


@dataclass
class OnPolicyResult:
    """What an on-policy method made: ``policy`` (``run:ID`` of the last round's training run),
    its pipeline ``run``, and per round its generate run, labels and training run."""

    run: store.Run
    policy: str
    rounds: list[dict[str, Any]]

    @property
    def final_run_id(self) -> int:
        """The run id of the last round's trained policy."""
        return int(self.policy.removeprefix("run:"))


def _judge_backend(s: store.Store, cfg: OnPolicyConfig, policy: str):
    """The backend that labels this round: the AI judge, or the current policy (``self``);
    reachability is checked here, before anything of the round is recorded."""
    from prefloop.judge.backends import make_backend

    if cfg.labeler == "self":
        return make_backend("local", model=policy, store=s)
    backend = make_backend(cfg.judge_backend, model=cfg.judge_model, base_url=cfg.judge_base_url, store=s)
    backend.check()
    return backend


def sample_pairs(s: store.Store, cfg: OnPolicyConfig, policy: str, round_index: int, *,
                 pipeline_run_id: int | None = None, backend=None) -> dict[str, Any]:
    """One round's samples and labels: ``cfg.n`` samples of ``cfg.prompts_per_round`` prompts
    from ``policy``, labeled by ``cfg.labeler`` (see the module docstring). Returns
    ``{"generate_run_id", "labeler", "comparisons", "responses", "prompts", "mean_reward",
    "judge_run_id", "after_comparison_id"}`` (the newest comparison before the round).

    Raises:
        PipelineError, TrainingError, JudgeError: bad settings, no prompts, an unreachable judge.
    """
    from prefloop.training.generate import GenParams, generate, reward_labeler

    params = GenParams(n=cfg.n, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                       top_p=1.0, batch_size=32, seed=cfg.seed + round_index)
    after = s.comparisons.max_id()          # this round's labels are the ones after it
    by_rm = cfg.labeler == "reward-model"
    g = generate(s, policy, cfg.prompt_source, limit=cfg.prompts_per_round,
                 offset=round_index * cfg.prompts_per_round, params=params,
                 reward_model=cfg.reward_model if by_rm else None,
                 label_best=by_rm and cfg.method == "rs-sft",
                 pairs=cfg.pairs if by_rm and cfg.method == "iterative-dpo" else None,
                 margin=cfg.margin, max_prompt_tokens=cfg.max_prompt_tokens,
                 label_truncated=cfg.label_truncated, pipeline_run_id=pipeline_run_id)
    out = {"generate_run_id": g.run.id, "responses": g.n_responses, "prompts": g.n_prompts,
           "mean_reward": g.mean_reward, "comparisons": len(g.comparison_ids), "judge_run_id": None,
           "after_comparison_id": after}
    if by_rm:
        out["labeler"] = reward_labeler(cfg.reward_model)
        return out
    from prefloop.judge.batch import run_batch

    backend = backend or _judge_backend(s, cfg, policy)
    groups = {p: r for p, r in g.response_groups.items() if len(r) >= 2}
    j = run_batch(s, "rank", backend, response_groups=groups, concurrency=8, progress=False,
                  pipeline_run_id=pipeline_run_id)
    out.update(labeler=backend.model, comparisons=j.comparisons, judge_run_id=j.run.id)
    return out


def run_onpolicy(s: store.Store, cfg: OnPolicyConfig, *, pipeline_run_id: int | None = None,
                 fresh: bool = False) -> OnPolicyResult:
    """Run (or resume) ``cfg.method`` as a pipeline run of that kind (see the module docstring).

    Raises:
        PipelineError: a round's labeler preferred no sample (every pair a tie).
        JudgeError: the judge cannot be reached (checked before the pipeline run is recorded).
        TrainingError, store.StoreError: bad model, reward model or trainer settings.
    """
    from prefloop.core.models import resolve_model
    from prefloop.training.train import train

    resolve_model(cfg.policy, s, require="policy")      # bad specs fail before any run row
    if cfg.reward_model:
        resolve_model(cfg.reward_model, s, require="reward")
    if cfg.labeler == "judge":
        _judge_backend(s, cfg, cfg.policy)
    config = {k: v for k, v in dataclasses.asdict(cfg).items()}
    pipe = Pipeline(s, cfg.method, config, resume=not fresh, reuse_finished=False,
                    pipeline_run_id=pipeline_run_id)
    runs = s.path.resolve().parent / "runs"
    policy, rounds = cfg.policy, []
    for r in range(cfg.rounds):
        tag = f"round {r + 1}/{cfg.rounds}"
        current = policy
        labels = pipe.stage(f"r{r + 1}.sample", f"{cfg.method} {tag}: sample {cfg.n} per prompt "
                            f"from {current}, label by {cfg.labeler}",
                            lambda current=current, r=r: sample_pairs(s, cfg, current, r,
                                                                      pipeline_run_id=pipe.run.id))

        def export(labels=labels, r=r):
            try:
                e = export_pairs(s, runs / f"{cfg.method}-{pipe.run.id}-round-{r + 1}", PairFilters(
                    source="ai", labeler=labels["labeler"],
                    after_comparison_id=labels["after_comparison_id"]),
                    overwrite=True)
            except NoPairsMatch:
                raise PipelineError(f"{cfg.method} round {r + 1}: {labels['labeler']} preferred no "
                                    f"sample of generate run {labels['generate_run_id']} (every pair "
                                    "a tie); raise n or temperature, or lower margin") from None
            return {"export_id": e.export.id, "pairs": e.n_train}

        ex = pipe.stage(f"r{r + 1}.export", f"{cfg.method} {tag}: export the round's labels", export)

        def fit(ex=ex, current=current, r=r):
            overrides = {"use_lora": True, "max_length": (cfg.max_prompt_tokens or 256) + cfg.max_new_tokens + 8,
                         "save_steps": 10_000, **cfg.train, "model": current, "export_id": ex["export_id"]}
            if cfg.method == "iterative-dpo" and r > 0:
                overrides["ref_model"] = cfg.policy        # the reference stays the first model
            t = train(s, cfg.trainer, overrides=overrides, pipeline_run_id=pipe.run.id)
            return {"run_id": t.run.id, "steps": t.steps, "train_loss": t.train_loss}

        fitted = pipe.stage(f"r{r + 1}.{cfg.trainer}", f"{cfg.method} {tag}: {cfg.trainer} on "
                            f"{ex['pairs']} pairs", fit)
        policy = f"run:{fitted['run_id']}"
        rounds.append({**labels, **ex, "train_run_id": fitted["run_id"], "steps": fitted["steps"],
                       "train_loss": fitted["train_loss"]})
    run = pipe.finish({"policy": policy, "final_run_id": int(policy.split(":")[1]), "rounds": rounds})
    return OnPolicyResult(run, policy, rounds)
