"""Scoring (prompt, response) pairs with a reward model, the same way it was trained.

A decoder reward model (a sequence classifier over e.g. SmolLM2) sees the conversation through
its chat template, exactly as TRL's ``RewardTrainer`` tokenizes conversational rows; an encoder
without a chat template (MiniLM) sees :func:`training.data.plain_prompt` text followed by the
response and the EOS (``[SEP]``) token, as TRL does for standard rows.
"""

from __future__ import annotations

from pathlib import Path

import torch

from prefloop.models import load_reward_model, load_tokenizer

from .data import plain_prompt

__all__ = ["RewardScorer", "prepare_reward_tokenizer", "to_reward_rows"]


def prepare_reward_tokenizer(path: str | Path):
    """The tokenizer of a reward model, with an EOS token (``[SEP]`` for BERT-like encoders)
    and left truncation, so that the end of a long conversation (the response) is kept."""
    tok = load_tokenizer(path)
    if tok.eos_token is None and getattr(tok, "sep_token", None):
        tok.eos_token = tok.sep_token
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.truncation_side = "left"
    return tok


def to_reward_rows(split, tokenizer):
    """A pair split in the format the reward trainer should see for this tokenizer:
    conversational rows as they are for chat-template tokenizers, plain text otherwise."""
    if tokenizer.chat_template:
        return split
    return split.map(lambda r: {"prompt": plain_prompt(r["prompt"]),
                                "chosen": r["chosen"][0]["content"],
                                "rejected": r["rejected"][0]["content"]})


class RewardScorer:
    """Scalar rewards r(prompt, response) from a sequence-classification model.

    Args:
        path: reward model checkpoint (``AutoModelForSequenceClassification``, 1 label).
        batch_size: pairs per forward pass.
        max_length: tokens kept per sequence (from the right).
    """

    def __init__(self, path: str | Path, *, batch_size: int = 8, max_length: int = 512,
                 model=None, tokenizer=None):
        self.tokenizer = tokenizer or prepare_reward_tokenizer(path)
        self.model = model or load_reward_model(path, self.tokenizer.pad_token_id)
        self.model.eval()
        self.batch_size, self.max_length = batch_size, max_length

    def token_ids(self, prompt: list[dict], response: str) -> list[int]:
        """Token ids of one (prompt, response), as the reward trainer tokenized them."""
        tok = self.tokenizer
        if tok.chat_template:
            ids = tok.apply_chat_template(prompt + [{"role": "assistant", "content": response}],
                                          tokenize=True, return_dict=True)["input_ids"]
        else:
            ids = tok(plain_prompt(prompt) + response + tok.eos_token)["input_ids"]
        return list(ids)[-self.max_length:]

    @torch.no_grad()
    def score(self, prompts: list[list[dict]], responses: list[str]) -> torch.Tensor:
        """Rewards, shape ``(N,)``, in the model's logit units (Bradley-Terry: the difference
        of two rewards is the log-odds that the first response is preferred)."""
        out = []
        for i in range(0, len(responses), self.batch_size):
            ids = [self.token_ids(p, r) for p, r in
                   zip(prompts[i:i + self.batch_size], responses[i:i + self.batch_size])]
            batch = self.tokenizer.pad({"input_ids": ids}, return_tensors="pt", padding_side="right")
            out.append(self.model(**batch).logits[:, 0].float())
        return torch.cat(out) if out else torch.zeros(0)
