"""Typed records of the store: what the store API takes and returns.

Every row type of the data model (``docs/architecture.md``) has a frozen dataclass here. The
store converts rows to these records; other packages never see SQL rows or tuples.

Conventions:
    * ids are ``int`` (BIGINT sequences);
    * ``messages`` are OpenAI/TRL chat messages: ``[{"role": "system"|"user"|"assistant",
      "content": str}, ...]``; a prompt ends with a ``user`` turn;
    * a ranking is a list of tie groups of response ids, best first:
      ``[[12], [15, 16]]`` means 12 is better than 15 and 16, which are tied;
    * timestamps are naive ``datetime`` in UTC.

>>> prompt_hash([{"role": "user", "content": "hi"}]) == prompt_hash([{"role": "user", "content": "hi"}])
True
>>> text_hash("hello").hex()
'2cf24dba5fb0a30e26e83b2ac5b9e29e'

"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from prefloop.core.kinds import RUN_KINDS

__all__ = [
    "Message",
    "Ranking",
    "ROLES",
    "ANNOTATOR_ROLES",
    "LABELER_KINDS",
    "STRENGTHS",
    "STRENGTH_MARGINS",
    "RESPONSE_ORIGINS",
    "RUN_KINDS",
    "RUN_STATUSES",
    "prompt_hash",
    "text_hash",
    "utcnow",
    "Prompt",
    "Response",
    "ResponseIn",
    "Annotator",
    "Task",
    "TaskIn",
    "Assignment",
    "LeasedTask",
    "Comparison",
    "Judgment",
    "JudgmentIn",
    "Run",
    "RunMetric",
    "Export",
    "Sample",
]

Message = dict[str, str]
Ranking = list[list[int]]

ROLES = ("system", "user", "assistant")
ANNOTATOR_ROLES = ("annotator", "reviewer", "admin")
LABELER_KINDS = ("human", "ai")
#: Graded preference strength of a two-response comparison, strongest first (Llama 2's
#: collection: "significantly better, better, slightly better, negligibly better / unsure";
#: Touvron et al. 2023, section 3.2.1).
STRENGTHS = ("significantly", "better", "slightly", "negligibly")
#: The documented strength -> margin mapping of exports (Llama 2's "small" margins, Touvron
#: et al. 2023, Table 28): the reward model's margin loss -log sigmoid(r_c - r_r - m).
STRENGTH_MARGINS = {"significantly": 1.0, "better": 2 / 3, "slightly": 1 / 3, "negligibly": 0.0}
RESPONSE_ORIGINS = ("dataset", "model", "revision", "human_edit")
#: ``rejected``: a finished policy that the loop refused to promote (it lost ground against
#: its parent in evaluation); it stays recorded.
RUN_STATUSES = ("running", "finished", "failed", "interrupted", "rejected")

_UNIT, _RECORD = "\x1f", "\x1e"


def prompt_hash(messages: list[Message]) -> bytes:
    """Content hash of a prompt: the first 16 bytes (128 bits) of sha256 over
    ``role<US>content<RS>`` per turn (US = \\x1f, RS = \\x1e), UTF-8 encoded.

    The serialization does not depend on JSON formatting, so the same conversation hashes the
    same whichever file format it came from. The importer computes the same hash in SQL.
    """
    h = hashlib.sha256()
    for m in messages:
        h.update(f"{m['role']}{_UNIT}{m['content']}{_RECORD}".encode())
    return h.digest()[:16]


def text_hash(text: str) -> bytes:
    """The first 16 bytes (128 bits) of sha256 of a response text, UTF-8 encoded, not
    normalized. 128 bits keep the unique indexes small; a collision is not expected below
    ~10^18 texts."""
    return hashlib.sha256(text.encode("utf-8")).digest()[:16]


def utcnow() -> datetime:
    """Current time as a naive UTC ``datetime`` (the store's timestamp convention)."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class Prompt:
    """A row of ``prompts``: a conversation that ends with a user turn."""

    id: int
    messages: list[Message]
    text_hash: bytes
    source: str | None
    dataset: str | None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Response:
    """A row of ``responses``: one assistant reply to a prompt.

    ``origin`` is one of ``dataset`` (imported), ``model`` (sampled by a policy; ``run_id`` and
    ``gen_params`` say how), ``revision`` (a constitutional revision of ``parent_response_id``)
    or ``human_edit`` (an annotator's edit of ``parent_response_id``).
    """

    id: int
    prompt_id: int
    text: str
    text_hash: bytes
    origin: str
    model: str | None = None
    run_id: int | None = None
    parent_response_id: int | None = None
    gen_params: dict[str, Any] | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ResponseIn:
    """A response to add; deduplicated on ``(prompt_id, text_hash(text))``."""

    prompt_id: int
    text: str
    origin: Literal["dataset", "model", "revision", "human_edit"] = "dataset"
    model: str | None = None
    run_id: int | None = None
    parent_response_id: int | None = None
    gen_params: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Annotator:
    """A row of ``annotators``; ``password_hash`` is an argon2/bcrypt hash, never clear text."""

    id: int
    name: str
    role: str
    active: bool
    password_hash: str | None = field(default=None, repr=False)
    created_at: datetime | None = None
    qualified_at: datetime | None = None   # passed the qualification gold tasks (or re-enabled)
    paused_reason: str | None = None       # why the queue is closed to them (admin re-enables)
    gold_since: datetime | None = None     # start of the rolling gold-accuracy window


@dataclass(frozen=True, slots=True)
class TaskIn:
    """A labeling task to create: rank ``response_ids`` (k >= 2) of ``prompt_id``.

    ``overlap`` is how many different annotators label it; higher ``priority`` is served first;
    ``reason`` says why it was selected (e.g. ``"uncertain: reward gap 0.03"``).
    ``gold_ranking`` (optional) is the known answer of a gold item, used to score annotators.
    ``eval_run_id`` marks a blind evaluation task of that eval run: its votes stay out of
    training exports unless asked for.
    """

    prompt_id: int
    response_ids: list[int]
    overlap: int = 1
    priority: int = 0
    reason: str | None = None
    gold_ranking: Ranking | None = None
    eval_run_id: int | None = None


@dataclass(frozen=True, slots=True)
class Task:
    """A row of ``tasks``."""

    id: int
    prompt_id: int
    response_ids: list[int]
    overlap: int
    priority: int
    reason: str | None
    created_at: datetime | None = None
    gold_ranking: Ranking | None = None
    eval_run_id: int | None = None


@dataclass(frozen=True, slots=True)
class Assignment:
    """A row of ``assignments``: one annotator's lease on one task.

    ``state`` is ``leased`` (until ``lease_expires_at``), ``done``, ``skipped`` or ``expired``.
    """

    task_id: int
    annotator_id: int
    leased_at: datetime
    lease_expires_at: datetime
    state: str


@dataclass(frozen=True, slots=True)
class LeasedTask:
    """What an annotator sees: a task, its prompt and its responses (in task order)."""

    task: Task
    prompt: Prompt
    responses: list[Response]
    assignment: Assignment


@dataclass(frozen=True, slots=True)
class Comparison:
    """A row of ``comparisons``: a ranking of responses of one prompt by one labeler.

    ``labeler_kind`` is ``human`` or ``ai``; ``labeler`` is an annotator's current name (for a
    labeling-app submission, stored by ``annotator_id``), a dataset's labeling crowd
    (``"hh-rlhf"``) or a judge model. ``flags`` hold e.g. ``both_bad``, ``unsafe``;
    ``confidence`` is in [0, 1] (a judge's soft label) or ``None``.
    """

    id: int
    prompt_id: int
    ranking: Ranking
    labeler_kind: str
    labeler: str
    task_id: int | None = None
    rationale: str | None = None
    flags: list[str] = field(default_factory=list)
    confidence: float | None = None
    duration_ms: int | None = None
    created_at: datetime | None = None
    annotator_id: int | None = None
    eval_run_id: int | None = None
    strength: str | None = None


@dataclass(frozen=True, slots=True)
class JudgmentIn:
    """One judge call to record; ``cache_key`` identifies (inputs, model, template, principle,
    order) so a re-run never calls twice. Tokens are counts, ``latency_ms`` milliseconds."""

    cache_key: str
    judge_model: str
    template: str
    raw_output: str | None
    verdict: str | None
    comparison_id: int | None = None
    principle: str | None = None
    order: Literal["AB", "BA"] | None = None
    probability: float | None = None
    critique: str | None = None
    revision_response_id: int | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency_ms: float | None = None
    meta: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Judgment:
    """A row of ``judgments`` (see :class:`JudgmentIn` for the fields)."""

    id: int
    cache_key: str
    judge_model: str
    template: str
    raw_output: str | None
    verdict: str | None
    comparison_id: int | None = None
    principle: str | None = None
    order: str | None = None
    probability: float | None = None
    critique: str | None = None
    revision_response_id: int | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency_ms: float | None = None
    meta: dict[str, Any] | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Run:
    """A row of ``runs``: a training, generation, judge, evaluation or pipeline job.

    ``parent_run_id`` is model lineage only (the run whose model this one started from);
    ``pipeline_run_id`` is the ``demo``/``loop`` run that orchestrated it. ``pid``/``host``
    identify the process while ``status == "running"``; a run whose process is gone is
    reported as ``interrupted`` by :meth:`prefloop.store.runs.RunsAPI.reap`.
    """

    id: int
    kind: str
    config: dict[str, Any]
    export_id: int | None
    parent_run_id: int | None
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    checkpoint_path: str | None
    summary: dict[str, Any] | None
    pid: int | None = None
    host: str | None = None
    pipeline_run_id: int | None = None


@dataclass(frozen=True, slots=True)
class RunMetric:
    """A row of ``run_metrics``: ``value`` of metric ``name`` at training ``step``."""

    run_id: int
    step: int
    name: str
    value: float


@dataclass(frozen=True, slots=True)
class Export:
    """A row of ``exports``: a pair export written to ``path`` with its filters and sha256.

    ``max_comparison_id`` is the newest comparison the export could see; ``--since-export``
    exports only comparisons after it. ``replaced_by``: the export that overwrote its files.
    """

    id: int
    filters: dict[str, Any]
    n_pairs: int
    path: str
    sha256: str
    max_comparison_id: int | None
    created_at: datetime | None = None
    replaced_by: int | None = None


@dataclass(frozen=True, slots=True)
class Sample:
    """A row of ``samples``: the response model version ``model`` (``run:ID``, the embedded
    default's name, or a path) gave to an evaluation prompt, recorded by eval run ``run_id``.

    ``gen_key`` (sha256 of the checkpoint, sampling settings and seed) lets a later evaluation
    reuse it; ``n_tokens`` generated, ``finished`` (emitted EOS), ``logprob`` the sum of the
    policy's log-probabilities of the response tokens (nats, at the sampling temperature),
    ``token_ids`` the generated ids (EOS included), for log-probs under a reference model.
    """

    run_id: int
    model: str
    prompt_id: int
    response_id: int
    gen_key: str
    n_tokens: int | None = None
    finished: bool | None = None
    logprob: float | None = None
    token_ids: list[int] | None = None
    created_at: datetime | None = None
