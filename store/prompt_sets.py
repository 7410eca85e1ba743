"""Recorded prompt sets: every prompt is in at most one of ``train``, ``dev`` (sweeps and plan
choices) and ``test`` (reporting only), with a ``subset`` name that evaluations report apart
(``harmless``, ``benign``). A prompt cannot move between sets once recorded, so a test set can
never overlap the prompts a choice was made on; pair exports leave out dev and test prompts
(:class:`~prefloop.store.pairs.PairFilters` ``held_out``).

>>> import tempfile, os
>>> from prefloop.store import Store
>>> s = Store(os.path.join(tempfile.mkdtemp(), "p.duckdb"), create=True)
>>> a, b = s.prompts.add([[{"role": "user", "content": "Hi"}], [{"role": "user", "content": "Yo"}]])
>>> s.prompt_sets.assign([(a, "test", "benign"), (b, "train", None)], rule="doc")
2
>>> s.prompt_sets.ids("test")
[1]
>>> s.prompt_sets.assign([(a, "dev", "benign")], rule="doc")
Traceback (most recent call last):
...
prefloop.store.errors.PromptSetConflictError: prompt 1 is already in the test set (rule 'doc'); a prompt belongs to one set only
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pyarrow as pa

from .engine import Engine, registered
from .errors import PromptSetConflictError, ValidationError

__all__ = ["PromptSetsAPI", "SPLITS", "PromptSetCount"]

#: The recorded prompt sets.
SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class PromptSetCount:
    """How many prompts of ``dataset`` are in ``split`` / ``subset``."""

    split: str
    subset: str | None
    dataset: str | None
    prompts: int


class PromptSetsAPI:
    """``store.prompt_sets``."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def assign(self, rows: Iterable[tuple[int, str, str | None]], *, rule: str) -> int:
        """Record ``(prompt_id, split, subset)`` rows; a prompt already in the same set is
        left as it is. Returns how many were new.

        Raises:
            ValidationError: an unknown split, or a prompt id that names no prompt.
            PromptSetConflictError: a prompt already in another set (nothing is written).
        """
        items = list(rows)
        bad = sorted({sp for _, sp, _ in items if sp not in SPLITS})
        if bad:
            raise ValidationError(f"prompt set {bad[0]!r}: expected one of {', '.join(SPLITS)}")
        if not items:
            return 0
        batch = pa.table({"prompt_id": pa.array([i for i, _, _ in items], pa.int64()),
                          "split": [sp for _, sp, _ in items], "subset": [sb for _, _, sb in items]})
        with self.engine.atomic() as con, registered(con, "set_batch", batch):
            missing = con.execute("SELECT min(b.prompt_id) FROM set_batch b LEFT JOIN prompts p "
                                  "ON p.id = b.prompt_id WHERE p.id IS NULL").fetchall()[0][0]
            if missing is not None:
                raise ValidationError(f"prompt {missing} does not exist")
            clash = con.execute("""
                SELECT b.prompt_id, s.split, s.rule FROM set_batch b JOIN prompt_sets s USING (prompt_id)
                WHERE s.split <> b.split ORDER BY b.prompt_id LIMIT 1""").fetchall()
            clash = clash or con.execute("""
                SELECT prompt_id, min(split), NULL FROM set_batch GROUP BY prompt_id
                HAVING count(DISTINCT split) > 1 ORDER BY prompt_id LIMIT 1""").fetchall()
            if clash:
                pid, split, prior = clash[0]
                raise PromptSetConflictError(
                    f"prompt {pid} is already in the {split} set" + (f" (rule {prior!r})" if prior else "")
                    + "; a prompt belongs to one set only")
            return con.execute("""
                INSERT INTO prompt_sets (prompt_id, split, subset, rule)
                SELECT prompt_id, any_value(split), any_value(subset), ? FROM set_batch b
                WHERE NOT EXISTS (SELECT 1 FROM prompt_sets s WHERE s.prompt_id = b.prompt_id)
                GROUP BY prompt_id""", [rule]).fetchall()[0][0]

    def ids(self, split: str, subset: str | None = None) -> list[int]:
        """The prompt ids of a set (and subset), ascending.

        Raises:
            ValidationError: an unknown split.
        """
        if split not in SPLITS:
            raise ValidationError(f"prompt set {split!r}: expected one of {', '.join(SPLITS)}")
        sql = "SELECT prompt_id FROM prompt_sets WHERE split = ?"
        params: list = [split]
        if subset is not None:
            sql += " AND subset = ?"
            params.append(subset)
        with self.engine.atomic() as con:
            return [r[0] for r in con.execute(sql + " ORDER BY prompt_id", params).fetchall()]

    def of(self, prompt_ids: Sequence[int]) -> dict[int, tuple[str, str | None]]:
        """``{prompt_id: (split, subset)}`` for the prompts that are in a set."""
        with self.engine.atomic() as con:
            rows = con.execute("SELECT prompt_id, split, subset FROM prompt_sets "
                               "WHERE prompt_id IN (SELECT unnest(?))", [list(prompt_ids)]).fetchall()
        return {pid: (split, subset) for pid, split, subset in rows}

    def counts(self) -> list[PromptSetCount]:
        """Prompts per set, subset and dataset."""
        with self.engine.atomic() as con:
            rows = con.execute("""
                SELECT s.split, s.subset, p.dataset, count(*) FROM prompt_sets s
                JOIN prompts p ON p.id = s.prompt_id GROUP BY 1, 2, 3
                ORDER BY CASE s.split WHEN 'train' THEN 0 WHEN 'dev' THEN 1 ELSE 2 END, 2, 3""").fetchall()
        return [PromptSetCount(*r) for r in rows]
