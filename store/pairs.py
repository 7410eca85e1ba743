"""Rankings -> pairwise preference triples, aggregated across labelers, and their export.

Each comparison with tie groups ``g1 > g2 > ...`` yields a vote ``chosen > rejected`` for every
``chosen`` in ``gi`` and ``rejected`` in ``gj`` with ``i < j``, and a tie vote for two responses
in one group. Votes of all selected comparisons on the same unordered pair of responses are
aggregated: the majority direction is exported, with ``votes_chosen``, ``votes_rejected``,
``votes_tie`` and ``agreement = votes_chosen / (all votes)``. Pairs with no majority (pure ties,
or as many votes each way) are not exported and are counted in the result.

The export is a snapshot: the pairs are read in one transaction and the files written after it,
so writers are blocked only for the query. Files are deterministic: the same store contents and
filters give byte-identical files.

Output directory layout::

    OUT/train.parquet        TRL conversational preference rows + provenance columns
    OUT/test.parquet         (with --test-fraction) held-out prompts, none of them in train
    OUT/dataset/             datasets.DatasetDict({"train", "test"?}) for datasets.load_from_disk
    OUT/manifest.json        filters, counts, sha256 per file

Row schema (both Parquet and the dataset)::

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
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from .aggregate import AGGREGATES
from .db import Store
from .engine import registered
from .errors import ExportError, ValidationError
from .records import Export

if TYPE_CHECKING:
    from .aggregate import LabelerStats
from .votes import LABELER_JOIN, LABELER_SQL, votes_cte

__all__ = ["PairFilters", "ExportResult", "derive_pairs", "derive_unpaired", "export_pairs", "split_by_prompt",
           "labeler_reliability",
           "verify_export", "pair_votes"]


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
            dataset's crowd, a judge model, ``reward-model:run:3``).
        shard, shards: keep only the ``shard``-th of ``shards`` disjoint parts of the training
            prompts (by sha256, like the split; the test split is the same in every shard):
            e.g. a proxy and a gold reward model on disjoint halves.
        format: ``pairs`` (TRL's conversational preference rows), ``kto`` (TRL's unpaired
            rows ``prompt, completion, label``: thumbs up/down feedback, "both bad" labels
            and, with ``kto_pairs``, each pair's chosen as desirable and rejected as not), or
            the pairs plus an engine's own files: ``openrlhf`` (``openrlhf/{split}.jsonl``)
            or ``verl`` (``verl/{split}.parquet``); see :func:`write_engine_files`.
        kto_pairs: with ``format="kto"``, also the pairs, unpaired.
    """

    source: Literal["human", "ai", "all"] = "all"
    min_agreement: float = 0.0
    dataset: str | None = None
    since_export: int | None = None
    test_fraction: float = 0.0
    seed: int = 0
    include_eval: bool = False
    labeler: str | None = None
    aggregate: str = "majority"
    min_confidence: float = 0.0
    ai_min_agreement: float | None = None
    ai_min_overlap: int = 30
    shard: int = 0
    shards: int = 1
    format: str = "pairs"
    kto_pairs: bool = False

    def __post_init__(self) -> None:
        if self.format not in EXPORT_FORMATS:
            raise ValidationError(f"format {self.format!r} is not one of {', '.join(EXPORT_FORMATS)}")
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
class ExportResult:
    """What :func:`export_pairs` wrote; counts are pairs (``n_conflicts``: pairs the aggregate
    cannot orient, ``n_ties``: pairs with only tie votes, ``n_below_agreement`` and
    ``n_below_confidence``: filtered; ``n_ambiguous``: pairs of tasks a reviewer marked
    ambiguous); ``ai_labelers``: the judge gating's verdicts."""

    export: Export
    n_train: int
    n_test: int
    n_conflicts: int
    n_ties: int
    n_below_agreement: int
    n_comparisons: int
    files: dict[str, str]
    n_below_confidence: int = 0
    ai_labelers: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    n_ambiguous: int = 0


