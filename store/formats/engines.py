"""The RL engines' (and labeling tools') own files beside an export's pair files: OpenRLHF,
verl, Label Studio."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["EXPORT_FORMATS", "ENGINE_FORMATS", "write_engine_files"]

#: ``prefloop export --format`` values: TRL's pairs, TRL's unpaired rows for KTO, or the pairs
#: plus an engine's files.
EXPORT_FORMATS = ("pairs", "kto", "openrlhf", "verl", "label-studio")
#: The formats that add an engine's files.
ENGINE_FORMATS = ("openrlhf", "verl", "label-studio")

#: The labeling config the Label Studio tasks are written for (its RLHF pairwise template).
LABEL_STUDIO_CONFIG = """<View>
  <Header value="Which answer is better?"/>
  <Text name="prompt" value="$prompt"/>
  <Text name="answer1" value="$answer1"/>
  <Text name="answer2" value="$answer2"/>
  <Pairwise name="comparison" toName="answer1,answer2"/>
</View>
"""


def _label_studio_tasks(t: pa.Table) -> list[dict]:
    """One Label Studio task per pair: the answers in an order fixed by the pair's ids (chosen
    first on even ``chosen_id + rejected_id``), and, for a pair with AI votes, a prediction of
    the AI's side (pre-labels people can accept or change); human labels are not sent back. A
    multi-turn prompt is written as one text (``role: content`` turns), so its annotations come
    back onto a one-turn prompt, not the original row; one-turn prompts round-trip exactly."""
    tasks = []
    for r in t.select(["prompt", "chosen", "rejected", "prompt_id", "chosen_id", "rejected_id",
                       "labeler_kinds", "p_chosen"]).to_pylist():
        flip = (r["chosen_id"] + r["rejected_id"]) % 2 == 1
        a, b = (r["rejected"], r["chosen"]) if flip else (r["chosen"], r["rejected"])
        prompt = "\n\n".join(f"{m['role']}: {m['content']}" for m in r["prompt"]) \
            if len(r["prompt"]) > 1 else r["prompt"][0]["content"]
        task = {"data": {"prompt": prompt, "answer1": a[0]["content"], "answer2": b[0]["content"],
                         "prefloop_prompt_id": r["prompt_id"],
                         "prefloop_response_ids": [(r["rejected_id"] if flip else r["chosen_id"]),
                                                   (r["chosen_id"] if flip else r["rejected_id"])]}}
        if "ai" in (r["labeler_kinds"] or []):
            task["predictions"] = [{"model_version": "prefloop-ai-labels", "score": r["p_chosen"],
                                    "result": [{"from_name": "comparison",
                                                "to_name": ["answer1", "answer2"], "type": "pairwise",
                                                "value": {"selected": "right" if flip else "left"}}]}]
        tasks.append(task)
    return tasks


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
    * ``label-studio/{split}.json`` and ``config.xml``: Label Studio tasks (``data.prompt``,
      ``answer1``, ``answer2``, the store's ids) for its RLHF pairwise template, AI labels as
      ``predictions`` (see :func:`_label_studio_tasks`); ``prefloop import --format
      label-studio`` reads the annotated export back.
    * ``verl/{split}.parquet``: verl's RL prompt rows, one per prompt (its data preparation
      examples): ``data_source`` (``prefloop/<dataset>``), ``prompt`` (messages), ``ability``
      (``alignment``), ``reward_model`` ``{style: "model", ground_truth: ""}`` and
      ``extra_info`` ``{split, index, prompt_id, prompt_hash, messages}`` so that rollouts
      scored on a cluster can be matched back to the store's prompts, and
      :mod:`prefloop.training.verl_reward` can score a response with its conversation.
    """
    if fmt == "label-studio":
        (out / "label-studio").mkdir()
        (out / "label-studio" / "config.xml").write_text(LABEL_STUDIO_CONFIG)
        for name, t in splits.items():
            (out / "label-studio" / f"{name}.json").write_text(
                json.dumps(_label_studio_tasks(t), ensure_ascii=False, indent=1))
    elif fmt == "openrlhf":
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
