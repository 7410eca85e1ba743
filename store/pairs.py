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
    votes_chosen, votes_rejected, votes_tie: int64; agreement: float64 in (0.5, 1]
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from .db import Store
from .errors import ExportError, ValidationError
from .records import Export
from .votes import LABELER_JOIN, LABELER_SQL, votes_cte

__all__ = ["PairFilters", "ExportResult", "derive_pairs", "export_pairs", "split_by_prompt",
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
    """

    source: Literal["human", "ai", "all"] = "all"
    min_agreement: float = 0.0
    dataset: str | None = None
    since_export: int | None = None
    test_fraction: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.source not in ("human", "ai", "all"):
            raise ValidationError(f"source {self.source!r} is not one of human, ai, all")
        if not 0.0 <= self.min_agreement <= 1.0:
            raise ValidationError(f"min_agreement {self.min_agreement} is outside [0, 1]")
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValidationError(f"test_fraction {self.test_fraction} is outside [0, 1)")


@dataclass
class ExportResult:
    """What :func:`export_pairs` wrote; counts are pairs (``n_conflicts``: pairs with as many
    votes each way, ``n_ties``: pairs with only tie votes, ``n_below_agreement``: filtered)."""

    export: Export
    n_train: int
    n_test: int
    n_conflicts: int
    n_ties: int
    n_below_agreement: int
    n_comparisons: int
    files: dict[str, str]


_MESSAGES = '[{"role": "VARCHAR", "content": "VARCHAR"}]'


def derive_pairs(store: Store, filters: PairFilters) -> tuple[pa.Table, dict[str, int]]:
    """Aggregate the selected comparisons into pairs, in one read transaction.

    Returns:
        ``(table, counts)``: the rows of the module docstring's schema plus a ``prompt_hash``
        column (used for the split), ordered by ``(prompt_id, chosen_id, rejected_id)``; and
        counts ``n_comparisons``, ``n_conflicts``, ``n_ties``, ``n_below_agreement``,
        ``max_comparison_id``.
    """
    selection = """
        SELECT c.id, c.prompt_id, c.labeler_kind, c.ranking FROM comparisons c
        JOIN prompts p ON p.id = c.prompt_id
        WHERE ($source = 'all' OR c.labeler_kind = $source)
          AND ($dataset::VARCHAR IS NULL OR p.dataset = $dataset)
          AND c.id > $since AND c.id <= $max_id"""
    with store.atomic() as con:
        since = 0
        if filters.since_export is not None:
            since = store.exports.get(filters.since_export).max_comparison_id or 0
        max_id = con.execute("SELECT coalesce(max(id), 0) FROM comparisons").fetchone()[0]
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE pair_votes AS
            WITH {votes_cte(selection, carry=["labeler_kind"])}
            SELECT prompt_id, lo, hi,
                   count(*) FILTER (dir = 1) AS v_lo, count(*) FILTER (dir = -1) AS v_hi,
                   count(*) FILTER (dir = 0) AS v_tie,
                   list(DISTINCT cid ORDER BY cid) AS comparison_ids,
                   list(DISTINCT labeler_kind ORDER BY labeler_kind) AS labeler_kinds
            FROM votes GROUP BY prompt_id, lo, hi""",
                    {"source": filters.source, "dataset": filters.dataset, "since": since,
                     "max_id": max_id})
        counts = dict(zip(
            ("n_comparisons", "n_conflicts", "n_ties"),
            con.execute("""
                SELECT (SELECT count(DISTINCT c) FROM (SELECT unnest(comparison_ids) c FROM pair_votes)),
                       count(*) FILTER (v_lo = v_hi AND v_lo > 0),
                       count(*) FILTER (v_lo = v_hi AND v_lo = 0)
                FROM pair_votes""").fetchall()[0]))  # fetchall: con.sql() below needs no open result
        table = con.sql(f"""
            WITH m AS (
                SELECT prompt_id, comparison_ids, labeler_kinds,
                       CASE WHEN v_lo > v_hi THEN lo ELSE hi END AS chosen_id,
                       CASE WHEN v_lo > v_hi THEN hi ELSE lo END AS rejected_id,
                       greatest(v_lo, v_hi) AS votes_chosen, least(v_lo, v_hi) AS votes_rejected,
                       v_tie AS votes_tie,
                       greatest(v_lo, v_hi) / (v_lo + v_hi + v_tie) AS agreement
                FROM pair_votes WHERE v_lo <> v_hi)
            SELECT from_json(p.messages, '{_MESSAGES}') AS prompt,
                   [{{'role': 'assistant', 'content': rc.text}}] AS chosen,
                   [{{'role': 'assistant', 'content': rr.text}}] AS rejected,
                   m.prompt_id, m.chosen_id, m.rejected_id, p.dataset, m.comparison_ids,
                   m.labeler_kinds, m.votes_chosen, m.votes_rejected, m.votes_tie, m.agreement,
                   p.text_hash AS prompt_hash
            FROM m JOIN prompts p ON p.id = m.prompt_id
            JOIN responses rc ON rc.id = m.chosen_id JOIN responses rr ON rr.id = m.rejected_id
            ORDER BY m.prompt_id, m.chosen_id, m.rejected_id""").to_arrow_table()
        con.execute("DROP TABLE pair_votes")
    n_all = table.num_rows
    if filters.min_agreement > 0:
        import pyarrow.compute as pc

        table = table.filter(pc.greater_equal(table["agreement"], filters.min_agreement - 1e-12))
    counts["n_below_agreement"] = n_all - table.num_rows
    counts["max_comparison_id"] = max_id
    return table, counts


