"""The labeling app in a real browser (Debian chromium driven by Playwright)."""

from __future__ import annotations

import shutil

import pytest
from prefloop.annotate_app.auth import hash_password

from prefloop import store
from prefloop.testing import AppServer

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
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


def admin_counts(page, total: int) -> None:
    """Wait until the admin's annotator table shows ``total`` submissions for ann."""
    page.wait_for_function(
        "/\\bann\\s+annotator\\s+true\\s+" + str(total) + "\\s/"
        ".test(document.querySelector('#pf-annotators').innerText)", timeout=20_000)


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
        admin.click("#pf-refresh")
        admin_counts(admin, total=0)

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
