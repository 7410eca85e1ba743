"""The Chat view in a real browser against a real ``transformers serve``: a three-turn
conversation ranked turn by turn, its stored prompts and comparisons checked, and resumed
after a reload."""

from __future__ import annotations

import json

import pytest

from prefloop import store
from prefloop.annotate_app.auth import hash_password

from .test_annotate_browser import SHOTS, browser, login, serve  # noqa: F401  (browser: a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.model]


def _status(page, text: str, timeout: int = 60_000) -> None:
    page.wait_for_function(f"document.querySelector('#pf-chat-status').innerText.includes({text!r})",
                           timeout=timeout)


def _turn(page, message: str, n: int, choice: str, edit: str = "") -> None:
    page.locator("#pf-chat-msg textarea").fill(message)
    page.locator("#pf-chat-send").click()
    _status(page, f"Turn {n}: pick")
    assert page.inner_text("#pf-chat-cand-a").startswith("A") and page.inner_text("#pf-chat-cand-b").startswith("B")
    if n == 1:
        page.screenshot(path=str(SHOTS / "chat-turn.png"), full_page=True)
    if edit:
        page.locator("#pf-chat-edit textarea").fill(edit)
    page.locator(f"#pf-chat-{choice}").click()
    _status(page, f"{n} turn{'' if n == 1 else 's'} ranked")


def test_three_turn_conversation_in_the_chat_view(db, tmp_path, browser, served_tiny):  # noqa: F811
    base_url, model = served_tiny
    ann = db.annotators.add("ann", "annotator", hash_password("password123"))
    chat = {"base_url": base_url, "model": model, "max_tokens": 6,
            "extra_body": {"generation_config": json.dumps({"do_sample": True})}}
    server = serve(db, tmp_path, "chat: " + json.dumps(chat) + "\n")
    try:
        page = login(browser, server.url, "ann")
        page.get_by_role("tab", name="Chat").click()
        _status(page, "Write a message")
        _turn(page, "Hello there", 1, "a")
        _turn(page, "Tell me more", 2, "b", edit="My better reply.")
        _turn(page, "Thanks, bye", 3, "tie")
        history = page.inner_text("#pf-chat-history")
        page.screenshot(path=str(SHOTS / "chat.png"), full_page=True)
        page.reload()                                   # resumed: the latest conversation
        page.wait_for_selector("#pf-who", timeout=30_000)
        page.get_by_role("tab", name="Chat").click()
        _status(page, "3 turns ranked")
        resumed = page.inner_text("#pf-chat-history")
    finally:
        server.stop()
    assert "Hello there" in history and "My better reply." in history and "Thanks, bye" in history
    assert "My better reply." in resumed
    db = store.Store(db.path)
    (conv, turns), = db.conversations.list(ann.id)
    assert turns == 3
    c = db.conversations.get(conv.id)
    prompts = [db.prompts.get(t.prompt_id) for t in c.turns]
    assert [len(p.messages) for p in prompts] == [1, 3, 5]
    assert prompts[2].messages[3]["content"] == "My better reply."
    comps = [db.comparisons.get(t.comparison_id) for t in c.turns]
    assert [len(x.ranking) for x in comps] == [2, 2, 1]           # A > B, B > A, a tie
    assert comps[1].ranking[0] == [c.turns[1].response_ids[1]]
    assert all(x.annotator_id == ann.id for x in comps)
