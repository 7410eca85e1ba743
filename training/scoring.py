"""Scoring (prompt, response) pairs with a reward model, the same way it was trained.

A decoder reward model (a sequence classifier over e.g. SmolLM2) sees the conversation through
its chat template, exactly as TRL's ``RewardTrainer`` tokenizes conversational rows; an encoder
without a chat template (MiniLM) sees :func:`prefloop.training.data.plain_prompt` text followed
by the response and the EOS (``[SEP]``) token, as TRL does for standard rows.

TRL drops training pairs longer than ``max_length``, so a reward model never saw a cut
sequence. A longer conversation is scored with its prompt cut from the left (the oldest turns
go first) while the special tokens and the whole response stay: an encoder's head reads the
``[CLS]`` token at position 0, a decoder's the last token. :data:`REWARD_CONFIG` in the model's
directory records the ``max_length`` it was trained with.
"""

from __future__ import annotations

from pathlib import Path

import torch

from prefloop.core.models import load_reward_model, load_tokenizer

from .data import plain_prompt

__all__ = ["RewardScorer", "prepare_reward_tokenizer", "to_reward_rows", "REWARD_CONFIG",
           "write_reward_config"]

#: Written next to a trained reward model: ``{"max_length": N}``, the trainer's length limit.
REWARD_CONFIG = "prefloop_reward.json"
_DEFAULT_MAX_LENGTH = 512


def write_reward_config(path: str | Path, max_length: int | None) -> None:
    """Record the trainer's ``max_length`` beside a reward model (see :data:`REWARD_CONFIG`)."""
    import json

    (Path(path) / REWARD_CONFIG).write_text(json.dumps({"max_length": max_length or _DEFAULT_MAX_LENGTH}))


def _trained_max_length(path: str | Path) -> int:
    import json

    f = Path(path) / REWARD_CONFIG
    return json.loads(f.read_text())["max_length"] if f.exists() else _DEFAULT_MAX_LENGTH


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
        max_length: tokens per sequence (default: the ``max_length`` it was trained with, see
            :data:`REWARD_CONFIG`, else 512); longer conversations lose their oldest prompt
            tokens, never the special tokens or the response.
        dtype: the model's dtype (default float32).
    """

    def __init__(self, path: str | Path, *, batch_size: int = 8, max_length: int | None = None,
                 model=None, tokenizer=None, dtype=None):
        self.tokenizer = tokenizer or prepare_reward_tokenizer(path)
        self.model = model or load_reward_model(path, self.tokenizer.pad_token_id, dtype=dtype)
        self.model.eval()
        self.batch_size = batch_size
        self.max_length = max_length or _trained_max_length(path)

    def token_ids(self, prompt: list[dict], response: str) -> list[int]:
        """Token ids of one (prompt, response): exactly the reward trainer's when they fit in
        ``max_length``; otherwise the prompt is cut from the left (see the module docstring)."""
        if self.tokenizer.chat_template:
            return self._chat_ids(prompt, response)
        return self._plain_ids(prompt, response)

    def _chat_ids(self, prompt: list[dict], response: str) -> list[int]:
        tok, turns = self.tokenizer, list(prompt)
        while True:
            ids = list(tok.apply_chat_template(turns + [{"role": "assistant", "content": response}],
                                               tokenize=True, return_dict=True)["input_ids"])
            oldest = next((i for i, m in enumerate(turns) if m["role"] != "system"), None)
            if len(ids) <= self.max_length or len(turns) <= 1 or oldest is None or oldest == len(turns) - 1:
                return ids[-self.max_length:]       # the head reads the last token
            del turns[oldest]                      # drop the oldest turn and render again

    def _plain_ids(self, prompt: list[dict], response: str) -> list[int]:
        tok = self.tokenizer
        prefix = plain_prompt(prompt)
        enc = tok(prefix + response + tok.eos_token, return_offsets_mapping=True)
        ids, offsets = list(enc["input_ids"]), enc["offset_mapping"]
        if len(ids) <= self.max_length:
            return ids
        special = set(tok.all_special_ids)
        lead = 0                                   # [CLS]: special tokens with no text
        while lead < len(ids) and ids[lead] in special and tuple(offsets[lead]) == (0, 0):
            lead += 1
        start = next(i for i in range(lead, len(ids)) if offsets[i][1] > len(prefix)
                     or tuple(offsets[i]) == (0, 0))
        trail = len(ids)                           # [SEP]s after the response
        while trail > start and ids[trail - 1] in special:
            trail -= 1
        head, body, reply, tail = ids[:lead], ids[lead:start], ids[start:trail], ids[trail:]
        room = self.max_length - len(head) - len(reply) - len(tail)
        if room < 0:                               # the response alone is too long
            return head + reply[:self.max_length - len(head) - len(tail)] + tail
        return head + (body[len(body) - room:] if room else []) + reply + tail

    def text_ids(self, text: str) -> list[int]:
        """Token ids of one already formatted sequence (prompt and response as one text, as
        OpenRLHF's remote reward contract sends it); a long one keeps its special tokens and
        loses its oldest tokens."""
        tok = self.tokenizer
        ids = list(tok(text)["input_ids"])
        if len(ids) <= self.max_length:
            return ids
        special = set(tok.all_special_ids)
        lead = 0
        while lead < len(ids) and ids[lead] in special:
            lead += 1
        trail = len(ids)
        while trail > lead and ids[trail - 1] in special:
            trail -= 1
        room = self.max_length - lead - (len(ids) - trail)
        return ids[:lead] + ids[trail - room:trail] + ids[trail:]

    @torch.no_grad()
    def score_inputs(self, inputs: list) -> torch.Tensor:
        """Rewards, shape ``(N,)``, of a mix of already formatted sequences (``str``, see
        :meth:`text_ids`) and ``(prompt messages, response)`` tuples (see :meth:`token_ids`)."""
        return self._score_ids([self.text_ids(x) if isinstance(x, str) else self.token_ids(*x)
                                for x in inputs])

    @torch.no_grad()
    def _score_ids(self, all_ids: list[list[int]]) -> torch.Tensor:
        out = []
        for i in range(0, len(all_ids), self.batch_size):
            batch = self.tokenizer.pad({"input_ids": all_ids[i:i + self.batch_size]},
                                       return_tensors="pt", padding_side="right")
            batch = {k: v.to(self.model.device) for k, v in batch.items()}
            out.append(self.model(**batch).logits[:, 0].float().cpu())
        return torch.cat(out) if out else torch.zeros(0)

    @torch.no_grad()
    def score(self, prompts: list[list[dict]], responses: list[str]) -> torch.Tensor:
        """Rewards, shape ``(N,)``, in the model's logit units (Bradley-Terry: the difference
        of two rewards is the log-odds that the first response is preferred)."""
        out = []
        for i in range(0, len(responses), self.batch_size):
            ids = [self.token_ids(p, r) for p, r in
                   zip(prompts[i:i + self.batch_size], responses[i:i + self.batch_size])]
            batch = self.tokenizer.pad({"input_ids": ids}, return_tensors="pt", padding_side="right")
            batch = {k: v.to(self.model.device) for k, v in batch.items()}
            out.append(self.model(**batch).logits[:, 0].float().cpu())
        return torch.cat(out) if out else torch.zeros(0)