_MESSAGES = '[{"role": "VARCHAR", "content": "VARCHAR"}]'


def derive_pairs(store: Store, filters: PairFilters) -> tuple[pa.Table, dict[str, Any]]:
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
        counts ``n_comparisons``, ``n_conflicts``, ``n_ties``, ``n_below_agreement``,
        ``n_below_confidence``, ``n_ambiguous``, ``max_comparison_id``, ``warnings`` and ``ai_labelers``
        (with gating: ``{labeler, agreement, overlap, kept}`` each).
    """
    import pyarrow.compute as pc

    from .aggregate import ai_agreement, dawid_skene, labeler_votes

    counts: dict[str, Any] = {"ai_labelers": [], "warnings": []}
    with store.atomic() as con:
        max_id = _labeled_votes(store, con, filters)
        if filters.ai_min_agreement is not None:
            agree = ai_agreement(labeler_votes(con, "labeled_votes"))
            ai = [r[0] for r in con.execute("SELECT DISTINCT labeler FROM labeled_votes "
                                            "WHERE labeler_kind = 'ai' ORDER BY 1").fetchall()]
            dropped = []
            for name in ai:
                rate, overlap = agree.get(name, (None, 0))
                kept = rate is not None and overlap >= filters.ai_min_overlap and rate >= filters.ai_min_agreement
                counts["ai_labelers"].append({"labeler": name, "agreement": rate, "overlap": overlap,
                                              "kept": kept})
                if not kept:
                    dropped.append(name)
            con.execute("DELETE FROM labeled_votes WHERE labeler_kind = 'ai' AND labeler IN "
                        "(SELECT unnest(?::VARCHAR[]))", [dropped])
        con.execute("""
            CREATE OR REPLACE TEMP TABLE pair_votes AS
            SELECT prompt_id, lo, hi,
                   count(*) FILTER (dir = 1) AS v_lo, count(*) FILTER (dir = -1) AS v_hi,
                   count(*) FILTER (dir = 0) AS v_tie,
                   list(DISTINCT cid ORDER BY cid) AS comparison_ids,
                   list(DISTINCT labeler_kind ORDER BY labeler_kind) AS labeler_kinds
            FROM labeled_votes GROUP BY prompt_id, lo, hi""")
        counts["n_ambiguous"] = con.execute("""
            DELETE FROM pair_votes v WHERE EXISTS (
                SELECT 1 FROM reviews r WHERE r.decision = 'ambiguous' AND r.prompt_id = v.prompt_id
                  AND list_contains(r.response_ids, v.lo) AND list_contains(r.response_ids, v.hi))
            """).fetchone()[0]
        p_lo = "CASE WHEN v_lo + v_hi > 0 THEN v_lo / (v_lo + v_hi) END"
        weight = "1.0"
        if filters.aggregate == "adjudicated":
            con.execute(f"""
                CREATE OR REPLACE TEMP TABLE pair_votes AS
                WITH {votes_cte("SELECT c.id, c.prompt_id, c.ranking FROM reviews r JOIN comparisons c "
                                "ON c.id = r.comparison_id WHERE r.decision = 'adjudicated'")},
                     adj AS (SELECT prompt_id, lo, hi, max(dir) AS adj_dir FROM votes GROUP BY ALL)
                SELECT v.*, adj.adj_dir FROM pair_votes v LEFT JOIN adj USING (prompt_id, lo, hi)""")
            if not con.execute("SELECT count(*) FILTER (adj_dir IS NOT NULL) FROM pair_votes").fetchone()[0]:
                counts["warnings"].append("--aggregate adjudicated: no reviewer decision covers the "
                                          "selected pairs; their labels are the majority")
            p_lo = (f"CASE WHEN adj_dir = 1 THEN 1.0 WHEN adj_dir = -1 THEN 0.0 WHEN adj_dir = 0 "
                    f"THEN 0.5 ELSE {p_lo} END")
        if filters.aggregate == "dawid-skene":
            posterior, _ = dawid_skene(labeler_votes(con, "labeled_votes"), _gold_labels(con))
            keys = list(posterior)
            post = pa.table({"prompt_id": pa.array([k[0] for k in keys], pa.int64()),
                             "lo": pa.array([k[1] for k in keys], pa.int64()),
                             "hi": pa.array([k[2] for k in keys], pa.int64()),
                             "p_lo": pa.array([posterior[k] for k in keys], pa.float64())})
            with registered(con, "ds_posterior", post):
                con.execute("""CREATE OR REPLACE TEMP TABLE pair_votes AS SELECT v.*, d.p_lo AS ds_p_lo
                               FROM pair_votes v LEFT JOIN ds_posterior d USING (prompt_id, lo, hi)""")
            p_lo, weight = "ds_p_lo", "abs(2 * ds_p_lo - 1)"
        counts.update(dict(zip(
            ("n_comparisons", "n_conflicts", "n_ties"),
            con.execute(f"""
                SELECT (SELECT count(DISTINCT c) FROM (SELECT unnest(comparison_ids) c FROM pair_votes)),
                       count(*) FILTER ({p_lo} = 0.5), count(*) FILTER (v_lo + v_hi = 0)
                FROM pair_votes""").fetchall()[0])))  # fetchall: con.sql() below needs no open result
        table = con.sql(f"""
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
            SELECT from_json(p.messages, '{_MESSAGES}') AS prompt,
                   [{{'role': 'assistant', 'content': rc.text}}] AS chosen,
                   [{{'role': 'assistant', 'content': rr.text}}] AS rejected,
                   m.prompt_id, m.chosen_id, m.rejected_id, p.dataset, m.comparison_ids,
                   m.labeler_kinds, m.votes_chosen, m.votes_rejected, m.votes_tie, m.agreement,
                   m.p_chosen, m.weight, rm.rating_margin::DOUBLE AS rating_margin,
                   p.text_hash AS prompt_hash
            FROM m JOIN prompts p ON p.id = m.prompt_id
            LEFT JOIN rm ON rm.prompt_id = m.prompt_id AND rm.chosen_id = m.chosen_id
                        AND rm.rejected_id = m.rejected_id
            JOIN responses rc ON rc.id = m.chosen_id JOIN responses rr ON rr.id = m.rejected_id
            ORDER BY m.prompt_id, m.chosen_id, m.rejected_id""").to_arrow_table()
        con.execute("DROP TABLE pair_votes")
        con.execute("DROP TABLE labeled_votes")
    n_all = table.num_rows
    if filters.min_agreement > 0:
        table = table.filter(pc.greater_equal(table["agreement"], filters.min_agreement - 1e-12))
    counts["n_below_agreement"] = n_all - table.num_rows
    n_all = table.num_rows
    if filters.min_confidence > 0:
        table = table.filter(pc.greater_equal(table["p_chosen"], filters.min_confidence - 1e-12))
    counts["n_below_confidence"] = n_all - table.num_rows
    counts["max_comparison_id"] = max_id
    return table, counts


def derive_unpaired(store: Store, filters: PairFilters) -> tuple[pa.Table, dict[str, Any]]:
    """Unpaired labels for KTO (TRL's unpaired preference format), in one read transaction.

    Sources: one-response comparisons flagged ``thumbs_up`` / ``thumbs_down`` (``prefloop
    import --format feedback``), every response of a comparison flagged ``both_bad``
    (undesirable), and with ``filters.kto_pairs`` each exported pair's chosen (desirable) and
    rejected (undesirable). Votes on one (prompt, response) are summed (+1 desirable, -1 not);
    a tie is left out and counted in ``n_ties``.

    Returns:
        ``(table, counts)``: rows ``prompt`` (messages), ``completion`` (one assistant
        message), ``label`` (bool), ``prompt_id``, ``response_id``, ``dataset``, ``sources``
        (``feedback``, ``both_bad``, ``pair``), ``votes``, ``prompt_hash``; counts as
        :func:`derive_pairs` (``n_comparisons``, ``n_ties``, ``max_comparison_id`` ...).
    """
    pairs = None
    if filters.kto_pairs:
        pairs, _ = derive_pairs(store, PairFilters(**{**asdict(filters), "format": "pairs"}))
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
        counts: dict[str, Any] = dict(zip(("n_comparisons", "n_ties"), con.execute("""
            WITH a AS (SELECT prompt_id, response_id, sum(vote) AS s FROM unpaired_votes GROUP BY ALL)
            SELECT (SELECT count(DISTINCT cid) FILTER (cid >= 0) FROM unpaired_votes),
                   count(*) FILTER (s = 0) FROM a""").fetchall()[0]))
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
    counts.update({"n_conflicts": 0, "n_below_agreement": 0, "n_below_confidence": 0, "n_ambiguous": 0,
                   "max_comparison_id": max_id, "ai_labelers": [], "warnings": []})
    return table, counts


#: The filters every export applies to comparisons ``c`` joined with their prompt ``p``
#: (parameters from :func:`_selection_params`).
_SELECTED = f"""
    ($labeler::VARCHAR IS NULL OR {LABELER_SQL} = $labeler)
    AND ($source = 'all' OR c.labeler_kind = $source)
    AND ($dataset::VARCHAR IS NULL OR p.dataset = $dataset)
    AND c.id > $since AND c.id <= $max_id
    AND ($include_eval OR c.eval_run_id IS NULL)"""


def _selection_params(store: Store, con, filters: PairFilters) -> dict[str, Any]:
    """The parameters of :data:`_SELECTED`, with ``max_id`` the newest comparison now."""
    since = 0
    if filters.since_export is not None:
        since = store.exports.get(filters.since_export).max_comparison_id or 0
    max_id = con.execute("SELECT coalesce(max(id), 0) FROM comparisons").fetchone()[0]
    return {"source": filters.source, "dataset": filters.dataset, "since": since, "max_id": max_id,
            "include_eval": filters.include_eval, "labeler": filters.labeler}


def _labeled_votes(store: Store, con, filters: PairFilters) -> int:
    """Create temp table ``labeled_votes`` (``cid, prompt_id, lo, hi, dir, labeler_kind,
    labeler``) of the comparisons ``filters`` select; returns the newest comparison id seen."""
    from .aggregate import LABELER_KEY_SQL, PRINCIPLE_JOIN

    selection = f"""
        SELECT c.id, c.prompt_id, c.labeler_kind, c.ranking, {LABELER_KEY_SQL} AS labeler
        FROM comparisons c JOIN prompts p ON p.id = c.prompt_id {LABELER_JOIN} {PRINCIPLE_JOIN}
        WHERE {_SELECTED}"""
    params = _selection_params(store, con, filters)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE labeled_votes AS
        WITH {votes_cte(selection, carry=["labeler_kind", "labeler"])}
        SELECT * FROM votes""", params)
    return params["max_id"]


