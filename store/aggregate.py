"""The votes that labels are made from, as the store fetches them: who is a labeler, and each
labeler's directed votes. The statistics on them (Dawid-Skene, agreement with people) are
:mod:`prefloop.core.labels`.

Labelers: an annotator of the labeling app, a dataset's crowd (``hh-rlhf``), and an AI judge
*under one principle* (``smollm2-135m-instruct / harmless``) or a reward model
(``reward-model:run:3``) are each one labeler (:data:`LABELER_KEY_SQL`). An item is a pair of
responses of one prompt; a labeler's label on it is 1 (the lower response id wins) or 0 (the
higher one wins); tie votes carry no direction and stay out of the reliability model.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from .votes import LABELER_SQL

__all__ = ["LABELER_KEY_SQL", "PRINCIPLE_JOIN", "labeler_votes", "AGGREGATES"]

#: How labels are made from votes: a majority, Dawid-Skene, or a reviewer's adjudication
#: (majority where no reviewer decided).
AGGREGATES = ("majority", "dawid-skene", "adjudicated")
#: The judgments' principle per comparison (an AI judge under one principle is one labeler).
PRINCIPLE_JOIN = ("LEFT JOIN (SELECT comparison_id, any_value(principle) AS principle FROM judgments "
                  "WHERE comparison_id IS NOT NULL GROUP BY comparison_id) jp ON jp.comparison_id = c.id")
#: The labeler of comparison ``c`` (needs :data:`LABELER_JOIN` and :data:`PRINCIPLE_JOIN`).
LABELER_KEY_SQL = (f"CASE WHEN c.labeler_kind = 'ai' AND jp.principle IS NOT NULL "
                   f"THEN {LABELER_SQL} || ' / ' || jp.principle ELSE {LABELER_SQL} END")


def labeler_votes(con: duckdb.DuckDBPyConnection, table: str) -> pa.Table:
    """The directed votes of temp table ``table`` (``prompt_id, lo, hi, labeler, labeler_kind,
    dir``) as Arrow, ties left out: ``label`` 1 when ``lo`` won."""
    return con.sql(f"""
        SELECT prompt_id, lo, hi, labeler, any_value(labeler_kind) AS labeler_kind,
               CASE WHEN sum(dir) > 0 THEN 1 ELSE 0 END AS label
        FROM {table} WHERE dir <> 0 GROUP BY prompt_id, lo, hi, labeler HAVING sum(dir) <> 0
        ORDER BY prompt_id, lo, hi, labeler""").to_arrow_table()
