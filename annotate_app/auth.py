"""Passwords (argon2id, via argon2-cffi) and caller checks for every event handler.

Gradio exposes each event handler as an API endpoint, so hiding a button is no protection: every
handler calls :func:`caller` with the ``gr.Request`` to learn who is calling and whether they
may. Passwords are stored only as argon2 hashes and never logged.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from prefloop import store

from .errors import AppError, NotAuthorized

__all__ = ["hash_password", "PasswordTooShort", "verify_password", "authenticate", "caller", "ROLE_RANK", "LoginGuard", "SessionGuard",
           "MIN_PASSWORD_LENGTH"]

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 8


class PasswordTooShort(AppError, ValueError):
    """A new password is shorter than :data:`MIN_PASSWORD_LENGTH` characters."""


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``.

    Raises:
        PasswordTooShort: shorter than :data:`MIN_PASSWORD_LENGTH` characters (an
            :class:`~prefloop.annotate_app.errors.AppError`, so one line in the CLI).
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordTooShort(f"password too short: at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# verified against when the user does not exist, so that an unknown name costs the same argon2
# time as a wrong password (no user enumeration by timing)
_DUMMY_HASH = _hasher.hash("prefloop-no-such-user")


class LoginGuard:
    """Failed-login lockout per user name: after ``max_failures`` wrong passwords in a row the
    name is locked for ``lockout_seconds`` (every try, the right password included, is refused
    without running argon2, so a flood of guesses costs no CPU); a success resets the count.
    In memory, per app process (OWASP Authentication Cheat Sheet, "Account lockout")."""

    def __init__(self, max_failures: int = 5, lockout_seconds: float = 900.0):
        import threading

        self.max_failures, self.lockout_seconds = max_failures, lockout_seconds
        self._failures: dict[str, int] = {}
        self._locked_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def locked(self, username: str) -> bool:
        import time

        with self._lock:
            until = self._locked_until.get(username)
            if until is None:
                return False
            if time.monotonic() >= until:
                del self._locked_until[username]
                self._failures.pop(username, None)
                return False
            return True

    def record(self, username: str, ok: bool) -> None:
        import time

        with self._lock:
            if ok:
                self._failures.pop(username, None)
                return
            n = self._failures.get(username, 0) + 1
            self._failures[username] = n
            if n >= self.max_failures:
                self._locked_until[username] = time.monotonic() + self.lockout_seconds


class SessionGuard:
    """Sessions end when the password changes or after ``max_age_seconds``.

    Gradio keeps its login tokens to itself, so this tracks them from the outside. A
    successful login records the user's password hash (:meth:`login`). The first request of a
    session token ties the token to that login (time and hash). Every later request is refused
    once the user's hash differs (the password was changed) or the session is older than
    ``max_age_seconds``: the user must log out and in again. Disabling a user already ends
    every session (:func:`caller` checks ``active``). In memory, per app process.
    """

    def __init__(self, max_age_seconds: float = 12 * 3600.0):
        import threading

        self.max_age_seconds = max_age_seconds
        self._logins: dict[str, tuple[float, str | None]] = {}
        self._sessions: dict[str, tuple[str, float, str | None]] = {}
        self._lock = threading.Lock()

    def login(self, username: str, password_hash: str | None) -> None:
        import time

        with self._lock:
            self._logins[username] = (time.monotonic(), password_hash)

    def issued(self, token: str, username: str) -> None:
        """Gradio issued login ``token`` to ``username`` (right after :meth:`login` in the same
        request): the session is tied to that login now, not at its first use, so a token
        obtained before a password change and used only after it is refused too."""
        import time

        with self._lock:
            started, hash_ = self._logins.get(username, (time.monotonic(), None))
            self._sessions[token] = (username, started, hash_)

    def check(self, request, annotator: store.Annotator) -> None:
        """Raises :class:`NotAuthorized` for a session of an old password or past its age."""
        import time

        token = _session_token(request)
        if token is None:
            return
        now = time.monotonic()
        with self._lock:
            rec = self._sessions.get(token)
            if rec is None or rec[0] != annotator.name:
                started, hash_ = self._logins.get(annotator.name, (now, annotator.password_hash))
                rec = self._sessions[token] = (annotator.name, started, hash_)
        if rec[2] != annotator.password_hash:
            raise NotAuthorized("your password was changed: log out and log in again")
        if now - rec[1] > self.max_age_seconds:
            raise NotAuthorized("your session expired: log out and log in again")


def _session_token(request) -> str | None:
    """Gradio's login token from the request's cookies (``access-token-<app id>``)."""
    try:
        cookies = dict(getattr(request, "cookies", None) or {})
    except (AttributeError, TypeError):
        return None
    for name in sorted(cookies):                  # the secure cookie before the unsecure one
        if name.startswith("access-token-"):
            return cookies[name]
    return None


def authenticate(s: store.Store, username: str, password: str, guard: LoginGuard | None = None,
                 sessions: SessionGuard | None = None) -> bool:
    """Gradio's login check: an active annotator with this password. An unknown user costs
    the same argon2 verification as a wrong password; with ``guard``, a locked name is refused
    at once and every outcome is counted."""
    if guard is not None and guard.locked(username):
        return False
    try:
        a = s.annotators.get(username)
    except store.NotFoundError:
        a = None
    ok = verify_password(a.password_hash if a is not None else _DUMMY_HASH, password)
    ok = ok and a is not None and a.active
    if guard is not None:
        guard.record(username, ok)
    if ok and sessions is not None:
        sessions.login(username, a.password_hash)
    return ok


def caller(s: store.Store, request, role: str | None = None) -> store.Annotator:
    """The logged-in, active annotator making this request; with ``role="admin"`` only admins,
    with ``role="reviewer"`` reviewers and admins.

    Raises:
        NotAuthorized: no login (an API call without credentials), an unknown or disabled user,
            or a caller below the required role (annotator < reviewer < admin).
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
    if role is not None and ROLE_RANK.get(a.role, -1) < ROLE_RANK[role]:
        raise NotAuthorized(f"user {username} is not {'an' if role[0] in 'aeiou' else 'a'} {role}")
    return a


#: The roles in order of what they may do (annotator < reviewer < admin): the labeling app's
#: views and the JSON API authorize by it.
ROLE_RANK = {"annotator": 0, "reviewer": 1, "admin": 2}
