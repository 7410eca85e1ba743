"""Several real processes writing and exporting one store file at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from prefloop import store

from .conftest import ROOT

SECONDS = float(os.environ.get("PREFLOOP_SOAK_SECONDS", "30"))


@pytest.mark.soak
def test_four_writers_and_an_exporter_lose_nothing(store_path, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-m", "tests.workers", "writer", str(store_path),
                               str(SECONDS), str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=ROOT, env=env) for i in range(4)]
    procs.append(subprocess.Popen([sys.executable, "-m", "tests.workers", "exporter", str(store_path),
                                   str(SECONDS), str(tmp_path)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env))
    results = []
    for p in procs:
        out, err = p.communicate(timeout=SECONDS + 120)
        assert p.returncode == 0, err
        assert "Error" not in err and "Traceback" not in err, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    written = {r["writer"]: r["comparisons"] for r in results[:4]}
    assert min(written.values()) >= 0.25 * max(written.values()) > 0, written   # the turnstile is fair
    s = store.Store(store_path)
    for wid, n in written.items():
        comps = s.comparisons.list(labeler=f"w{wid}")
        assert len(comps) == n                       # no lost and no duplicated write
        assert len(s.prompts.list(dataset=f"w{wid}")) == n
    counts = results[4]["counts"]
    assert len(counts) >= 2 and counts == sorted(counts)  # snapshots only grow
    print(f"writes per writer: {written}; exports: {len(counts)}")
