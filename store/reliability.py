"""Each labeler's reliability (people, datasets' crowds, AI judges under a principle):
Dawid-Skene accuracy (Dawid & Skene 1979) with its Wilson 95% interval, gold accuracy,
agreement with the others, and length and position bias."""

from __future__ import annotations

from prefloop.core.labels import LabelerStats, dawid_skene

from .aggregate import labeler_votes
from .db import Store
from .pairs import PairFilters, gold_labels, selected_votes

__all__ = ["labeler_reliability"]


def labeler_reliability(store: Store, filters: PairFilters | None = None) -> list[LabelerStats]:
    """Each labeler's reliability on the comparisons ``filters`` select (default: all, the
    labels of evaluation tasks included: they are the labeler's votes too): Dawid-Skene accuracy with its Wilson 95% interval, gold accuracy (gold
    tasks anchor the fit), agreement with the others' majority, and in ``extra``:
    ``longer_chosen`` (share of its directed votes that prefer the longer response: length
    bias, 0.5 is none) and, for AI judges, ``first_shown`` (share of its pairwise verdicts for
    the response shown first: position bias; Zheng et al. 2023, "Judging LLM-as-a-judge").

    Returns:
        One :class:`~prefloop.core.labels.LabelerStats` per labeler, most accurate first.
    """
    filters = filters or PairFilters(include_eval=True, include_held_out=True)
    with store.atomic() as con:
        selected_votes(store, con, filters)
        votes = labeler_votes(con, "labeled_votes")
        gold = gold_labels(con)
        longer = dict(con.execute("""
            SELECT v.labeler, avg(CASE WHEN (v.dir > 0) = (length(rl.text) > length(rh.text))
                                  THEN 1.0 ELSE 0.0 END)
            FROM labeled_votes v JOIN responses rl ON rl.id = v.lo JOIN responses rh ON rh.id = v.hi
            WHERE v.dir <> 0 AND length(rl.text) <> length(rh.text) GROUP BY v.labeler""").fetchall())
        first = dict(con.execute("""
            SELECT judge_model || coalesce(' / ' || principle, ''), avg(CASE WHEN verdict = 'A'
                                                                          THEN 1.0 ELSE 0.0 END)
            FROM judgments WHERE verdict IN ('A', 'B') GROUP BY 1""").fetchall())
        con.execute("DROP TABLE labeled_votes")
    _, stats = dawid_skene(votes, gold)
    for st in stats:
        st.extra["longer_chosen"] = longer.get(st.labeler)
        if st.kind == "ai":
            st.extra["first_shown"] = first.get(st.labeler)
    return stats
