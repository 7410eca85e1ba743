"""The root of every error prefloop raises for its user to fix.

The tree (each package documents its own leaves)::

    PrefloopError
    +-- prefloop.store.StoreError        store file, SQL rules, import and export input
    |   +-- StoreNotFoundError, StoreBusyError, SchemaError, NotFoundError,
    |   +-- ValidationError, LeaseError, InvalidInputError, ExportError
    +-- prefloop.judge.JudgeError        judge backends and constitutions
    |   +-- ConstitutionError, BackendError
    +-- prefloop.core.models.ModelNotFoundError  a model spec names nothing usable
    +-- prefloop.training.TrainingError  configs, data and checkpoints of a run
    |   +-- ConfigError
    +-- prefloop.annotate_app.AppError   the labeling app's settings and submissions
    |   +-- NotAuthorized, InvalidSubmission
    +-- prefloop.pipelines.evaluation.EvalError    model-version evaluation

Only the CLI and the labeling app turn these into one-line messages; library code raises them
with a message that says what was found, what is required, and how to fix it. Anything else
that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["PrefloopError"]


class PrefloopError(Exception):
    """Base class of the errors a user can fix (bad input, a missing file, a busy store)."""
