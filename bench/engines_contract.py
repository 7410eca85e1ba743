"""prefloop's engine exports loaded by the engines' own code, each in its own virtual environment
(their pins are not prefloop's), so that the next engine release that changes a contract is
caught here. Asserts what it checks and prints a summary; an engine without ``--*-python`` is
skipped and said so.

    python -m venv /tmp/verlvenv && /tmp/verlvenv/bin/pip install torch==2.13.0 \\
        "verl==0.9.*" "transformers<5.11"
    python bench/engines_contract.py --verl-python /tmp/verlvenv/bin/python

verl: ``prefloop export --format verl`` of a small store; verl's
``verl.utils.dataset.rl_dataset.RLHFDataset`` reads ``verl/train.parquet`` with the embedded
model's tokenizer (``prompt_key: prompt``, ``return_raw_chat``); every row loads, its prompt
(0.9 hands the agent loop ``raw_prompt``, the messages, which its tokenizer templates; older
releases tokenized ``input_ids`` in the dataset) holds the store's prompt in the chat format, and
``extra_info`` (the store's ``prompt_id``, the conversation) comes through; verl's own
custom-reward loader (``verl.trainer.ppo.reward.get_custom_reward_fn``, which in 0.9 reads
``reward.custom_reward_function``) imports :mod:`prefloop.training.verl_reward`, finds
``compute_score``, and calling it with no ``serve-rm`` listening raises (never a silent 0).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

VERL = r'''
import json, sys
from omegaconf import OmegaConf
from transformers import AutoTokenizer
import verl
from verl.utils.dataset.rl_dataset import RLHFDataset

parquet, model, reward_py = sys.argv[1:4]
tok = AutoTokenizer.from_pretrained(model)
cfg = OmegaConf.create({"prompt_key": "prompt", "max_prompt_length": 512, "return_raw_chat": True,
                        "filter_overlong_prompts": False, "truncation": "error", "cache_dir": sys.argv[4]})
ds = RLHFDataset(data_files=[parquet], tokenizer=tok, config=cfg)
rows = []
for i in range(len(ds)):
    item = ds[i]
    if "input_ids" in item:          # verl < 0.9 tokenized in the dataset
        text = tok.decode(item["input_ids"][item["attention_mask"].bool()])
    else:                            # 0.9: raw_prompt, templated by the agent loop's tokenizer
        text = tok.apply_chat_template(item["raw_prompt"], add_generation_prompt=True, tokenize=False)
    extra = item.get("extra_info") or {}
    rows.append({"text": text, "prompt_id": extra.get("prompt_id"), "messages": extra.get("messages"),
                 "data_source": item.get("data_source")})
import os
from verl.trainer.ppo.reward import get_custom_reward_fn
fn = get_custom_reward_fn(OmegaConf.create({"reward": {"custom_reward_function": {
    "path": reward_py, "name": "compute_score", "reward_kwargs": {}}}}))     # verl 0.9: under reward
raw = fn.args[0] if hasattr(fn, "args") and fn.args else fn
os.environ["PREFLOOP_RM_URL"] = "http://127.0.0.1:9"                          # nothing listens
try:
    fn(data_source=rows[0]["data_source"], solution_str="Boil them.", ground_truth="",
       extra_info={"messages": rows[0]["messages"]})
    called = "returned a value with no server"
except OSError as exc:                                                        # URLError is one
    called = f"raised {type(exc).__name__}"
found = raw.__name__
print(json.dumps({"verl": getattr(verl, "__version__", "?"), "rows": rows, "reward_fn": found,
                  "called": called}))
'''


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--verl-python", help="python of a venv with verl 0.9 (transformers < 5.11)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT.parent))
    from prefloop import store
    from prefloop.core.models import default_model_path
    from prefloop.store.export import ExportOptions, export_pairs
    from prefloop.store.pairs import PairFilters

    work = Path(tempfile.mkdtemp(prefix="engines-"))
    s = store.Store.init(work / "s.duckdb")
    want = {}
    for i in range(6):
        text = f"Engine contract question {i}: how do I boil {i + 2} eggs?"
        pid = s.prompts.add([[{"role": "user", "content": text}]], dataset="contract")[0]
        a, b = s.responses.add([store.ResponseIn(pid, f"Gently, {i}."), store.ResponseIn(pid, f"Badly, {i}.")])
        s.comparisons.record(pid, [[a], [b]], labeler_kind="human", labeler="seed")
        want[pid] = text
    export_pairs(s, work / "export", PairFilters(test_fraction=0.0), ExportOptions(format="verl"))
    if not args.verl_python:
        print("verl: skipped (no --verl-python)")
        return
    reward_py = ROOT / "training" / "verl_reward.py"
    out = subprocess.run([args.verl_python, "-c", VERL, str(work / "export" / "verl" / "train.parquet"),
                          str(default_model_path()), str(reward_py), str(work / "verl-cache")],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"verl could not load the export:\n{out.stderr[-3000:]}")
    got = json.loads(out.stdout.strip().splitlines()[-1])
    rows = got["rows"]
    assert len(rows) == len(want), (len(rows), len(want))
    for r in rows:
        assert r["prompt_id"] in want and want[r["prompt_id"]] in r["text"], r
        assert "<|im_start|>user" in r["text"] and r["text"].rstrip().endswith("assistant"), r["text"]
        assert json.loads(r["messages"])[-1]["content"] == want[r["prompt_id"]]
    assert got["reward_fn"] == "compute_score", got["reward_fn"]
    assert got["called"].startswith("raised"), got["called"]      # never a silent 0 reward
    print(f"verl {got['verl']}: RLHFDataset loaded {len(rows)} of {len(want)} prompts in the chat "
          f"format with their prompt_id and conversation; its custom-reward loader found "
          f"{got['reward_fn']} in training/verl_reward.py under reward.custom_reward_function "
          f"(verl 0.9's key) and, with no serve-rm listening, it {got['called']}; folder {work}")


if __name__ == "__main__":
    main()
