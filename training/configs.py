"""Typed configs, one per training method, extending TRL's (``RewardConfig``-style).

Every field has ``metadata={"help": ...}``. A run's config comes from defaults < ``--config
FILE.yaml`` < command-line overrides, and is saved with the run (``runs.config``).

Defaults are chosen for CPU runs of small models (SmolLM2-135M, MiniLM): short sequences,
small batches, no reporting unless asked (``report_to``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from trl import DPOConfig, GRPOConfig, KTOConfig, RewardConfig, RLOOConfig, SFTConfig

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")   # ORPO lives in trl.experimental: known
from trl.experimental.orpo import ORPOConfig  # noqa: E402

from .errors import ConfigError

__all__ = ["DataOptions", "LoraOptions", "lora_config", "TrainerDefaults", "RewardRunConfig", "DPORunConfig", "SFTRunConfig", "GRPORunConfig",
           "PPORunConfig", "KTORunConfig", "RLOORunConfig", "ORPORunConfig", "CONFIGS", "load_config", "config_to_dict"]


def _f(default: Any, help: str) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class DataOptions:
    """Which model to start from and which labels to learn from."""

    model: str = _f("smollm2-135m-instruct", "Model spec: smollm2-135m-instruct, minilm, run:ID "
                    "or a local checkpoint directory. Nothing is downloaded.")
    export_id: int | None = _f(None, "Train on this recorded export; if unset, a fresh export is "
                               "made with the filters below.")
    source: str = _f("all", "Labels from human, ai or all labelers (fresh export).")
    dataset: str | None = _f(None, "Only prompts of this dataset (fresh export).")
    min_agreement: float = _f(0.0, "Minimum majority share of votes per pair (fresh export).")
    test_fraction: float = _f(0.1, "Share of prompts held out for evaluation (fresh export).")
    max_eval_pairs: int = _f(256, "Evaluate on at most this many held-out pairs.")
    max_train_pairs: int | None = _f(None, "Train on a random subset of this many pairs (bounded "
                                     "budgets; TRL tokenizes the whole train split up front).")
    bf16: bool | None = _f(None, "bfloat16 mixed precision (default: on where a GPU supports it, "
                           "off on CPU).")
    max_seconds: float | None = _f(None, "Wall-clock budget of training in seconds: training stops "
                                   "after the first step (PPO: iteration) past it, then evaluates "
                                   "and saves as usual (equal-budget comparisons: prefloop board).")

    #: The default learning rate of a config class: ``{"full": ..., "lora": ...}``, picked by
    #: ``use_lora`` when ``learning_rate`` is not set (LoRA adapters need a far larger rate
    #: than full fine-tuning; the values come from ``bench/lr_sweep.py``, see the README).
    LEARNING_RATES: ClassVar[dict[str, float]] = {}

    def __post_init__(self) -> None:
        if self.bf16 is None:
            import torch

            self.bf16 = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
        if getattr(self, "learning_rate", 0) is None:
            self.learning_rate = self.LEARNING_RATES["lora" if getattr(self, "use_lora", False) else "full"]
        if self.max_seconds is not None and (isinstance(self.max_seconds, bool) or not self.max_seconds > 0):
            raise ConfigError(f"max_seconds: expected a number of seconds > 0, found {self.max_seconds!r}")
        steps = getattr(self, "max_steps", -1)
        if isinstance(steps, bool) or not isinstance(steps, int) or (steps < 1 and steps != -1):
            raise ConfigError(f"max_steps: expected an integer >= 1 (or -1: train num_train_epochs "
                              f"epochs), found {steps!r}")
        out = getattr(self, "output_dir", None)
        if out and Path(out).exists() and not Path(out).is_dir():
            raise ConfigError(f"output_dir {out}: is a file, not a directory")
        for name in ("max_train_pairs", "max_eval_pairs"):
            value = getattr(self, name, None)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name}: expected an integer >= 1, found {value!r}")
        lr = getattr(self, "learning_rate", None)
        if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0):
            raise ConfigError(f"learning_rate: expected a number > 0, found {lr!r}")
        parent = super()
        if hasattr(parent, "__post_init__"):
            parent.__post_init__()


@dataclass
class LoraOptions:
    """LoRA adapters (Hu et al. 2021, via peft) instead of training every weight: the frozen
    weights need no gradients or optimizer state, and with ``lora_layers < 1`` the backward
    pass stops below the adapted top layers."""

    use_lora: bool = _f(False, "Train LoRA adapters (peft) instead of all weights; the merged model "
                        "is saved as the run's final checkpoint.")
    lora_r: int = _f(16, "LoRA rank.")
    lora_alpha: int = _f(32, "LoRA alpha (scale = alpha / r).")
    lora_layers: float = _f(1.0, "Share of the layers, from the top, that get adapters: the backward "
                            "pass stops below them, and the frozen layers keep no activations.")


def lora_config(cfg, model, task_type: str = "CAUSAL_LM"):
    """The peft ``LoraConfig`` of ``cfg`` (a :class:`LoraOptions`) for ``model``: adapters on
    every linear layer of the top ``lora_layers`` share of its transformer layers.

    Raises:
        ConfigError: ``lora_layers`` outside (0, 1].
    """
    import torch
    from peft import LoraConfig

    if not 0 < cfg.lora_layers <= 1:
        raise ConfigError(f"lora_layers {cfg.lora_layers}: expected a share in (0, 1]")
    n = model.config.get_text_config().num_hidden_layers
    top = list(range(n - max(1, round(n * cfg.lora_layers)), n))
    linear = sorted({name.rsplit(".", 1)[-1] for name, mod in model.named_modules()
                     if isinstance(mod, torch.nn.Linear) and ".layers." in name})
    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0,
                      target_modules=linear, layers_to_transform=top, task_type=task_type)


@dataclass
class TrainerDefaults:
    """Defaults shared by the TRL-based configs (placed before TRL's class in the bases, so
    these override ``TrainingArguments``' defaults)."""

    output_dir: str | None = _f(None, "Checkpoints go here (default: runs/<kind>-<time> next to "
                                "the store).")
    num_train_epochs: float = _f(1.0, "Epochs (max_steps > 0 overrides).")
    logging_steps: float = _f(1, "Log metrics every N steps.")
    save_steps: float = _f(50, "Save a checkpoint every N steps (resume point).")
    save_total_limit: int | None = _f(2, "Keep at most N checkpoints.")
    report_to: Any = _f("none", "none or tensorboard.")
    dataloader_pin_memory: bool = _f(False, "Pin batches in page-locked memory (only helps with "
                                     "a GPU; off by default for CPU runs).")


@dataclass
class RewardRunConfig(DataOptions, LoraOptions, TrainerDefaults, RewardConfig):
    """Bradley-Terry reward model (TRL ``RewardTrainer``: loss -log sigmoid(r_c - r_r)) on a
    sequence-classification head over the model; optional LoRA (peft)."""

    max_length: int | None = _f(512, "Pairs longer than this many tokens are dropped (TRL).")
    per_device_train_batch_size: int = _f(4, "Pairs per step.")
    per_device_eval_batch_size: int = _f(8, "Pairs per evaluation step.")
    learning_rate: float | None = _f(None, "AdamW learning rate (default: 0.0002 with LoRA, 2e-05 "
                                     "full fine-tuning; bench/lr_sweep.py).")
    LEARNING_RATES: ClassVar[dict[str, float]] = {"full": 2e-05, "lora": 0.0002}
    label_smoothing: str = _f("0", "Soft labels: 'auto' trains on each pair's p_chosen (binary "
                              "cross-entropy of sigmoid(r_c - r_r) against it; export with "
                              "--aggregate dawid-skene), a number e on the fixed target 1 - e "
                              "(conservative Bradley-Terry); '0' is the hard label.")
    label_weights: bool = _f(False, "Weight each pair's loss by the export's 'weight' column "
                             "(Dawid-Skene: |2 p_chosen - 1|).")
    ensemble: int | None = _f(None, "Train an ensemble of K >= 2 reward models, each on its own "
                              "bootstrap sample of the pairs with its own seed (Coste et al. 2024), "
                              "recorded as one run; unset: one reward model.")
    ensemble_aggregate: str = _f("mean", "An ensemble's default aggregation of its members' "
                                 "rewards: mean, wco (worst case) or uwo (mean - uwo_lambda * std); "
                                 "a spec's @mean/@wco/@uwo=L overrides it.")
    uwo_lambda: float = _f(1.0, "The std penalty of uwo aggregation (reward units per std).")
    margin_loss: bool = _f(False, "Subtract the export's 'margin' column (graded preference "
                           "strength) inside the Bradley-Terry loss, -log sigmoid(r_c - r_r - m) "
                           "(Touvron et al. 2023, via TRL's margin support); pairs without a "
                           "strength get margin 0.")

    def __post_init__(self) -> None:
        super().__post_init__()
        k = self.ensemble
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 2):
            raise ConfigError(f"ensemble: expected K >= 2 members, found {k!r} (leave it unset "
                              "for one reward model)")
        from prefloop.core.errors import PrefloopError
        from prefloop.core.models import parse_aggregate

        try:
            parse_aggregate(str(self.ensemble_aggregate), "ensemble_aggregate")
        except PrefloopError as exc:
            raise ConfigError(str(exc)) from None
        lam = self.uwo_lambda
        if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not lam >= 0:
            raise ConfigError(f"uwo_lambda: expected a number >= 0, found {lam!r}")
        parse_label_smoothing(self.label_smoothing)


