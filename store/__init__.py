"""The DuckDB preference store: schema, typed records, importers and pair exports.

The only package that writes SQL. See ``../shared/DESIGN.md`` for the data model.
"""

from .db import DEFAULT_LEASE_SECONDS, Store, default_db_path, validate_messages, validate_ranking
from .errors import *  # noqa: F403
from .errors import __all__ as _errors_all
from .records import *  # noqa: F403
from .records import __all__ as _records_all

__all__ = ["Store", "default_db_path", "validate_messages", "validate_ranking",
           "DEFAULT_LEASE_SECONDS", *_errors_all, *_records_all]
