"""Exports: the record of every pair export a training run can name."""

from __future__ import annotations

import json
from typing import Any

from .engine import Engine, fetch_records, to_json
from .errors import NotFoundError
from .records import Export

__all__ = ["ExportsAPI"]

_COLS = "id, filters, n_pairs, path, sha256, max_comparison_id, created_at, replaced_by"


class ExportsAPI:
    """``store.exports``: path, filters, pair count and sha256 of each export."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def record(self, filters: dict[str, Any], n_pairs: int, path: str, sha256: str,
               max_comparison_id: int | None) -> Export:
        """Record a written pair export."""
        from .platform import emit_event

        with self.engine.atomic() as con:
            export = fetch_records(
                con, Export, f"INSERT INTO exports (filters, n_pairs, path, sha256, max_comparison_id) "
                f"VALUES (?, ?, ?, ?, ?) RETURNING {_COLS}",
                [to_json(filters), n_pairs, path, sha256, max_comparison_id], filters=json.loads)[0]
            emit_event(con, "export.created", {"export_id": export.id, "n_pairs": n_pairs,
                                               "path": path, "sha256": sha256})
            return export

    def get(self, export_id: int) -> Export:
        """The export with this id. Raises :class:`NotFoundError`."""
        with self.engine.atomic() as con:
            found = fetch_records(con, Export, f"SELECT {_COLS} FROM exports WHERE id = ?",
                                  [export_id], filters=json.loads)
        if not found:
            raise NotFoundError(f"no export with id {export_id}")
        return found[0]

    def list(self) -> list[Export]:
        """All exports by id."""
        with self.engine.atomic() as con:
            return fetch_records(con, Export, f"SELECT {_COLS} FROM exports ORDER BY id",
                                 filters=json.loads)

    def mark_replaced(self, path: str, new_id: int) -> None:
        """Mark every earlier export at ``path`` as replaced by export ``new_id`` (its files were
        overwritten): :func:`~prefloop.store.export_files.verify_export` then names the new one."""
        with self.engine.atomic() as con:
            con.execute("UPDATE exports SET replaced_by = ? WHERE path = ? AND id <> ? "
                        "AND replaced_by IS NULL", [new_id, path, new_id])

    def by_path(self, path: str) -> Export | None:
        """The newest export recorded at ``path`` (absolute), or ``None``."""
        with self.engine.atomic() as con:
            found = fetch_records(con, Export, f"SELECT {_COLS} FROM exports WHERE path = ? "
                                 "ORDER BY id DESC LIMIT 1", [path], filters=json.loads)
        return found[0] if found else None