def parse_label_smoothing(value) -> float | None:
    """A reward model's ``label_smoothing``: ``None`` for ``auto`` (each pair's ``p_chosen``),
    else the constant epsilon. Raises ConfigError: not ``auto`` nor a number in [0, 0.5)."""
    smoothing = str(value).strip().lower()
    if smoothing == "auto":
        return None
    try:
        eps = float(smoothing)
    except ValueError:
        raise ConfigError(f"label_smoothing {value!r}: expected auto or a number in [0, 0.5)") from None
    if not 0.0 <= eps < 0.5:
        raise ConfigError(f"label_smoothing {eps}: expected a number in [0, 0.5)")
    return eps


@dataclass
class DPORunConfig(DataOptions, LoraOptions, TrainerDefaults, DPOConfig):
    """Direct Preference Optimization (Rafailov et al. 2023) with TRL ``DPOTrainer``."""

    max_length: int | None = _f(512, "Truncate prompt + response to this many tokens.")
    per_device_train_batch_size: int = _f(2, "Pairs per step.")
    per_device_eval_batch_size: int = _f(4, "Pairs per evaluation step.")
    learning_rate: float | None = _f(None, "AdamW learning rate (default: 5e-04 with LoRA, from the "
                                     "README's DPO LoRA sweep: in 24 steps 2e-04 did not move the "
                                     "policy, 5e-04 did (KL 0.8 nats), 1e-03 more (KL 5-6 nats); "
                                     "5e-06 full fine-tuning).")
    LEARNING_RATES: ClassVar[dict[str, float]] = {"full": 5e-06, "lora": 5e-04}
    ref_model: str | None = _f(None, "Reference model spec (run:ID, a path); default: the starting "
                               "model itself (with LoRA: its adapters disabled). Iterative DPO keeps "
                               "the first round's model here (Xiong et al. 2024).")


