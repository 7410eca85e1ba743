"""Constitutions: named principles with a critique request, a revision request and a
comparison question (Bai et al. 2022, "Constitutional AI: Harmlessness from AI Feedback").

Files are YAML, TOML or JSON::

    name: my-constitution
    principles:
      - id: harmless
        critique_request: "..."
        revision_request: "..."
        comparison_question: "..."

Anthropic's published file (``{"constitutions": [{"critic", "revision"}], "system_chat": ...}``,
e.g. ``../shared/data/constitutions/anthropic-cai-principles.json``) is accepted as-is: its
principles get ids ``cai-01`` ... and the generic comparison question
:data:`DEFAULT_COMPARISON`.

>>> c = load_constitution()
>>> c.name, [p.id for p in c.principles][:3]
('prefloop-default', ['harmless', 'honest', 'helpful'])
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConstitutionError

__all__ = ["Principle", "Constitution", "load_constitution", "DEFAULT_CONSTITUTION",
           "DEFAULT_COMPARISON"]

DEFAULT_CONSTITUTION = Path(__file__).parent / "constitutions" / "default.yaml"
DEFAULT_COMPARISON = "Which response is more helpful, honest and harmless?"


@dataclass(frozen=True)
class Principle:
    """One principle: ``id`` (stable, recorded with every judgment), the requests of the
    critique and revision steps, and the question of the pairwise comparison."""

    id: str
    critique_request: str
    revision_request: str
    comparison_question: str = DEFAULT_COMPARISON


@dataclass(frozen=True)
class Constitution:
    """A named list of principles (``source`` is the file it came from)."""

    name: str
    principles: tuple[Principle, ...]
    source: str = ""
    few_shot: list[Any] = field(default_factory=list)

    def get(self, principle_id: str) -> Principle:
        for p in self.principles:
            if p.id == principle_id:
                return p
        raise ConstitutionError(f"constitution {self.name}: no principle {principle_id!r}; "
                                f"ids are {[p.id for p in self.principles]}")

    def sample(self, key: str) -> Principle:
        """A principle chosen deterministically from ``key`` (so a resumed batch picks the
        same principle for the same response and round)."""
        return random.Random(key).choice(self.principles)


def _load_raw(path: Path) -> Any:
    """YAML (``.yaml``/``.yml``, and other suffixes: JSON is YAML too), TOML or JSON; one line
    naming the file (and line and column) on any failure."""
    from prefloop.core.files import read_config_file

    return read_config_file(path, ConstitutionError, what="constitution")


def load_constitution(path: str | Path | None = None) -> Constitution:
    """Load a constitution file (default: prefloop's own, :data:`DEFAULT_CONSTITUTION`).

    Raises:
        ConstitutionError: unreadable file, no principles, a missing or empty field, or
            duplicate ids; the message names the file and the principle.
    """
    path = Path(path) if path else DEFAULT_CONSTITUTION
    if not path.exists():
        raise ConstitutionError(f"{path}: constitution file not found")
    raw = _load_raw(path)
    if isinstance(raw, dict) and "constitutions" in raw:  # Anthropic's CAI file
        items = [{"id": f"cai-{i + 1:02d}", "critique_request": c.get("critic"),
                  "revision_request": c.get("revision")} for i, c in enumerate(raw["constitutions"])]
        name, few_shot = path.stem, raw.get("system_chat") or []
    elif isinstance(raw, dict) and "principles" in raw:
        items, name, few_shot = raw["principles"], str(raw.get("name") or path.stem), []
    else:
        raise ConstitutionError(f"{path}: expected a mapping with 'principles' (or Anthropic's "
                                "'constitutions' list)")
    if not isinstance(items, list) or not items:
        raise ConstitutionError(f"{path}: 'principles' must be a non-empty list")
    principles, seen = [], set()
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConstitutionError(f"{path}: principle {i + 1} is not a mapping")
        for key in ("id", "critique_request", "revision_request"):
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise ConstitutionError(f"{path}: principle {i + 1} ({item.get('id', '?')}): "
                                        f"field '{key}' is missing or empty")
        if item["id"] in seen:
            raise ConstitutionError(f"{path}: principle id {item['id']!r} appears twice")
        seen.add(item["id"])
        principles.append(Principle(item["id"].strip(), item["critique_request"].strip(),
                                    item["revision_request"].strip(),
                                    (item.get("comparison_question") or DEFAULT_COMPARISON).strip()))
    return Constitution(name, tuple(principles), str(path), few_shot)
