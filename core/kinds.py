"""The kinds of runs, in one place: what ``prefloop train`` trains, which of those make a
policy, and every kind a run row may have. The store, the trainers' config registry
(:data:`prefloop.training.configs.CONFIGS`, whose keys a test holds equal to
:data:`TRAIN_KINDS`), the CLI and the labeling app's job runner all read them from here.

>>> "rm" in TRAIN_KINDS and "rm" not in POLICY_KINDS
True
"""

from __future__ import annotations

__all__ = ["TRAIN_KINDS", "POLICY_KINDS", "RUN_KINDS", "REWARD_KINDS"]

#: ``prefloop train KIND``: a reward model, or a policy by one of the methods.
TRAIN_KINDS = ("rm", "dpo", "sft", "ppo", "grpo", "rloo", "kto")
#: The kinds whose model is a reward model.
REWARD_KINDS = ("rm",)
#: The kinds whose model is a policy (a causal LM that samples responses).
POLICY_KINDS = ("dpo", "sft", "ppo", "grpo", "rloo", "kto")
#: Every kind a run row may have: training runs, and the jobs that record runs too.
RUN_KINDS = ("rm", "dpo", "ppo", "sft", "grpo", "rloo", "kto", "generate", "judge", "eval", "demo", "loop")