@dataclass
class ORPORunConfig(DataOptions, LoraOptions, TrainerDefaults, ORPOConfig):
    """Odds Ratio Preference Optimization (Hong et al. 2024) with TRL's experimental
    ``ORPOTrainer``: SFT on the chosen response plus ``beta`` times a log-odds-ratio penalty of
    chosen over rejected, in one stage and with no reference model."""

    max_length: int | None = _f(512, "Truncate prompt + response to this many tokens.")
    max_completion_length: int | None = _f(None, "Truncate responses to this many tokens.")
    per_device_train_batch_size: int = _f(2, "Pairs per step.")
    per_device_eval_batch_size: int = _f(4, "Pairs per evaluation step.")
    learning_rate: float | None = _f(None, "AdamW learning rate (default: 0.0001 with LoRA, 8e-06 "
                                     "full fine-tuning as in Hong et al. 2024; bench/lr_sweep.py "
                                     "--methods orpo).")
    LEARNING_RATES: ClassVar[dict[str, float]] = {"full": 8e-06, "lora": 1e-04}


@dataclass
class SFTRunConfig(DataOptions, LoraOptions, TrainerDefaults, SFTConfig):
    """Supervised fine-tuning on chosen responses (incl. constitutional revisions and human
    edits), loss on the completion only (TRL ``SFTTrainer``)."""

    max_length: int | None = _f(512, "Truncate sequences to this many tokens.")
    completion_only_loss: bool | None = _f(True, "Loss on the completion tokens only.")
    per_device_train_batch_size: int = _f(2, "Rows per step.")
    learning_rate: float | None = _f(None, "AdamW learning rate (default: 0.0002 with LoRA, 1e-05 "
                                     "full fine-tuning; bench/lr_sweep.py).")
    max_completion_tokens: int | None = _f(None, "Leave out demonstrations longer than this many "
                                           "tokens: trained on replies longer than its sampling "
                                           "budget, a policy learns answers that get cut off.")
    max_rows_per_dataset: int | None = _f(None, "At most this many rows of each prompt dataset "
                                          "(a seeded random choice): the mixture's weights, so "
                                          "one source does not drown the others.")
    LEARNING_RATES: ClassVar[dict[str, float]] = {"full": 1e-05, "lora": 0.0002}


