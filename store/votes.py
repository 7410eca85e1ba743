"""Rankings -> pairwise votes: the one copy of that SQL.

A comparison ranks responses in tie groups, best first. It casts one vote per unordered pair
of its responses: for the response in the earlier group, or a tie vote for two responses of
one group. :func:`votes_cte` turns a selection of comparisons into rows
``(cid, prompt_id, <carried columns>, lo, hi, dir)`` with ``lo < hi`` the pair's response ids
and ``dir`` = 1 (``lo`` preferred), -1 (``hi`` preferred) or 0 (tie). Everything that counts
votes (exports, agreement, judge agreement, candidate pairs, labeler reliability) reads them
from here.

>>> import duckdb
>>> con = duckdb.connect()
>>> sql = votes_cte("SELECT 1 AS id, 7 AS prompt_id, [[12], [10, 11]] AS ranking")
>>> con.execute(f"WITH {sql} SELECT lo, hi, dir FROM votes ORDER BY lo, hi").fetchall()
[(10, 11, 0), (10, 12, -1), (11, 12, -1)]
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["votes_cte", "LABELER_SQL", "LABELER_JOIN"]

#: The labeler of comparison ``c`` as people read it: the annotator's current name for a
#: submission from the labeling app (stored by id, so a rename keeps the labels), else the
#: recorded labeler (a dataset's crowd, a judge model). Needs :data:`LABELER_JOIN`.
LABELER_SQL = "coalesce(an.name, c.labeler)"
LABELER_JOIN = "LEFT JOIN annotators an ON an.id = c.annotator_id"


def votes_cte(selection: str, carry: Sequence[str] = ()) -> str:
    """CTEs (for ``WITH ...``) ending in ``votes``: the votes of the comparisons ``selection``
    returns.

    Args:
        selection: a query with columns ``id``, ``prompt_id``, ``ranking`` and the ``carry``
            columns.
        carry: columns of ``selection`` repeated on every vote (e.g. ``labeler``).

    Returns:
        SQL text defining ``votes(cid, prompt_id, *carry, lo, hi, dir)``.
    """
    extra = "".join(f", {c}" for c in carry)
    a_extra = "".join(f", a.{c}" for c in carry)
    return f"""
        vote_sel AS ({selection}),
        vote_groups AS (SELECT id, prompt_id{extra}, unnest(ranking) AS grp,
                               generate_subscripts(ranking, 1) AS pos FROM vote_sel),
        vote_items AS (SELECT id, prompt_id{extra}, pos, unnest(grp) AS rid FROM vote_groups),
        votes AS (
            SELECT a.id AS cid, a.prompt_id{a_extra},
                   least(a.rid, b.rid) AS lo, greatest(a.rid, b.rid) AS hi,
                   CASE WHEN a.pos = b.pos THEN 0 WHEN a.rid < b.rid THEN 1 ELSE -1 END AS dir
            FROM vote_items a JOIN vote_items b ON a.id = b.id
             AND (a.pos < b.pos OR (a.pos = b.pos AND a.rid < b.rid)))"""
