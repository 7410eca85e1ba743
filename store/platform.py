"""The platform's HTTP side in the store: API keys (``store.api_keys``) and webhooks
(``store.webhooks``: endpoints and their delivery outbox). What the keys and signatures are
(``pfk_`` keys and their digests, ``whsec_`` secrets derived from ``$PREFLOOP_WEBHOOK_KEY``
and a salt, Standard Webhooks signatures) is :mod:`prefloop.core.signing`; the store keeps
the digests and salts, never a key or a secret. A key acts with its user's role; a revoked
key, or a key of a deactivated user, authenticates nobody.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prefloop.core.signing import api_key_id, api_key_matches, new_api_key, webhook_secret

from .engine import Engine, fetch_records
from .errors import NotFoundError, ValidationError
from .records import Annotator, utcnow

__all__ = ["emit_event", "APIKey", "APIKeysAPI", "Webhook", "WebhookDelivery", "WebhooksAPI", "WEBHOOK_EVENTS",
           "validate_webhook_url"]

#: The events a webhook can subscribe to.
WEBHOOK_EVENTS = ("comparison.created", "task.completed", "export.created", "run.finished",
                  "run.failed")


@dataclass(frozen=True)
class APIKey:
    """A row of ``api_keys`` (never the secret): ``prefix`` is ``pfk_<id>_`` plus the
    secret's first 4 characters, enough to recognize it in a list."""

    id: int
    annotator_id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


_KEY_COLS = "id, annotator_id, name, prefix, created_at, last_used_at, revoked_at"


