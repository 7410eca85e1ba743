"""Export snapshots -> ``datasets`` objects. Trainers read pairs only through this module.

A run either names a recorded export (``--export ID``; its files are checked against the
recorded sha256) or makes a fresh one with the given filters, so every model traces back to
the exact labels behind it.
"""

from __future__ import annotations

import time
from pathlib import Path

from prefloop import store
from prefloop.store.export import ExportOptions, export_pairs, verify_export
from prefloop.store.pairs import PairFilters

from .errors import TrainingError

__all__ = ["resolve_export", "load_pairs", "sft_rows", "plain_prompt", "runs_dir"]


def runs_dir(s: store.Store) -> Path:
    """Where runs and automatic exports go: ``runs/`` next to the store file."""
    return s.path.resolve().parent / "runs"


def resolve_export(s: store.Store, export_id: int | None = None, *, source: str = "all",
                   dataset: str | None = None, min_agreement: float = 0.0,
                   test_fraction: float = 0.1, seed: int = 0,
                   since_export: int | None = None, format: str = "pairs") -> store.Export:
    """The recorded export ``export_id`` (verified), or a new export with these filters
    written under ``runs/exports/``.

    Raises:
        store.ExportError: the export's files changed, or no pair matches the filters.
    """
    if export_id is not None:
        export = s.exports.get(export_id)
        verify_export(export)
        return export
    out = runs_dir(s) / "exports" / time.strftime("export-%Y%m%d-%H%M%S")
    while out.exists():
        out = out.with_name(out.name + "x")
    filters = PairFilters(source=source, dataset=dataset, min_agreement=min_agreement,
                          test_fraction=test_fraction, seed=seed, since_export=since_export)
    return export_pairs(s, out, filters, ExportOptions(format=format)).export


def load_pairs(export: store.Export):
    """The export's ``datasets.DatasetDict`` (``train`` and, if split, ``test``) in TRL's
    conversational preference format plus provenance columns (see :mod:`store.pairs`)."""
    import datasets

    path = Path(export.path) / "dataset"
    if not path.exists():
        raise TrainingError(f"export {export.id}: {path} is missing; re-export the data")
    return datasets.load_from_disk(str(path))


def sft_rows(split):
    """SFT data (a ``datasets.Dataset``) from a pair split: one ``{"prompt", "completion"}`` row (conversational
    prompt-completion format) per distinct (prompt, chosen response). Chosen responses include
    constitutional revisions and human edits, which the judge and the app record as preferred
    over the original."""
    seen: set[tuple[int, int]] = set()
    keep = []
    for i, (p, c) in enumerate(zip(split["prompt_id"], split["chosen_id"])):
        if (p, c) not in seen:
            seen.add((p, c))
            keep.append(i)
    rows = split.select(keep)
    return rows.map(lambda r: {"prompt": r["prompt"], "completion": r["chosen"]},
                    remove_columns=[c for c in rows.column_names if c != "prompt"])


def plain_prompt(messages: list[dict]) -> str:
    """A conversation as plain text for tokenizers without a chat template (encoders):
    ``"user: ...\\nassistant: ...\\nassistant: "``."""
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "
