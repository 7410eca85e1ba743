"""Export snapshots -> ``datasets`` objects. Trainers read pairs only through this module.

A run either names a recorded export (``--export ID``; its files are checked against the
recorded sha256) or makes a fresh one with the given filters, so every model traces back to
the exact labels behind it.
"""

from __future__ import annotations

import time
from pathlib import Path

from prefloop import store
from prefloop.store.export_files import ExportOptions, export_pairs, verify_export
from prefloop.store.pairs import PairFilters

from .errors import TrainingError

__all__ = ["resolve_export", "load_pairs", "sft_rows", "fit_rows", "plain_prompt", "runs_dir", "trim_turns"]


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


def sft_rows(split, tokenizer=None, max_length: int | None = None, *, max_completion_tokens: int | None = None,
             max_rows_per_dataset: int | None = None, seed: int = 0):
    """SFT data (a ``datasets.Dataset``) from a pair split: one ``{"prompt", "completion"}`` row
    (conversational prompt-completion format) per distinct (prompt, chosen response). Chosen
    responses include constitutional revisions and human edits, which the judge and the app
    record as preferred over the original.

    With ``tokenizer`` and ``max_length``, each prompt loses its oldest turns whole
    (:func:`trim_turns`) until prompt and completion fit in ``max_length`` tokens, and a row
    whose completion cannot fit is left out: a trainer that cut it would teach a reply that
    stops mid-sentence (or ends where the demonstration did not).

    The mixture: ``max_completion_tokens`` (needs ``tokenizer``) leaves out demonstrations
    longer than that; ``max_rows_per_dataset`` keeps at most that many rows of each prompt
    dataset, a random choice seeded by ``seed``."""
    import random

    seen: set[tuple[int, int]] = set()
    by_dataset: dict[str, list[int]] = {}
    for i, (p, c, d) in enumerate(zip(split["prompt_id"], split["chosen_id"], split["dataset"])):
        if (p, c) not in seen:
            seen.add((p, c))
            by_dataset.setdefault(d or "", []).append(i)
    if max_completion_tokens is not None and tokenizer is not None:
        chosen = split["chosen"]
        by_dataset = {d: [i for i in ix if len(tokenizer(chosen[i][-1]["content"], add_special_tokens=False)
                                               ["input_ids"]) <= max_completion_tokens]
                      for d, ix in by_dataset.items()}
    if max_rows_per_dataset is not None:
        rng = random.Random(seed)
        by_dataset = {d: sorted(rng.sample(ix, min(len(ix), max_rows_per_dataset)))
                      for d, ix in sorted(by_dataset.items())}
    rows = split.select(sorted(i for ix in by_dataset.values() for i in ix))
    rows = rows.map(lambda r: {"prompt": r["prompt"], "completion": r["chosen"]},
                    remove_columns=[c for c in rows.column_names if c != "prompt"])
    if tokenizer is None or max_length is None:
        return rows
    return fit_rows(rows, tokenizer, max_length)


def fit_rows(rows, tokenizer, max_length: int, completions: tuple[str, ...] = ("completion",)):
    """``rows`` (``prompt`` messages plus ``completions`` columns of one assistant message each:
    ``completion`` for SFT, ``chosen`` and ``rejected`` for preference pairs) with each prompt
    cut by whole turns (:func:`trim_turns`) so that the chat-formatted conversation with its
    longest completion fits in ``max_length`` tokens; rows that cannot fit are left out (a
    trainer that cut them would learn from a reply cut short, or from its end alone)."""

    def count(messages) -> int:
        return len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])

    def cut(row):
        prompt = list(row["prompt"])
        base = count(prompt)
        longest = max(count(prompt + list(row[c])) - base for c in completions)
        trimmed = trim_turns(prompt, count, max_length - longest) if max_length > longest else None
        return {"prompt": trimmed or [], "fits": trimmed is not None}

    out = rows.map(cut)
    return out.filter(lambda r: r["fits"]).remove_columns(["fits"])


def trim_turns(messages: list[dict], count_tokens, max_tokens: int | None) -> list[dict] | None:
    """The conversation cut to at most ``max_tokens`` (as ``count_tokens(messages)`` counts
    them: the chat-formatted prompt) by dropping its oldest turns whole: a system turn stays,
    the final user turn always stays, and an assistant turn never starts what is left (the
    oldest kept turn is a user turn), so the reward model, the policy and the trainer all read
    a conversation that could have happened. ``None`` when even the final user turn (with the
    system turn) is too long.

    >>> def words(m): return sum(len(x["content"].split()) for x in m)
    >>> convo = [{"role": "user", "content": "a b c"}, {"role": "assistant", "content": "d e"},
    ...          {"role": "user", "content": "f g"}]
    >>> [m["content"] for m in trim_turns(convo, words, 4)]
    ['f g']
    >>> trim_turns(convo, words, 1) is None
    True
    """
    if max_tokens is None or count_tokens(messages) <= max_tokens:
        return list(messages)
    system = [m for m in messages[:1] if m["role"] == "system"]
    rest = list(messages[len(system):])
    while len(rest) > 1:
        rest = rest[1:]
        while len(rest) > 1 and rest[0]["role"] != "user":
            rest = rest[1:]
        if count_tokens(system + rest) <= max_tokens:
            return system + rest
    return None


def plain_prompt(messages: list[dict]) -> str:
    """A conversation as plain text for tokenizers without a chat template (encoders):
    ``"user: ...\\nassistant: ...\\nassistant: "``."""
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "
