"""A separate process writing AI judgments and comparisons while the app serves annotators."""

from __future__ import annotations

import json
import sys
import time

from prefloop import store


def main(db_path: str, seconds: float) -> None:
    s = store.Store(db_path)
    pairs = s.comparisons.candidate_pairs("tasks", limit=500)
    n = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        p, a, b = pairs[n % len(pairs)]
        key = f"soak-{n}"
        ids = s.judgments.record([store.JudgmentIn(key, "soak-judge", "pairwise@1", "A", "A",
                                                   order="AB", meta={"prompt_id": p, "first": a, "second": b})])
        cid = s.comparisons.record(p, [[a], [b]], labeler_kind="ai", labeler="soak-judge",
                                  dedup_key=key)
        s.judgments.link_to_comparison(ids, cid)
        n += 1
        time.sleep(0.02)
    print(json.dumps({"judgments": n}))


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
