"""The :class:`Store` facade: one DuckDB file, one object per concern.

Other packages use the store only through this object::

    s = Store("prefloop.duckdb")
    s.prompts.add(...); s.responses.add(...); s.tasks.lease_next(...)
    s.comparisons.record(...); s.judgments.record(...); s.runs.create(...)

Each attribute is a small API class over the shared :class:`~prefloop.store.engine.Engine`
(attach, turnstile, ``atomic``), as Argilla's client composes its API classes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from .annotators import AnnotatorsAPI
from .comparisons import ComparisonsAPI
from .conversations import ConversationsAPI
from .engine import DEFAULT_LOCK_TIMEOUT, Engine
from .exports import ExportsAPI
from .judgments import JudgmentsAPI
from .platform import APIKeysAPI, WebhooksAPI
from .prompt_sets import PromptSetsAPI
from .prompts import PromptsAPI, ResponsesAPI
from .reviews import ReviewsAPI
from .runs import RunsAPI
from .samples import SamplesAPI
from .tasks import TasksAPI

__all__ = ["Store", "default_db_path"]


def default_db_path() -> Path:
    """``$PREFLOOP_DB`` if set, else ``./prefloop.duckdb``."""
    return Path(os.environ.get("PREFLOOP_DB") or "prefloop.duckdb")


class Store:
    """A preference store in one DuckDB file.

    Args:
        path: the DuckDB file (``default_db_path()`` if ``None``).
        create: create the file if it does not exist (``prefloop init``); otherwise a missing
            file raises :class:`StoreNotFoundError`.
        lock_timeout: seconds to wait for another process's write lock before
            :class:`StoreBusyError` (``$PREFLOOP_LOCK_TIMEOUT``, default 60).

    Attributes:
        prompts, responses, annotators, tasks, comparisons, judgments, runs, exports, samples, reviews,
        api_keys, webhooks, prompt_sets, conversations:
            the API of each table (see their modules).

    Opening applies missing migrations (an older store is upgraded in place).

    Example:
        >>> import tempfile, os
        >>> s = Store(os.path.join(tempfile.mkdtemp(), "p.duckdb"), create=True)
        >>> pid = s.prompts.add([[{"role": "user", "content": "Hi"}]], source="doc")[0]
        >>> s.prompts.get(pid).messages
        [{'role': 'user', 'content': 'Hi'}]
    """

    def __init__(self, path: str | os.PathLike | None = None, *, create: bool = False,
                 lock_timeout: float = DEFAULT_LOCK_TIMEOUT):
        self.engine = Engine(path if path is not None else default_db_path(), create=create,
                             lock_timeout=lock_timeout)
        self.prompts = PromptsAPI(self.engine)
        self.responses = ResponsesAPI(self.engine)
        self.annotators = AnnotatorsAPI(self.engine)
        self.tasks = TasksAPI(self.engine, self.prompts, self.responses)
        self.comparisons = ComparisonsAPI(self.engine, self.tasks)
        self.judgments = JudgmentsAPI(self.engine)
        self.runs = RunsAPI(self.engine)
        self.exports = ExportsAPI(self.engine)
        self.samples = SamplesAPI(self.engine)
        self.reviews = ReviewsAPI(self.engine, self.tasks, self.comparisons)
        self.api_keys = APIKeysAPI(self.engine)
        self.webhooks = WebhooksAPI(self.engine)
        self.prompt_sets = PromptSetsAPI(self.engine)
        self.conversations = ConversationsAPI(self.engine)

    @property
    def path(self) -> Path:
        """The store file, as given."""
        return self.engine.path

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    @classmethod
    def init(cls, path: str | os.PathLike | None = None) -> Store:
        """Create (or open and upgrade) the store at ``path``."""
        return cls(path, create=True)

    @contextmanager
    def atomic(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction around several API calls (they join it); see
        :meth:`Engine.atomic`. Services own their transactions; UI code never calls this."""
        with self.engine.atomic() as con:
            yield con

    def schema_version(self) -> list[str]:
        """Names of the applied migrations, oldest first."""
        return self.engine.schema_version()

    def close(self) -> None:
        """Detach the file now instead of after ``PREFLOOP_LINGER_SECONDS`` idle (other
        prefloop processes need not wait for this; tools outside prefloop, which open the file
        directly, do). The store stays usable: the next unit of work attaches it again."""
        self.engine.release()
