"""The kinds of runs, one record each (:data:`KINDS`); every list of kinds elsewhere is derived
from it: what ``prefloop train`` trains, which make a policy or a reward model, which sample
from the policy and need a reward model, every kind a run row may have, and the judge's modes.
The store, the trainers' config registry (:data:`prefloop.training.configs.CONFIGS`, whose keys
a test holds equal to :data:`TRAIN_KINDS`), the loop's ``policy_update``, the CLI and the
labeling app's job runner all read them from here.

>>> "rm" in TRAIN_KINDS and "rm" not in POLICY_KINDS
True
>>> [k.name for k in KINDS if k.rewarded]
['ppo', 'grpo', 'rloo', 'iterative-dpo', 'rs-sft']
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Kind", "KINDS", "TRAIN_KINDS", "POLICY_KINDS", "RUN_KINDS", "REWARD_KINDS", "ONPOLICY_KINDS",
           "METHODS", "REWARDED_METHODS", "JUDGE_MODES", "app_trainable"]


@dataclass(frozen=True)
class Kind:
    """One kind of run.

    Attributes:
        name: the run row's ``kind``.
        makes: ``"policy"`` (a causal LM that samples), ``"reward"`` (a reward model) or ``""``
            (a job that makes no model: generate, judge, eval...).
        trainer: one trainer run (``prefloop train NAME``).
        onpolicy: a pipeline of runs that samples from the policy, labels and trains (iterative
            DPO, Xiong et al. 2024; rejection-sampling SFT, Touvron et al. 2023); also
            ``prefloop train NAME``.
        rewarded: samples from the policy and scores the samples with a reward model.
        pairs: reads pairs (``False``: KTO's unpaired labels, or no labels at all).
    """

    name: str
    makes: str = ""
    trainer: bool = False
    onpolicy: bool = False
    rewarded: bool = False
    pairs: bool = True


#: Every kind, in the order the CLI lists them.
KINDS: tuple[Kind, ...] = (
    Kind("rm", "reward", trainer=True),
    Kind("dpo", "policy", trainer=True),
    Kind("sft", "policy", trainer=True),
    Kind("ppo", "policy", trainer=True, rewarded=True),
    Kind("grpo", "policy", trainer=True, rewarded=True),
    Kind("rloo", "policy", trainer=True, rewarded=True),
    Kind("kto", "policy", trainer=True, pairs=False),
    Kind("orpo", "policy", trainer=True),
    Kind("iterative-dpo", "policy", onpolicy=True, rewarded=True),
    Kind("rs-sft", "policy", onpolicy=True, rewarded=True),
    Kind("generate"), Kind("judge"), Kind("eval"), Kind("eval-rm"), Kind("demo"), Kind("loop"),
    Kind("board"),
)

#: ``prefloop train KIND``: a reward model, or a policy by one of the methods; one trainer run each.
TRAIN_KINDS = tuple(k.name for k in KINDS if k.trainer)
#: Methods that are pipelines of runs: sample from the policy, label, train.
ONPOLICY_KINDS = tuple(k.name for k in KINDS if k.onpolicy)
#: Every way ``prefloop train`` (and ``prefloop loop``'s ``policy_update``) can make a model.
METHODS = (*TRAIN_KINDS, *ONPOLICY_KINDS)
#: The methods that sample from the policy and need a reward model.
REWARDED_METHODS = tuple(k.name for k in KINDS if k.rewarded)
#: The kinds whose model is a reward model.
REWARD_KINDS = tuple(k.name for k in KINDS if k.makes == "reward" and k.trainer)
#: The kinds of one trainer run whose model is a policy (a causal LM that samples responses).
POLICY_KINDS = tuple(k.name for k in KINDS if k.makes == "policy" and k.trainer)
#: Every kind a run row may have: training runs, and the jobs that record runs too.
RUN_KINDS = tuple(k.name for k in KINDS)
#: The AI judge's modes (``prefloop judge --mode``; the app's judge jobs).
JUDGE_MODES = ("pairwise", "rank", "critique", "score")


def app_trainable() -> tuple[str, ...]:
    """The trainer kinds the labeling app's admin page may start: those that read pairs."""
    return tuple(k.name for k in KINDS if k.trainer and k.pairs)
