"""Rules of the data model that records must follow before they reach SQL.

>>> validate_ranking([[3], [1, 2]])
[[3], [1, 2]]
>>> validate_messages([{"role": "user", "content": "Hi", "name": "x"}])
[{'role': 'user', 'content': 'Hi'}]
"""

from __future__ import annotations

from typing import Any

from .errors import ValidationError
from .records import RESPONSE_ORIGINS, ROLES, Message, Ranking

__all__ = ["validate_messages", "validate_ranking", "validate_response_text", "validate_origin",
           "validate_text", "validate_name", "MAX_TEXT_CHARS", "MAX_NAME_CHARS", "MAX_ID"]

#: The longest prompt turn, response, rationale or edit the store accepts (characters): about
#: 100k tokens, far beyond any model's context, small enough that a pasted file or a flood of
#: text cannot bloat the store.
MAX_TEXT_CHARS = 400_000
#: The longest name the store accepts (a dataset, a source, a labeler, an export): 255
#: characters, a file name's limit on common file systems.
MAX_NAME_CHARS = 255
#: The largest id (DuckDB's BIGINT); larger integers name no row.
MAX_ID = 2**63 - 1


def validate_text(value: Any, where: str, *, max_chars: int = MAX_TEXT_CHARS) -> str:
    r"""A text the store can keep: a string of at most ``max_chars`` characters that is valid
    Unicode (no lone UTF-16 surrogate) without NUL characters.

    >>> validate_text("ok", "prompt")
    'ok'
    >>> validate_text("a" + chr(0xD800), "prompt")
    Traceback (most recent call last):
    ...
    prefloop.store.errors.ValidationError: prompt: a lone UTF-16 surrogate ('\ud800') is not text

    Raises:
        ValidationError: names ``where``.
    """
    if not isinstance(value, str):
        raise ValidationError(f"{where}: expected a string, found {type(value).__name__}")
    if len(value) > max_chars:
        raise ValidationError(f"{where}: {len(value)} characters, more than the {max_chars} allowed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(f"{where}: a lone UTF-16 surrogate ({exc.object[exc.start]!a}) is not text") from None
    if "\x00" in value:
        raise ValidationError(f"{where}: a NUL character is not text")
    return value


def validate_name(value: Any, where: str, *, optional: bool = True) -> str | None:
    """A name (dataset, source, labeler, export): ``None`` when ``optional``, else a string of
    1 to :data:`MAX_NAME_CHARS` characters, not blank, without control characters.

    Raises:
        ValidationError: names ``where``.
    """
    if value is None and optional:
        return None
    validate_text(value, where, max_chars=MAX_NAME_CHARS)
    if not value.strip():
        raise ValidationError(f"{where}: a name cannot be empty or blank")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValidationError(f"{where}: control characters are not allowed in a name")
    return value


def validate_messages(messages: Any, *, field_name: str = "messages",
                      end_with_user: bool = True) -> list[Message]:
    """Check chat messages: a non-empty list of ``{"role", "content"}`` with a known role.

    Returns the messages reduced to ``role`` and ``content``.

    Raises:
        ValidationError: names the offending element, e.g. ``messages[2].role``.
    """
    if not isinstance(messages, list) or not messages:
        raise ValidationError(f"{field_name}: expected a non-empty list of messages, "
                              f"found {type(messages).__name__}")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise ValidationError(f"{field_name}[{i}]: expected an object with role and content, "
                                  f"found {type(m).__name__}")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise ValidationError(f"{field_name}[{i}].role: expected one of {ROLES}, found {role!r}")
        validate_text(content, f"{field_name}[{i}].content")
        out.append({"role": role, "content": content})
    if end_with_user and out[-1]["role"] != "user":
        raise ValidationError(f"{field_name}: a prompt must end with a user turn, "
                              f"found a final {out[-1]['role']!r} turn")
    if end_with_user and not out[-1]["content"].strip():
        raise ValidationError(f"{field_name}[{len(out) - 1}].content: the final user turn is empty")
    return out


def validate_ranking(ranking: Any) -> Ranking:
    """Check a ranking: a non-empty list of non-empty tie groups of distinct int ids; each
    group comes back sorted.

    Raises:
        ValidationError: empty groups, repeated ids or non-integer ids.
    """
    if not isinstance(ranking, list) or not ranking:
        raise ValidationError("ranking: expected a non-empty list of tie groups, best first")
    seen: set[int] = set()
    out = []
    for i, group in enumerate(ranking):
        if not isinstance(group, list) or not group:
            raise ValidationError(f"ranking[{i}]: expected a non-empty list of response ids")
        for rid in group:
            if not isinstance(rid, int) or isinstance(rid, bool):
                raise ValidationError(f"ranking[{i}]: response id {rid!r} is not an integer")
            if rid in seen:
                raise ValidationError(f"ranking: response {rid} appears twice")
            seen.add(rid)
        out.append(sorted(group))
    return out


def validate_response_text(text: Any, prompt_id: int) -> str:
    """A response's text: a non-blank string of at most :data:`MAX_TEXT_CHARS` characters.

    Raises:
        ValidationError: not a string, blank, or too long.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValidationError(f"response to prompt {prompt_id}: text is empty")
    return validate_text(text, f"response to prompt {prompt_id}")


def validate_origin(origin: Any) -> str:
    """Raises :class:`ValidationError` unless ``origin`` is one of :data:`RESPONSE_ORIGINS`."""
    if origin not in RESPONSE_ORIGINS:
        raise ValidationError(f"response origin {origin!r} is not one of "
                              f"{', '.join(RESPONSE_ORIGINS)}")
    return origin


def validate_count(value: Any, name: str, *, minimum: int = 0, optional: bool = True) -> int | None:
    """An integer option such as ``limit``, ``k`` or ``overlap``: ``None`` (when ``optional``)
    or an int >= ``minimum``.

    Raises:
        ValidationError: anything else, naming ``name`` (``limit -1: expected an integer >= 0``).
    """
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(f"{name} {value!r}: expected an integer >= {minimum}")
    return value
