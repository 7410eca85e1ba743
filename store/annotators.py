"""Annotators: the labeling app's users (name, role, argon2 hash, active flag)."""

from __future__ import annotations

from .engine import Engine, fetch_records
from .errors import NotFoundError, ValidationError
from .records import ANNOTATOR_ROLES, Annotator

__all__ = ["AnnotatorsAPI"]

_COLS = "id, name, role, active, password_hash, created_at, qualified_at, paused_reason, gold_since"


class AnnotatorsAPI:
    """``store.annotators``. Comparisons refer to annotators by id, so a rename keeps their
    labels."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def add(self, name: str, role: str = "annotator", password_hash: str | None = None) -> Annotator:
        """Create an annotator. ``password_hash`` must already be hashed (argon2).

        Raises:
            ValidationError: bad role, empty name, or the name is taken.
        """
        self._check_role(role)
        self._check_name(name)
        with self.engine.atomic() as con:
            if con.execute("SELECT 1 FROM annotators WHERE name = ?", [name]).fetchone():
                raise ValidationError(f"annotator {name!r} already exists")
            return fetch_records(con, Annotator, f"INSERT INTO annotators (name, role, password_hash) "
                                 f"VALUES (?, ?, ?) RETURNING {_COLS}", [name, role, password_hash])[0]

    def get_by_id(self, annotator_id: int) -> Annotator:
        """The annotator with this id. Raises :class:`NotFoundError`."""
        with self.engine.atomic() as con:
            found = fetch_records(con, Annotator, f"SELECT {_COLS} FROM annotators WHERE id = ?",
                                  [annotator_id])
        if not found:
            raise NotFoundError(f"no annotator with id {annotator_id}")
        return found[0]

    def get(self, name: str) -> Annotator:
        """The annotator with this name. Raises :class:`NotFoundError`."""
        with self.engine.atomic() as con:
            found = fetch_records(con, Annotator, f"SELECT {_COLS} FROM annotators WHERE name = ?", [name])
        if not found:
            raise NotFoundError(f"no annotator named {name!r} (see `prefloop users list`)")
        return found[0]

    def list(self) -> list[Annotator]:
        """All annotators by id."""
        with self.engine.atomic() as con:
            return fetch_records(con, Annotator, f"SELECT {_COLS} FROM annotators ORDER BY id")

    def update(self, name: str, *, active: bool | None = None, password_hash: str | None = None,
               role: str | None = None, new_name: str | None = None) -> Annotator:
        """Change an annotator's active flag, password hash, role or name.

        Raises:
            NotFoundError: no such annotator.
            ValidationError: bad role, or ``new_name`` is empty or taken.
        """
        if role is not None:
            self._check_role(role)
        with self.engine.atomic() as con:
            a = self.get(name)
            if new_name is not None and new_name != name:
                self._check_name(new_name)
                if con.execute("SELECT 1 FROM annotators WHERE name = ?", [new_name]).fetchone():
                    raise ValidationError(f"annotator {new_name!r} already exists")
            con.execute("UPDATE annotators SET active = ?, password_hash = ?, role = ?, name = ? "
                        "WHERE id = ?",
                        [a.active if active is None else active,
                         a.password_hash if password_hash is None else password_hash,
                         a.role if role is None else role, new_name or a.name, a.id])
            return self.get(new_name or name)

    @staticmethod
    def _check_role(role: str) -> None:
        if role not in ANNOTATOR_ROLES:
            raise ValidationError(f"role {role!r} is not one of {', '.join(ANNOTATOR_ROLES)}")

    @staticmethod
    def _check_name(name: str) -> None:
        if not name or not name.strip():
            raise ValidationError("annotator name is empty")

    def set_qualification(self, annotator_id: int, *, qualified: bool | None = None,
                          paused_reason: str | None = None, reenable: bool = False) -> None:
        """Record a qualification outcome: ``qualified`` sets ``qualified_at`` (now);
        ``paused_reason`` pauses the annotator (their queue is closed until an admin
        re-enables them); ``reenable`` clears the pause, marks them qualified and restarts
        their rolling gold window (``gold_since`` = now)."""
        with self.engine.atomic() as con:
            if reenable:
                con.execute("UPDATE annotators SET paused_reason = NULL, qualified_at = current_timestamp, "
                            "gold_since = current_timestamp WHERE id = ?", [annotator_id])
                return
            if qualified:
                con.execute("UPDATE annotators SET qualified_at = coalesce(qualified_at, current_timestamp) "
                            "WHERE id = ?", [annotator_id])
            if paused_reason is not None:
                con.execute("UPDATE annotators SET paused_reason = ? WHERE id = ?",
                            [paused_reason[:500], annotator_id])
