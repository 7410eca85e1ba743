"""Labeling app latency under load; prints figures (no asserts).

    python bench/annotate_bench.py [--tasks 100000] [--annotators 16] [--submits 20] [--think 5 1 0]
                                   [--peer label-studio --peer-bin /path/to/label-studio]
                                   [--chatting 4 --chat-model DIR]

Starts ``prefloop annotate`` on a store with N two-response tasks, then 16 annotators (threads,
each with its own logged-in session) submit and get the next task, waiting ``--think`` seconds
(on average, uniformly 0.5x to 1.5x) between tasks as a person would (5, 1, then 0: back to
back). Prints submit -> next-task latency p50/p99 for each ``--client``:

- ``http``: :class:`prefloop.annotate_app.testing.GradioSession`, Gradio's browser protocol over plain httpx (login cookie,
  ``queue/join`` + the ``queue/data`` event stream): what the browser waits for, and the same
  kind of client as the Label Studio side (plain httpx on its REST API);
- ``gradio_client``: Gradio's Python client, which adds its own work per call (threads, a
  polled message queue): about 30 ms per call on 2 cores.

Then the page load time to the first task in Debian chromium (login to the first prompt on
screen) and the admin page, when chromium is installed.

``--browser-clicks N`` times click -> next prompt on screen in chromium (Playwright) for one
annotator while the other 15 label over the API at 5 s think time.

``--chatting N --chat-model DIR`` then measures the annotators at 1 s think time while N
others chat with the model in DIR (served by ``transformers serve``) through the JSON API, beside
the same load without chatting.

``--peer label-studio`` measures Label Studio side by side: a fresh data directory (SQLite, the
default of ``pip install label-studio``; ``label-studio init``), the same tasks and annotators
seeded by ``bench/peers/label_studio_seed.py`` (run with Label Studio's own Python, next to
``--peer-bin``: install it in a virtual environment of its own), ``label-studio start``, and
the same clients through its REST API: ``POST /api/tasks/ID/annotations/`` then
``GET /api/projects/ID/next`` is one submit -> next task. It prints both tools' p50/p99 and the
ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from gradio_client import Client

from prefloop import store
from prefloop.annotate_app.auth import hash_password
from prefloop.annotate_app.testing import AppServer, GradioSession, free_port


def fast_client_poll(seconds: float) -> None:
    """gradio_client waits for each server message by polling its queue with
    ``time.sleep(0.05)`` (gradio_client/utils.py), which adds 0-50 ms to every call on the
    client's side; shorten that poll so the figures measure the server, not the client's
    sleep (the browser, measured apart, has no such poll)."""
    import types

    import gradio_client.utils as gcu

    real = time.sleep
    gcu.time = types.SimpleNamespace(**{k: getattr(time, k) for k in dir(time) if not k.startswith("_")})
    gcu.time.sleep = lambda s: real(seconds if s == 0.05 else s)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def seed(s: store.Store, n: int, annotators: int, users: int = 0) -> None:
    t0 = time.perf_counter()
    pids = s.prompts.add([[{"role": "user", "content": f"Question {i}: please explain topic {i}."}]
                          for i in range(n)], dataset="bench")
    rids = s.responses.add([store.ResponseIn(p, f"{kind} answer about topic {p}.")
                            for p in pids for kind in ("A careful", "A sloppy")])
    s.tasks.create([store.TaskIn(p, [rids[2 * i], rids[2 * i + 1]], overlap=2) for i, p in enumerate(pids)])
    pw = hash_password("password123")
    for i in range(max(annotators, users)):
        s.annotators.add(f"bench{i:02d}", "annotator", pw)
    s.annotators.add("pageload", "annotator", pw)
    s.annotators.add("benchadmin", "admin", pw)
    print(f"store: {n:,} tasks (overlap 2), {annotators} annotators, seeded in {time.perf_counter() - t0:.0f} s")


def _submitter(url: str, user: str, client: str):
    """Log ``user`` in with ``client`` (``http`` or ``gradio_client``), load their task, and
    return a function that submits *A is better* and returns the reply's output values."""
    if client == "http":
        c = GradioSession(url, user)
        c.call("load_task")
        return lambda: c.call("submit_A")
    g = Client(url, auth=(user, "password123"), verbose=False)
    g.predict(api_name="/load_task")
    return lambda: g.predict("", [], "", api_name="/submit_A")


