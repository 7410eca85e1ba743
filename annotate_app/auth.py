"""Passwords (argon2id, via argon2-cffi) and caller checks for every event handler.

Gradio exposes each event handler as an API endpoint, so hiding a button is no protection: every
handler calls :func:`caller` with the ``gr.Request`` to learn who is calling and whether they
may. Passwords are stored only as argon2 hashes and never logged.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from prefloop import store

from .errors import NotAuthorized

__all__ = ["hash_password", "verify_password", "authenticate", "caller", "MIN_PASSWORD_LENGTH"]

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (raises ValueError if shorter than 8 characters)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password too short: at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def authenticate(s: store.Store, username: str, password: str) -> bool:
    """Gradio's login check: an active annotator with this password."""
    try:
        a = s.annotators.get(username)
    except store.NotFoundError:
        return False
    return a.active and verify_password(a.password_hash, password)


def caller(s: store.Store, request, role: str | None = None) -> store.Annotator:
    """The logged-in, active annotator making this request; with ``role="admin"`` only admins.

    Raises:
        NotAuthorized: no login (an API call without credentials), an unknown or disabled user,
            or an annotator calling an admin action.
    """
    username = getattr(request, "username", None) if request is not None else None
    if not username:
        raise NotAuthorized("not logged in")
    try:
        a = s.annotators.get(username)
    except store.NotFoundError:
        raise NotAuthorized("unknown user") from None
    if not a.active:
        raise NotAuthorized(f"user {username} is disabled")
    if role == "admin" and a.role != "admin":
        raise NotAuthorized(f"user {username} is not an admin")
    return a