@dataclass
class GroupRLOptions:
    """What GRPO and RLOO share (placed before TRL's class in the bases, so these override its
    defaults): the reward models, the group, LoRA by default and its learning rates."""

    reward_model: str | None = _f(None, "Reward model spec (run:ID of an rm run, or a path).")
    second_reward_model: str | None = _f(None, "A reward model the policy never trains against; "
                                       "its mean score is logged as reward_second (over-optimization "
                                       "guard, Gao et al. 2023).")
    normalize_reward: bool = _f(True, "Optimize the reward model's score in standard units, "
                                "(r - mean) / std with the statistics recorded when it was trained "
                                "(OpenRLHF's --normalize_reward), so that beta's KL penalty weighs "
                                "the same against any reward model; a model without them is used raw.")
    num_generations: int | None = _f(4, "Completions sampled per prompt (the group).")
    max_completion_length: int | None = _f(48, "Tokens generated per completion.")
    per_device_train_batch_size: int = _f(4, "Completions per step (a multiple of num_generations).")
    use_lora: bool = _f(True, "Train LoRA adapters (peft) on the policy; its reference is the same "
                        "backbone with the adapters disabled. False: full fine-tuning.")
    lora_layers: float = _f(0.5, "Share of the policy's layers, from the top, that get adapters.")
    learning_rate: float | None = _f(None, "AdamW learning rate (default: 0.001 with LoRA, 1e-06 "
                                     "full fine-tuning; one update per sampled batch, where PPO "
                                     "makes eight; bench/lr_sweep.py and tests/test_learnability.py).")
    LEARNING_RATES: ClassVar[dict[str, float]] = {"full": 1e-06, "lora": 0.001}


@dataclass
class GRPORunConfig(GroupRLOptions, DataOptions, LoraOptions, TrainerDefaults, GRPOConfig):
    """Group Relative Policy Optimization (Shao et al. 2024) with TRL ``GRPOTrainer``, our
    reward model as the reward function, on the export's prompts."""

    beta: float = _f(0.04, "KL coefficient to the reference (Shao et al. 2024 used 0.04; TRL's "
                     "default 0 leaves the drift unbounded and unmeasured).")


@dataclass
class RLOORunConfig(GroupRLOptions, DataOptions, LoraOptions, TrainerDefaults, RLOOConfig):
    """REINFORCE Leave-One-Out (Ahmadian et al. 2024) with TRL ``RLOOTrainer``: each sample's
    baseline is the mean reward of the other ``num_generations - 1`` samples of its prompt; our
    reward model is the reward function, on the export's prompts; KL to the reference in the
    reward (``beta``)."""


