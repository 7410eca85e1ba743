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

from prefloop.core.models import (
    ENSEMBLE_MANIFEST,
    ModelRef,
    load_reward_model,
    load_tokenizer,
    parse_aggregate,
)

from .data import plain_prompt

__all__ = ["RewardScorer", "EnsembleScorer", "reward_scorer", "prepare_reward_tokenizer",
           "to_reward_rows", "REWARD_CONFIG", "write_reward_config", "write_ensemble_manifest",
           "reward_statistics", "normalized", "normalized_score"]

#: Written next to a trained reward model: ``{"max_length": N}``, the trainer's length limit,
#: and ``"score_mean"``/``"score_std"``: its scores' mean and population std
#: over held-out responses, the statistics that ``normalize_reward`` divides by.
REWARD_CONFIG = "prefloop_reward.json"
_DEFAULT_MAX_LENGTH = 512


def write_reward_config(path: str | Path, max_length: int | None,
                        score_stats: tuple[float, float] | None = None) -> None:
    """Record the trainer's ``max_length`` beside a reward model (see :data:`REWARD_CONFIG`),
    and ``score_stats`` = ``(mean, std)`` of its scores (logit units) when measured."""
    import json

    body: dict = {"max_length": max_length or _DEFAULT_MAX_LENGTH}
    if score_stats is not None:
        body["score_mean"], body["score_std"] = float(score_stats[0]), float(score_stats[1])
    (Path(path) / REWARD_CONFIG).write_text(json.dumps(body))


def reward_statistics(path: str | Path) -> tuple[float, float] | None:
    """``(mean, std)`` of a reward model's scores as recorded at training time (see
    :data:`REWARD_CONFIG`), or ``None`` for a model trained before they were recorded, an
    ensemble's directory, or a std of zero."""
    import json

    f = Path(path) / REWARD_CONFIG
    if not f.exists():
        return None
    body = json.loads(f.read_text())
    mean, std = body.get("score_mean"), body.get("score_std")
    return (float(mean), float(std)) if mean is not None and std else None


def normalized(score_fn, stats: tuple[float, float] | None):
    """``score_fn`` (``(prompts, responses) -> (N,)`` tensor) in standard units,
    ``(r - mean) / std`` with the reward model's recorded ``stats`` (OpenRLHF's
    ``--normalize_reward``), or ``score_fn`` itself when ``stats`` is ``None``. A weakly trained
    Bradley-Terry model's scores can spread over a tenth of a logit, so that fixed penalties
    beside them (PPO's missing-EOS penalty of -1, a KL coefficient per nat) outweigh them."""
    if stats is None:
        return score_fn
    mean, std = stats

    def score(prompts, responses):
        return (score_fn(prompts, responses) - mean) / std

    return score


def normalized_score(scorer, normalize: bool):
    """``(score_fn, normalization)``: ``scorer.score`` in the reward model's standard units
    when ``normalize`` and the scorer has recorded statistics (:func:`normalized`), else
    ``scorer.score`` itself; ``normalization`` is ``{"mean", "std"}`` or ``None`` (what a run's
    summary records as ``reward_normalization``)."""
    stats = scorer.statistics if normalize else None
    return normalized(scorer.score, stats), (None if stats is None else dict(zip(("mean", "std"), stats)))


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
        self.path = Path(path)
        self.batch_size = batch_size
        self.max_length = max_length or _trained_max_length(path)
        #: ``(mean, std)`` of its scores as recorded at training time, or ``None``.
        self.statistics = reward_statistics(path)

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

    def _turn_end(self) -> str:
        """What the chat template writes after an assistant reply (ChatML: ``<|im_end|>\\n``),
        found by rendering a probe conversation; ``""`` without a chat template."""
        if not self.tokenizer.chat_template:
            return ""
        if not hasattr(self, "_turn_end_text"):
            probe = "\x00probe\x00"
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": "u"}, {"role": "assistant", "content": probe}],
                tokenize=False)
            self._turn_end_text = text.rsplit(probe, 1)[-1] if probe in text else ""
        return self._turn_end_text

    def normalize_text(self, text: str) -> str:
        """An already formatted conversation ended the way the reward model was trained: the
        template's whole end of turn after the reply. OpenRLHF's remote reward client sends
        the decoded sequence ending in the EOS token (``<|im_end|>``) without ChatML's newline,
        or, for a reply cut at the length limit, no end at all; trailing pad tokens are dropped.
        The head reads the last token, so without this the same conversation scores
        differently through the two paths."""
        end = self._turn_end()
        if not end:
            return text
        pad = self.tokenizer.pad_token
        while pad and pad != end.strip() and text.rstrip().endswith(pad):
            text = text.rstrip()[:-len(pad)]
        if text.endswith(end):
            return text
        core = end.strip()
        stripped = text.rstrip()
        if core and stripped.endswith(core):
            return stripped + end[end.index(core) + len(core):]
        return stripped + end

    def text_ids(self, text: str) -> list[int]:
        """Token ids of one already formatted sequence (prompt and response as one text, as
        OpenRLHF's remote reward contract sends it), its end of turn normalized
        (:meth:`normalize_text`); a long one keeps its special tokens and loses its oldest
        tokens."""
        tok = self.tokenizer
        ids = list(tok(self.normalize_text(text), add_special_tokens=False
                       if tok.chat_template else True)["input_ids"])
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


