"""prefloop's engine exports loaded by the engines' own code, each in its own virtual environment
(their pins are not prefloop's), so that the next engine release that changes a contract is
caught here. Asserts what it checks and prints a summary; an engine without ``--*-python`` is
skipped and said so.

    python -m venv /tmp/verlvenv && /tmp/verlvenv/bin/pip install torch==2.13.0 \\
        "verl==0.9.*" "transformers<5.11"
    python -m venv /tmp/orlvenv && /tmp/orlvenv/bin/pip install torch==2.13.0 "transformers==5.15.*" \
        datasets pylatexenc sympy && /tmp/orlvenv/bin/pip install --no-deps "openrlhf==0.11.*"
    python bench/engines_contract.py --verl-python /tmp/verlvenv/bin/python \
        --openrlhf-python /tmp/orlvenv/bin/python

OpenRLHF: ``prefloop export --format openrlhf``; OpenRLHF's own ``RewardDataset`` reads
``openrlhf/train.jsonl`` through ``datasets`` with the data flags of OpenRLHF >= 0.10
(``--data.prompt_key prompt --data.chosen_key chosen --data.rejected_key rejected
--data.apply_chat_template``), as a reward-model dataset and as DPO data; every pair loads, the
chosen text is on the chosen side in the chat format, and a graded label's margin comes through.
(OpenRLHF 0.11 pins transformers 5.15.0 and pulls deepspeed and ray; ``--no-deps`` with the few
modules its datasets import keeps the venv small.)

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

OPENRLHF = r'''
import json, sys
from types import SimpleNamespace
from datasets import load_dataset
from transformers import AutoTokenizer
from openrlhf.datasets import RewardDataset

jsonl, model = sys.argv[1:3]
tok = AutoTokenizer.from_pretrained(model)
# the flags of OpenRLHF >= 0.10 (--data.prompt_key prompt --data.chosen_key chosen
# --data.rejected_key rejected --data.apply_chat_template), as its strategy.args.data carries them
args = SimpleNamespace(data=SimpleNamespace(prompt_key="prompt", chosen_key="chosen",
                                            rejected_key="rejected", apply_chat_template=True))
data = load_dataset("json", data_files=jsonl)["train"]
out = {}
for is_dpo in (False, True):
    ds = RewardDataset(data, tok, 512, SimpleNamespace(args=args), is_dpo=is_dpo, num_processors=1)
    rows = []
    for i in range(len(ds)):
        c_ids, _, r_ids, _, extra = ds[i]
        rows.append({"chosen": tok.decode(c_ids[0]), "rejected": tok.decode(r_ids[0]), "extra": extra})
    out["dpo" if is_dpo else "rm"] = rows
from importlib.metadata import version
print(json.dumps({"openrlhf": version("openrlhf"), **out}))
'''


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--verl-python", help="python of a venv with verl 0.9 (transformers < 5.11)")
    ap.add_argument("--openrlhf-python", help="python of a venv with openrlhf 0.11 (installed "
                    "--no-deps beside torch, transformers 5.15, datasets, pylatexenc)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT.parent))
    from prefloop import store
    from prefloop.core.models import default_model_path
    from prefloop.store.export_files import ExportOptions, export_pairs
    from prefloop.store.pairs import PairFilters

    work = Path(tempfile.mkdtemp(prefix="engines-"))
    s = store.Store.init(work / "s.duckdb")
    want, best = {}, {}
    for i in range(6):
        text = f"Engine contract question {i}: how do I boil {i + 2} eggs?"
        pid = s.prompts.add([[{"role": "user", "content": text}]], dataset="contract")[0]
        a, b = s.responses.add([store.ResponseIn(pid, f"Gently, {i}."), store.ResponseIn(pid, f"Badly, {i}.")])
        s.comparisons.record(pid, [[a], [b]], labeler_kind="human", labeler="seed",
                             strength="significantly" if i == 0 else None)
        want[pid], best[text] = text, f"Gently, {i}."
    export_pairs(s, work / "export", PairFilters(test_fraction=0.0), ExportOptions(format="verl"))
    export_pairs(s, work / "orl", PairFilters(test_fraction=0.0), ExportOptions(format="openrlhf"))
    if args.openrlhf_python:
        _openrlhf(args.openrlhf_python, work, best, default_model_path())
    else:
        print("openrlhf: skipped (no --openrlhf-python)")
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


def _openrlhf(python: str, work: Path, best: dict[str, str], model: Path) -> None:
    out = subprocess.run([python, "-c", OPENRLHF, str(work / "orl" / "openrlhf" / "train.jsonl"), str(model)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"OpenRLHF could not load the export:\n{out.stderr[-3000:]}")
    got = json.loads(out.stdout.strip().splitlines()[-1])
    for mode in ("rm", "dpo"):
        assert len(got[mode]) == len(best), (mode, len(got[mode]))
    for r in got["rm"]:
        prompt = next(p for p in best if p in r["chosen"])
        assert best[prompt] in r["chosen"] and best[prompt] not in r["rejected"], r
        assert r["chosen"].startswith("<|im_start|>") and r["chosen"].endswith("<|im_end|>"), r["chosen"]
    margins = sorted(r["extra"] for r in got["rm"])
    assert margins == [0] * (len(best) - 1) + [1.0], margins      # the graded pair carries its margin
    assert all(isinstance(r["extra"], int) and r["extra"] > 0 for r in got["dpo"])   # prompt lengths
    print(f"openrlhf {got['openrlhf']}: RewardDataset loaded {len(got['rm'])} of {len(best)} pairs with "
          f"the >= 0.10 data flags (chat template applied, chosen text on the chosen side, ending in "
          f"<|im_end|>), the graded pair's margin 1.0 and the others 0 (OpenRLHF's default), and as "
          f"DPO data (prompt lengths)")


if __name__ == "__main__":
    main()
