"""The labeling app in a real browser (Debian chromium driven by Playwright)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from prefloop.annotate_app.auth import hash_password

from prefloop import store
from prefloop.testing import AppServer

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: Where the tests leave screenshots of the views they drive (to look at them).
SHOTS = Path(os.environ.get("PREFLOOP_SCREENSHOTS", tempfile.gettempdir()))
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script> **bold** end'


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    if not shutil.which("chromium"):
        pytest.skip("Debian chromium is not installed (apt-get install chromium; .ci/run does)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield b
        b.close()


def expect(locator):
    from playwright.sync_api import expect as _expect

    return _expect(locator)


def login(browser, url, user):
    page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
    page.goto(url)
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill("password123")
    page.get_by_role("button", name="Login").click()
    page.wait_for_selector("#pf-who", timeout=30_000)
    page.wait_for_function("document.querySelector('#pf-who').innerText.includes('Logged in')")
    return page


def wait_status(page, text):
    page.wait_for_function(f"document.querySelector('#pf-status').innerText.includes({text!r})",
                           timeout=20_000)


def admin_counts(page, total: int, timeout: int = 20_000) -> None:
    """Wait until the admin's annotator table shows ``total`` submissions for ann."""
    page.wait_for_function(
        "/\\bann\\s+annotator\\s+true\\s+" + str(total) + "\\s/"
        ".test(document.querySelector('#pf-annotators').innerText)", timeout=timeout)


def test_annotator_and_admin_in_a_browser(db, tmp_path, browser):
    def prompt(text, answers):
        pid = db.prompts.add([[{"role": "user", "content": text}]], dataset="ui")[0]
        return pid, db.responses.add([store.ResponseIn(pid, a) for a in answers])

    p1, r1 = prompt("first question", ["one", "two"])
    p2, r2 = prompt("second question", ["alpha", "beta", "gamma"])
    p3, r3 = prompt("third question", [XSS, "plain answer"])
    p4, r4 = prompt("fourth question", ["x", "y"])
    t1, t2, t3, t4 = db.tasks.create([store.TaskIn(p, r, priority=10 - i)
                                      for i, (p, r) in enumerate([(p1, r1), (p2, r2), (p3, r3), (p4, r4)])])
    db.annotators.add("ann", "annotator", hash_password("password123"))
    db.annotators.add("boss", "admin", hash_password("password123"))
    server = AppServer(db.path, log=tmp_path / "server.log")
    try:
        admin = login(browser, server.url, "boss")
        admin.get_by_role("tab", name="Admin").click()
        admin_counts(admin, total=0, timeout=6_000)   # loaded when the tab opens, before the 10 s timer

        page = login(browser, server.url, "ann")
        assert page.get_by_role("tab", name="Admin").count() == 0      # annotators see no admin tab
        page.wait_for_function("document.querySelector('#pf-prompt').innerText.includes('first question')")
        labels = {page.inner_text(f"#pf-response-{i}").split("\n")[-1]: "AB"[i] for i in range(2)}
        page.keyboard.press("2")                                    # shortcut: B is better
        wait_status(page, "Saved (B)")

        page.wait_for_function("document.querySelector('#pf-prompt').innerText.includes('second question')")
        shown = [page.inner_text(f"#pf-response-{i}").split("\n")[-1] for i in range(3)]
        for i, rank in enumerate(("1", "2", "2")):                  # A best, B and C tied
            page.locator(f"#pf-rank-{i}").get_by_label(rank, exact=True).check()
        page.click("#pf-submit")
        wait_status(page, "Saved ranking")

        page.wait_for_function("document.querySelector('#pf-prompt').innerText.includes('third question')")
        xss_slot = 0 if "onerror" in page.inner_text("#pf-response-0") else 1
        assert "<img src=x onerror" in page.inner_text(f"#pf-response-{xss_slot}")  # shown as text
        assert page.evaluate("window.__xss") is None                               # never ran
        page.get_by_text("Rationale, flags and edit (optional)").click()
        box = page.locator("#pf-edit textarea")
        box.click()
        box.press_sequentially("A safer, edited answer.")
        expect(box).to_have_value("A safer, edited answer.")
        box.press("Tab")
        page.click("#pf-a")
        wait_status(page, "Saved (A) with your edit")

        page.wait_for_function("document.querySelector('#pf-prompt').innerText.includes('fourth question')")
        page.click("#pf-skip")
        page.wait_for_function("document.querySelector('#pf-prompt').innerText.includes('Nothing to label')")
        page.click("#pf-logout")
        page.wait_for_selector("text=Login", timeout=20_000)

        admin.click("#pf-refresh")
        admin_counts(admin, total=3)
    finally:
        server.stop()

    human = db.comparisons.list(labeler="ann")
    by_task = {c.task_id: c for c in human}
    assert set(by_task) == {t1, t2, t3, None}
    chosen = {v: k for k, v in labels.items()}["B"]
    assert by_task[t1].ranking == [[next(r for r in r1 if db.responses.get_many([r])[0].text == chosen)],
                                   [next(r for r in r1 if db.responses.get_many([r])[0].text != chosen)]]
    text_id = {db.responses.get_many([r])[0].text: r for r in r2}
    assert by_task[t2].ranking == [[text_id[shown[0]]], sorted([text_id[shown[1]], text_id[shown[2]]])]
    xss_id = r3[0]
    best = by_task[t3].ranking[0][0]
    assert best == (xss_id if xss_slot == 0 else r3[1])
    edit = by_task[None]
    edited = db.responses.get_many(edit.ranking[0])[0]
    assert edited.origin == "human_edit" and edited.text == "A safer, edited answer." and edit.ranking[1] == [best]
    assert [a.state for a in db.tasks.assignments(task_id=t4)] == ["skipped"]
    assert len(human) == 4