def split_by_prompt(table: pa.Table, test_fraction: float, seed: int = 0
                    ) -> tuple[pa.Table, pa.Table | None]:
    """Split pairs into train/test by prompt: ``round(test_fraction * n_prompts)`` prompts
    (at least 1 when the fraction is positive and there are 2+ prompts), chosen by sha256 of
    ``seed:prompt_hash``, go to test, so no prompt is in both splits."""
    if test_fraction <= 0:
        return table, None
    import pyarrow.compute as pc

    prompts = sorted(set(table["prompt_hash"].to_pylist()),
                     key=lambda h: hashlib.sha256(f"{seed}:{h.hex()}".encode()).hexdigest())
    n_test = min(len(prompts) - 1, max(1, round(test_fraction * len(prompts))))
    if n_test <= 0:
        return table, None
    is_test = pc.is_in(table["prompt_hash"], value_set=pa.array(prompts[:n_test]))
    return table.filter(pc.invert(is_test)), table.filter(is_test)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
    failure leaves no partial export.

    Raises:
        ExportError: ``out`` exists and is not empty (without ``overwrite``), or no pair matches.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ExportError(f"output directory {out} exists and is not empty: choose a new "
                          "directory or pass --overwrite")
    table, counts = derive_pairs(store, filters)
    if table.num_rows == 0:
        raise ExportError(
            f"no pairs match the filters {json.dumps(_filters_dict(filters))} "
            f"({counts['n_comparisons']} comparisons selected, {counts['n_conflicts']} "
            f"conflicting and {counts['n_ties']} tied pairs, {counts['n_below_agreement']} below "
            "min agreement): import or label more data, or relax the filters")
    train, test = split_by_prompt(table, filters.test_fraction, filters.seed)
    splits = {"train": train.drop_columns(["prompt_hash"])}
    if test is not None:
        splits["test"] = test.drop_columns(["prompt_hash"])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for name, t in splits.items():
            pq.write_table(t, tmp / f"{name}.parquet", compression="zstd")
        _write_dataset(splits, tmp / "dataset",
                       {name: _sha256(tmp / f"{name}.parquet") for name in splits})
        files = {str(p.relative_to(tmp)): _sha256(p)
                 for p in sorted(tmp.rglob("*")) if p.is_file()}
        digest = hashlib.sha256("".join(f"{k}\t{v}\n" for k, v in files.items()).encode()).hexdigest()
        manifest = {"format": "trl-conversational-preference", "filters": _filters_dict(filters),
                    "n_pairs": table.num_rows, "splits": {k: v.num_rows for k, v in splits.items()},
                    "counts": {k: v for k, v in counts.items()}, "files": files, "sha256": digest}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
        out.chmod(0o755)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    export = store.exports.record(_filters_dict(filters), table.num_rows, str(out.resolve()),
                                 digest, counts["max_comparison_id"])
    return ExportResult(export, splits["train"].num_rows,
                        splits["test"].num_rows if "test" in splits else 0, counts["n_conflicts"],
                        counts["n_ties"], counts["n_below_agreement"], counts["n_comparisons"],
                        files)


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
