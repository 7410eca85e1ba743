"""Where prompts for generation and evaluation come from: a dataset of the store, a prompts file
(imported on the way), an export's split, or a recorded prompt set (``set:test``,
``set:dev:harmless``; :mod:`prefloop.store.prompt_sets`).

>>> parse_export_source("export:4")
(4, 'test')
>>> parse_export_source("export:4:train")
(4, 'train')
>>> parse_set_source("set:test:benign")
('test', 'benign')
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .db import Store
from .errors import NotFoundError, ValidationError
from .records import Prompt

__all__ = ["prompts_from", "parse_export_source", "parse_set_source", "export_prompt_ids"]


def parse_export_source(source: str) -> tuple[int, str]:
    """``export:ID`` (its held-out ``test`` split) or ``export:ID:train`` -> ``(ID, split)``.

    Raises:
        ValidationError: not of that form.
    """
    parts = source.split(":")
    if len(parts) not in (2, 3) or not parts[1].isdigit() or (len(parts) == 3 and parts[2] not in ("train", "test")):
        raise ValidationError(f"prompt source {source!r}: expected export:ID or export:ID:train")
    return int(parts[1]), parts[2] if len(parts) == 3 else "test"


def parse_set_source(source: str) -> tuple[str, str | None]:
    """``set:SPLIT`` or ``set:SPLIT:SUBSET`` -> ``(split, subset or None)``.

    Raises:
        ValidationError: not of that form, or an unknown split.
    """
    from .prompt_sets import SPLITS

    parts = source.split(":")
    if len(parts) not in (2, 3) or parts[1] not in SPLITS or (len(parts) == 3 and not parts[2]):
        raise ValidationError(f"prompt source {source!r}: expected set:SPLIT or set:SPLIT:SUBSET "
                              f"with SPLIT one of {', '.join(SPLITS)}")
    return parts[1], parts[2] if len(parts) == 3 else None


def export_prompt_ids(s: Store, export_id: int, split: str) -> list[int]:
    """The distinct prompt ids of an export's split, ascending.

    Raises:
        NotFoundError: no such export, or it has no such split.
    """
    import pyarrow.parquet as pq

    export = s.exports.get(export_id)
    path = Path(export.path) / f"{split}.parquet"
    if not path.exists():
        raise NotFoundError(f"export {export_id} has no {split} split ({path}): export with "
                            "--test-fraction for a held-out split")
    return sorted(set(pq.read_table(path, columns=["prompt_id"])["prompt_id"].to_pylist()))


def prompts_from(s: Store, source: str, *, limit: int | None = None,
                 keep: Callable[[Prompt], bool] | None = None) -> list[Prompt]:
    """The prompts of ``source``, by id: a dataset of the store, a prompts file (imported into
    a dataset named after it), ``export:ID`` (the export's held-out test split) or
    ``export:ID:train``, or a recorded prompt set (``set:test``, ``set:dev:benign``); only
    those ``keep`` accepts, at most ``limit``.

    Raises:
        NotFoundError: the source holds no prompt (or none that ``keep`` accepts).
        InvalidInputError: a prompts file cannot be read (nothing is imported).
    """
    if source.startswith("export:"):
        prompts = s.prompts.get_many(export_prompt_ids(s, *parse_export_source(source)))
    elif source.startswith("set:"):
        prompts = s.prompts.get_many(s.prompt_sets.ids(*parse_set_source(source)))
    elif Path(source).is_file():
        from .importer import import_file

        dataset = Path(source).name.split(".")[0]
        import_file(s, Path(source), "prompts", dataset=dataset)
        prompts = s.prompts.list(dataset=dataset)
    else:
        prompts = s.prompts.list(dataset=source)
    if not prompts:
        raise NotFoundError(f"no prompts in {source!r}: pass a dataset of the store (see `prefloop "
                            "stats`), a prompts file, export:ID, export:ID:train or a recorded "
                            "prompt set (set:test, set:dev; `prefloop prompt-sets show`)")
    kept = [p for p in prompts if keep is None or keep(p)]
    if not kept:
        raise NotFoundError(f"none of the {len(prompts)} prompts of {source!r} is short enough")
    return kept[:limit] if limit is not None else kept
