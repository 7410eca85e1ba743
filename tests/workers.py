"""Worker processes for the multi-process tests (run as ``python -m tests.workers ...``).

Each prints one JSON line with what it did, so the test can check that nothing was lost.
"""

from __future__ import annotations

import json
import sys
import time

from prefloop import store
from prefloop.store.export_files import export_pairs
from prefloop.store.pairs import PairFilters


def writer(db_path: str, seconds: float, wid: int) -> dict:
    """Add prompt + 2 responses + 1 comparison per iteration, each its own unit of work."""
    s = store.Store(db_path)
    n = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pid = s.prompts.add([[{"role": "user", "content": f"w{wid} q{n}"}]], dataset=f"w{wid}")[0]
        a, b = s.responses.add([store.ResponseIn(pid, f"w{wid} a{n}"), store.ResponseIn(pid, f"w{wid} b{n}")])
        s.comparisons.record(pid, [[a], [b]], labeler_kind="human", labeler=f"w{wid}")
        n += 1
    return {"writer": wid, "comparisons": n}


def exporter(db_path: str, seconds: float, out_dir: str) -> dict:
    """Export all pairs again and again; pair counts must never go down."""
    s = store.Store(db_path)
    counts = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            r = export_pairs(s, f"{out_dir}/e{len(counts)}", PairFilters())
            counts.append(r.export.n_pairs)
        except store.ExportError as exc:  # nothing labeled yet
            if "no pairs match" not in str(exc):
                raise
            counts.append(0)
    return {"exports": len(counts), "counts": counts}


if __name__ == "__main__":
    role, db, secs, arg = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    result = writer(db, secs, int(arg)) if role == "writer" else exporter(db, secs, arg)
    print(json.dumps(result))
