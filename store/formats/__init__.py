"""Readers of import formats; each yields :class:`ImportRecord` or :class:`Problem` per line."""

from .alpaca_eval import read_alpaca_eval
from .argilla import read_argilla
from .common import ImportRecord, Problem
from .feedback import read_feedback
from .hh import read_hh
from .label_studio import read_label_studio
from .prompts import read_prompts
from .rollouts import read_rollouts
from .trl import read_trl

READERS = {"hh": read_hh, "trl": read_trl, "alpaca-eval": read_alpaca_eval, "prompts": read_prompts,
           "feedback": read_feedback, "rollouts": read_rollouts, "label-studio": read_label_studio,
           "argilla": read_argilla}

__all__ = ["READERS", "ImportRecord", "Problem", "read_hh", "read_trl", "read_alpaca_eval",
           "read_prompts", "read_feedback", "read_rollouts"]
