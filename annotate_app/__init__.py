"""The Gradio labeling app for annotators and admins (:func:`annotate_app.app.launch`).

:mod:`annotate_app.service` holds what the app does (testable without a browser);
:mod:`annotate_app.app` wires it to Gradio with a caller check in every handler.
"""

from .errors import AppError, InvalidSubmission, NotAuthorized

__all__ = ["AppError", "NotAuthorized", "InvalidSubmission"]
