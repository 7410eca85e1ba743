"""The export snapshot: the pairs (or unpaired labels) of :mod:`prefloop.store.pairs`,
written to a directory and recorded, so that every trained model names the exact labels
behind it.

The export is a snapshot: the pairs are read in one transaction and the files written after it,
so writers are blocked only for the query. Files are deterministic: the same store contents and
filters give byte-identical files.

Output directory layout::

    OUT/train.parquet        TRL conversational preference rows + provenance columns
    OUT/test.parquet         (with --test-fraction) held-out prompts, none of them in train
    OUT/dataset/             datasets.DatasetDict({"train", "test"?}) for datasets.load_from_disk
    OUT/manifest.json        filters, counts, sha256 per file
    OUT/openrlhf/, OUT/verl/ (with format openrlhf / verl) the engines' files

The row schema is :mod:`prefloop.store.pairs`'s.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .db import Store
from .errors import ExportError, ValidationError
from .formats.engines import ENGINE_FORMATS, EXPORT_FORMATS, write_engine_files
from .pairs import (
    DeriveCounts,
    NoPairsMatch,
    PairFilters,
    derive_pairs,
    derive_unpaired,
    split_by_prompt,
)
from .records import Export

__all__ = ["ExportOptions", "ExportResult", "export_pairs", "verify_export"]


@dataclass(frozen=True)
class ExportOptions:
    """What an export writes (which pairs: :class:`~prefloop.store.pairs.PairFilters`).

    Attributes:
        format: ``pairs`` (TRL's conversational preference rows), ``kto`` (TRL's unpaired rows
            ``prompt, completion, label``: thumbs up/down feedback, "both bad" labels and, with
            ``kto_pairs``, each pair's chosen as desirable and rejected as not), or the pairs
            plus an engine's own files: ``openrlhf`` (``openrlhf/{split}.jsonl``) or ``verl``
            (``verl/{split}.parquet``); see :func:`~prefloop.store.formats.engines.write_engine_files`.
        kto_pairs: with ``format="kto"``, also the pairs, unpaired.
    """

    format: str = "pairs"
    kto_pairs: bool = False

    def __post_init__(self) -> None:
        if self.format not in EXPORT_FORMATS:
            raise ValidationError(f"format {self.format!r} is not one of {', '.join(EXPORT_FORMATS)}")


@dataclass
class ExportResult:
    """What :func:`export_pairs` wrote: the recorded export, the rows per split, what the
    derivation left out (:class:`~prefloop.store.pairs.DeriveCounts`) and each file's sha256."""

    export: Export
    n_train: int
    n_test: int
    counts: DeriveCounts
    files: dict[str, str]


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


def _check_out_dir(store: Store, out: Path, overwrite: bool):
    """Checks of the output directory before anything is derived; returns the recorded export
    that ``out`` holds and ``overwrite`` lets be replaced, or ``None``. Raises ExportError."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} is a file, not a directory: choose a new directory for the export")
    _clean_stale_temp_dirs(out)
    replaced = None
    if out.exists() and any(out.iterdir()):
        if not is_export_dir(out):      # never delete a folder prefloop did not write
            raise ExportError(f"output directory {out} exists, is not empty and is not a prefloop "
                              "export: choose a new directory (--overwrite replaces only an export)")
        replaced = store.exports.by_path(str(out.resolve()))
        # an export directory no row names was left by a process killed between the rename
        # and the record: it is ours to replace; a recorded one only with overwrite
        if replaced is not None and not overwrite:
            raise ExportError(f"output directory {out} holds export {replaced.id}: choose a new "
                              "directory or pass --overwrite")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe = tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent)
    except OSError as exc:
        raise ExportError(f"{out.parent}: cannot write the export there ({exc.strerror or exc})") from None
    shutil.rmtree(probe, ignore_errors=True)
    return replaced


def export_pairs(store: Store, out: str | Path, filters: PairFilters = PairFilters(),
                 options: ExportOptions = ExportOptions(), *, overwrite: bool = False) -> ExportResult:
    """Write the pairs selected by ``filters`` to directory ``out`` and record the export.

    Files are written to a temporary directory next to ``out`` and renamed into place, so a
    failure leaves no partial export; a complete but unrecorded export directory at ``out``
    (its process was killed between the rename and the record) is replaced.

    Raises:
        ExportError: ``out`` exists and is not empty (without ``overwrite``).
        NoPairsMatch: no pair (or unpaired label) matches the filters.
    """
    out = Path(out)
    replaced = _check_out_dir(store, out, overwrite)
    kto = options.format == "kto"
    if kto:
        table, counts = derive_unpaired(store, filters, with_pairs=options.kto_pairs)
    else:
        table, counts = derive_pairs(store, filters)
    if table.num_rows == 0:
        raise NoPairsMatch(
            f"no {'feedback labels' if kto else 'pairs'} match the filters {json.dumps(asdict(filters))} "
            f"({counts.n_comparisons} comparisons selected, {counts.n_conflicts} "
            f"conflicting and {counts.n_ties} tied pairs, {counts.n_below_agreement} below "
            f"min agreement, {counts.n_below_confidence} below min confidence, {counts.n_held_out} of dev and test prompts): import or label "
            "more data, or relax the filters", counts)
    train, test = split_by_prompt(table, filters.test_fraction, filters.seed, shard=filters.shard,
                                  shards=filters.shards)
    raw = {"train": train, **({"test": test} if test is not None else {})}
    splits = {name: t.drop_columns(["prompt_hash"]) for name, t in raw.items()}
    n_pairs = sum(t.num_rows for t in splits.values())
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    (tmp / _OWNER).write_text(f"{os.getpid()}\n")
    try:
        for name, t in splits.items():
            pq.write_table(t, tmp / f"{name}.parquet", compression="zstd")
        if options.format in ENGINE_FORMATS:
            write_engine_files(options.format, raw, tmp)
        _write_dataset(splits, tmp / "dataset",
                       {name: _sha256(tmp / f"{name}.parquet") for name in splits})
        files = {str(p.relative_to(tmp)): _sha256(p)
                 for p in sorted(tmp.rglob("*")) if p.is_file() and p.name != _OWNER}
        digest = hashlib.sha256("".join(f"{k}\t{v}\n" for k, v in files.items()).encode()).hexdigest()
        manifest = {"format": "trl-unpaired-preference" if kto else "trl-conversational-preference",
                    "filters": _recorded(filters, options),
                    "n_pairs": n_pairs, "splits": {k: v.num_rows for k, v in splits.items()},
                    "counts": counts.as_dict(), "files": files, "sha256": digest}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        (tmp / _OWNER).unlink()
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
        out.chmod(0o755)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    export = store.exports.record(_recorded(filters, options), n_pairs, str(out.resolve()),
                                  digest, counts.max_comparison_id)
    if replaced is not None:       # the old rows follow their files: they were replaced
        store.exports.mark_replaced(str(out.resolve()), export.id)
    return ExportResult(export=export, n_train=splits["train"].num_rows,
                        n_test=splits["test"].num_rows if "test" in splits else 0, counts=counts,
                        files=files)


#: The file in an export's temporary directory that names the writing process (pid).
_OWNER = ".prefloop-export-writer"
_FORMATS = ("trl-conversational-preference", "trl-unpaired-preference")


def is_export_dir(path: Path) -> bool:
    """Whether ``path`` is a directory prefloop's export wrote: its ``manifest.json`` is ours
    (a known format, a file list and a sha256) and every file in it is listed there."""
    try:
        manifest = json.loads((path / "manifest.json").read_text())
        listed = set(manifest["files"])
        if manifest.get("format") not in _FORMATS or not isinstance(manifest.get("sha256"), str):
            return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    present = {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()} - {"manifest.json"}
    return present <= listed


def _clean_stale_temp_dirs(out: Path) -> None:
    """Remove the temporary directories of earlier exports to ``out`` whose writer is gone
    (killed mid-write): ``.<name>-*`` beside it holding :data:`_OWNER` with a dead pid."""
    if not out.parent.is_dir():
        return
    for tmp in out.parent.glob(f".{out.name}-*"):
        owner = tmp / _OWNER
        try:
            pid = int(owner.read_text().strip())
        except (OSError, ValueError):
            continue                 # not ours, or still being set up: leave it
        try:
            os.kill(pid, 0)
            continue                 # its writer still runs
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except PermissionError:
            continue


def _recorded(filters: PairFilters, options: ExportOptions) -> dict[str, Any]:
    """The export's settings as recorded (the row's ``filters`` and the manifest's): the
    selection and the format."""
    return {**asdict(filters), **asdict(options)}


def verify_export(export: Export) -> Path:
    """Check that an export's files still hash to the recorded sha256; returns its path.

    Raises:
        ExportError: files missing or changed since the export was recorded.
    """
    path = Path(export.path)
    if getattr(export, "replaced_by", None):
        raise ExportError(f"export {export.id} at {path} was replaced by export {export.replaced_by} "
                          f"(export --overwrite): train on export {export.replaced_by}, or re-export")
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
