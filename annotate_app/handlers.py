"""The one place where a Gradio event handler checks its caller and maps errors.

Gradio exposes every event handler as an API endpoint, so hiding a button is no protection:
each handler is wrapped by :func:`handler`, which asks :meth:`AppServices.authorize` who is
calling (with the role the view needs) before the handler runs, passes the caller in as its
first argument, and turns prefloop's errors into ``gr.Error`` messages (never a traceback), as
Argilla's server authorizes, then delegates.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

import gradio as gr

from prefloop.core.errors import PrefloopError

from .errors import NotAuthorized

__all__ = ["handler", "owned"]


def handler(app, role: str | None = None) -> Callable[[Callable], Callable]:
    """Decorate ``fn(user, *inputs)`` into a Gradio handler ``(*inputs, request)``.

    ``role``: ``None`` (any logged-in user), ``"reviewer"`` or ``"admin"``. The wrapper's
    signature is ``fn``'s without ``user``, plus ``request: gr.Request`` last (Gradio injects
    it by annotation; other annotated inputs such as ``gr.SelectData`` keep theirs).
    """

    def decorate(fn: Callable) -> Callable:
        params = list(inspect.signature(fn).parameters.values())[1:]
        hints = typing.get_type_hints(fn)
        request = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                    annotation=gr.Request)

        def wrapper(*args: Any):
            *inputs, req = args
            try:
                return fn(app.authorize(req, role), *inputs)
            except PrefloopError as exc:
                raise gr.Error(str(exc)) from None

        def streaming(*args: Any):         # a generator handler: Gradio streams what it yields
            *inputs, req = args
            try:
                yield from fn(app.authorize(req, role), *inputs)
            except PrefloopError as exc:
                raise gr.Error(str(exc)) from None

        if inspect.isgeneratorfunction(fn):
            wrapper = streaming

        wrapper.__name__, wrapper.__qualname__, wrapper.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
        wrapper.__signature__ = inspect.Signature(
            [p.replace(annotation=hints.get(p.name, p.annotation)) for p in params] + [request])
        wrapper.__annotations__ = {**{p.name: hints[p.name] for p in params if p.name in hints},
                                   "request": gr.Request}
        return wrapper

    return decorate


def owned(value, user):
    """Session state is bound to the user who made it: a request carrying another user's
    session (Gradio's session_hash) cannot read or overwrite it. ``value``: a view with
    ``annotator_id`` or a ``[user id, ...]`` list; returned unchanged.

    Raises:
        NotAuthorized: the state belongs to another user.
    """
    owner = value[0] if isinstance(value, (list, tuple)) else getattr(value, "annotator_id", None)
    if value is not None and owner != user.id:
        raise NotAuthorized("this page's state belongs to another user; reload the page")
    return value
