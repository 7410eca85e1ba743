"""Trivially learnable rewards, for learnability tests and learning-rate sweeps: a method whose
policy cannot raise one of these well above its base rate within a few iterations does not
learn at that setting (the brief's rule: a test that would also pass on a policy that never
moves is not a test).

Each is a PPO score function ``(prompts, response_token_ids) -> list[float]`` and, through
:meth:`trl_reward`, a TRL reward function ``(prompts, completions, **kw) -> list[float]``.

>>> TargetTokens({5, 6})(None, [[5, 1, 6, 2], [1, 2]])
[2.0, 0.0]
>>> TargetTokens({5, 6}, share=True)(None, [[5, 1, 6, 2], [1, 2]])
[0.5, 0.0]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

__all__ = ["TargetTokens", "ContainsWord"]


class TargetTokens:
    """How many of a response's tokens (EOS included) are in ``target`` (token ids), or with
    ``share`` their share of the response; a random policy's base rate is about
    ``len(target) / vocab`` per token. Counts, not shares, keep the reward on the scale of
    the per-token KL penalty's sum (a share's differences of ~0.1 drown under it)."""

    def __init__(self, target: Iterable[int], *, share: bool = False):
        self.target, self.share = frozenset(target), share

    def __call__(self, prompts, responses: list[list[int]]) -> list[float]:
        return [sum(t in self.target for t in r) / (max(len(r), 1) if self.share else 1)
                for r in responses]

    def trl_reward(self) -> Callable[..., list[float]]:
        """The same reward as a TRL reward function (TRL passes the ``completion_ids``)."""

        def target_tokens(prompts, completions, completion_ids, **_):
            return self(prompts, completion_ids)

        return target_tokens


class ContainsWord:
    """1.0 when the decoded response contains ``word`` (case-insensitive), else 0.0: the
    "sorry" check that found PPO's full-fine-tuning learning rate did not move a LoRA policy.

    Args:
        word: the word to look for.
        decode: token ids -> text (a tokenizer's ``decode``), for use as a PPO score function.
    """

    def __init__(self, word: str, decode: Callable[[list[int]], str] | None = None):
        self.word, self.decode = word.lower(), decode

    def text(self, texts: list[str]) -> list[float]:
        return [float(self.word in t.lower()) for t in texts]

    def __call__(self, prompts, responses: list[list[int]]) -> list[float]:
        return self.text([self.decode(r) for r in responses])

    def trl_reward(self) -> Callable[..., list[float]]:
        """The same reward as a TRL reward function (named ``contains_<word>``)."""

        def reward(prompts, completions, **_):
            return self.text([c[-1]["content"] if isinstance(c, list) else c for c in completions])

        reward.__name__ = f"contains_{self.word}"
        return reward