class APIKeysAPI:
    """``store.api_keys``."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def create(self, annotator_id: int, name: str = "") -> tuple[APIKey, str]:
        """A new key for the annotator: ``(row, the key text)``; the text is never stored.

        Raises:
            NotFoundError: no such annotator. ValidationError: a name over 200 characters.
        """
        if len(name) > 200:
            raise ValidationError("key name: more than 200 characters")
        with self.engine.atomic() as con:
            if not con.execute("SELECT 1 FROM annotators WHERE id = ?", [annotator_id]).fetchone():
                raise NotFoundError(f"no annotator with id {annotator_id}")
            kid = con.execute("SELECT nextval('api_keys_id_seq')").fetchone()[0]
            key = new_api_key(kid)
            row = fetch_records(con, APIKey, f"""INSERT INTO api_keys (id, annotator_id, name,
                prefix, key_hash) VALUES (?, ?, ?, ?, ?) RETURNING {_KEY_COLS}""",
                                [kid, annotator_id, name, key.prefix, key.digest])[0]
        return row, key.text

    def list(self, annotator_id: int | None = None) -> list[APIKey]:
        """Keys, by id (revoked ones too)."""
        with self.engine.atomic() as con:
            return fetch_records(con, APIKey, f"SELECT {_KEY_COLS} FROM api_keys WHERE "
                                 "($a::BIGINT IS NULL OR annotator_id = $a) ORDER BY id",
                                 {"a": annotator_id})

    def revoke(self, key_id: int) -> APIKey:
        """Revoke a key (it authenticates nobody from now on). Raises :class:`NotFoundError`."""
        with self.engine.atomic() as con:
            found = fetch_records(con, APIKey, f"UPDATE api_keys SET revoked_at = coalesce("
                                  f"revoked_at, ?) WHERE id = ? RETURNING {_KEY_COLS}",
                                  [utcnow(), key_id])
        if not found:
            raise NotFoundError(f"no API key with id {key_id}")
        return found[0]

    def authenticate(self, text: str) -> Annotator | None:
        """The active annotator a key text belongs to, or ``None`` (unknown, malformed or
        revoked key; inactive user). Compares digests in constant time; records the use."""
        key_id = api_key_id(text)
        if key_id is None:
            return None
        from .annotators import _COLS

        with self.engine.atomic() as con:
            row = con.execute("SELECT key_hash, annotator_id FROM api_keys WHERE id = ? AND "
                              "revoked_at IS NULL", [key_id]).fetchone()
            if row is None or not api_key_matches(text, row[0]):
                return None
            found = fetch_records(con, Annotator, f"SELECT {_COLS} FROM annotators WHERE id = ? "
                                  "AND active", [row[1]])
            if not found:
                return None
            con.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", [utcnow(), key_id])
            return found[0]


@dataclass(frozen=True)
class Webhook:
    """A row of ``webhooks`` (the secret left out)."""

    id: int
    url: str
    events: list[str]
    active: bool
    created_at: datetime


@dataclass(frozen=True)
class WebhookDelivery:
    """One delivery of an event to a webhook: ``status`` ``pending``, ``delivered`` or
    ``failed`` (every attempt used); ``attempts`` so far, the last HTTP status or error."""

    id: int
    webhook_id: int
    event: str
    message_id: str
    payload: dict[str, Any]
    status: str
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None


_HOOK_COLS = "id, url, events, active, created_at"
_DELIVERY_COLS = ("id, webhook_id, event, message_id, payload, status, attempts, last_status, "
                  "last_error, created_at, next_attempt_at, delivered_at")


#: Set when this process queues a delivery: the app's sender wakes on it instead of polling the
#: store (events queued by other processes are found by its slow poll).
QUEUED = threading.Event()


def validate_webhook_url(url: Any) -> str:
    """A webhook endpoint: an absolute ``http://`` or ``https://`` URL with a host, a port in
    1..65535 when one is given, no whitespace or control characters, at most 2000 characters
    (parsed by the standard library's ``urllib.parse``).

    >>> validate_webhook_url("http://[::1")
    Traceback (most recent call last):
    ...
    prefloop.store.errors.ValidationError: webhook url 'http://[::1': Invalid IPv6 URL

    Raises:
        ValidationError: says what is wrong with it.
    """
    from urllib.parse import urlsplit

    if not isinstance(url, str) or not url or len(url) > 2000:
        raise ValidationError("webhook url: expected an http:// or https:// URL of at most 2000 characters")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise ValidationError(f"webhook url {url[:200]!r}: whitespace or control characters are not allowed")
    try:
        u = urlsplit(url)
        port = u.port
    except ValueError as exc:
        raise ValidationError(f"webhook url {url[:200]!r}: {exc}") from None
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValidationError(f"webhook url {url[:200]!r}: expected an http:// or https:// URL with a host")
    if port == 0:
        raise ValidationError(f"webhook url {url[:200]!r}: port 0 is not a port")
    return url


def emit_event(con, event: str, payload: dict[str, Any]) -> int:
    """Inside the caller's transaction (``con``): queue ``event`` with ``payload`` (its
    ``data``) for every active webhook subscribed to it; returns how many were queued. The
    store's own writes call it (a comparison recorded, a task completed, an export recorded,
    a run finished or failed)."""
    if event not in WEBHOOK_EVENTS:
        raise ValidationError(f"event {event!r} is not one of {WEBHOOK_EVENTS}")
    hooks = [r[0] for r in con.execute("SELECT id FROM webhooks WHERE active AND "
                                       "list_contains(events, ?)", [event]).fetchall()]
    now = utcnow()
    for hid in hooks:
        con.execute("INSERT INTO webhook_deliveries (webhook_id, event, message_id, payload, "
                    "next_attempt_at) VALUES (?, ?, ?, ?, ?)",
                    [hid, event, "msg_" + secrets.token_hex(12),
                     json.dumps({"type": event, "timestamp": now.isoformat() + "Z", "data": payload}),
                     now])
    if hooks:
        QUEUED.set()
    return len(hooks)


class WebhooksAPI:
    """``store.webhooks``: endpoints, and a durable outbox of deliveries (an event is written in
    the transaction that made it; a sender delivers it later, so a labeler's submit never waits
    on the network)."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def add(self, url: str, events: list[str]) -> tuple[Webhook, str]:
        """Register ``url`` for ``events``: ``(row, secret)`` (the secret is shown once).

        Raises:
            ValidationError: a URL that is not http(s), or an unknown event.
        """
        url = validate_webhook_url(url)
        if isinstance(events, str) or not isinstance(events, (list, tuple)):
            raise ValidationError(f"webhook events: expected a list of event names, some of {WEBHOOK_EVENTS}")
        bad = [e for e in events if e not in WEBHOOK_EVENTS]
        if bad or not events:
            raise ValidationError(f"webhook events {(bad or list(events))[:5]}: expected some of {WEBHOOK_EVENTS}")
        events = sorted(set(events), key=WEBHOOK_EVENTS.index)
        salt = secrets.token_hex(16)
        secret = webhook_secret(salt)
        with self.engine.atomic() as con:
            row = fetch_records(con, Webhook, f"INSERT INTO webhooks (url, events, salt) VALUES "
                                f"(?, ?, ?) RETURNING {_HOOK_COLS}", [url, list(events), salt])[0]
        return row, secret

    def list(self) -> list[Webhook]:
        with self.engine.atomic() as con:
            return fetch_records(con, Webhook, f"SELECT {_HOOK_COLS} FROM webhooks ORDER BY id")

    def remove(self, webhook_id: int) -> None:
        """Deactivate a webhook (its deliveries stay on record). Raises NotFoundError."""
        with self.engine.atomic() as con:
            if not con.execute("UPDATE webhooks SET active = false WHERE id = ? RETURNING id",
                               [webhook_id]).fetchone():
                raise NotFoundError(f"no webhook with id {webhook_id}")

    def emit(self, event: str, payload: dict[str, Any]) -> int:
        """Queue ``event`` for every active webhook subscribed to it (joins the caller's
        transaction); returns how many deliveries were queued."""
        with self.engine.atomic() as con:
            return emit_event(con, event, payload)

    def due(self, limit: int = 50, now: datetime | None = None) -> list[tuple[WebhookDelivery, str, str]]:
        """Pending deliveries whose next attempt is due: ``(delivery, url, secret)``, and
        (:meth:`next_due`) when the next one will be.

        Raises:
            ValidationError: ``$PREFLOOP_WEBHOOK_KEY`` is unset (see :func:`webhook_secret`).
        """
        with self.engine.atomic() as con:
            rows = fetch_records(con, WebhookDelivery, f"SELECT {', '.join('d.' + c.strip() for c in _DELIVERY_COLS.split(','))} "
                                 "FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id "
                                 "WHERE d.status = 'pending' AND w.active AND d.next_attempt_at <= ? "
                                 "ORDER BY d.id LIMIT ?", [now or utcnow(), limit],
                                 payload=json.loads)
            hooks = {r[0]: (r[1], r[2]) for r in con.execute("SELECT id, url, salt FROM webhooks").fetchall()}
        return [(d, hooks[d.webhook_id][0], webhook_secret(hooks[d.webhook_id][1])) for d in rows]

    def next_due(self) -> datetime | None:
        """When the earliest pending delivery is due (``None``: nothing pending)."""
        with self.engine.atomic() as con:
            return con.execute("SELECT min(d.next_attempt_at) FROM webhook_deliveries d JOIN webhooks w "
                               "ON w.id = d.webhook_id WHERE d.status = 'pending' AND w.active").fetchone()[0]

    def record_attempt(self, delivery_id: int, *, ok: bool, http_status: int | None,
                       error: str | None, retry_at: datetime | None) -> None:
        """One attempt's outcome: delivered, or failed with a retry at ``retry_at`` (``None``:
        no attempts left, the delivery fails)."""
        with self.engine.atomic() as con:
            con.execute("""UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = ?,
                           last_error = ?, status = ?, next_attempt_at = ?, delivered_at = ?
                           WHERE id = ?""",
                        [http_status, (error or "")[:500] or None,
                         "delivered" if ok else ("pending" if retry_at else "failed"),
                         None if ok else retry_at, utcnow() if ok else None, delivery_id])

    def deliveries(self, webhook_id: int | None = None, limit: int = 100) -> list[WebhookDelivery]:
        """The newest deliveries (of one webhook), newest first."""
        with self.engine.atomic() as con:
            return fetch_records(con, WebhookDelivery, f"SELECT {_DELIVERY_COLS} FROM "
                                 "webhook_deliveries WHERE ($w::BIGINT IS NULL OR webhook_id = $w) "
                                 "ORDER BY id DESC LIMIT $n", {"w": webhook_id, "n": limit},
                                 payload=json.loads)
