"""Keys and signatures of prefloop's HTTP side, computed here and only stored by the store.

API keys are ``pfk_<id>_<secret>`` with 32 random bytes of secret (``secrets.token_urlsafe``),
shown once; the store keeps only their SHA-256 (a key carries 256 bits of entropy, so a fast
hash is the usual choice, as GitHub's and Stripe's tokens are checked, while passwords get
argon2).

Webhooks follow the Standard Webhooks scheme (https://www.standardwebhooks.com, as Argilla 2.x
signs its webhooks): each endpoint has a secret ``whsec_<base64>``; a delivery sends headers
``webhook-id``, ``webhook-timestamp`` (Unix seconds) and ``webhook-signature: v1,<base64 of
HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>``. No secret is stored: an endpoint's secret is
derived from the deployment's key ``$PREFLOOP_WEBHOOK_KEY`` (any long random string, kept with
the app's other secrets) and the endpoint's random salt, HMAC-SHA256(key, "webhook:{salt}").

>>> key = new_api_key(7)
>>> api_key_id(key.text), api_key_matches(key.text, key.digest), api_key_id("pfk_²_x")
(7, True, None)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass

from .errors import PrefloopError

__all__ = ["WEBHOOK_KEY_ENV", "SigningKeyError", "NewAPIKey", "new_api_key", "api_key_id", "api_key_matches",
           "webhook_secret", "sign_webhook", "verify_webhook"]

#: The environment variable holding the key webhook secrets are derived from.
WEBHOOK_KEY_ENV = "PREFLOOP_WEBHOOK_KEY"
_KEY = re.compile(r"pfk_([0-9]{1,18})_[A-Za-z0-9_-]{1,128}")


class SigningKeyError(PrefloopError):
    """``$PREFLOOP_WEBHOOK_KEY`` is unset or too short, so no webhook secret can be derived."""


@dataclass(frozen=True)
class NewAPIKey:
    """A fresh key: its ``text`` (shown once), the ``prefix`` a list shows, its ``digest``."""

    text: str
    prefix: str
    digest: str


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def new_api_key(key_id: int) -> NewAPIKey:
    """A new key for row ``key_id``: 32 random bytes of secret."""
    secret = secrets.token_urlsafe(32)
    text = f"pfk_{key_id}_{secret}"
    return NewAPIKey(text, f"pfk_{key_id}_{secret[:4]}", _digest(text))


def api_key_id(text: object) -> int | None:
    """The row id a key text names, or ``None`` for anything that is not a key (only ASCII
    digits, below 2**63, then a URL-safe secret)."""
    found = _KEY.fullmatch(text) if isinstance(text, str) else None
    return int(found.group(1)) if found else None


def api_key_matches(text: str, digest: str) -> bool:
    """Whether ``text`` is the key of ``digest`` (compared in constant time)."""
    return hmac.compare_digest(digest, _digest(text))


def webhook_secret(salt: str) -> str:
    """The ``whsec_`` secret of the webhook with this salt (see the module docstring).

    Raises:
        SigningKeyError: ``$PREFLOOP_WEBHOOK_KEY`` is unset or shorter than 16 characters.
    """
    key = os.environ.get(WEBHOOK_KEY_ENV, "")
    if len(key) < 16:
        raise SigningKeyError(f"webhooks need ${WEBHOOK_KEY_ENV}: a random string of at least 16 "
                              "characters (e.g. `openssl rand -hex 32`), the same wherever the "
                              "store is used")
    mac = hmac.new(key.encode(), f"webhook:{salt}".encode(), hashlib.sha256).digest()[:24]
    return "whsec_" + base64.b64encode(mac).decode()


def sign_webhook(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks ``webhook-signature`` value: ``v1,`` + base64 HMAC-SHA256 of
    ``"{id}.{timestamp}.{body}"`` under the secret's bytes (base64 after ``whsec_``)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify_webhook(secret: str, headers: dict[str, str], body: bytes, *, tolerance: float = 300,
                   now: float | None = None) -> bool:
    """A receiver's check of a delivery (any signature in the header may match; the timestamp
    within ``tolerance`` seconds)."""
    import time

    h = {k.lower(): v for k, v in headers.items()}
    try:
        ts = int(h["webhook-timestamp"])
    except (KeyError, ValueError):
        return False
    if abs((now or time.time()) - ts) > tolerance:
        return False
    want = sign_webhook(secret, h.get("webhook-id", ""), ts, body)
    return any(hmac.compare_digest(want, sig) for sig in h.get("webhook-signature", "").split())
