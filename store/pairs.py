"""Rankings -> pairwise preference triples, aggregated across labelers, and their export.

Each comparison with tie groups ``g1 > g2 > ...`` yields a vote ``chosen > rejected`` for every
``chosen`` in ``gi`` and ``rejected`` in ``gj`` with ``i < j``, and a tie vote for two responses
in one group. Votes of all selected comparisons on the same unordered pair of responses are
aggregated: the majority direction is exported, with ``votes_chosen``, ``votes_rejected``,
``votes_tie`` and ``agreement = votes_chosen / (all votes)``. Pairs with no majority (pure ties,
or as many votes each way) are not exported and are counted in the result.

This module selects and aggregates (:func:`derive_pairs`, :func:`derive_unpaired`, the
prompt split); :mod:`prefloop.store.export_files` writes the snapshot files,
:mod:`prefloop.store.formats.engines` the RL engines' own files, and
:mod:`prefloop.store.reliability` scores the labelers.

Row schema of a derived pair (the export's Parquet files and dataset too)::

    prompt: list<{role: str, content: str}>     # the conversation, ends with a user turn
    chosen: list<{role: "assistant", content: str}>
    rejected: list<{role: "assistant", content: str}>
    prompt_id, chosen_id, rejected_id: int64
    dataset: str
    comparison_ids: list<int64>; labeler_kinds: list<str>
    votes_chosen, votes_rejected, votes_tie: int64; agreement: float64 (the chosen side's share
        of all votes)
    p_chosen: float64 in (0.5, 1]   # P(chosen beats rejected) under the export's aggregate
    weight: float64 in [0, 1]       # how much the pair should count (1 under majority)
    rating_margin: float64 or null  # mean aspect rating of chosen minus rejected, averaged over
                                    # the pair's comparisons that rated both (UltraFeedback style)
    margin: float64 or null         # graded preference strength: the mean over the pair's
                                    # comparisons with a strength of +m (they chose `chosen`) or
                                    # -m, m from STRENGTH_MARGINS (significantly 1, better 2/3,
                                    # slightly 1/3, negligibly 0); null when none gave one
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import pyarrow as pa

from .aggregate import AGGREGATES
from .db import Store
from .engine import registered
from .errors import ExportError, ValidationError
from .records import STRENGTH_MARGINS
from .votes import LABELER_JOIN, LABELER_SQL, votes_cte

__all__ = ["PairFilters", "DeriveCounts", "NoPairsMatch", "derive_pairs", "derive_unpaired",
           "split_by_prompt", "pair_votes", "selected_votes", "gold_labels"]

#: :data:`STRENGTH_MARGINS` as SQL ``VALUES`` rows.
_STRENGTH_VALUES = ", ".join(f"('{k}', {v!r})" for k, v in STRENGTH_MARGINS.items())


@dataclass(frozen=True)
class PairFilters:
    """Which comparisons become pairs.

    Attributes:
        source: ``human``, ``ai`` or ``all`` labelers.
        min_agreement: keep pairs whose majority share of votes is at least this (0..1).
        dataset: only prompts of this dataset.
        since_export: only comparisons newer than that export's snapshot.
        test_fraction: share of prompts (not pairs) held out as the test split.
        seed: salt of the deterministic prompt split.
        include_eval: also export the labels of evaluation tasks and judges
            (``prefloop eval``), which are left out by default.
        aggregate: how a pair's label is made from its votes: ``majority``, ``dawid-skene``
            (labeler reliability, :mod:`prefloop.store.aggregate`) or ``adjudicated``.
        min_confidence: keep pairs whose ``p_chosen`` is at least this.
        ai_min_agreement, ai_min_overlap: keep an AI labeler's votes only if it agrees with
            people's majority on at least this share of the pairs both labeled, on at least
            ``ai_min_overlap`` of them (judge gating; ``None``: no gating).
        labeler: only the comparisons of this labeler (the name people read: an annotator, a
            dataset's crowd, a judge model, ``reward-model:run:3``), or of any of several
            (a tuple of names: e.g. a crowd's demonstrations and a reward model's best-of-n).
        shard, shards: keep only the ``shard``-th of ``shards`` disjoint parts of the training
            prompts (by sha256, like the split; the test split is the same in every shard):
            e.g. a proxy and a gold reward model on disjoint halves.
        after_comparison_id: only comparisons newer than this id (one round of on-policy pairs,
            :mod:`prefloop.pipelines.onpolicy`: the labels recorded since the round began; a
            sample equal to an earlier one keeps its response row, so the responses' run would
            miss it).
        include_held_out: also the comparisons of prompts in the recorded dev and test prompt
            sets (:mod:`prefloop.store.prompt_sets`), which every export leaves out by default
            (counted in ``n_held_out``), so no model trains on a prompt that chooses or reports.
        random_labels: the random-label control: each pair's chosen and rejected are swapped
            with probability 1/2 (by sha256 of ``seed`` and the pair), so a method trained on
            them shows what drift alone does.

    What is written from them, and in which format, is :class:`prefloop.store.export_files.ExportOptions`.
    """

    source: Literal["human", "ai", "all"] = "all"
    min_agreement: float = 0.0
    dataset: str | None = None
    since_export: int | None = None
    test_fraction: float = 0.0
    seed: int = 0
    include_eval: bool = False
    labeler: str | tuple[str, ...] | None = None
    aggregate: str = "majority"
    min_confidence: float = 0.0
    ai_min_agreement: float | None = None
    ai_min_overlap: int = 30
    shard: int = 0
    shards: int = 1
    after_comparison_id: int | None = None
    include_held_out: bool = False
    random_labels: bool = False

    def __post_init__(self) -> None:
        if self.source not in ("human", "ai", "all"):
            raise ValidationError(f"source {self.source!r} is not one of human, ai, all")
        if not 0.0 <= self.min_agreement <= 1.0:
            raise ValidationError(f"min_agreement {self.min_agreement} is outside [0, 1]")
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValidationError(f"test_fraction {self.test_fraction} is outside [0, 1)")
        if self.aggregate not in AGGREGATES:
            raise ValidationError(f"aggregate {self.aggregate!r} is not one of {', '.join(AGGREGATES)}")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValidationError(f"min_confidence {self.min_confidence} is outside [0, 1]")
        if self.ai_min_agreement is not None and not 0.0 <= self.ai_min_agreement <= 1.0:
            raise ValidationError(f"ai_min_agreement {self.ai_min_agreement} is outside [0, 1]")
        if not 0 <= self.shard < self.shards:
            raise ValidationError(f"shard {self.shard} is outside [0, {self.shards})")


@dataclass
class DeriveCounts:
    """What a derivation selected and left out; counts are pairs unless named otherwise.

    Attributes:
        n_comparisons: comparisons behind the derived rows.
        n_conflicts: pairs the aggregate cannot orient (as many votes each way).
        n_ties: pairs with only tie votes (unpaired: responses whose votes sum to 0).
        n_below_agreement, n_below_confidence: pairs the filters removed.
        n_ambiguous: pairs of tasks a reviewer marked ambiguous.
        n_held_out: comparisons left out because their prompt is in the dev or test set.
        n_swapped: pairs whose label the random-label control swapped.
        max_comparison_id: the newest comparison in the snapshot (``since_export`` starts there).
        ai_labelers: the judge gating's verdicts, ``{labeler, agreement, overlap, kept}`` each.
        warnings: things the user should know (an aggregate that fell back to the majority).
    """

    n_comparisons: int = 0
    n_conflicts: int = 0
    n_ties: int = 0
    n_below_agreement: int = 0
    n_below_confidence: int = 0
    n_ambiguous: int = 0
    n_held_out: int = 0
    n_swapped: int = 0
    max_comparison_id: int = 0
    ai_labelers: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class NoPairsMatch(ExportError):
    """No pair (or unpaired label) matches the filters; ``counts`` says what was left out."""

    def __init__(self, message: str, counts: DeriveCounts):
        super().__init__(message)
        self.counts = counts


_MESSAGES = '[{"role": "VARCHAR", "content": "VARCHAR"}]'


def derive_pairs(store: Store, filters: PairFilters) -> tuple[pa.Table, DeriveCounts]:
    """Aggregate the selected comparisons into labeled pairs, in one read transaction.

    Steps: the selected comparisons' votes, by labeler (:data:`~prefloop.store.aggregate.LABELER_KEY_SQL`);
    with ``ai_min_agreement``, the votes of AI labelers that agree with people less (or on
    fewer than ``ai_min_overlap`` shared pairs) are left out; each pair's label by
    ``filters.aggregate``: ``majority`` (``p_chosen`` = the chosen side's share of directed
    votes, ``weight`` 1), ``dawid-skene`` (``p_chosen`` = the posterior, ``weight`` =
    ``|2 p_chosen - 1|``; gold tasks anchor it) or ``adjudicated`` (a reviewer's final ranking
    where one was recorded, :mod:`prefloop.store.reviews`: ``p_chosen`` 1; elsewhere the
    majority); then the agreement and confidence filters. Pairs of a task that a reviewer
    marked ambiguous are left out under every aggregate (``n_ambiguous``).

    Returns:
        ``(table, counts)``: the rows of the module docstring's schema plus a ``prompt_hash``
        column (used for the split), ordered by ``(prompt_id, chosen_id, rejected_id)``; and
        the :class:`DeriveCounts`.
    """
    counts = DeriveCounts()
    with store.atomic() as con:
        max_id = selected_votes(store, con, filters, counts)
        if filters.ai_min_agreement is not None:
            _drop_disagreeing_ai(con, filters, counts)
        _group_pair_votes(con, counts)
        p_lo, weight = _label_sql(con, filters, counts)
        counts.n_comparisons, counts.n_conflicts, counts.n_ties = con.execute(f"""
            SELECT (SELECT count(DISTINCT c) FROM (SELECT unnest(comparison_ids) c FROM pair_votes)),
                   count(*) FILTER ({p_lo} = 0.5), count(*) FILTER (v_lo + v_hi = 0)
            FROM pair_votes""").fetchall()[0]  # fetchall: con.sql() below needs no open result
        table = con.sql(_pairs_sql(p_lo, weight)).to_arrow_table()
        con.execute("DROP TABLE pair_votes")
        con.execute("DROP TABLE labeled_votes")
    counts.max_comparison_id = max_id
    table = _confidence_filters(table, filters, counts)
    if filters.random_labels:
        table, counts.n_swapped = _swap_labels(table, filters.seed)
    return table, counts


def _drop_disagreeing_ai(con, filters: PairFilters, counts: DeriveCounts) -> None:
    """Delete from ``labeled_votes`` the votes of AI labelers that agree with people less than
    ``filters.ai_min_agreement`` or on fewer than ``ai_min_overlap`` shared pairs; each AI
    labeler's figures go to ``counts.ai_labelers``."""
    from prefloop.core.labels import ai_agreement

    from .aggregate import labeler_votes

    agree = ai_agreement(labeler_votes(con, "labeled_votes"))
    ai = [r[0] for r in con.execute("SELECT DISTINCT labeler FROM labeled_votes "
                                    "WHERE labeler_kind = 'ai' ORDER BY 1").fetchall()]
    dropped = []
    for name in ai:
        rate, overlap = agree.get(name, (None, 0))
        kept = rate is not None and overlap >= filters.ai_min_overlap and rate >= filters.ai_min_agreement
        counts.ai_labelers.append({"labeler": name, "agreement": rate, "overlap": overlap, "kept": kept})
        if not kept:
            dropped.append(name)
    con.execute("DELETE FROM labeled_votes WHERE labeler_kind = 'ai' AND labeler IN "
                "(SELECT unnest(?::VARCHAR[]))", [dropped])


def _group_pair_votes(con, counts: DeriveCounts) -> None:
    """``labeled_votes`` grouped by pair into the temp table ``pair_votes`` (votes for the
    lower id, the higher, ties; comparison ids; labeler kinds), less the pairs of tasks a
    reviewer marked ambiguous (``counts.n_ambiguous``)."""
    con.execute("""
        CREATE OR REPLACE TEMP TABLE pair_votes AS
        SELECT prompt_id, lo, hi,
               count(*) FILTER (dir = 1) AS v_lo, count(*) FILTER (dir = -1) AS v_hi,
               count(*) FILTER (dir = 0) AS v_tie,
               list(DISTINCT cid ORDER BY cid) AS comparison_ids,
               list(DISTINCT labeler_kind ORDER BY labeler_kind) AS labeler_kinds
        FROM labeled_votes GROUP BY prompt_id, lo, hi""")
    counts.n_ambiguous = con.execute("""
        DELETE FROM pair_votes v WHERE EXISTS (
            SELECT 1 FROM reviews r WHERE r.decision = 'ambiguous' AND r.prompt_id = v.prompt_id
              AND list_contains(r.response_ids, v.lo) AND list_contains(r.response_ids, v.hi))
        """).fetchone()[0]


def _label_sql(con, filters: PairFilters, counts: DeriveCounts) -> tuple[str, str]:
    """SQL expressions over ``pair_votes`` for the lower id's probability of being chosen and
    the pair's weight under ``filters.aggregate`` (adding the columns they read)."""
    from prefloop.core.labels import dawid_skene

    from .aggregate import labeler_votes

    p_lo = "CASE WHEN v_lo + v_hi > 0 THEN v_lo / (v_lo + v_hi) END"
    if filters.aggregate == "adjudicated":
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE pair_votes AS
            WITH {votes_cte("SELECT c.id, c.prompt_id, c.ranking FROM reviews r JOIN comparisons c "
                            "ON c.id = r.comparison_id WHERE r.decision = 'adjudicated'")},
                 adj AS (SELECT prompt_id, lo, hi, max(dir) AS adj_dir FROM votes GROUP BY ALL)
            SELECT v.*, adj.adj_dir FROM pair_votes v LEFT JOIN adj USING (prompt_id, lo, hi)""")
        if not con.execute("SELECT count(*) FILTER (adj_dir IS NOT NULL) FROM pair_votes").fetchone()[0]:
            counts.warnings.append("--aggregate adjudicated: no reviewer decision covers the "
                                   "selected pairs; their labels are the majority")
        return (f"CASE WHEN adj_dir = 1 THEN 1.0 WHEN adj_dir = -1 THEN 0.0 WHEN adj_dir = 0 "
                f"THEN 0.5 ELSE {p_lo} END"), "1.0"
    if filters.aggregate == "dawid-skene":
        posterior, _ = dawid_skene(labeler_votes(con, "labeled_votes"), gold_labels(con))
        keys = list(posterior)
        post = pa.table({"prompt_id": pa.array([k[0] for k in keys], pa.int64()),
                         "lo": pa.array([k[1] for k in keys], pa.int64()),
                         "hi": pa.array([k[2] for k in keys], pa.int64()),
                         "p_lo": pa.array([posterior[k] for k in keys], pa.float64())})
        with registered(con, "ds_posterior", post):
            con.execute("""CREATE OR REPLACE TEMP TABLE pair_votes AS SELECT v.*, d.p_lo AS ds_p_lo
                           FROM pair_votes v LEFT JOIN ds_posterior d USING (prompt_id, lo, hi)""")
        return "ds_p_lo", "abs(2 * ds_p_lo - 1)"
    return p_lo, "1.0"


def _pairs_sql(p_lo: str, weight: str) -> str:
    """The query that turns ``pair_votes`` into the pairs of the module docstring's schema."""
    return f"""
        WITH a AS (SELECT *, {p_lo} AS p_lo, {weight} AS w FROM pair_votes),
             m AS (
            SELECT prompt_id, comparison_ids, labeler_kinds,
                   CASE WHEN p_lo > 0.5 THEN lo ELSE hi END AS chosen_id,
                   CASE WHEN p_lo > 0.5 THEN hi ELSE lo END AS rejected_id,
                   CASE WHEN p_lo > 0.5 THEN v_lo ELSE v_hi END AS votes_chosen,
                   CASE WHEN p_lo > 0.5 THEN v_hi ELSE v_lo END AS votes_rejected,
                   v_tie AS votes_tie,
                   (CASE WHEN p_lo > 0.5 THEN v_lo ELSE v_hi END) / (v_lo + v_hi + v_tie) AS agreement,
                   greatest(p_lo, 1 - p_lo)::DOUBLE AS p_chosen, w::DOUBLE AS weight
            FROM a WHERE p_lo IS NOT NULL AND p_lo <> 0.5)
        ,rt AS (SELECT comparison_id, response_id, avg(value) AS v FROM ratings GROUP BY ALL),
             rm AS (SELECT m.prompt_id, m.chosen_id, m.rejected_id, avg(c.v - r.v) AS rating_margin
                    FROM m, unnest(m.comparison_ids) u(cid)
                    JOIN rt c ON c.comparison_id = u.cid AND c.response_id = m.chosen_id
                    JOIN rt r ON r.comparison_id = u.cid AND r.response_id = m.rejected_id
                    GROUP BY ALL)
        ,sm AS (SELECT m.prompt_id, m.chosen_id, m.rejected_id,
                       avg(CASE WHEN c.ranking[1][1] = m.chosen_id THEN g.m ELSE -g.m END) AS margin
                FROM m, unnest(m.comparison_ids) u(cid)
                JOIN comparisons c ON c.id = u.cid AND c.strength IS NOT NULL
                JOIN (VALUES {_STRENGTH_VALUES}) g(strength, m) ON g.strength = c.strength
                GROUP BY ALL)
        SELECT from_json(p.messages, '{_MESSAGES}') AS prompt,
               [{{'role': 'assistant', 'content': rc.text}}] AS chosen,
               [{{'role': 'assistant', 'content': rr.text}}] AS rejected,
               m.prompt_id, m.chosen_id, m.rejected_id, p.dataset, m.comparison_ids,
               m.labeler_kinds, m.votes_chosen, m.votes_rejected, m.votes_tie, m.agreement,
               m.p_chosen, m.weight, rm.rating_margin::DOUBLE AS rating_margin,
               sm.margin::DOUBLE AS margin, p.text_hash AS prompt_hash
        FROM m JOIN prompts p ON p.id = m.prompt_id
        LEFT JOIN rm ON rm.prompt_id = m.prompt_id AND rm.chosen_id = m.chosen_id
                    AND rm.rejected_id = m.rejected_id
        LEFT JOIN sm ON sm.prompt_id = m.prompt_id AND sm.chosen_id = m.chosen_id
                    AND sm.rejected_id = m.rejected_id
        JOIN responses rc ON rc.id = m.chosen_id JOIN responses rr ON rr.id = m.rejected_id
        ORDER BY m.prompt_id, m.chosen_id, m.rejected_id"""


def _confidence_filters(table: pa.Table, filters: PairFilters, counts: DeriveCounts) -> pa.Table:
    """The ``min_agreement`` and ``min_confidence`` filters, counting what each left out."""
    import pyarrow.compute as pc

    n_all = table.num_rows
    if filters.min_agreement > 0:
        table = table.filter(pc.greater_equal(table["agreement"], filters.min_agreement - 1e-12))
    counts.n_below_agreement = n_all - table.num_rows
    n_all = table.num_rows
    if filters.min_confidence > 0:
        table = table.filter(pc.greater_equal(table["p_chosen"], filters.min_confidence - 1e-12))
    counts.n_below_confidence = n_all - table.num_rows
    return table


def _swap_labels(table: pa.Table, seed: int) -> tuple[pa.Table, int]:
    """The random-label control: swap chosen and rejected (texts, ids, vote counts; ``p_chosen``
    stays the label's confidence) of the pairs whose sha256 of ``seed:prompt:chosen:rejected``
    is odd. Returns the table and how many were swapped."""
    import hashlib

    import pyarrow.compute as pc

    keys = zip(table["prompt_id"].to_pylist(), table["chosen_id"].to_pylist(), table["rejected_id"].to_pylist())
    flip = pa.array([hashlib.sha256(f"{seed}:{p}:{c}:{r}".encode()).digest()[0] % 2 == 1 for p, c, r in keys])
    for a, b in (("chosen", "rejected"), ("chosen_id", "rejected_id"), ("votes_chosen", "votes_rejected")):
        new_a, new_b = pc.if_else(flip, table[b], table[a]), pc.if_else(flip, table[a], table[b])
        table = table.set_column(table.schema.get_field_index(a), a, new_a)
        table = table.set_column(table.schema.get_field_index(b), b, new_b)
    return table, int(pc.sum(flip).as_py() or 0)


def derive_unpaired(store: Store, filters: PairFilters, *, with_pairs: bool = False
                    ) -> tuple[pa.Table, DeriveCounts]:
    """Unpaired labels for KTO (TRL's unpaired preference format), in one read transaction.

    Sources: one-response comparisons flagged ``thumbs_up`` / ``thumbs_down`` (``prefloop
    import --format feedback``), every response of a comparison flagged ``both_bad``
    (undesirable), and with ``with_pairs`` each derived pair's chosen (desirable) and
    rejected (undesirable). Votes on one (prompt, response) are summed (+1 desirable, -1 not);
    a tie is left out and counted in ``n_ties``.

    Returns:
        ``(table, counts)``: rows ``prompt`` (messages), ``completion`` (one assistant
        message), ``label`` (bool), ``prompt_id``, ``response_id``, ``dataset``, ``sources``
        (``feedback``, ``both_bad``, ``pair``), ``votes``, ``prompt_hash``; and the
        :class:`DeriveCounts` (``n_comparisons``, ``n_ties``, ``max_comparison_id``).
    """
    pairs = derive_pairs(store, filters)[0] if with_pairs else None
    with store.atomic() as con:
        params = _selection_params(store, con, filters)
        max_id = params["max_id"]
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE unpaired_votes AS
            WITH sel AS (
                SELECT c.id, c.prompt_id, c.ranking, c.flags FROM comparisons c
                JOIN prompts p ON p.id = c.prompt_id {LABELER_JOIN}
                WHERE {_SELECTED})
            SELECT id AS cid, prompt_id, ranking[1][1] AS response_id,
                   CASE WHEN list_contains(flags, 'thumbs_up') THEN 1 ELSE -1 END AS vote,
                   'feedback' AS kind
            FROM sel WHERE len(ranking) = 1 AND len(ranking[1]) = 1
              AND (list_contains(flags, 'thumbs_up') OR list_contains(flags, 'thumbs_down'))
            UNION ALL
            SELECT id, prompt_id, unnest(flatten(ranking)), -1, 'both_bad'
            FROM sel WHERE list_contains(flags, 'both_bad')""", params)
        if pairs is not None and pairs.num_rows:
            flat = pa.table({
                "cid": pa.array([-1] * (2 * pairs.num_rows), pa.int64()),
                "prompt_id": pa.concat_arrays([pairs["prompt_id"].combine_chunks()] * 2),
                "response_id": pa.concat_arrays([pairs["chosen_id"].combine_chunks(),
                                                 pairs["rejected_id"].combine_chunks()]),
                "vote": pa.array([1] * pairs.num_rows + [-1] * pairs.num_rows, pa.int32()),
                "kind": pa.array(["pair"] * (2 * pairs.num_rows))})
            with registered(con, "pair_flat", flat):
                con.execute("INSERT INTO unpaired_votes SELECT * FROM pair_flat")
        n_comparisons, n_ties = con.execute("""
            WITH a AS (SELECT prompt_id, response_id, sum(vote) AS s FROM unpaired_votes GROUP BY ALL)
            SELECT (SELECT count(DISTINCT cid) FILTER (cid >= 0) FROM unpaired_votes),
                   count(*) FILTER (s = 0) FROM a""").fetchall()[0]
        table = con.sql(f"""
            WITH a AS (SELECT prompt_id, response_id, sum(vote) AS s, count(*) AS votes,
                              list(DISTINCT kind ORDER BY kind) AS sources
                       FROM unpaired_votes GROUP BY prompt_id, response_id)
            SELECT from_json(p.messages, '{_MESSAGES}') AS prompt,
                   [{{'role': 'assistant', 'content': r.text}}] AS completion, a.s > 0 AS label,
                   a.prompt_id, a.response_id, p.dataset, a.sources, a.votes,
                   p.text_hash AS prompt_hash
            FROM a JOIN prompts p ON p.id = a.prompt_id JOIN responses r ON r.id = a.response_id
            WHERE a.s <> 0 ORDER BY a.prompt_id, a.response_id""").to_arrow_table()
        con.execute("DROP TABLE unpaired_votes")
    return table, DeriveCounts(n_comparisons=n_comparisons, n_ties=n_ties, max_comparison_id=max_id)


#: The filters every export applies to comparisons ``c`` joined with their prompt ``p``
#: (parameters from :func:`_selection_params`).
_SELECTED = f"""
    ($labeler::VARCHAR[] IS NULL OR list_contains($labeler::VARCHAR[], {LABELER_SQL}))
    AND ($source = 'all' OR c.labeler_kind = $source)
    AND ($dataset::VARCHAR IS NULL OR p.dataset = $dataset)
    AND c.id > $since AND c.id <= $max_id
    AND ($include_eval OR c.eval_run_id IS NULL)
    AND ($after_id::BIGINT IS NULL OR c.id > $after_id)
    AND ($include_held_out OR NOT EXISTS (SELECT 1 FROM prompt_sets ps
                                          WHERE ps.prompt_id = c.prompt_id AND ps.split <> 'train'))"""


def _selection_params(store: Store, con, filters: PairFilters) -> dict[str, Any]:
    """The parameters of :data:`_SELECTED`, with ``max_id`` the newest comparison now."""
    since = 0
    if filters.since_export is not None:
        since = store.exports.get(filters.since_export).max_comparison_id or 0
    max_id = con.execute("SELECT coalesce(max(id), 0) FROM comparisons").fetchone()[0]
    return {"source": filters.source, "dataset": filters.dataset, "since": since, "max_id": max_id,
            "include_eval": filters.include_eval,
            "labeler": None if filters.labeler is None else [filters.labeler] if isinstance(filters.labeler, str)
            else list(filters.labeler),
            "after_id": filters.after_comparison_id, "include_held_out": filters.include_held_out}


def selected_votes(store: Store, con, filters: PairFilters, counts: DeriveCounts | None = None) -> int:
    """Create temp table ``labeled_votes`` (``cid, prompt_id, lo, hi, dir, labeler_kind,
    labeler``) of the comparisons ``filters`` select; returns the newest comparison id seen
    (and fills ``counts.n_held_out``)."""
    counts = counts if counts is not None else DeriveCounts()
    from .aggregate import LABELER_KEY_SQL, PRINCIPLE_JOIN

    selection = f"""
        SELECT c.id, c.prompt_id, c.labeler_kind, c.ranking, {LABELER_KEY_SQL} AS labeler
        FROM comparisons c JOIN prompts p ON p.id = c.prompt_id {LABELER_JOIN} {PRINCIPLE_JOIN}
        WHERE {_SELECTED}"""
    params = _selection_params(store, con, filters)
    if not filters.include_held_out:
        counts.n_held_out = con.execute(f"""
            SELECT count(*) FROM comparisons c JOIN prompts p ON p.id = c.prompt_id {LABELER_JOIN}
            WHERE {_SELECTED.replace("$include_held_out OR NOT", "NOT $include_held_out AND")}""",
                                        params).fetchall()[0][0]
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE labeled_votes AS
        WITH {votes_cte(selection, carry=["labeler_kind", "labeler"])}
        SELECT * FROM votes""", params)
    return params["max_id"]