def labeler_reliability(store: Store, filters: PairFilters | None = None) -> list[LabelerStats]:
    """Each labeler's reliability on the comparisons ``filters`` select (default: all, the
    labels of evaluation tasks included: they are the labeler's votes too): Dawid-Skene accuracy with its Wilson 95% interval, gold accuracy (gold
    tasks anchor the fit), agreement with the others' majority, and in ``extra``:
    ``longer_chosen`` (share of its directed votes that prefer the longer response: length
    bias, 0.5 is none) and, for AI judges, ``first_shown`` (share of its pairwise verdicts for
    the response shown first: position bias; Zheng et al. 2023, "Judging LLM-as-a-judge").

    Returns:
        One :class:`~prefloop.store.aggregate.LabelerStats` per labeler, most accurate first.
    """
    from .aggregate import dawid_skene, labeler_votes

    filters = filters or PairFilters(include_eval=True)
    with store.atomic() as con:
        _labeled_votes(store, con, filters)
        votes = labeler_votes(con, "labeled_votes")
        gold = _gold_labels(con)
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


def _gold_labels(con) -> dict[tuple[int, int, int], int]:
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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


#: ``prefloop export --format`` values.
EXPORT_FORMATS = ("pairs", "kto", "openrlhf", "verl")


def write_engine_files(fmt: str, splits: dict[str, pa.Table], out: Path) -> None:
    """The RL engines' own files next to the pair files, one per split:

    * ``openrlhf/{split}.jsonl``: OpenRLHF's reward-model / DPO rows for ``--prompt_key prompt
      --chosen_key chosen --rejected_key rejected --apply_chat_template`` (its
      ``datasets/reward_dataset.py``: ``prompt`` a message list, ``chosen``/``rejected`` the
      assistant messages appended to it), with ``margin``: the rating difference where the pair
      was rated (``rating_margin``, as Llama 2 used its preference-strength margins), else
      ``2 p_chosen - 1`` (1 for a certain label, near 0 for a doubtful one); OpenRLHF subtracts
      it inside the Bradley-Terry loss.
    * ``verl/{split}.parquet``: verl's RL prompt rows, one per prompt (its data preparation
      examples): ``data_source`` (``prefloop/<dataset>``), ``prompt`` (messages), ``ability``
      (``alignment``), ``reward_model`` ``{style: "model", ground_truth: ""}`` and
      ``extra_info`` ``{split, index, prompt_id, prompt_hash, messages}`` so that rollouts
      scored on a cluster can be matched back to the store's prompts, and
      :mod:`prefloop.training.verl_reward` can score a response with its conversation.
    """
    if fmt == "openrlhf":
        (out / "openrlhf").mkdir()
        for name, t in splits.items():
            with open(out / "openrlhf" / f"{name}.jsonl", "w", encoding="utf-8") as f:
                for r in t.select(["prompt", "chosen", "rejected", "p_chosen", "rating_margin",
                                   "prompt_id", "chosen_id", "rejected_id"]).to_pylist():
                    rated, p = r.pop("rating_margin"), r.pop("p_chosen")
                    r["margin"] = round(rated if rated is not None else 2 * p - 1, 6)
                    f.write(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n")
    elif fmt == "verl":
        (out / "verl").mkdir()
        for name, t in splits.items():
            rows, seen = [], set()
            for r in t.select(["prompt", "prompt_id", "dataset", "prompt_hash"]).to_pylist():
                if r["prompt_id"] in seen:
                    continue
                seen.add(r["prompt_id"])
                rows.append({"data_source": f"prefloop/{r['dataset']}", "prompt": r["prompt"],
                             "ability": "alignment",
                             "reward_model": {"style": "model", "ground_truth": ""},
                             "extra_info": {"split": name, "index": len(rows),
                                            "prompt_id": r["prompt_id"],
                                            "prompt_hash": r["prompt_hash"].hex(),
                                            "messages": json.dumps(r["prompt"], ensure_ascii=False)}})
            pq.write_table(pa.Table.from_pylist(rows), out / "verl" / f"{name}.parquet",
                           compression="zstd")


def _write_dataset(splits: dict[str, pa.Table], out: Path, fingerprints: dict[str, str]) -> None:
    """``save_to_disk`` with fingerprints derived from the data (datasets would otherwise
    draw random ones and the files would differ between identical exports)."""
    import datasets

    datasets.disable_progress_bars()
    datasets.DatasetDict({name: datasets.Dataset(t, fingerprint=fingerprints[name][:16])
                          for name, t in splits.items()}).save_to_disk(str(out))


def export_pairs(store: Store, out: str | Path, filters: PairFilters = PairFilters(), *,
                 overwrite: bool = False) -> ExportResult:
    """Write the pairs selected by ``filters`` to directory ``out`` and record the export.

    Files are written to a temporary directory next to ``out`` and renamed into place, so a
    failure leaves no partial export; a complete but unrecorded export directory at ``out``
    (its process was killed between the rename and the record) is replaced.

    Raises:
        ExportError: ``out`` exists and is not empty (without ``overwrite``), or no pair matches.
    """
    out = Path(out)
    # a complete export directory that no exports row names was left by a process killed
    # between the rename and the record: it is ours to replace
    orphan = ((out / "manifest.json").exists() and out.exists()
              and store.exports.by_path(str(out.resolve())) is None)
    if out.exists() and any(out.iterdir()) and not overwrite and not orphan:
        raise ExportError(f"output directory {out} exists and is not empty: choose a new "
                          "directory or pass --overwrite")
    if filters.format == "kto":
        table, counts = derive_unpaired(store, filters)
    else:
        table, counts = derive_pairs(store, filters)
    if table.num_rows == 0:
        raise ExportError(
            f"no {'feedback labels' if filters.format == 'kto' else 'pairs'} match the filters {json.dumps(_filters_dict(filters))} "
            f"({counts['n_comparisons']} comparisons selected, {counts['n_conflicts']} "
            f"conflicting and {counts['n_ties']} tied pairs, {counts['n_below_agreement']} below "
            f"min agreement, {counts['n_below_confidence']} below min confidence): import or label "
            "more data, or relax the filters")
    train, test = split_by_prompt(table, filters.test_fraction, filters.seed, shard=filters.shard,
                                  shards=filters.shards)
    raw = {"train": train, **({"test": test} if test is not None else {})}
    splits = {name: t.drop_columns(["prompt_hash"]) for name, t in raw.items()}
    n_pairs = sum(t.num_rows for t in splits.values())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for name, t in splits.items():
            pq.write_table(t, tmp / f"{name}.parquet", compression="zstd")
        write_engine_files(filters.format, raw, tmp)
        _write_dataset(splits, tmp / "dataset",
                       {name: _sha256(tmp / f"{name}.parquet") for name in splits})
        files = {str(p.relative_to(tmp)): _sha256(p)
                 for p in sorted(tmp.rglob("*")) if p.is_file()}
        digest = hashlib.sha256("".join(f"{k}\t{v}\n" for k, v in files.items()).encode()).hexdigest()
        manifest = {"format": ("trl-unpaired-preference" if filters.format == "kto"
                               else "trl-conversational-preference"),
                    "filters": _filters_dict(filters),
                    "n_pairs": n_pairs, "splits": {k: v.num_rows for k, v in splits.items()},
                    "counts": {k: v for k, v in counts.items()}, "files": files, "sha256": digest}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
        out.chmod(0o755)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    export = store.exports.record(_filters_dict(filters), n_pairs, str(out.resolve()),
                                  digest, counts["max_comparison_id"])
    return ExportResult(export, splits["train"].num_rows,
                        splits["test"].num_rows if "test" in splits else 0, counts["n_conflicts"],
                        counts["n_ties"], counts["n_below_agreement"], counts["n_comparisons"],
                        files, counts["n_below_confidence"], counts["ai_labelers"],
                        counts["warnings"], counts.get("n_ambiguous", 0))


def _filters_dict(filters: PairFilters) -> dict[str, Any]:
    return asdict(filters)


def verify_export(export: Export) -> Path:
    """Check that an export's files still hash to the recorded sha256; returns its path.

    Raises:
        ExportError: files missing or changed since the export was recorded.
    """
    path = Path(export.path)
    manifest_path = path / "manifest.json"
    if not manifest_path.exists():
        raise ExportError(f"export {export.id}: {manifest_path} is missing; re-export the data")
    manifest = json.loads(manifest_path.read_text())
    files = {k: _sha256(path / k) if (path / k).exists() else "missing"
             for k in manifest["files"]}
    digest = hashlib.sha256("".join(f"{k}\t{v}\n" for k, v in files.items()).encode()).hexdigest()
    if digest != export.sha256:
        changed = [k for k in files if files[k] != manifest["files"][k]]
        raise ExportError(f"export {export.id} at {path} changed since it was recorded "
                          f"(files {changed[:5]}); re-export instead of editing it")
    return path


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
