"""The labeling app's settings (``prefloop annotate --config app.yaml``), typed and validated
once, when they are loaded: an error names the file and the key.

>>> AppConfig.from_dict({"assist": {"when": "before"}, "ratings": {"aspects": ["honesty"]}}).ratings
RatingsConfig(aspects=('honesty',), scale=5, datasets=None, ranking=True)
>>> AppConfig.from_dict({"lease_seconds": "soon"}, source="app.yaml")
Traceback (most recent call last):
...
prefloop.annotate_app.errors.AppError: app.yaml: lease_seconds: expected a number, found 'soon'
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from prefloop import store
from prefloop.core.files import read_config_file

from .errors import AppError

__all__ = ["AppConfig", "AssistConfig", "RatingsConfig", "QualityConfig", "ChatConfig", "MAX_K", "MAX_ASPECTS", "DEFAULT_GUIDELINES"]

MAX_K = 6
MAX_ASPECTS = 6
DEFAULT_GUIDELINES = """\
**Rank the responses by how well they answer the conversation's last message.**

* Prefer responses that are helpful, honest and harmless: a polite refusal beats help with harm.
* Judge the content, not the length; a short correct answer beats a long wrong one.
* *Tie* when neither is better; *Both bad* when neither is acceptable.
* Flag anything unsafe, unusable, or that needs an expert. You may fix the best response in
  *Edit the best response*: your edit is saved as a new, better response.

