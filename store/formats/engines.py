"""The RL engines' own files beside an export's pair files (OpenRLHF, verl)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["EXPORT_FORMATS", "ENGINE_FORMATS", "write_engine_files"]

#: ``prefloop export --format`` values: TRL's pairs, TRL's unpaired rows for KTO, or the pairs
#: plus an engine's files.
EXPORT_FORMATS = ("pairs", "kto", "openrlhf", "verl")
#: The formats that add an engine's files.
ENGINE_FORMATS = ("openrlhf", "verl")


def write_engine_files(fmt: str, splits: dict[str, pa.Table], out: Path) -> None:
    """The RL engines' own files next to the pair files, one per split:

    * ``openrlhf/{split}.jsonl``: OpenRLHF's reward-model / DPO rows for ``--prompt_key prompt
      --chosen_key chosen --rejected_key rejected --apply_chat_template`` (its
      ``datasets/reward_dataset.py``: ``prompt`` a message list, ``chosen``/``rejected`` the
      assistant messages appended to it), with ``margin`` only where the labels say how much
      better: the annotators' graded strength (the pairs' ``margin``, Llama 2's margins), else
      the rating difference where the pair was rated (``rating_margin``), else ``2 p_chosen -
      1`` where two or more votes (or a soft aggregate) make ``p_chosen`` informative. A pair
      with one vote and no strength has no ``margin`` key: a constant 1.0 on every such pair
      would shift OpenRLHF's margin loss (``--model.margin_loss_enable``) for all of them
      alike. OpenRLHF subtracts it inside the Bradley-Terry loss.
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
                                   "margin", "votes_chosen", "votes_rejected", "prompt_id",
                                   "chosen_id", "rejected_id"]).to_pylist():
                    rated, p, graded = r.pop("rating_margin"), r.pop("p_chosen"), r.pop("margin")
                    votes = r.pop("votes_chosen") + r.pop("votes_rejected")
                    value = (graded if graded is not None else rated if rated is not None
                             else 2 * p - 1 if votes > 1 or p < 1 else None)
                    if value is not None:
                        r["margin"] = round(value, 6)
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
