"""Re-run the hostile-input cases of an attack pass ("hostile input never reaches a
traceback") against the CLI, as a user would type them. Prints one line per case and the
totals; exits 1 if any case fails. Asserts nothing else.

    python bench/hostile_cases.py [--keep DIR]

A case passes when the command exits non-zero (or with its documented code), prints no
traceback, says what is wrong in one line (``Error: ...``), and leaves the store, the user's
files and the runs folder as they were. Loopback only; no model is trained (every case fails
before training starts).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HH = ROOT.parent / "shared" / "data" / "hh-rlhf" / "harmless-base-test-dev.jsonl.gz"


def tree_digest(path: Path) -> str:
    """sha256 over every file under ``path`` (names and bytes), lock files aside."""
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file() and not p.name.endswith((".lock", ".want")):
            h.update(str(p.relative_to(path)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def setup(d: Path) -> None:
    run = lambda *a: subprocess.run([sys.executable, "-m", "prefloop", "--db", str(d / "s.duckdb"), *a],  # noqa: E731
                                    cwd=d, capture_output=True, text=True, check=True)
    run("init")
    run("import", str(HH), "--format", "hh")
    (d / "short.txt").write_text("short\n")
    (d / "a-dir").mkdir()
    (d / "text.duckdb").write_text("not a store\n")
    (d / "empty.duckdb").write_bytes(b"")
    (d / "dir.duckdb").mkdir()
    import duckdb

    con = duckdb.connect(str(d / "foreign.duckdb"))
    con.execute("CREATE TABLE orders (id INT)")
    con.close()
    data = (d / "s.duckdb").read_bytes()
    (d / "truncated.duckdb").write_bytes(data[: len(data) // 3])
    mine = d / "mine"
    mine.mkdir()
    for name, text in {"notes.txt": "mine", "background.js": "x", "manifest.json": '{"name": "ext"}'}.items():
        (mine / name).write_text(text)
    (d / "bad.yaml").write_text("a: [1,\n")
    (d / "app-soon.yaml").write_text("lease_seconds: soon\n")
    (d / "app-type.yaml").write_text("lease_seconds: [1]\n")
    (d / "file.txt").write_text("a file\n")
    os.mkfifo(d / "fifo.jsonl")
    rows = json.dumps([{"prompt": f"q{i}"} for i in range(200)], indent=2).encode()
    (d / "cut.json.gz").write_bytes(gzip.compress(rows)[:300])
    (d / "two.json").write_text('[{"prompt": "a"}]\n[{"prompt": "b"}]\n')
    (d / "huge.jsonl").write_text(json.dumps({"prompt": "x" * 10_000_000}) + "\n")


CASES: list[tuple[str, list[str], int]] = [
    # (name, argv after `prefloop`, expected exit code)
    ("db: a text file", ["--db", "text.duckdb", "stats"], 1),
    ("db: an empty file", ["--db", "empty.duckdb", "stats"], 1),
    ("db: a directory", ["--db", "dir.duckdb", "stats"], 1),
    ("db: a truncated store", ["--db", "truncated.duckdb", "stats"], 1),
    ("db: another application's DuckDB", ["--db", "foreign.duckdb", "stats"], 1),
    ("init on a directory", ["--db", "dir.duckdb", "init"], 1),
    ("init on a foreign DuckDB", ["--db", "foreign.duckdb", "init"], 1),
    ("users add: missing password file", ["users", "add", "bob", "--password-file", "nope.txt"], 1),
    ("users add: password file is a directory", ["users", "add", "bob", "--password-file", "a-dir"], 1),
    ("users add: short password", ["users", "add", "bob", "--password-file", "short.txt"], 1),
    ("annotate: missing config", ["annotate", "--config", "nope.yaml"], 1),
    ("annotate: bad YAML", ["annotate", "--config", "bad.yaml"], 1),
    ("annotate: lease_seconds: soon", ["annotate", "--config", "app-soon.yaml"], 1),
    ("annotate: lease_seconds of a wrong type", ["annotate", "--config", "app-type.yaml"], 1),
    ("tasks add --prompts abc", ["tasks", "add", "--prompts", "abc"], 1),
    ("tasks add --limit -1", ["tasks", "add", "--limit", "-1"], 1),
    ("export onto a file", ["export", "file.txt"], 1),
    ("export under a file", ["export", "file.txt/out"], 1),
    ("export onto a user's folder", ["export", "mine"], 1),
    ("export --overwrite onto a user's folder", ["export", "mine", "--overwrite"], 1),
    ("eval --limit 0", ["eval", "--models", "smollm2-135m-instruct", "--prompts", "harmless-base-test-dev",
                        "--limit", "0"], 1),
    ("train --config bad YAML", ["train", "dpo", "--config", "bad.yaml"], 1),
    ("judge --constitution bad YAML", ["judge", "run", "--mode", "pairwise", "--constitution", "bad.yaml"], 1),
    ("train --set max_steps=abc", ["train", "dpo", "--set", "max_steps=abc"], 1),
    ("train --set learning_rate=-1", ["train", "dpo", "--set", "learning_rate=-1"], 1),
    ("train --set beta=abc", ["train", "dpo", "--set", "beta=abc"], 1),
    ("train rm --set label_smoothing=abc", ["train", "rm", "--set", "label_smoothing=abc"], 1),
    ("train --output an existing file", ["train", "dpo", "--output", "file.txt"], 1),
    ("train --max-steps -5", ["train", "dpo", "--max-steps", "-5"], 1),
    ("train rm --model no-such-model", ["train", "rm", "--model", "no-such-model", "--source", "human"], 1),
    ("train iterative-dpo --set n=1", ["train", "iterative-dpo", "--export", "1", "--reward-model", "run:1",
                                       "--set", "n=1"], 1),
    ("train iterative-dpo --set bogus=1", ["train", "iterative-dpo", "--export", "1", "--set", "bogus=1"], 1),
    ("train iterative-dpo, unreachable judge", ["train", "iterative-dpo", "--export", "1", "--set", "labeler=judge",
                                                "--set", "judge_backend=openai", "--set", "judge_model=m",
                                                "--set", "judge_base_url=http://127.0.0.1:9/v1"], 1),
    ("generate --pairs with --n 1", ["generate", "--prompts", "harmless-base-test-dev", "--n", "1",
                                     "--pairs", "best-worst", "--reward-model", "minilm"], 1),
    ("judge run, unreachable server", ["judge", "run", "--mode", "pairwise", "--backend", "openai",
                                       "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--limit", "2"], 1),
    ("import a FIFO", ["import", "fifo.jsonl", "--format", "prompts"], 1),
    ("import a truncated gzip array", ["import", "cut.json.gz", "--format", "prompts"], 1),
    ("import two JSON arrays", ["import", "two.json", "--format", "prompts"], 1),
    ("import a 10 MB field", ["import", "huge.jsonl", "--format", "prompts"], 1),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    args = ap.parse_args()
    d = args.keep or Path(tempfile.mkdtemp(prefix="hostile-"))
    d.mkdir(parents=True, exist_ok=True)
    setup(d)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    failed = 0
    for name, argv, want in CASES:
        before = tree_digest(d)
        cmd = [sys.executable, "-m", "prefloop", *([] if argv[0] == "--db" else ["--db", "s.duckdb"]), *argv]
        try:
            r = subprocess.run(cmd, cwd=d, env=env, capture_output=True, text=True, timeout=120,
                               stdin=subprocess.DEVNULL)
            out = (r.stdout + r.stderr).strip()
            code = r.returncode
        except subprocess.TimeoutExpired:
            out, code = "timed out after 120 s", None
        errors = [line for line in out.splitlines() if line.startswith("Error:")]
        problems = []
        if code != want:
            problems.append(f"exit {code}, expected {want}")
        if "Traceback" in out:
            problems.append("a traceback")
        if len(errors) != 1:
            problems.append(f"{len(errors)} 'Error:' lines")
        if tree_digest(d) != before:
            problems.append("files or the store changed")
        failed += bool(problems)
        shown = errors[0][:150] if errors else out.splitlines()[-1][:150] if out else ""
        print(f"{'PASS' if not problems else 'FAIL'}  {name}: {shown}"
              + (f"   <- {'; '.join(problems)}" if problems else ""), flush=True)
    print(f"{len(CASES) - failed} of {len(CASES)} cases pass")
    if args.keep is None:
        shutil.rmtree(d, ignore_errors=True)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
