"""Exceptions raised by :mod:`prefloop.training`; the CLI prints them as one line.

A model spec that names nothing usable raises :class:`prefloop.core.models.ModelNotFoundError`.
"""

from __future__ import annotations

from prefloop.core.errors import PrefloopError

__all__ = ["TrainingError", "ConfigError"]


class TrainingError(PrefloopError):
    """Base class of training errors the user can fix (bad config, data or checkpoint)."""


class ConfigError(TrainingError):
    """A training config file or override is invalid."""