Keys: **1** A better, **2** B better, **3** tie, **4** both bad, **S** skip, **U** undo,
**Ctrl+Enter** submit a ranking.
"""


@dataclass(frozen=True)
class AssistConfig:
    """Assisted labeling: an AI label already in the store is suggested on two-response tasks,
    shown after the annotator's choice (``after``), before it (``before``), or before it on a
    random half of the tasks (``random``: measures anchoring). ``labeler``: only that AI labeler
    (a judge model, ``reward-model:run:ID``)."""

    when: str = "after"
    labeler: str | None = None

    def __post_init__(self):
        if self.when not in ("after", "before", "random"):
            raise ValueError(f"when: expected after, before or random, found {self.when!r}")


@dataclass(frozen=True)
class RatingsConfig:
    """Per-response ratings of named aspects (UltraFeedback style): ``aspects`` (1 to 6 names),
    ``scale`` (2..10 points), ``datasets`` (only these; ``None``: all), ``ranking`` (also rank;
    ``False``: the ranking is the order of the mean ratings)."""

    aspects: tuple[str, ...] = ()
    scale: int = 5
    datasets: tuple[str, ...] | None = None
    ranking: bool = True

    def __post_init__(self):
        aspects = self.aspects
        if (not isinstance(aspects, (list, tuple)) or not 1 <= len(aspects) <= MAX_ASPECTS
                or not all(isinstance(a, str) and a.strip() for a in aspects)):
            raise ValueError(f"aspects: expected 1 to {MAX_ASPECTS} names, found {aspects!r}")
        object.__setattr__(self, "aspects", tuple(a.strip() for a in aspects))
        if isinstance(self.scale, bool) or not isinstance(self.scale, int) or not 2 <= self.scale <= 10:
            raise ValueError(f"scale: expected an integer in 2..10, found {self.scale!r}")
        if self.datasets is not None:
            if not isinstance(self.datasets, (list, tuple)) or not all(isinstance(d, str) for d in self.datasets):
                raise ValueError(f"datasets: expected a list of dataset names, found {self.datasets!r}")
            object.__setattr__(self, "datasets", tuple(self.datasets))
        if not isinstance(self.ranking, bool):
            raise ValueError(f"ranking: expected true or false, found {self.ranking!r}")

    def applies_to(self, dataset: str | None) -> bool:
        return self.datasets is None or dataset in self.datasets


@dataclass(frozen=True)
class QualityConfig:
    """The rules (the ``quality`` section; without it the admin page still shows
    the figures and flags under these defaults, and nobody is paused).

    Attributes:
        window: the last submissions of each annotator that are read.
        min_items: a flag needs at least this many of them (gold: 5 gold items).
        min_seconds: the time floor per item (seconds).
        max_fast_share: flagged when more than this share of items took under the floor.
        max_same_share: flagged when one answer (:data:`ANSWERS`) is at least this share.
        min_gold_accuracy: flagged when right on fewer than this share of gold items.
        pause: close a flagged annotator's queue (an admin re-enables them).
    """

    window: int = 50
    min_items: int = 20
    min_seconds: float = 3.0
    max_fast_share: float = 0.5
    max_same_share: float = 0.9
    min_gold_accuracy: float = 0.6
    pause: bool = False

    def __post_init__(self):
        for name in ("window", "min_items"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected an integer >= 1, found {v!r}")
        for name in ("max_fast_share", "max_same_share", "min_gold_accuracy"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise ValueError(f"{name}: expected a share in [0, 1], found {v!r}")
        if isinstance(self.min_seconds, bool) or not isinstance(self.min_seconds, (int, float)) or self.min_seconds < 0:
            raise ValueError(f"min_seconds: expected seconds >= 0, found {self.min_seconds!r}")
        if not isinstance(self.pause, bool):
            raise ValueError(f"pause: expected true or false, found {self.pause!r}")



@dataclass(frozen=True)
class ChatConfig:
    """The Chat view (the ``chat`` section; without it the view is off): the model under study
    behind an OpenAI-compatible endpoint (``transformers serve RUN_DIR/final``, vLLM, a hosted
    API; the key from ``$PREFLOOP_CHAT_API_KEY``).

    Attributes:
        base_url: e.g. ``http://127.0.0.1:8000/v1``.
        model: the model name the endpoint serves.
        candidates: candidate replies per turn (2..6).
        max_tokens: the longest candidate (tokens).
        temperature: sampling temperature of the candidates (> 0: they must differ).
        timeout: seconds a candidate may take before the turn fails (the conversation is kept).
        system: a system message put before every conversation (none by default).
        extra_body: more fields of each request, as the server reads them; ``transformers
            serve`` samples only when asked: ``{generation_config: '{"do_sample": true}'}``.
    """

    base_url: str = ""
    model: str = ""
    candidates: int = 2
    max_tokens: int = 256
    temperature: float = 0.9
    timeout: float = 120.0
    system: str | None = None
    extra_body: dict | None = None

    def __post_init__(self):
        for name in ("base_url", "model"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v.strip():
                raise ValueError(f"{name}: required (the endpoint and the model it serves)")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url: expected an http(s) URL, found {self.base_url!r}")
        if isinstance(self.candidates, bool) or not isinstance(self.candidates, int) or not 2 <= self.candidates <= MAX_K:
            raise ValueError(f"candidates: expected an integer in 2..{MAX_K}, found {self.candidates!r}")
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or not 1 <= self.max_tokens <= 4096:
            raise ValueError(f"max_tokens: expected an integer in 1..4096, found {self.max_tokens!r}")
        for name in ("temperature", "timeout"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise ValueError(f"{name}: expected a number > 0, found {v!r}")
        if self.system is not None and not isinstance(self.system, str):
            raise ValueError(f"system: expected text, found {self.system!r}")
        if self.extra_body is not None and not isinstance(self.extra_body, dict):
            raise ValueError(f"extra_body: expected a mapping, found {self.extra_body!r}")


_SECTIONS = {"assist": AssistConfig, "ratings": RatingsConfig, "review": store.ReviewRules, "quality": QualityConfig,
             "chat": ChatConfig}


@dataclass
class AppConfig:
    """Labeling-app settings. ``assist``, ``ratings`` and ``review`` are off (``None``) unless
    set; in YAML they are mappings of their classes' fields.

    Fields: ``guidelines`` (markdown; ``guidelines_file`` in YAML reads it from a file beside
    the config), ``lease_seconds`` (a task returns to the queue after it), ``undo_seconds``,
    ``gold_rate`` (share of hidden gold tasks), ``title``, ``max_failed_logins`` and
    ``lockout_seconds`` (login lockout), ``exports_root`` (admin exports go under it; default
    ``<store dir>/exports``), ``session_hours`` (a login lasts this long; a password change ends
    it), ``cookie_samesite`` (the login cookie's SameSite: ``lax``, ``strict``, or ``none``,
    which lets other sites' requests carry the login: only behind a proxy that needs it),
    ``qualification_tasks``, ``min_gold_accuracy`` and ``gold_window`` (a new annotator
    first gets this many gold tasks and reaches the queue only with at least
    ``min_gold_accuracy`` right; afterwards a rolling accuracy over the last ``gold_window``
    gold tasks below it pauses them; 0: off), ``strength`` (two-response tasks also ask how
    much better: "significantly better, better, slightly better, negligibly better / unsure",
    as Llama 2's collection did; after 1 or 2 the keys 1-4 pick it, or a second click; stored
    with the comparison and exported as the pairs' ``margin``), ``webhook_backoff_seconds`` and
    ``webhook_attempts`` (a failed webhook delivery is retried after backoff * 4**(n-1)
    seconds, at most this many tries), ``webhook_timeout`` (seconds a delivery may take, the
    whole exchange; :mod:`prefloop.annotate_app.webhooks`), ``quality`` (quality control on
    every labeler: :class:`QualityConfig`, :mod:`prefloop.annotate_app.services.quality`), ``chat``
    (the Chat view's model endpoint: :class:`ChatConfig`, :mod:`prefloop.annotate_app.services.chat`).
    """

    guidelines: str = DEFAULT_GUIDELINES
    lease_seconds: float = store.DEFAULT_LEASE_SECONDS
    undo_seconds: float = 60.0
    gold_rate: float = 0.0
    title: str = "prefloop labeling"
    max_failed_logins: int = 5
    lockout_seconds: float = 900.0
    exports_root: str | None = None
    session_hours: float = 12.0
    cookie_samesite: str = "lax"
    qualification_tasks: int = 0
    min_gold_accuracy: float = 0.8
    gold_window: int = 0
    strength: bool = False
    webhook_backoff_seconds: float = 5.0
    webhook_attempts: int = 6
    webhook_timeout: float = 10.0
    review: store.ReviewRules = field(default_factory=store.ReviewRules)
    assist: AssistConfig | None = None
    ratings: RatingsConfig | None = None
    quality: QualityConfig | None = None
    chat: ChatConfig | None = None

    def __post_init__(self):
        if self.cookie_samesite not in ("lax", "strict", "none"):
            raise AppError(f"cookie_samesite: expected lax, strict or none, found {self.cookie_samesite!r}")
        for name, cls in _SECTIONS.items():         # a mapping given in code becomes its class
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, cls(**value) if value or name == "review" else None)
            elif value is None and name == "review":
                self.review = store.ReviewRules()

    @property
    def review_rules(self) -> store.ReviewRules:
        return self.review

    @classmethod
    def load(cls, path: str | Path | None) -> AppConfig:
        """Defaults, overridden by a YAML file.

        Raises:
            AppError: the file is missing or not YAML, a key is unknown, or a value has the
                wrong type or range (the message names the file and the key).
        """
        if path is None:
            return cls()
        path = Path(path)
        raw = read_config_file(path, AppError, what="app config") or {}
        if not isinstance(raw, dict):
            raise AppError(f"{path}: expected a mapping of settings, found {type(raw).__name__}")
        if "guidelines_file" in raw:
            try:
                raw["guidelines"] = (path.parent / str(raw.pop("guidelines_file"))).read_text(encoding="utf-8")
            except OSError as exc:
                raise AppError(f"{path}: guidelines_file: {exc.strerror or exc}") from None
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, source: str = "app config") -> AppConfig:
        """Build and check a config from plain values (a parsed YAML mapping)."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise AppError(f"{source}: unknown settings {unknown}; known: {sorted(known)}")
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key in _SECTIONS:
                values[key] = _section(source, key, value)
            else:
                values[key] = _scalar(source, key, value, _KINDS[known[key].type])
        return cls(**values)


_KINDS = {"float": float, "int": int, "str": str, "str | None": str, "bool": bool}


def _section(source: str, key: str, value: Any):
    cls = _SECTIONS[key]
    if value is None or value == {}:
        return cls() if key == "review" else None
    if not isinstance(value, dict):
        raise AppError(f"{source}: {key}: expected a mapping, found {value!r}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(value) - names)
    if unknown:
        raise AppError(f"{source}: {key}: unknown settings {unknown}; known: {sorted(names)}")
    try:
        return cls(**value)
    except (TypeError, ValueError) as exc:   # the classes' checks say "field: what is wrong"
        raise AppError(f"{source}: {key}.{exc}") from None


#: Settings that are shares: at most 1.
_SHARES = ("gold_rate", "min_gold_accuracy")


def _scalar(source: str, key: str, value: Any, kind: type):
    if value is None and key == "exports_root":
        return None
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0 or (key in _SHARES and value > 1):
            bound = "in 0..1" if key in _SHARES else ">= 0"
            raise AppError(f"{source}: {key}: expected a number {bound}, found {value!r}")
        return float(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise AppError(f"{source}: {key}: expected an integer >= 0, found {value!r}")
        return value
    if kind is str and isinstance(value, str):
        return value
    if kind is bool and isinstance(value, bool):
        return value
    what = {float: "a number", int: "an integer", str: "a string", bool: "true or false"}[kind]
    raise AppError(f"{source}: {key}: expected {what}, found {value!r}")
