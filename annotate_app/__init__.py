"""The Gradio labeling app for annotators and admins (:func:`annotate_app.app.launch`).

:mod:`annotate_app.services` holds what the app does (testable without a browser), one service
per concern; :mod:`annotate_app.views` builds one tab each, every handler checked by
:func:`annotate_app.handlers.handler`; :mod:`annotate_app.app` composes them;
:mod:`annotate_app.config` holds the typed settings.
"""

from .errors import AppError, InvalidSubmission, NotAuthorized

__all__ = ["AppError", "NotAuthorized", "InvalidSubmission"]
