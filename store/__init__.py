"""The DuckDB preference store: schema, typed records, importers and pair exports.

The only package that writes SQL. See ``docs/architecture.md`` for the data model and
:class:`Store` for the API.
"""

from .db import Store, default_db_path
from .errors import *  # noqa: F403
from .errors import __all__ as _errors_all
from .records import *  # noqa: F403
from .records import __all__ as _records_all
from .reviews import ReviewItem, ReviewRules
from .tasks import DEFAULT_LEASE_SECONDS, QueueReport
from .validation import MAX_TEXT_CHARS, validate_messages, validate_ranking

__all__ = ["Store", "default_db_path", "validate_messages", "validate_ranking",
           "DEFAULT_LEASE_SECONDS", "MAX_TEXT_CHARS", "QueueReport", "ReviewRules", "ReviewItem", *_errors_all, *_records_all]
