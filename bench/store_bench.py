"""Store throughput and latency at scale; prints figures (no asserts).

    python bench/store_bench.py [--n 1000000] [--leases 500] [--dir /tmp/prefloop-bench]

1. import rate of a TRL Parquet file of N standard rows (comparisons/s), next to a raw DuckDB
   copy of the same rows (``CREATE TABLE AS SELECT * FROM read_parquet``);
2. pair export rate (pairs/s), next to a raw DuckDB ``COPY ... TO parquet`` of the same rows;
3. lease-next-task latency (ms, p50/p99) with N tasks in the queue, each lease followed by a
   submission, so the queue state changes as it would under annotators: once attaching the
   file per unit of work (``PREFLOOP_LINGER_SECONDS=0``, prefloop <= 0.2) and once keeping it
   attached while no other process waits (the default).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from prefloop import store
from prefloop.store import engine
from prefloop.store.export_files import export_pairs
from prefloop.store.importer import import_file
from prefloop.store.pairs import PairFilters


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--leases", type=int, default=500)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/prefloop-bench"))
    args = ap.parse_args()
    n, d = args.n, args.dir
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)

    src = d / "prefs.parquet"
    pq.write_table(pa.table({
        "prompt": [f"Question {i}: how should one answer request number {i}?" for i in range(n)],
        "chosen": [f"A careful, helpful answer to request {i}." for i in range(n)],
        "rejected": [f"A careless answer to request {i}." for i in range(n)],
    }), src)
    print(f"rows: {n:,} TRL standard preference rows ({src.stat().st_size / 2**20:.0f} MiB Parquet)")

    raw_db = d / "raw.duckdb"
    con = duckdb.connect(str(raw_db))
    t = time.perf_counter()
    con.execute(f"CREATE TABLE raw AS SELECT * FROM read_parquet('{src}')")
    raw_import = n / (time.perf_counter() - t)
    t = time.perf_counter()
    con.execute(f"COPY (SELECT * FROM raw ORDER BY prompt) TO '{d / 'raw_out.parquet'}' (FORMAT parquet)")
    raw_export = n / (time.perf_counter() - t)
    con.close()

    s = store.Store.init(d / "bench.duckdb")
    t = time.perf_counter()
    report = import_file(s, src, "trl")
    imp_s = time.perf_counter() - t
    assert report.imported == n, report.as_dict()
    print(f"import:  {n / imp_s:>10,.0f} comparisons/s ({imp_s:.1f} s)   raw DuckDB copy "
          f"{raw_import:>10,.0f} rows/s   ratio {n / imp_s / raw_import:.2f}")

    t = time.perf_counter()
    res = export_pairs(s, d / "export", PairFilters())
    exp_s = time.perf_counter() - t
    print(f"export:  {res.export.n_pairs / exp_s:>10,.0f} pairs/s       ({exp_s:.1f} s)   raw DuckDB COPY "
          f"{raw_export:>10,.0f} rows/s   ratio {res.export.n_pairs / exp_s / raw_export:.2f}")

    t = time.perf_counter()
    comps = s.comparisons.list()
    tasks = [store.TaskIn(c.prompt_id, [c.ranking[0][0], c.ranking[1][0]], overlap=2,
                          priority=c.id % 3) for c in comps]
    s.tasks.create(tasks)
    print(f"tasks:   {len(tasks):,} created in {time.perf_counter() - t:.1f} s (overlap 2, 3 priorities)")

    annotators = [s.annotators.add(f"bench{i}").id for i in range(4)]
    default_linger = engine.LINGER_SECONDS
    for label, linger in (("attach per unit of work", 0.0), ("kept attached (default)", default_linger)):
        engine.LINGER_SECONDS = linger
        s.close()
        lease_ms, submit_ms = [], []
        for k in range(args.leases):
            a = annotators[k % len(annotators)]
            t = time.perf_counter()
            lt = s.tasks.lease_next(a)
            lease_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            s.comparisons.record(lt.prompt.id, [[r.id] for r in lt.responses], labeler_kind="human",
                                labeler=f"bench{a}", task_id=lt.task.id, annotator_id=a)
            submit_ms.append((time.perf_counter() - t) * 1000)
        print(f"{label}:")
        print(f"  lease:   p50 {pct(lease_ms, .5):.1f} ms  p99 {pct(lease_ms, .99):.1f} ms  "
              f"mean {statistics.mean(lease_ms):.1f} ms over {args.leases} leases, {len(tasks):,} tasks")
        print(f"  submit:  p50 {pct(submit_ms, .5):.1f} ms  p99 {pct(submit_ms, .99):.1f} ms")
    print(f"store file: {(d / 'bench.duckdb').stat().st_size / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
