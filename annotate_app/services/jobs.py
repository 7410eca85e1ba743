"""Training and judge jobs started from the admin page, as subprocesses of the app
(``prefloop train KIND ...``, ``prefloop judge run --mode KIND ...``): the app never imports
torch, and each job records its own run in the store."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from prefloop import store
from prefloop.core.kinds import JUDGE_MODES, app_trainable

from ..errors import InvalidSubmission

__all__ = ["JobRunner", "JOB_KINDS"]

#: The jobs the admin page may start: command -> kinds (train) or modes (judge).
JOB_KINDS = {"train": app_trainable(),      # the trainers that read pairs (not KTO's feedback labels)
             "judge": JUDGE_MODES,
             "loop": ("", "iteration")}
#: The options a job may be given (as ``--option value``).
JOB_OPTIONS = frozenset({"model", "reward_model", "max_steps", "source", "limit", "backend",
                         "base_url", "export", "dataset", "config"})


class JobRunner:
    """Starts jobs on one store and reaps the finished ones."""

    def __init__(self, s: store.Store):
        self.store = s
        self.jobs: dict[int, subprocess.Popen] = {}

    def start(self, command: str, kind: str, args: dict[str, Any]) -> tuple[int, Path]:
        """Start ``prefloop train KIND ...``, ``prefloop judge run --mode KIND ...`` or
        ``prefloop loop --config FILE`` in a subprocess (its run appears in the store); returns
        (pid, log file)."""
        if command not in JOB_KINDS or kind not in JOB_KINDS[command]:
            raise InvalidSubmission(f"unknown job {command} {kind}: expected train "
                                    f"{'|'.join(JOB_KINDS['train'])}, judge "
                                    f"{'|'.join(JOB_KINDS['judge'])} or loop")
        if command == "loop" and not args.get("config"):
            raise InvalidSubmission("a loop job needs the option config (a loop.yaml on the server)")
        if command != "loop" and "config" in args:
            raise InvalidSubmission("option config is only for loop jobs")
        argv = [sys.executable, "-m", "prefloop", "--db", str(self.store.path.resolve())]
        argv += {"train": ["train", kind], "judge": ["judge", "run", "--mode", kind, "--no-progress"],
                 "loop": ["loop"]}[command]
        for key, value in args.items():
            if value in (None, ""):
                continue
            if key not in JOB_OPTIONS:
                raise InvalidSubmission(f"option {key} is not allowed here")
            argv += [f"--{key.replace('_', '-')}", str(value)]
        logs = self.store.path.resolve().parent / "runs" / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / f"{command}-{kind}-{time.strftime('%Y%m%d-%H%M%S')}.log"
        with open(log, "w") as f:
            proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.jobs[proc.pid] = proc
        return proc.pid, log

    def reap(self) -> None:
        """Forget children that have exited (their runs are in the store)."""
        for pid, proc in list(self.jobs.items()):
            if proc.poll() is not None:
                del self.jobs[pid]