def write_ensemble_manifest(path: str | Path, members: list[str], offsets: list[float],
                            aggregate: str = "mean", uwo_lambda: float = 1.0) -> None:
    """Write :data:`~prefloop.core.models.ENSEMBLE_MANIFEST` into an ensemble's directory:
    member directories relative to it, each member's reward offset (its mean reward on the
    calibration responses, subtracted so that members share a zero point: Bradley-Terry fixes
    rewards only up to a constant) and the default aggregation."""
    import json

    (Path(path) / ENSEMBLE_MANIFEST).write_text(json.dumps(
        {"members": members, "offsets": offsets, "aggregate": aggregate, "uwo_lambda": uwo_lambda},
        indent=1))


class EnsembleScorer:
    """K reward models as one (Coste et al. 2024, "Reward Model Ensembles Help Mitigate
    Overoptimization"): each member's reward, centred by its offset (see
    :func:`write_ensemble_manifest`), then aggregated per response:

    * ``mean``: the members' mean;
    * ``wco`` (worst-case optimization): the members' minimum;
    * ``uwo`` (uncertainty-weighted optimization): ``mean - lambda * std`` (population std over
      the K members; Coste et al. penalize the variance, we use the std so that the penalty is
      in reward units and ``lambda`` reads as "standard deviations").

    The same interface as :class:`RewardScorer` (``score``, ``score_inputs``, ``tokenizer``,
    ``path``: the first member's, e.g. for a value head's initialization), plus
    :meth:`member_scores` and :meth:`disagreement`.

    Raises:
        prefloop.core.models.ModelNotFoundError: a bad manifest;
        prefloop.core.models.AggregationError: a bad aggregation.
    """

    def __init__(self, path: str | Path, aggregate: str | None = None, *, batch_size: int = 8,
                 dtype=None):
        import json

        root = Path(path)
        manifest = json.loads((root / ENSEMBLE_MANIFEST).read_text())
        self.root = root
        self.members = [RewardScorer(root / m, batch_size=batch_size, dtype=dtype)
                        for m in manifest["members"]]
        self.offsets = torch.tensor(manifest.get("offsets") or [0.0] * len(self.members))
        name, lam = parse_aggregate(aggregate or manifest.get("aggregate", "mean"),
                                    f"ensemble {root}: aggregation")
        self.aggregate = name
        self.uwo_lambda = lam if lam is not None else float(manifest.get("uwo_lambda", 1.0))
        self.tokenizer = self.members[0].tokenizer
        self.path = self.members[0].path
        self.max_length = self.members[0].max_length
        self.statistics = None      # the aggregate's statistics are not recorded: scored raw

    def combine(self, per_member: torch.Tensor) -> torch.Tensor:
        """Member rewards ``(K, N)`` -> aggregated rewards ``(N,)`` (see the class docstring)."""
        if self.aggregate == "mean":
            return per_member.mean(0)
        if self.aggregate == "wco":
            return per_member.min(0).values
        return per_member.mean(0) - self.uwo_lambda * per_member.std(0, unbiased=False)

    @torch.no_grad()
    def member_scores(self, prompts: list[list[dict]], responses: list[str]) -> torch.Tensor:
        """Centred rewards of every member, shape ``(K, N)``."""
        return torch.stack([m.score(prompts, responses) for m in self.members]) - self.offsets[:, None]

    @torch.no_grad()
    def score(self, prompts: list[list[dict]], responses: list[str]) -> torch.Tensor:
        """Aggregated rewards, shape ``(N,)`` (see the class docstring)."""
        return self.combine(self.member_scores(prompts, responses))

    @torch.no_grad()
    def score_inputs(self, inputs: list) -> torch.Tensor:
        """:meth:`RewardScorer.score_inputs`, aggregated over the members: shape ``(N,)``."""
        return self.combine(torch.stack([m.score_inputs(inputs) for m in self.members])
                             - self.offsets[:, None])

    @staticmethod
    def disagreement(member_a: torch.Tensor, member_b: torch.Tensor) -> torch.Tensor:
        """The members' disagreement on pairs: the std over members of ``r_a - r_b``, inputs
        ``(K, N)`` each, output ``(N,)`` (the uncertainty that active learning ranks by)."""
        return (member_a - member_b).std(0, unbiased=False)


def reward_scorer(ref: ModelRef | str | Path, *, batch_size: int = 8, dtype=None):
    """The scorer of a resolved reward model: :class:`EnsembleScorer` for an ensemble's
    directory (with the ref's ``@aggregate``), else :class:`RewardScorer`. A string is a
    store-free spec (a path, optionally with ``@aggregate``; see :attr:`ModelRef.spec`)."""
    if not isinstance(ref, ModelRef):
        from prefloop.core.models import resolve_model

        ref = resolve_model(str(ref), require="reward")
    if ref.is_ensemble:
        return EnsembleScorer(ref.path, ref.aggregate, batch_size=batch_size, dtype=dtype)
    return RewardScorer(ref.path, batch_size=batch_size, dtype=dtype)