@dataclass
class PPORunConfig(DataOptions, LoraOptions):
    """PPO for RLHF (Schulman et al. 2017; Ziegler et al. 2019; Huang et al. 2024): our
    implementation in :mod:`prefloop.training.ppo` (TRL no longer ships one). The algorithm's
    defaults follow ``../shared/PPO-NOTES.md``; the models' defaults (a LoRA policy whose
    reference is its own backbone, a value head on that backbone) make it affordable on a CPU
    (``bench/ppo_bench.py``)."""

    reward_model: str | None = _f(None, "Reward model spec (run:ID of an rm run, or a path).")
    second_reward_model: str | None = _f(None, "A reward model the policy never trains against; "
                                       "its mean score per rollout batch is logged as reward_second "
                                       "(over-optimization guard, Gao et al. 2023).")
    normalize_reward: bool = _f(True, "Score rollouts in the reward model's standard units, "
                                "(r - mean) / std with the statistics recorded when it was trained "
                                "(OpenRLHF's --normalize_reward): the missing-EOS penalty and "
                                "kl_coef then weigh the same against any reward model (a weak one's "
                                "scores spread over 0.1 logit, ten times less than the penalty); a "
                                "model without them is used raw. reward_model is logged in these units.")
    use_lora: bool = _f(True, "Train LoRA adapters (peft) on the policy; the reference is the same "
                        "backbone with the adapters disabled (one copy of the weights). False: "
                        "full fine-tuning with a frozen copy as the reference.")
    lora_layers: float = _f(0.5, "Share of the policy's layers, from the top, that get adapters: the "
                            "backward pass stops below them, and the frozen layers keep no activations.")
    value_model: str = _f("shared", "shared: a value head on the policy's backbone (one forward for "
                          "log-probs and values); separate: a value model of its own, initialized "
                          "from the reward model when they share a tokenizer, else from the policy.")
    value_warmup: int = _f(0, "Iterations at the start during which only the value function learns.")
    gradient_checkpointing: bool = _f(False, "Recompute activations in the backward pass (less "
                                      "memory, about a third more compute).")
    inference_dtype: str = _f("auto", "dtype of the frozen models (reward model, and reference "
                              "without LoRA): auto (bfloat16 where the hardware computes it fast, "
                              "else float32), float32 or bfloat16.")
    output_dir: str | None = _f(None, "Checkpoints go here (default: runs/ppo-<time> next to the store).")
    max_steps: int = _f(10, "PPO iterations (one rollout batch each).")
    batch_size: int = _f(8, "Prompts (rollouts) per iteration.")
    mini_batch_size: int = _f(4, "Rollouts per gradient step.")
    ppo_epochs: int = _f(4, "Passes over each rollout batch.")
    learning_rate: float | None = _f(None, "AdamW learning rate of the policy (default: 0.0003 with LoRA, 3e-06 "
                                     "full fine-tuning; bench/lr_sweep.py).")
    LEARNING_RATES: ClassVar[dict[str, float]] = {"full": 3e-06, "lora": 0.0003}
    value_learning_rate: float | None = _f(None, "AdamW learning rate of the value function (default: "
                                           "1e-3 for a shared value head, a fresh linear layer that "
                                           "barely learns at the policy's LoRA rate; the policy's "
                                           "rate for a separate value model, a whole network).")
    max_prompt_length: int = _f(256, "Prompt tokens kept: older turns are dropped whole until the "
                                "chat-formatted prompt fits (the system turn and the last user turn "
                                "stay); prompts whose last user turn alone is longer are left out.")
    probe_prompts: int = _f(16, "A fixed probe set of this many held-out prompts (the export's test "
                            "split), sampled with a fixed seed and scored by the reward models after "
                            "every iteration: probe_reward_model, probe_reward_second, probe_kl "
                            "(the learning curve; 0: none).")
    max_new_tokens: int = _f(48, "Tokens sampled per response.")
    temperature: float = _f(0.7, "Sampling temperature; logits are divided by it in training too.")
    kl_coef: float = _f(0.05, "Per-token KL penalty coefficient (initial value if adaptive).")
    adaptive_kl: bool = _f(False, "Adapt kl_coef toward kl_target (Ziegler et al. 2019).")
    kl_target: float = _f(6.0, "Target KL (nats per response) of the adaptive controller.")
    kl_horizon: int = _f(10000, "Horizon of the adaptive controller (episodes).")
    gamma: float = _f(1.0, "GAE discount.")
    lam: float = _f(0.95, "GAE lambda.")
    cliprange: float = _f(0.2, "Policy ratio clip epsilon.")
    cliprange_value: float = _f(0.2, "Value clip range.")
    vf_coef: float = _f(0.1, "Value loss coefficient.")
    whiten_rewards: bool = _f(False, "Whiten per-token rewards before GAE.")
    missing_eos_penalty: float = _f(-1.0, "Added to the score of responses that never emit EOS.")
    max_grad_norm: float = _f(1.0, "Gradient clipping.")
    save_steps: int = _f(5, "Save a checkpoint every N iterations (resume point).")
    seed: int = _f(0, "Random seed.")
    report_to: str = _f("none", "none or tensorboard.")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.value_model not in ("shared", "separate"):
            raise ConfigError(f"value_model {self.value_model!r}: expected shared or separate")
        if self.inference_dtype not in ("auto", "float32", "bfloat16"):
            raise ConfigError(f"inference_dtype {self.inference_dtype!r}: expected auto, float32 "
                              "or bfloat16")
        if self.batch_size % self.mini_batch_size:
            raise ConfigError(f"batch_size {self.batch_size} is not a multiple of mini_batch_size "
                              f"{self.mini_batch_size}")


