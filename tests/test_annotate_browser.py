"""The labeling app in a real browser (Debian chromium driven by Playwright)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from prefloop import store
from prefloop.annotate_app.auth import hash_password
from prefloop.annotate_app.testing import AppServer

pytestmark = [pytest.mark.browser, pytest.mark.model]
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


def serve(db, tmp_path, app_yaml: str) -> AppServer:
    """The app on ``db`` with this ``app.yaml``; this process lets go of the store first."""
    config = tmp_path / "app.yaml"
    config.write_text(app_yaml)
    db.close()
    return AppServer(db.path, config=config, log=tmp_path / "server.log")


def wait_status(page, text):
    page.wait_for_function(f"document.querySelector('#pf-status').innerText.includes({text!r})",
                           timeout=20_000)


def admin_counts(page, total: int, timeout: int = 20_000) -> None:
    """Wait until the admin's annotator table shows ``total`` submissions for ann."""
    page.wait_for_function(
        "document.querySelector('#pf-annotators') && /\\bann\\s+annotator\\s+true\\s+" + str(total) + "\\s/"
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
    from prefloop.pipelines.evaluation import EvalConfig, run_eval
    from prefloop.store.importer import import_file
    from prefloop.training.train import train

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
    n_tasks = ev.summary.tasks
    assert n_tasks >= 2
    for name in ("ann", "bob"):
        db.annotators.add(name, "annotator", hash_password("password123"))
    db.annotators.add("boss", "admin", hash_password("password123"))
    server = AppServer(db.path, log=tmp_path / "server.log")
    try:
        for name in ("ann", "bob"):
            page = login(browser, server.url, name)
            for k in range(1, n_tasks + 1):
                page.wait_for_function("document.querySelector('#pf-progress').innerText.includes('Task')")
                page.keyboard.press("1")                              # A is better
                wait_status(page, "Saved (A)")
                # the k-th label is stored before the next key (a loaded machine answers late)
                page.wait_for_function(f"/\\b{k} in all/.test(document.querySelector('#pf-progress').innerText) || "
                                       "document.querySelector('#pf-prompt').innerText.includes('Nothing to label')",
                                       timeout=30_000)
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


def test_empty_admin_page_says_so_instead_of_placeholders(db, tmp_path, browser):
    db.annotators.add("boss", "admin", hash_password("password123"))
    server = AppServer(db.path, log=tmp_path / "server.log")
    try:
        admin = login(browser, server.url, "boss")
        admin.get_by_role("tab", name="Admin").click()
        admin.wait_for_function("document.querySelector('#pf-agreement').innerText.includes('No submissions yet')",
                                timeout=15_000)
        admin.wait_for_timeout(300)
        admin.screenshot(path=str(SHOTS / "admin_empty.png"), full_page=True)
        text = admin.inner_text("body")
    finally:
        server.stop()
    assert "The queue is empty" in text and "No training or judge runs yet" in text
    assert "Infinity" not in text
    assert "No submissions yet" in text                       # the users' table lists boss, 0
    for empty in ("#pf-datasets", "#pf-queue", "#pf-runs", "#pf-run-plot", "#pf-plot-submissions",
                  "#pf-plot-burndown", "#pf-human-ai"):
        assert admin.locator(empty).count() == 0 or not admin.locator(empty).is_visible(), empty


def _adjudicate(browser, url):
    """The reviewer opens the disputed task and records A > B; returns the queue's and the item's text."""
    rev = login(browser, url, "rev")
    assert rev.get_by_role("tab", name="Admin").count() == 0          # a reviewer is not an admin
    rev.get_by_role("tab", name="Review").click()
    rev.wait_for_function("document.querySelector('#pf-review-queue') && "
                          "document.querySelector('#pf-review-queue').innerText.includes('disputed')",
                          timeout=15_000)
    queue = rev.inner_text("#pf-review-queue")
    rev.locator("#pf-review-queue").locator("text=disputed question >> visible=true").first.click()
    rev.wait_for_function("document.querySelector('#pf-review-item').innerText.includes(\"bob's reason\")",
                          timeout=15_000)
    item = rev.inner_text("#pf-review-item")
    rev.screenshot(path=str(SHOTS / "review.png"), full_page=True)
    rev.locator("#pf-review-ranking textarea, #pf-review-ranking input").first.fill("A > B")
    rev.click("#pf-review-save")
    rev.wait_for_function("document.querySelector('#pf-review-status').innerText.includes('final ranking saved')",
                          timeout=15_000)
    rev.wait_for_function("document.querySelector('#pf-review-note').innerText.includes('Nothing to review')",
                          timeout=15_000)
    return queue, item


def _miss_qualification(browser, url):
    """The new annotator answers both gold tasks wrong and is paused; returns the page, its progress line and the paused message."""
    new = login(browser, url, "newbie")
    for _ in range(2):                                            # answer both gold tasks wrong
        new.wait_for_function("document.querySelector('#pf-prompt').innerText.includes('gold question')",
                              timeout=15_000)
        progress = new.inner_text("#pf-progress")
        wrong_slot = 0 if "gold wrong" in new.inner_text("#pf-response-0") else 1
        before = new.inner_text("#pf-prompt")
        new.click("#pf-a" if wrong_slot == 0 else "#pf-b")
        new.wait_for_function(f"!document.querySelector('#pf-prompt').innerText.includes({before!r})",
                              timeout=15_000)
    new.wait_for_function("document.querySelector('#pf-prompt').innerText.includes('paused')", timeout=15_000)
    paused = new.inner_text("#pf-prompt")
    new.screenshot(path=str(SHOTS / "paused.png"), full_page=True)
    return new, progress, paused


def _reenable(browser, url):
    """The admin re-enables the paused annotator; returns the people table's text."""
    admin = login(browser, url, "boss")
    admin.get_by_role("tab", name="Admin").click()
    admin.wait_for_function("document.querySelector('#pf-agreement').innerText.includes('Review')",
                            timeout=15_000)
    admin.get_by_text("People: roles, qualification, pauses").click()
    admin.wait_for_function("document.querySelector('#pf-people').innerText.includes('qualification')",
                            timeout=15_000)
    people = admin.inner_text("#pf-people")
    admin.locator("#pf-reenable-name input, #pf-reenable-name textarea").first.fill("newbie")
    admin.click("#pf-reenable")
    admin.wait_for_function("document.querySelector('#pf-admin-status').innerText.includes('re-enabled')",
                            timeout=15_000)
    admin.wait_for_timeout(500)
    admin.screenshot(path=str(SHOTS / "admin_people.png"), full_page=True)
    return people


def test_review_adjudication_and_qualification_in_a_browser(db, tmp_path, browser):
    """Two annotators disagree and one flags the task; the reviewer sees both labels, records
    the final ranking, which the adjudicated export follows. A new annotator misses the
    qualification gold tasks, is paused with the reason shown, and an admin re-enables them."""
    from prefloop.store.pairs import PairFilters, derive_pairs

    def prompt(text, answers):
        pid = db.prompts.add([[{"role": "user", "content": text}]], dataset="ui")[0]
        return pid, db.responses.add([store.ResponseIn(pid, a) for a in answers])

    p1, (good, bad) = prompt("disputed question", ["the careful answer", "the sloppy answer"])
    t1, = db.tasks.create([store.TaskIn(p1, [good, bad], overlap=2)])
    golds = []
    for i in range(2):
        pg, (right, wrong) = prompt(f"gold question {i}", [f"gold right {i}", f"gold wrong {i}"])
        golds += db.tasks.create([store.TaskIn(pg, [right, wrong], gold_ranking=[[right], [wrong]])])
    p3, r3 = prompt("regular question", ["one", "two"])
    db.tasks.create([store.TaskIn(p3, r3)])
    pw = hash_password("password123")
    ids = {n: db.annotators.add(n, role, pw).id for n, role in
           (("ann", "annotator"), ("bob", "annotator"), ("rev", "reviewer"), ("boss", "admin"),
            ("newbie", "annotator"))}
    for name, ranking, flags in (("ann", [[good], [bad]], []), ("bob", [[bad], [good]], ["unsafe"])):
        lt = db.tasks.lease_next(ids[name])
        db.comparisons.record(p1, ranking, labeler_kind="human", task_id=lt.task.id,
                              annotator_id=ids[name], flags=flags, rationale=f"{name}'s reason")
    server = serve(db, tmp_path, "qualification_tasks: 2\nmin_gold_accuracy: 1.0\nreview:\n  min_agreement: 0.75\n")
    try:
        queue, item = _adjudicate(browser, server.url)
        new, progress, paused = _miss_qualification(browser, server.url)
        people = _reenable(browser, server.url)
        new.click("#pf-next")
        new.wait_for_function("document.querySelector('#pf-prompt').innerText.includes('regular question')",
                              timeout=15_000)
    finally:
        server.stop()
    assert "agreement" in queue and "flag" in queue
    assert "ann's reason" in item and "unsafe" in item and "Response A" in item
    assert "gold" not in progress.lower()                             # gold tasks look like any other
    assert "0 of 2 gold tasks right" in paused
    assert "newbie" in people and "0 of 2 gold tasks right" in people
    reviews = db.reviews.list()
    assert [(r.task_id, r.decision) for r in reviews] == [(t1, "adjudicated")]
    assert set(reviews[0].reasons) >= {"agreement", "flag"}
    table, _ = derive_pairs(db, PairFilters(aggregate="adjudicated"))
    row = [r for r in table.to_pylist() if r["prompt_id"] == p1][0]
    assert (row["chosen_id"], row["rejected_id"], row["p_chosen"]) == (good, bad, 1.0)
    assert db.annotators.get("newbie").paused_reason is None


def test_chat_rendering_folding_suggestion_and_edit_diff(db, tmp_path, browser):
    """A multi-turn prompt renders as a chat with the roles styled apart, a long response folds,
    an AI suggestion shows before the choice (assist: before), and an edit shows as a diff."""
    pid = db.prompts.add([[{"role": "system", "content": "Be brief."},
                           {"role": "user", "content": "What is 2+2?"},
                           {"role": "assistant", "content": "Four."},
                           {"role": "user", "content": "And 3+3?"}]], dataset="ui")[0]
    long = "Six. " + "Here is a very long explanation. " * 120
    short, longer = db.responses.add([store.ResponseIn(pid, "The answer is six."), store.ResponseIn(pid, long)])
    db.tasks.create([store.TaskIn(pid, [short, longer])])
    db.comparisons.record(pid, [[short], [longer]], labeler_kind="ai", labeler="judge")
    db.annotators.add("ann", "annotator", hash_password("password123"))
    server = serve(db, tmp_path, "assist: {when: before}\n")
    try:
        page = login(browser, server.url, "ann")
        page.wait_for_function("document.querySelector('#pf-prompt').innerText.includes('And 3+3?')")
        roles = page.evaluate("[...document.querySelectorAll('#pf-prompt .pf-turn')].map("
                              "e => [e.className, getComputedStyle(e).backgroundColor])")
        suggestion = page.inner_text("#pf-suggestion")
        long_slot = 0 if "Here is a very long" in page.inner_text("#pf-response-0") else 1
        folded = page.locator(f"#pf-response-{long_slot} details").count()
        page.get_by_text("Rationale, flags and edit (optional)").click()
        box = page.locator("#pf-edit textarea")
        box.click()
        box.press_sequentially("The answer is 6.")
        page.wait_for_function("document.querySelector('#pf-edit-diff').innerText.includes('6.')",
                               timeout=15_000)
        diff_html = page.inner_html("#pf-edit-diff")
        page.wait_for_timeout(300)
        page.screenshot(path=str(SHOTS / "label_chat.png"), full_page=True)
    finally:
        server.stop()
    assert [r[0].split()[-1] for r in roles] == ["pf-system", "pf-user", "pf-assistant", "pf-user"]
    assert roles[1][1] != roles[2][1]                              # user and assistant look different
    short_label = "AB"[1 - long_slot]
    assert f"AI suggestion: {short_label} is better" in suggestion
    assert folded == 1
    assert '<del class="pf-del">six.</del>' in diff_html and '<ins class="pf-ins">6.</ins>' in diff_html


def test_ratings_only_task_in_a_browser(db, tmp_path, browser):
    """A dataset configured for ratings without a ranking: the annotator rates each response on
    each aspect in the grid; the ranking follows the mean ratings; the admin page summarizes."""
    pid = db.prompts.add([[{"role": "user", "content": "rate these"}]], dataset="rated")[0]
    good, bad = db.responses.add([store.ResponseIn(pid, "a fine answer"), store.ResponseIn(pid, "a poor answer")])
    db.tasks.create([store.TaskIn(pid, [good, bad])])
    db.annotators.add("ann", "annotator", hash_password("password123"))
    db.annotators.add("boss", "admin", hash_password("password123"))
    server = serve(db, tmp_path, "ratings: {aspects: [helpfulness, honesty], scale: 5, ranking: false}\n")
    try:
        page = login(browser, server.url, "ann")
        page.wait_for_function("document.querySelector('#pf-prompt').innerText.includes('rate these')")
        assert not page.locator("#pf-a").is_visible()               # no ranking buttons
        good_label = "A" if "fine" in page.inner_text("#pf-response-0") else "B"
        values = {"A": ("5", "4"), "B": ("2", "3")} if good_label == "A" else {"A": ("2", "3"), "B": ("5", "4")}
        for slot, label in enumerate("AB"):
            for j, value in enumerate(values[label]):
                page.locator(f"#pf-rate-{slot}-{j}").get_by_label(value, exact=True).check()
        page.wait_for_timeout(300)
        page.screenshot(path=str(SHOTS / "ratings.png"), full_page=True)
        page.click("#pf-rate")
        wait_status(page, "Saved ratings")
        admin = login(browser, server.url, "boss")
        admin.get_by_role("tab", name="Admin").click()
        admin.wait_for_function("document.querySelector('#pf-ratings-summary') && "
                                "document.querySelector('#pf-ratings-summary').innerText.includes('helpfulness')",
                                timeout=15_000)
        summary = admin.inner_text("#pf-ratings-summary")
    finally:
        server.stop()
    c = db.comparisons.list(labeler="ann")[0]
    assert c.ranking == [[good], [bad]] and "from_ratings" in c.flags
    assert "honesty" in summary and "3.5" in summary              # helpfulness mean (5 + 2) / 2


def test_consecutive_tasks_of_one_layout_keep_their_controls_and_clear_them(db, tmp_path, browser):
    """Between two tasks of the same layout the app sends only values (a faster reply): the
    second 3-response task must still show its rank and rating radios, cleared, and take a
    ranking with ratings like the first."""
    for q in ("first triple", "second triple"):
        pid = db.prompts.add([[{"role": "user", "content": q}]], dataset="trip")[0]
        db.tasks.create([store.TaskIn(pid, db.responses.add([store.ResponseIn(pid, f"{q} {x}")
                                                              for x in ("one", "two", "three")]))])
    db.annotators.add("ann", "annotator", hash_password("password123"))
    server = serve(db, tmp_path, "ratings: {aspects: [helpfulness], scale: 3}\n")
    checked = []
    try:
        page = login(browser, server.url, "ann")
        for q in ("first triple", "second triple"):
            page.wait_for_function(f"document.querySelector('#pf-prompt').innerText.includes({q!r})")
            checked.append(page.locator("#pf-rank-0 input:checked, #pf-rate-0-0 input:checked").count())
            if q == "second triple":
                page.screenshot(path=str(SHOTS / "same_layout_second_task.png"), full_page=True)
            for i, rank in enumerate(("1", "2", "3")):
                page.locator(f"#pf-rank-{i}").get_by_label(rank, exact=True).check()
                page.locator(f"#pf-rate-{i}-0").get_by_label(str(3 - i), exact=True).check()
            page.click("#pf-submit")
            wait_status(page, "Saved ranking")
        page.wait_for_function("document.querySelector('#pf-prompt').innerText.includes('Nothing to label')")
    finally:
        server.stop()
    assert checked == [0, 0]                       # the second task's radios came back cleared
    cs = db.comparisons.list(labeler="ann")
    assert len(cs) == 2 and all(len(c.ranking) == 3 for c in cs)


def test_graded_strength_by_keys_and_by_clicks_reaches_the_export(db, tmp_path, browser):
    """strength: true: 1 (A) then a strength key, or B then a second click; the review tab
    shows it, and the export's margin carries it (Llama 2's mapping), OpenRLHF's too."""
    import json

    from prefloop.store.export_files import ExportOptions, export_pairs
    from prefloop.store.pairs import PairFilters

    made = []
    for text in ["graded one", "graded two", "graded three"]:
        pid = db.prompts.add([[{"role": "user", "content": text}]], dataset="ui")[0]
        made.append((pid, db.responses.add([store.ResponseIn(pid, f"{text} answer {j}") for j in range(2)])))
    db.tasks.create([store.TaskIn(p, r, priority=10 - i) for i, (p, r) in enumerate(made)])
    db.annotators.add("ann", "annotator", hash_password("password123"))
    server = serve(db, tmp_path, "strength: true\n")
    try:
        page = login(browser, server.url, "ann")
        page.wait_for_function("document.querySelector('#pf-prompt').innerText.includes('graded one')")
        assert not page.is_visible("#pf-strength-0")                # asked only after A or B
        page.keyboard.press("1")                                    # A is better ...
        expect(page.locator("#pf-strength-0")).to_be_visible()
        assert "How much better is A" in page.inner_text("#pf-pending-note")
        page.screenshot(path=str(SHOTS / "pf-strength.png"))
        page.keyboard.press("1")                                    # ... significantly
        wait_status(page, "Saved (A, significantly better)")
        page.wait_for_function("document.querySelector('#pf-prompt').innerText.includes('graded two')")
        page.click("#pf-b")                                         # B, then a second click
        page.click("#pf-strength-2")                                # slightly better
        wait_status(page, "Saved (B, slightly better)")
        page.wait_for_function("document.querySelector('#pf-prompt').innerText.includes('graded three')")
        page.keyboard.press("2")
        page.keyboard.press("Escape")                               # changed their mind: back
        expect(page.locator("#pf-a")).to_be_visible()
        page.keyboard.press("3")                                    # a tie has no strength
        wait_status(page, "Saved (tie)")
    finally:
        server.stop()
    s = store.Store(db.path)
    got = {c.prompt_id: c.strength for c in s.comparisons.list() if c.labeler_kind == "human"}
    assert got == {made[0][0]: "significantly", made[1][0]: "slightly", made[2][0]: None}
    out = export_pairs(s, tmp_path / "e", PairFilters(source="human", test_fraction=0.0),
                       ExportOptions(format="openrlhf"))
    import pyarrow.parquet as pq

    rows = {r["prompt_id"]: r for r in pq.read_table(tmp_path / "e" / "train.parquet").to_pylist()}
    assert rows[made[0][0]]["margin"] == pytest.approx(1.0)
    assert rows[made[1][0]]["margin"] == pytest.approx(1 / 3)
    engine = {r["prompt_id"]: r for r in map(json.loads, open(tmp_path / "e" / "openrlhf" / "train.jsonl"))}
    assert engine[made[0][0]]["margin"] == pytest.approx(1.0) and len(engine) == out.n_train == 2
