"""The kinds of runs, in one place: what ``prefloop train`` trains, which of those make a
policy, and every kind a run row may have. The store, the trainers' config registry
(:data:`prefloop.training.configs.CONFIGS`, whose keys a test holds equal to
:data:`TRAIN_KINDS`), the CLI and the labeling app's job runner all read them from here.

>>> "rm" in TRAIN_KINDS and "rm" not in POLICY_KINDS
True
"""

from __future__ import annotations

__all__ = ["TRAIN_KINDS", "POLICY_KINDS", "RUN_KINDS", "REWARD_KINDS", "ONPOLICY_KINDS", "METHODS"]

#: ``prefloop train KIND``: a reward model, or a policy by one of the methods; one trainer run each.
TRAIN_KINDS = ("rm", "dpo", "sft", "ppo", "grpo", "rloo", "kto", "orpo")
#: Methods that are pipelines of runs: sample from the policy, label, train (iterative DPO,
#: Xiong et al. 2024; rejection-sampling SFT, Touvron et al. 2023). Also ``prefloop train KIND``.
ONPOLICY_KINDS = ("iterative-dpo", "rs-sft")
#: Every way ``prefloop train`` (and ``prefloop loop``'s ``policy_update``) can make a model.
METHODS = (*TRAIN_KINDS, *ONPOLICY_KINDS)
#: The kinds whose model is a reward model.
REWARD_KINDS = ("rm",)
#: The kinds whose model is a policy (a causal LM that samples responses).
POLICY_KINDS = ("dpo", "sft", "ppo", "grpo", "rloo", "kto", "orpo")
#: Every kind a run row may have: training runs, and the jobs that record runs too.
RUN_KINDS = ("rm", "dpo", "ppo", "sft", "grpo", "rloo", "kto", "orpo", "generate", "judge", "eval",
             "eval-rm", "demo", "loop", "board", *ONPOLICY_KINDS)
