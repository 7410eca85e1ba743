"""Exceptions raised by :mod:`training`; the CLI prints them as one line."""

from __future__ import annotations

__all__ = ["TrainingError", "ModelNotFoundError", "ConfigError"]


class TrainingError(Exception):
    """Base class of errors the user can fix (bad model spec, config, or data)."""


class ModelNotFoundError(TrainingError):
    """A model spec names no local checkpoint, finished run or embedded model."""


class ConfigError(TrainingError):
    """A training config file or override is invalid."""
