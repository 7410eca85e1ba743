"""AI judges and Constitutional AI batches that write auditable AI labels into the store.

:func:`judge.batch.run_batch` runs a mode (``pairwise``, ``rank``, ``critique``, ``score``)
with a backend (:class:`judge.backends.OpenAIBackend` or :class:`judge.backends.LocalBackend`);
:func:`prefloop.core.agreement.judge_agreement` (on :func:`prefloop.store.judge_rows.agreement_rows`) compares a judge with people.
"""

from .errors import BackendError, ConstitutionError, JudgeError

__all__ = ["JudgeError", "ConstitutionError", "BackendError"]