def test_models_view_rates_versions_after_two_annotators_vote(db, tmp_path, browser, tiny_model):
    """Two annotators label the blind tasks an evaluation queued; the admin's Models view then
    shows each version's Bradley-Terry rating with its CI."""
    from prefloop.store.importer import import_file
    from prefloop.training.train import train
    from prefloop.evaluation import EvalConfig, run_eval
    from .conftest import HH

    if not HH.exists():
        pytest.skip("needs ../shared/data")
    import_file(db, HH, "hh")
    fast = {"max_steps": 2, "max_length": 256, "max_eval_pairs": 4, "save_steps": 1000}
    rm = train(db, "rm", overrides={"model": str(tiny_model), **fast}).run
    dpo = train(db, "dpo", overrides={"model": str(tiny_model), **fast, "learning_rate": 0.05,
                                      "export_id": rm.export_id}).run
    ev = run_eval(db, EvalConfig(models=(str(tiny_model), f"run:{dpo.id}"), prompts=f"export:{rm.export_id}",
                                 limit=6, max_prompt_tokens=512, reward_model=f"run:{rm.id}",
                                 max_new_tokens=8, tasks=3, overlap=2))
    n_tasks = ev.summary["tasks"]
    assert n_tasks >= 2
    for name in ("ann", "bob"):
        db.annotators.add(name, "annotator", hash_password("password123"))
    db.annotators.add("boss", "admin", hash_password("password123"))
    server = AppServer(db.path, log=tmp_path / "server.log")
    try:
        for name in ("ann", "bob"):
            page = login(browser, server.url, name)
            for i in range(n_tasks):
                page.wait_for_function("document.querySelector('#pf-progress').innerText.includes('Task')")
                page.keyboard.press("1")                              # A is better
                wait_status(page, "Saved (A)")
                page.wait_for_timeout(200)
            page.wait_for_function("document.querySelector('#pf-prompt').innerText.includes('Nothing to label')")
        admin = login(browser, server.url, "boss")
        admin.get_by_role("tab", name="Models").click()
        admin.wait_for_function("document.querySelector('#pf-models').innerText.includes('run:')",
                                timeout=30_000)
        text = admin.inner_text("#pf-models")
        admin.wait_for_function("document.querySelector('#pf-labelers').innerText.includes('ann')")
        labelers = admin.inner_text("#pf-labelers")
        admin.wait_for_selector("#pf-models-plot canvas, #pf-models-plot svg", timeout=30_000)
        admin.wait_for_timeout(500)
        admin.screenshot(path=str(SHOTS / "models.png"), full_page=True)
    finally:
        server.stop()
    assert f"run:{dpo.id}" in text and str(tiny_model) in text and "1000" in text
    assert " .. " in text                                        # the CI column
    assert "ann" in labelers and "bob" in labelers and "hh-rlhf" in labelers
    votes = [c for c in db.comparisons.list(labeler_kind="human") if c.eval_run_id == ev.run.id]
    assert len(votes) == 2 * n_tasks