@dataclass
class KTORunConfig(DataOptions, LoraOptions, TrainerDefaults, KTOConfig):
    """Kahneman-Tversky Optimization (Ethayarajh et al. 2024) with TRL ``KTOTrainer`` on
    unpaired labels (``prefloop export --format kto``: thumbs up/down feedback, "both bad",
    optionally pairs split apart). ``desirable_weight`` and ``undesirable_weight`` scale the
    two losses; the paper keeps ``desirable_weight * n_desirable / (undesirable_weight *
    n_undesirable)`` within [1, 4/3], so with few desirable examples raise
    ``desirable_weight``."""

    max_length: int | None = _f(512, "Truncate prompt + completion to this many tokens.")
    per_device_train_batch_size: int = _f(4, "Rows per step (at least 2: the KL estimate "
                                            "pairs each completion with another row's prompt).")
    per_device_eval_batch_size: int = _f(4, "Rows per evaluation step.")
    learning_rate: float | None = _f(None, "AdamW learning rate (default: 5e-05 with LoRA, 5e-06 "
                                     "full fine-tuning; bench/lr_sweep.py).")
    LEARNING_RATES: ClassVar[dict[str, float]] = {"full": 5e-06, "lora": 5e-05}


#: The training kinds' configs (keys: :data:`prefloop.core.kinds.TRAIN_KINDS`, held equal by a test).
CONFIGS: dict[str, type] = {"rm": RewardRunConfig, "dpo": DPORunConfig, "sft": SFTRunConfig,
                            "grpo": GRPORunConfig, "rloo": RLOORunConfig, "ppo": PPORunConfig,
                            "kto": KTORunConfig, "orpo": ORPORunConfig}


def load_config(kind: str, path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                default_output_dir: str | Path | None = None):
    """The typed config of ``kind`` from defaults, a YAML/JSON file, then ``overrides``
    (``None`` values are ignored); ``default_output_dir`` applies when neither sets one.

    Raises:
        ConfigError: unknown kind, unreadable file, unknown or invalid fields.
    """
    if kind not in CONFIGS:
        raise ConfigError(f"unknown training kind {kind!r}: expected one of {', '.join(CONFIGS)}")
    cls = CONFIGS[kind]
    values: dict[str, Any] = {}
    if path is not None:
        from prefloop.core.files import read_config_file

        loaded = read_config_file(path, ConfigError, what="training config") or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config {path}: expected a mapping of field: value")
        values.update(loaded)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if default_output_dir is not None and not values.get("output_dir"):
        values["output_dir"] = str(default_output_dir)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"config{f' {path}' if path else ''}: unknown field(s) {unknown} for "
                          f"{kind}; see `prefloop train {kind} --help` or the {cls.__name__} docs")
    try:
        return cls(**{k: _coerce(fields[k], v) for k, v in values.items()})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config for {kind}: {exc}") from None


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    """Strings from YAML/the command line to the field's scalar type ("3e-5" -> 3e-05;
    YAML reads exponents without a dot as strings)."""
    if not isinstance(value, str):
        return value
    # a string annotation ("float | None", our modules) or a type (TRL's, e.g. <class 'float'>)
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    try:
        if kind.startswith("bool"):
            if value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
        elif kind.startswith("int") and "float" not in kind:
            return int(value)
        elif kind.startswith("float") or kind.startswith("int | float"):
            return float(value)
    except ValueError:
        raise ConfigError(f"{f.name}: expected {kind}, found {value!r}") from None
    return value


def config_to_dict(config) -> dict[str, Any]:
    """The config's JSON-safe fields (saved with the run; ``load_config`` can rebuild the
    config from them). Fields holding objects (``AcceleratorConfig``, enums) are left out:
    they are derived from the others."""
    out = {}
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        try:
            json.dumps(v)
        except TypeError:
            continue
        out[f.name] = v
    return out
