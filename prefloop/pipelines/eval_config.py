"""The settings of ``prefloop eval`` (:class:`EvalConfig`), typed and checked once; no heavy
imports, so the CLI derives its options' help from the fields at start-up.

>>> EvalConfig(models=("a", "b"), prompts="mt-bench").limit
96
>>> EvalConfig(models=("a",), prompts="mt-bench", limit=0)
Traceback (most recent call last):
...
prefloop.pipelines.errors.EvalError: limit: expected an integer >= 1, found 0
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from .errors import EvalError

__all__ = ["EvalConfig", "eval_help"]


def _f(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class EvalConfig:
    """What ``prefloop eval`` compares and how; every field's ``metadata["help"]`` is the
    CLI option's help, and the CLI passes only the options given (the defaults live here).

    ``models``: model specs (``smollm2-135m-instruct``, ``run:ID``, a path); the same spec may
    appear twice (an A/A comparison: each occurrence samples with its own seed). ``prompts``:
    a dataset of the store, a prompts file, or ``export:ID`` (that export's held-out test
    split).

    Raises:
        EvalError: a value out of range (named with its field), or no model.
    """

    models: tuple[str, ...] = field(metadata={"help": "Model versions, comma separated: "
                                              "smollm2-135m-instruct, run:ID, a path."})
    prompts: str = field(metadata={"help": "A dataset of the store, a prompts file, or export:ID "
                                   "(its held-out split)."})
    baseline: str | None = _f(None, "The version every other is compared with (default: the first).")
    limit: int = _f(96, "At most this many prompts (those that fit in --max-prompt-tokens).")
    per_subset: int | None = _f(None, "At most this many prompts of each recorded subset (harmless, "
                                "benign, ...; see prefloop prompt-sets), the first by id; replaces --limit.")
    max_prompt_tokens: int = _f(256, "Leave out prompts longer than this (chat-formatted tokens).")
    reward_model: str | None = _f(None, "The proxy reward model (default: the one the policies "
                                  "trained against).")
    second_reward_model: str | None = _f(None, "A second reward model, one the policies never "
                                         "trained against (a diagnostic: trained on the same kind of "
                                         "labels, it is not an independent judge).")
    judge: str | None = _f(None, "AI-judge view with this backend: local or openai.")
    judge_model: str | None = _f(None, "local: a model spec; openai: the served model's name.")
    judge_base_url: str | None = _f(None, "openai judge: e.g. http://127.0.0.1:8000/v1.")
    judge_models: tuple[str, ...] | None = _f(None, "The versions the judge compares with the "
                                              "baseline (default: all).")
    constitution: str | None = _f(None, "Constitution file (default: prefloop's).")
    principle: str | None = _f(None, "Judge under this principle of the constitution (default: the first).")
    concurrency: int = _f(4, "Judge calls in flight.")
    tasks: int = _f(0, "Queue N blind pairwise tasks per compared version for people (each version on "
                    "prompts of its own, so no annotator meets the baseline's response twice).")
    task_models: tuple[str, ...] | None = _f(None, "The versions people compare with the baseline "
                                             "(default: all).")
    task_weights: tuple[int, ...] | None = _f(None, "Shares of the prompts each of task_models "
                                              "gets, in its order (default: equal).")
    overlap: int = _f(2, "Annotators per task.")
    reference: str | None = _f(None, "KL reference model (default: the baseline).")
    max_new_tokens: int = _f(64, "Tokens per response.")
    temperature: float = _f(0.7, "Sampling temperature.")
    seed: int = _f(0, "Sampling seed.")
    batch_size: int = _f(16, "Prompts per generation batch.")

    def __post_init__(self) -> None:
        if not self.models:
            raise EvalError("models: name at least one model version")
        if not self.prompts:
            raise EvalError("prompts: name a dataset, a prompts file or export:ID")
        for name, low in (("limit", 1), ("max_prompt_tokens", 1), ("concurrency", 1), ("tasks", 0),
                          ("overlap", 1), ("max_new_tokens", 1), ("batch_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise EvalError(f"{name}: expected an integer >= {low}, found {value!r}")
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, (int, float)) \
                or not self.temperature > 0:
            raise EvalError(f"temperature: expected a number > 0, found {self.temperature!r}")
        ps = self.per_subset
        if ps is not None and (isinstance(ps, bool) or not isinstance(ps, int) or ps < 1):
            raise EvalError(f"per_subset: expected an integer >= 1, found {ps!r}")
        w = self.task_weights
        if w is not None and (not self.task_models or len(w) != len(self.task_models) or not all(
                isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in w)):
            raise EvalError(f"task_weights: expected an integer >= 1 for each of task_models, found {w!r}")
        if self.judge not in (None, "local", "openai"):
            raise EvalError(f"judge: expected local or openai, found {self.judge!r}")


def eval_help(name: str) -> str:
    """The help text of :class:`EvalConfig` field ``name`` (the CLI option's help), with its
    default when it has one."""
    f = next(f for f in fields(EvalConfig) if f.name == name)
    default = f.default if f.default is not MISSING else None
    return f.metadata["help"] + ("" if default is None else f" [default: {default}]")