def gold_labels(con) -> dict[tuple[int, int, int], int]:
    """Known labels of items from gold tasks: 1 when the lower response id is the better."""
    rows = con.execute(f"""
        WITH {votes_cte("SELECT id, prompt_id, gold_ranking AS ranking FROM tasks WHERE gold_ranking IS NOT NULL")}
        SELECT DISTINCT prompt_id, lo, hi, dir FROM votes WHERE dir <> 0""").fetchall()
    return {(p, lo, hi): int(d > 0) for p, lo, hi, d in rows}


def split_by_prompt(table: pa.Table, test_fraction: float, seed: int = 0, *, shard: int = 0,
                    shards: int = 1) -> tuple[pa.Table, pa.Table | None]:
    """Split pairs into train/test by prompt: ``round(test_fraction * n_prompts)`` prompts
    (at least 1 when the fraction is positive and there are 2+ prompts), chosen by sha256 of
    ``seed:prompt_hash``, go to test, so no prompt is in both splits. With ``shards > 1`` the
    train split keeps the prompts of one of ``shards`` disjoint parts (in the same hash order).
    """
    import pyarrow.compute as pc

    prompts = sorted(set(table["prompt_hash"].to_pylist()),
                     key=lambda h: hashlib.sha256(f"{seed}:{h.hex()}".encode()).hexdigest())
    n_test = 0
    if test_fraction > 0:
        n_test = max(0, min(len(prompts) - 1, max(1, round(test_fraction * len(prompts)))))
    train_prompts = prompts[n_test:][shard::shards]
    train = table.filter(pc.is_in(table["prompt_hash"], value_set=pa.array(train_prompts, pa.binary())))
    if n_test == 0:
        return train, None
    return train, table.filter(pc.is_in(table["prompt_hash"], value_set=pa.array(prompts[:n_test])))


