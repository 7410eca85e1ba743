"""A tiny random Llama with its own byte-level BPE tokenizer, for tests and benchmarks that
need *a* model, not a good one (seconds to build, no download)."""

from __future__ import annotations

from pathlib import Path

from prefloop.core.models import CHATML_TEMPLATE

__all__ = ["build_tiny_llama"]


def build_tiny_llama(out_dir: str | Path, *, hidden_size: int = 32, layers: int = 2,
                     vocab_size: int = 512, corpus: list[str] | None = None, seed: int = 0,
                     initializer_range: float = 0.02) -> Path:
    """Write a random ``LlamaForCausalLM`` (``layers`` x ``hidden_size``, ~0.1M params at the
    defaults) and a byte-level BPE tokenizer (``vocab_size`` tokens, trained on ``corpus`` or a
    built-in text) with ChatML special tokens and template to ``out_dir``. Takes about a second.
    At the default ``initializer_range`` its next-token distributions are nearly uniform;
    a larger one (0.5) gives peaked ones, as a trained model has (LoRA adapters can then move
    them).
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
                         initializer_range=initializer_range,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                         tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(out)
    return out