def back_to_back(url: str, calls: int, client: str) -> list[float]:
    """One annotator alone submitting ``calls`` times back to back: seconds per submit -> next
    task (the per-call cost of the server plus ``client``, without queueing)."""
    submit = _submitter(url, "bench00", client)
    out = []
    for _ in range(calls):
        t0 = time.perf_counter()
        submit()
        out.append(time.perf_counter() - t0)
    return out


def _saved(out: list) -> None:
    if not any(isinstance(o, str) and o.startswith("Saved") for o in out):
        raise RuntimeError(f"no 'Saved' message in the reply: {str(out)[:300]}")


def run_annotators(n: int, start, submits: int, think: float, check=None, who: str = "") -> list[float]:
    """``n`` annotators at once (threads): ``start(i)`` logs annotator ``i`` in and returns its
    submit function; each then waits ``think`` seconds (uniformly 0.5x to 1.5x: people are not
    in lockstep) and submits, ``submits`` times. Returns the seconds of each submit -> next
    task; ``check(reply)``, outside the timing, raises on a bad reply. Errors end that
    annotator's run and are counted on one line."""
    lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        try:
            submit = start(i)
            rng = random.Random(i)
            for _ in range(submits):
                time.sleep(rng.uniform(0.5 * think, 1.5 * think))
                t0 = time.perf_counter()
                out = submit()
                dt = time.perf_counter() - t0
                if check:
                    check(out)
                with lock:
                    lat.append(dt)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        print(f"  {who}{len(errors)} annotators saw errors, e.g. {errors[0]}")
    return lat


def load(url: str, annotators: int, submits: int, think: float, client: str = "http") -> list[float]:
    """``annotators`` logged-in sessions (``client``: ``http`` is
    :class:`prefloop.annotate_app.testing.GradioSession`, ``gradio_client`` is Gradio's Python client) submit
    *A is better* ``submits`` times, ``think`` seconds apart (:func:`run_annotators`): seconds
    from each submit to the next task's values."""
    return run_annotators(annotators, lambda i: _submitter(url, f"bench{i:02d}", client),
                          submits, think, check=_saved)


