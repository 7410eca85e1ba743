"""The shared bottom of prefloop: the error root, model specs and statistics.

It imports nothing else of prefloop's (``tests/test_layout.py`` holds it to that), so every
other package may use it: :mod:`prefloop.core.errors` (``PrefloopError``),
:mod:`prefloop.core.models` (model specs and loading), :mod:`prefloop.core.stats` (win rates,
Bradley-Terry) and :mod:`prefloop.core.agreement` (inter-annotator agreement).
"""

from .errors import PrefloopError

__all__ = ["PrefloopError"]
