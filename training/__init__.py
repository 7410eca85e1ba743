"""Training from the store's labels: reward models, DPO, SFT, GRPO (TRL) and PPO (ours),
evaluation, and sampling new responses that loop back for labeling.

Trainers read pairs only through an export snapshot (:mod:`prefloop.training.data`). Entry
points: :func:`prefloop.training.train.train` (``prefloop train``) and
:func:`prefloop.training.generate.generate` (``prefloop generate``).
"""

from .errors import ConfigError, TrainingError

__all__ = ["TrainingError", "ConfigError"]