@contextlib.contextmanager
def _chromium():
    """Debian chromium driven by Playwright (closed on exit)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=shutil.which("chromium"), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            yield b
        finally:
            b.close()


def _fill_login(page, url: str, user: str) -> None:
    """Open the app and fill in the login form (the caller clicks, to time what follows)."""
    page.goto(url)
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill("password123")


_PROMPT_SHOWN = ("document.querySelector('#pf-prompt') && "
                 "document.querySelector('#pf-prompt').innerText.includes('Question')")


def browser_clicks(url: str, clicks: int, think: float) -> list[float] | None:
    """One annotator in chromium (``pageload``) presses *A is better* ``clicks`` times, ``think``
    seconds apart: seconds from the click to the next prompt on screen (Playwright, polling
    every animation frame)."""
    if not shutil.which("chromium"):
        return None
    out = []
    with _chromium() as b:
        page = b.new_context().new_page()
        _fill_login(page, url, "pageload")
        page.get_by_role("button", name="Login").click()
        page.wait_for_function(_PROMPT_SHOWN, timeout=60_000)
        rng = random.Random(99)
        for _ in range(clicks):
            time.sleep(rng.uniform(0.5 * think, 1.5 * think))
            before = page.inner_text("#pf-prompt")
            t0 = time.perf_counter()
            page.click("#pf-a")
            page.wait_for_function("(b) => { const e = document.querySelector('#pf-prompt'); "
                                   "return e && e.innerText.includes('Question') && e.innerText !== b; }",
                                   arg=before, timeout=60_000, polling="raf")
            out.append(time.perf_counter() - t0)
    return out


def _fresh_sessions(url: str, user: str, runs: int, timed) -> list[float] | None:
    """``runs`` fresh chromium sessions of ``user``, each at the filled-in login form:
    ``timed(page)`` returns the seconds it measured (``None`` without chromium)."""
    if not shutil.which("chromium"):
        return None
    out = []
    with _chromium() as b:
        for _ in range(runs):
            page = b.new_context().new_page()
            _fill_login(page, url, user)
            out.append(timed(page))
            page.context.close()
    return out


def admin_load(url: str, runs: int = 3) -> list[float] | None:
    """Seconds from clicking the Admin tab to its figures on screen (chromium)."""
    def timed(page) -> float:
        page.get_by_role("button", name="Login").click()
        page.wait_for_selector("#pf-who", timeout=60_000)
        page.wait_for_timeout(500)
        t0 = time.perf_counter()
        page.get_by_role("tab", name="Admin").click()
        page.wait_for_function("document.querySelector('#pf-agreement') && "
                               "document.querySelector('#pf-agreement').innerText.includes('Review')",
                               timeout=120_000)
        return time.perf_counter() - t0
    return _fresh_sessions(url, "benchadmin", runs, timed)


def page_load(url: str, runs: int = 3) -> list[float] | None:
    """Seconds from clicking Login to the first prompt on screen (chromium)."""
    def timed(page) -> float:
        t0 = time.perf_counter()
        page.get_by_role("button", name="Login").click()
        page.wait_for_function(_PROMPT_SHOWN, timeout=60_000)
        return time.perf_counter() - t0
    return _fresh_sessions(url, "pageload", runs, timed)


class LabelStudio:
    """A Label Studio server on a fresh data directory with ``n`` pairwise tasks (overlap 2)."""

    def __init__(self, binary: str, n: int, annotators: int, workdir: Path):
        self.binary, self.dir = binary, workdir / "label-studio"
        python = str(Path(binary).parent / "python")
        env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(self.dir)}
        t0 = time.perf_counter()
        subprocess.run([binary, "init", "--data-dir", str(self.dir), "--username", "admin@bench.local",
                        "--password", "benchpass123", "--enable-legacy-api-token", "--quiet"],
                       env=env, check=True, capture_output=True)
        seed_script = Path(__file__).parent / "peers" / "label_studio_seed.py"
        out = subprocess.run([python, str(seed_script), str(n), str(annotators)], env=env,
                             check=True, capture_output=True, text=True).stdout
        info = json.loads(out.strip().splitlines()[-1])
        self.project, self.tokens = info["project"], info["tokens"]
        print(f"label-studio: {n:,} tasks (overlap 2), {annotators} annotators, SQLite, seeded in "
              f"{time.perf_counter() - t0:.0f} s")
        self.port = free_port()
        self.log = open(workdir / "label-studio.log", "w")
        self.proc = subprocess.Popen([binary, "start", "--data-dir", str(self.dir), "--port",
                                      str(self.port), "--no-browser", "--log-level", "WARNING"],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"label-studio did not start; see {self.log.name}")
            time.sleep(1)

    def load(self, submits: int, think: float) -> list[float]:
        """Every seeded annotator over the REST API (:func:`run_annotators`): one submit ->
        next task is ``POST /api/tasks/ID/annotations/`` then ``GET /api/projects/ID/next``."""
        result = [{"from_name": "pw", "to_name": "a,b", "type": "pairwise", "value": {"selected": "left"}}]
        clients: list[httpx.Client] = []

        def start(i: int):
            c = httpx.Client(base_url=self.url, timeout=120, headers={"Authorization": f"Token {self.tokens[i]}"})
            clients.append(c)
            task = c.get(f"/api/projects/{self.project}/next").raise_for_status().json()

            def submit() -> None:
                nonlocal task
                c.post(f"/api/tasks/{task['id']}/annotations/",
                       json={"result": result, "lead_time": think}).raise_for_status()
                task = c.get(f"/api/projects/{self.project}/next").raise_for_status().json()
            return submit

        try:
            return run_annotators(len(self.tokens), start, submits, think, who="label-studio: ")
        finally:
            for c in clients:
                c.close()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--annotators", type=int, default=16)
    ap.add_argument("--submits", type=int, default=20)
    ap.add_argument("--think", type=float, nargs="+", default=[5.0, 1.0, 0.0],
                    help="seconds between tasks per annotator; one measurement per value")
    ap.add_argument("--client", nargs="+", choices=["http", "gradio_client"], default=["http", "gradio_client"],
                    help="how the annotators talk to the app: http (Gradio's browser protocol, "
                         "GradioSession) and/or gradio_client (Gradio's Python client); one "
                         "measurement per client and think time")
    ap.add_argument("--client-poll", type=float, default=0.005,
                    help="gradio_client's message poll in seconds (its own default: 0.05)")
    ap.add_argument("--users", type=int, default=50, help="annotator accounts (idle beyond --annotators)")
    ap.add_argument("--browser-clicks", type=int, default=0,
                    help="also time N clicks -> next prompt in chromium while 15 others label")
    ap.add_argument("--peer", choices=["label-studio"], help="measure a peer side by side")
    ap.add_argument("--peer-bin", default=shutil.which("label-studio"),
                    help="the peer's executable (default: on PATH)")
    ap.add_argument("--chatting", type=int, default=0,
                    help="also measure the annotators while N others chat in the Chat view (JSON API)")
    ap.add_argument("--chat-model", help="the chat model's directory (served by transformers serve)")
    args = ap.parse_args()
    if args.chatting and not args.chat_model:
        ap.error("--chatting: give --chat-model (a model directory)")
    if args.peer and not args.peer_bin:
        ap.error("--peer label-studio: give --peer-bin (label-studio is not on PATH)")
    return args


def _label_studio(args, tmp: Path, ours: dict[float, list[float]]) -> None:
    """The same load on Label Studio, side by side with ours (``ours``: latencies by think time)."""
    ls = LabelStudio(args.peer_bin, args.tasks, args.annotators, tmp)
    try:
        for think in args.think:
            t0 = time.perf_counter()
            lat = ls.load(args.submits, think)
            wall = time.perf_counter() - t0
            if not lat:
                continue
            line = (f"label-studio submit -> next task, {args.annotators} annotators, think "
                    f"{think:.1f} s: p50 {pct(lat, .5) * 1000:.0f} ms, p99 {pct(lat, .99) * 1000:.0f} ms, "
                    f"{len(lat)} submissions, {len(lat) / wall:.1f}/s")
            if think in ours:
                mine = ours[think]
                line += (f"; prefloop ({args.client[0]})/label-studio p50 {pct(mine, .5) / pct(lat, .5):.2f}, "
                         f"p99 {pct(mine, .99) / pct(lat, .99):.2f}")
            print(line)
    finally:
        ls.stop()


@contextlib.contextmanager
def chat_model(model_dir: str, tmp: Path):
    """``transformers serve MODEL_DIR`` on a free port (the chat model under study), yielding
    the ``chat`` section of the app config that points at it; stopped on exit."""
    port = free_port()
    exe = shutil.which("transformers") or str(Path(sys.executable).parent / "transformers")
    proc = subprocess.Popen([exe, "serve", model_dir, "--port", str(port), "--device", "cpu"],
                            stdout=open(tmp / "serve.log", "w"), stderr=subprocess.STDOUT,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        for _ in range(240):
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.5)
        yield {"base_url": f"http://127.0.0.1:{port}/v1", "model": model_dir, "max_tokens": 32,
               "extra_body": {"generation_config": json.dumps({"do_sample": True})}}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def chatters(url: str, keys: list[str], stop: threading.Event, turns: list[float]) -> list[threading.Thread]:
    """One thread per API key: a conversation through the JSON API (a message, its candidates,
    pick A) until ``stop``; appends each turn's seconds (message -> candidates) to ``turns``."""
    def one(key: str) -> None:
        with httpx.Client(base_url=url + "/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=300) as c:
            cid = c.post("/conversations", json={}).raise_for_status().json()["conversation_id"]
            n = 0
            while not stop.is_set():
                n += 1
                t0 = time.perf_counter()
                st = c.post(f"/conversations/{cid}/messages", json={"message": f"Tell me about topic {n}."})
                turns.append(time.perf_counter() - t0)
                c.post(f"/conversations/{cid}/choice", json={"turn": st.json()["turn"], "choice": "A"}).raise_for_status()
                if n % 5 == 0:        # a fresh conversation now and then: prompts stay short
                    cid = c.post("/conversations", json={}).raise_for_status().json()["conversation_id"]
    threads = [threading.Thread(target=one, args=(k,), daemon=True) for k in keys]
    for t in threads:
        t.start()
    return threads


def chat_load(args, s: store.Store, tmp: Path) -> None:
    """Submit -> next task for ``--annotators`` while ``--chatting`` others chat with the model of
    ``--chat-model`` (its own ``transformers serve``), beside the same load without chatting."""
    keys = [s.api_keys.create(s.annotators.add(f"chat{i}", "annotator", hash_password("password123")).id)[1]
            for i in range(args.chatting)]
    with chat_model(args.chat_model, tmp) as chat:
        (tmp / "app.yaml").write_text("chat: " + json.dumps(chat) + "\n")
        s.close()
        srv = AppServer(s.path, config=tmp / "app.yaml", log=tmp / "server-chat.log")
        try:
            for chatting in (0, args.chatting):
                stop, turns = threading.Event(), []
                threads = chatters(srv.url, keys[:chatting], stop, turns)
                lat = load(srv.url, args.annotators, args.submits, 1.0)
                stop.set()
                for t in threads:
                    t.join(timeout=300)
                chat_note = (f"; chat turns p50 {pct(turns, .5):.2f} s over {len(turns)}" if turns else "")
                print(f"submit -> next task (http), {args.annotators} annotators, think 1.0 s, {chatting} chatting: "
                      f"p50 {pct(lat, .5) * 1000:.0f} ms, p99 {pct(lat, .99) * 1000:.0f} ms{chat_note}")
        finally:
            srv.stop()


def main() -> None:
    args = _args()
    fast_client_poll(args.client_poll)
    print(f"gradio_client message poll: {args.client_poll * 1000:.0f} ms (its default is 50 ms)")
    tmp = Path(tempfile.mkdtemp(prefix="annotate-bench-"))
    s = store.Store.init(tmp / "bench.duckdb")
    seed(s, args.tasks, args.annotators, args.users)
    ours: dict[float, list[float]] = {}
    srv = AppServer(s.path, log=tmp / "server.log")
    try:
        if args.browser_clicks:
            # 15 annotators over the API at 5 s think time, the 16th in chromium
            bg = threading.Thread(target=load, args=(srv.url, args.annotators - 1,
                                                     max(args.submits, args.browser_clicks), 5.0))
            bg.start()
            clicks = browser_clicks(srv.url, args.browser_clicks, 5.0)
            bg.join()
            if clicks:
                print(f"click -> next prompt in chromium, {args.annotators} annotators (think 5 s): "
                      f"p50 {pct(clicks, .5) * 1000:.0f} ms, p95 {pct(clicks, .95) * 1000:.0f} ms, "
                      f"max {max(clicks) * 1000:.0f} ms over {len(clicks)} clicks")
        for client in args.client:
            alone = back_to_back(srv.url, 60, client)
            print(f"submit -> next task ({client}), one annotator alone, back to back: "
                  f"p50 {pct(alone, .5) * 1000:.0f} ms, p99 {pct(alone, .99) * 1000:.0f} ms over 60")
        for client in args.client:
            for think in args.think:
                t0 = time.perf_counter()
                lat = load(srv.url, args.annotators, args.submits, think, client)
                wall = time.perf_counter() - t0
                if lat:
                    if client == args.client[0]:
                        ours[think] = lat
                    print(f"submit -> next task ({client}), {args.annotators} annotators, think {think:.1f} s: "
                          f"p50 {pct(lat, .5) * 1000:.0f} ms, p99 {pct(lat, .99) * 1000:.0f} ms, "
                          f"{len(lat)} submissions, {len(lat) / wall:.1f}/s")
        pl = page_load(srv.url)
        if pl:
            print(f"page load to first task (login click -> prompt shown): "
                  f"{', '.join(f'{x:.2f}' for x in pl)} s")
            al = admin_load(srv.url)
            print(f"admin page (Admin tab click -> figures shown), {args.tasks:,} tasks, "
                  f"{max(args.annotators, args.users) + 2} users: {', '.join(f'{x:.2f}' for x in al)} s")
        else:
            print("page load: chromium not installed, skipped")
    finally:
        srv.stop()
    if args.chatting:
        chat_load(args, s, tmp)
    if args.peer == "label-studio":
        _label_studio(args, tmp, ours)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
