"""The DuckDB preference store: schema, typed records, importers and pair exports.

The only package that writes SQL. See ``docs/architecture.md`` for the data model and
:class:`Store` for the API.

The public surface is this package (the :class:`Store` facade, its records and errors) and the
modules of :data:`PUBLIC_MODULES`, which other packages may import directly (a test holds them
to it); the rest is the store's inside:

- ``pairs``: labeled pairs from votes (:class:`~.pairs.PairFilters`, ``derive_pairs``);
- ``export_files``: an export written and recorded (``export_pairs``, ``ExportOptions``);
- ``importer`` and ``formats``: files in (``import_file``; the formats' readers and writers);
- ``sources``: prompts named by a source string (a dataset, ``export:ID``, ``set:SPLIT``);
- ``tracking``: runs, metrics and checkpoints of a job (``tracked_run``, ``MetricsLogger``);
- ``counts``: counts over the store (``prefloop stats``, the admin page, progress);
- ``reliability``, ``judge_rows``, ``versions``: the rows behind labeler reliability, judge
  agreement and model versions (the statistics are in ``prefloop.core``);
- ``validation``: the text and name rules every way in shares;
- ``prompt_sets``, ``platform``, ``errors``: prompt sets, the HTTP API's bulk reads, errors;
- ``conversations``: live conversations ranked turn by turn (the labeling app's Chat view).
"""

from .db import Store, default_db_path
from .errors import *  # noqa: F403
from .errors import __all__ as _errors_all
from .records import *  # noqa: F403
from .records import __all__ as _records_all
from .reviews import ReviewItem, ReviewRules
from .tasks import DEFAULT_LEASE_SECONDS, QueueReport
from .validation import MAX_TEXT_CHARS, validate_messages, validate_ranking

#: The submodules other packages may import directly (the rest is the store's inside).
PUBLIC_MODULES = ("pairs", "export_files", "importer", "formats", "sources", "tracking", "counts",
                  "reliability", "judge_rows", "versions", "validation", "prompt_sets", "platform", "errors",
                  "conversations")

__all__ = ["PUBLIC_MODULES", "Store", "default_db_path", "validate_messages", "validate_ranking",
           "DEFAULT_LEASE_SECONDS", "MAX_TEXT_CHARS", "QueueReport", "ReviewRules", "ReviewItem", *_errors_all, *_records_all]
