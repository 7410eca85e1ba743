"""The Label Studio round trip against a real Label Studio (1.23, in its own virtual
environment: its pins clash with prefloop's). Asserts what it checks and prints a summary.

    python -m venv /tmp/lsvenv && /tmp/lsvenv/bin/pip install "label-studio==1.23.*"
    python bench/label_studio_roundtrip.py --ls-bin /tmp/lsvenv/bin/label-studio

Steps: a fresh store with 6 prompts, two responses each, half labeled by people and half by an
AI judge; ``prefloop export --format label-studio``; a Label Studio server (``label-studio
start`` on a free port with a fresh data dir and a user token); a project with the export's
``config.xml`` (Label Studio must accept our template); the tasks imported through its REST API
(``POST /api/projects/ID/import``), the AI predictions with them; an annotation per task through
``POST /api/tasks/ID/annotations`` (a pairwise result choosing the response that starts with
"good"); Label Studio's own JSON export (``GET /api/projects/ID/export?exportType=JSON``);
``prefloop import --format label-studio`` of that file; every label lands on the original prompt
and its "good" response, by ``label-studio:<annotator>``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _label_in_label_studio(c, config: str, tasks: list[dict], work: Path) -> int:
    """Create a project with the exported config, import the tasks, check their predictions,
    label every task (the "good" side) and save the project's JSON export as
    ``work/ls-export.json``; returns the predictions seen."""
    r = c.post("/api/projects", json={"title": "prefloop round trip", "label_config": config})
    assert r.status_code == 201, r.text
    project = r.json()["id"]
    r = c.post(f"/api/projects/{project}/import", json=tasks)
    assert r.status_code == 201, r.text
    ls_tasks = c.get("/api/tasks", params={"project": project, "page_size": 100}).json()
    ls_tasks = ls_tasks["tasks"] if isinstance(ls_tasks, dict) else ls_tasks
    assert len(ls_tasks) == len(tasks), ls_tasks
    n_pred = 0
    for t in ls_tasks:
        side = "left" if t["data"]["answer1"].startswith("good") else "right"
        full = c.get(f"/api/tasks/{t['id']}").json()
        for p in full.get("predictions", []):
            n_pred += 1
            assert p["result"][0]["value"]["selected"] == side
        r = c.post(f"/api/tasks/{t['id']}/annotations", json={"result": [
            {"from_name": "comparison", "to_name": "answer1", "type": "pairwise",
             "value": {"selected": side}}]})
        assert r.status_code == 201, r.text
    exported = c.get(f"/api/projects/{project}/export", params={"exportType": "JSON"})
    assert exported.status_code == 200, exported.text[:500]
    (work / "ls-export.json").write_bytes(exported.content)
    return n_pred


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ls-bin", required=True, help="label-studio executable of its own venv")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT.parent))
    import httpx

    from prefloop import store
    from prefloop.store.export_files import ExportOptions, export_pairs
    from prefloop.store.importer import import_file
    from prefloop.store.pairs import PairFilters

    work = Path(tempfile.mkdtemp(prefix="ls-roundtrip-"))
    s = store.Store.init(work / "s.duckdb")
    for i in range(6):
        pid = s.prompts.add([[{"role": "user", "content": f"Question {i}: what is {i} + {i}?"}]])[0]
        a, b = s.responses.add([store.ResponseIn(pid, f"good: {2 * i}"), store.ResponseIn(pid, f"bad: {2 * i + 1}")])
        s.comparisons.record(pid, [[a], [b]], labeler_kind="ai" if i % 2 else "human", labeler="seed")
    export_pairs(s, work / "export", PairFilters(test_fraction=0.0), ExportOptions(format="label-studio"))
    tasks = json.loads((work / "export" / "label-studio" / "train.json").read_text())
    config = (work / "export" / "label-studio" / "config.xml").read_text()

    port, token = free_port(), secrets.token_hex(20)
    env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(work / "ls-data"),
           "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true"}
    log = open(work / "ls.log", "w")
    t0 = time.perf_counter()
    proc = subprocess.Popen([args.ls_bin, "start", "--no-browser", "--port", str(port),
                             "--data-dir", str(work / "ls-data"), "--username", "admin@prefloop.local",
                             "--password", "roundtrip-pass-123", "--user-token", token,
                             "--enable-legacy-api-token"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    h = {"Authorization": f"Token {token}"}
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/api/projects", headers=h, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise SystemExit(f"label-studio exited: see {work / 'ls.log'}")
            time.sleep(0.5)
        started = time.perf_counter() - t0
        n_pred = _label_in_label_studio(httpx.Client(base_url=url, headers=h, timeout=60), config, tasks, work)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    before = {p.id for p in s.prompts.list()}
    report = import_file(s, work / "ls-export.json", "label-studio")
    labels = [c for c in s.comparisons.list() if c.labeler.startswith("label-studio:")]
    texts = {r.id: r.text for rs in s.responses.for_prompts(sorted(before)).values() for r in rs}
    assert {p.id for p in s.prompts.list()} == before, "the import made new prompts"
    assert len(labels) == len(tasks) and all(texts[c.ranking[0][0]].startswith("good") for c in labels)
    print(json.dumps({"tasks": len(tasks), "predictions_seen_in_label_studio": n_pred,
                      "labels_back": len(labels), "labelers": sorted({c.labeler for c in labels}),
                      "rejected_lines": report.rejected, "label_studio_start_seconds": round(started, 1),
                      "work": str(work)}))


if __name__ == "__main__":
    main()
