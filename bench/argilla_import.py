"""``prefloop import --format argilla`` against folders written by the real Argilla SDK (2.x, in
its own virtual environment: its pins are not prefloop's). Asserts what it checks and prints
a summary.

    python -m venv /tmp/argvenv && /tmp/argvenv/bin/pip install "argilla>=2,<3" requests
    python bench/argilla_import.py --argilla-python /tmp/argvenv/bin/python

The writer runs in Argilla's venv and uses Argilla's own classes and serializers, the ones
``rg.Dataset.to_disk`` calls: ``rg.Settings(...).to_json`` for ``.argilla/settings.json`` and
``argilla.records._io.JsonIO.to_json`` (``Record.to_dict`` per record) for ``records.json``.
No Argilla server runs (``to_disk`` itself needs one to list a dataset's records), so the
SDK's connection check is switched off; nothing else is replaced. Two datasets: a
``RankingQuestion`` over ``response1``/``response2`` (two users per record, a suggestion) and a
``LabelQuestion`` with labels ``A``/``B``/``tie``. Every user response must land as one human
comparison by ``argilla:<user_id>`` on the original prompt and the response it chose.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WRITER = r'''
import json, sys, uuid
from pathlib import Path
import argilla as rg
import argilla._api._client as api_client
from argilla.records._io import JsonIO

api_client.APIClient._validate_connection = lambda self: None    # no server: serialization only
rg.Argilla(api_url="http://127.0.0.1:9", api_key="offline")
out = Path(sys.argv[1])
users = [uuid.uuid4() for _ in range(2)]
truth = []

def write(name, fields, question, records):
    folder = out / name
    (folder / ".argilla").mkdir(parents=True)
    rg.Settings(fields=[rg.TextField(f) for f in fields], questions=[question]).to_json(
        folder / ".argilla" / "settings.json")
    JsonIO.to_json(records, folder / "records.json")

ranked = []
for i in range(4):
    good, bad = f"good answer {i}", f"bad answer {i}"
    pair = {"prompt": f"Question {i}?", "response1": good if i % 2 else bad,
            "response2": bad if i % 2 else good}
    order = ["response1", "response2"] if i % 2 else ["response2", "response1"]
    ranked.append(rg.Record(fields=pair, suggestions=[rg.Suggestion("ranking", order[::-1], agent="m")],
                            responses=[rg.Response("ranking", order, user_id=u) for u in users]))
    truth += [{"prompt": pair["prompt"], "best": good, "user": str(u)} for u in users]
write("ranking", ["prompt", "response1", "response2"],
      rg.RankingQuestion("ranking", values=["response1", "response2"]), ranked)

labeled = []
for i in range(3):
    good, bad = f"kind reply {i}", f"rude reply {i}"
    labeled.append(rg.Record(fields={"instruction": f"Say hi {i}", "a": good, "b": bad},
                             responses=[rg.Response("pick", "A", user_id=users[0])]))
    truth.append({"prompt": f"Say hi {i}", "best": good, "user": str(users[0])})
write("label", ["instruction", "a", "b"], rg.LabelQuestion("pick", labels=["A", "B", "tie"]), labeled)
print(json.dumps({"argilla": rg.__version__, "truth": truth}))
'''


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--argilla-python", required=True, help="python of a venv with argilla 2.x")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT.parent))
    from prefloop import store
    from prefloop.store.importer import import_file

    work = Path(tempfile.mkdtemp(prefix="argilla-import-"))
    out = subprocess.run([args.argilla_python, "-c", WRITER, str(work)], capture_output=True,
                         text=True, check=True)
    made = json.loads(out.stdout.strip().splitlines()[-1])
    s = store.Store.init(work / "s.duckdb")
    for name in ("ranking", "label"):
        r = import_file(s, work / name, "argilla")
        assert r.rejected == 0, r.reasons()
    prompts = {p.id: p.messages[-1]["content"] for p in s.prompts.list()}
    texts = {x.id: x.text for rs in s.responses.for_prompts(list(prompts)).values() for x in rs}
    got = sorted((prompts[c.prompt_id], texts[c.ranking[0][0]], c.labeler.removeprefix("argilla:"))
                 for c in s.comparisons.list() if c.labeler_kind == "human")
    want = sorted((t["prompt"], t["best"], t["user"]) for t in made["truth"])
    assert got == want, (got, want)
    print(f"argilla {made['argilla']}: {len(got)} of {len(want)} user responses imported as human "
          f"comparisons on the right prompt and response, by argilla:<user_id>; suggestions left out "
          f"({sum(c.labeler_kind != 'human' for c in s.comparisons.list())} AI labels); folder {work}")


if __name__ == "__main__":
    main()
