"""The root of every error prefloop raises for its user to fix.

The tree (a test keeps it equal to the classes defined)::

    PrefloopError
    +-- prefloop.store.StoreError             store file, SQL rules, import and export input
    |   +-- StoreNotFoundError, StoreBusyError, SchemaError, NotFoundError, LeaseError,
    |   +-- ConversationError,
    |   +-- InvalidInputError, ValidationError (+-- PromptSetConflictError),
    |   +-- ExportError (+-- prefloop.store.pairs.NoPairsMatch)
    +-- prefloop.core.models.ModelNotFoundError   a model spec names nothing usable
    +-- prefloop.core.models.AggregationError     an ensemble aggregation that is not one
    +-- prefloop.core.signing.SigningKeyError     the webhook signing key is missing or bad
    +-- prefloop.judge.JudgeError             judge backends and constitutions
    |   +-- ConstitutionError, BackendError
    +-- prefloop.training.TrainingError       configs, data and checkpoints of a run
    |   +-- ConfigError
    +-- prefloop.annotate_app.AppError        the labeling app's settings and submissions
    |   +-- NotAuthorized, InvalidSubmission (+-- InvalidItems), auth.PasswordTooShort,
    |   +-- services.chat.ModelUnavailable
    +-- prefloop.pipelines.errors.PipelineError   eval, demo, loop, board, watch
    |   +-- EvalError, LoopConfigError, DemoDataError, OnPolicyConfigError,
    |   +-- prompt_sets.PromptSetsError, board.BoardError, watch.WatchError
    +-- prefloop.client.APIError              the HTTP API answered with an error
    +-- prefloop.cli._common.OptionError      a command-line option's value (exit 1)

Only the CLI and the labeling app turn these into one-line messages; library code raises them
with a message that says what was found, what is required, and how to fix it. Anything else
that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["PrefloopError"]


class PrefloopError(Exception):
    """Base class of the errors a user can fix (bad input, a missing file, a busy store)."""
