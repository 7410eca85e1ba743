"""Training from the store's labels: reward models, DPO, SFT, GRPO (TRL) and PPO (ours),
evaluation, and sampling new responses that loop back for labeling.

Trainers read pairs only through an export snapshot (:mod:`training.data`). Entry points:
:func:`training.train.train` (``prefloop train``) and :func:`training.generate.generate`
(``prefloop generate``).
"""

from .errors import ConfigError, ModelNotFoundError, TrainingError

__all__ = ["TrainingError", "ModelNotFoundError", "ConfigError"]
