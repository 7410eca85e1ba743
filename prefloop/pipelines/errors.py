"""Errors of the pipelines (``prefloop eval``, ``prefloop loop``, ``prefloop demo``): each is
raised by the pipeline whose input is at fault, and the CLI prints it as one line."""

from __future__ import annotations

from prefloop.core.errors import PrefloopError

__all__ = ["PipelineError", "EvalError", "LoopConfigError", "DemoDataError", "OnPolicyConfigError"]


class PipelineError(PrefloopError):
    """Base class of the pipelines' errors the user can fix."""


class EvalError(PipelineError):
    """An evaluation cannot run as asked (a bad setting, no prompts, nothing to compare)."""


class LoopConfigError(PipelineError):
    """A loop config (``loop.yaml``) is unreadable or has an unknown key or a bad value; the
    message names the file and the key."""


class DemoDataError(PipelineError):
    """The demo's shared data is missing or incomplete."""


class OnPolicyConfigError(PipelineError):
    """A setting of an on-policy method (iterative DPO, rejection-sampling SFT) is unknown or
    invalid; the message names the key."""