def pair_votes(store: Store, *, labeler_kind: str | None = None, labeler: str | None = None,
               exclude_labeler: str | None = None) -> list[dict[str, Any]]:
    """Votes per unordered response pair (``lo < hi``) and comparison rationale, for the
    comparisons of the given labeler kind / labeler (``exclude_labeler`` leaves one out;
    labelers by the name people read, see :data:`~prefloop.store.votes.LABELER_SQL`).

    Returns rows ``{"prompt_id", "lo", "hi", "rationale", "v_lo", "v_hi", "v_tie"}`` where
    ``v_lo`` counts votes for ``lo`` over ``hi``; ordered by prompt, pair, rationale.
    """
    selection = f"""
        SELECT c.id, c.prompt_id, c.ranking, coalesce(c.rationale, '') AS rationale
        FROM comparisons c {LABELER_JOIN}
        WHERE ($kind::VARCHAR IS NULL OR c.labeler_kind = $kind)
          AND ($labeler::VARCHAR IS NULL OR {LABELER_SQL} = $labeler)
          AND ($exclude::VARCHAR IS NULL OR {LABELER_SQL} <> $exclude)"""
    with store.atomic() as con:
        rows = con.execute(f"""
            WITH {votes_cte(selection, carry=["rationale"])}
            SELECT prompt_id, lo, hi, rationale, count(*) FILTER (dir = 1), count(*) FILTER (dir = -1),
                   count(*) FILTER (dir = 0)
            FROM votes GROUP BY ALL ORDER BY prompt_id, lo, hi, rationale""",
            {"kind": labeler_kind, "labeler": labeler, "exclude": exclude_labeler}).fetchall()
    return [dict(zip(("prompt_id", "lo", "hi", "rationale", "v_lo", "v_hi", "v_tie"), r)) for r in rows]
