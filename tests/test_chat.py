"""Live conversations ranked turn by turn against a real ``transformers serve`` of the tiny
model: three turns through the service and the JSON API (the stored prompts, candidates and
comparisons checked), and the bad input: a message over the limit, an endpoint that is down,
a double submission, another annotator's conversation."""

from __future__ import annotations

import pytest

from prefloop import store
from prefloop.annotate_app.auth import hash_password
from prefloop.annotate_app.config import AppConfig, ChatConfig
from prefloop.annotate_app.errors import AppError, InvalidSubmission
from prefloop.annotate_app.services import AppServices
from prefloop.annotate_app.services.chat import CHAT_DATASET, ModelUnavailable

pytestmark = pytest.mark.model


#: ``transformers serve`` samples only when asked
SAMPLE = {"generation_config": '{"do_sample": true}'}


def _app(db, base_url: str, model: str, **kw) -> AppServices:
    return AppServices(db, AppConfig(chat=ChatConfig(base_url=base_url, model=model, max_tokens=6, timeout=60,
                                                     extra_body=SAMPLE, **kw), strength=True))


def test_three_turns_are_three_labels_on_growing_prompts(db, served_tiny):
    base_url, model = served_tiny
    app = _app(db, base_url, model)
    ann = db.annotators.add("ann", "annotator", hash_password("password123"))
    st = app.chat.start(ann)
    said = ["Hello there", "Tell me more", "Thanks, bye"]
    streamed = []
    for i, message in enumerate(said):
        parts = list(app.chat.stream(ann, st.conversation_id, message))
        streamed.append(len(parts) - 1)
        st = parts[-1]
        assert st.turn == i + 1 and [c.label for c in st.candidates] == ["A", "B"]
        assert st.messages[-1] == {"role": "user", "content": message}
        with pytest.raises(store.ConversationError, match="choose one first"):
            app.chat.send(ann, st.conversation_id, "again")
        choice = ["A", "B", "tie"][i]
        edit = "My better reply." if i == 1 else ""
        st = app.chat.choose(ann, st.conversation_id, st.turn, choice, edit=edit,
                             strength="slightly" if choice in "AB" else None)
        assert st.turn is None and st.turns == i + 1
    assert min(streamed) >= 1                      # partial texts arrived before the stored turn
    c = db.conversations.get(st.conversation_id)
    assert len(c.turns) == 3 and all(t.comparison_id for t in c.turns)
    prompts = [db.prompts.get(t.prompt_id) for t in c.turns]
    assert all(p.dataset == CHAT_DATASET for p in prompts)
    assert [len(p.messages) for p in prompts] == [1, 3, 5]          # the conversation so far
    assert [m["content"] for m in prompts[2].messages if m["role"] == "user"] == said
    assert prompts[2].messages[3]["content"] == "My better reply."  # the edit continued turn 2
    comps = [db.comparisons.get(t.comparison_id) for t in c.turns]
    assert [x.ranking for x in comps] == [[[c.turns[0].response_ids[0]], [c.turns[0].response_ids[1]]],
                                          [[c.turns[1].response_ids[1]], [c.turns[1].response_ids[0]]],
                                          [sorted(c.turns[2].response_ids)]]
    assert all(x.labeler_kind == "human" and x.annotator_id == ann.id for x in comps)
    assert comps[0].strength == "slightly" and comps[2].strength is None
    edits = [x for x in db.comparisons.list(labeler_kind="human") if x.rationale == "human edit"]
    assert len(edits) == 1 and edits[0].prompt_id == c.turns[1].prompt_id
    # listed for reviewers, turn by turn, with what was chosen (turn 2: the edit)
    assert [(r["conversation"], r["annotator"], r["turns"]) for r in app.review.conversations()] == \
        [(c.id, "ann", 3)]
    read = app.review.conversation(c.id)
    assert read.count("✓ chosen") == 3 and "**edit** ✓ chosen: My better reply." in read and "Thanks, bye" in read
    # a double click: the ranked turn again writes nothing
    before = db.comparisons.max_id()
    again = app.chat.choose(ann, st.conversation_id, 3, "A")
    assert db.comparisons.max_id() == before and again.turns == 3


def test_bad_input_leaves_the_conversation_as_it_was(db, served_tiny):
    base_url, model = served_tiny
    app = _app(db, base_url, model)
    ann = db.annotators.add("ann", "annotator", hash_password("password123"))
    bob = db.annotators.add("bob", "annotator", hash_password("password123"))
    st = app.chat.start(ann)
    with pytest.raises(InvalidSubmission, match="characters; at most"):
        app.chat.send(ann, st.conversation_id, "x" * (store.MAX_TEXT_CHARS + 1))
    with pytest.raises(InvalidSubmission, match="write a message"):
        app.chat.send(ann, st.conversation_id, "   ")
    with pytest.raises(store.NotFoundError, match="does not exist"):       # not bob's to see
        app.chat.state(bob, st.conversation_id)
    with pytest.raises(store.NotFoundError):
        app.chat.send(bob, st.conversation_id, "hi")
    down = _app(db, "http://127.0.0.1:9/v1", model)                       # nothing listens there
    n_prompts = len(db.prompts.list())
    with pytest.raises(ModelUnavailable, match="failed: .*conversation is kept"):
        down.chat.send(ann, st.conversation_id, "hello")
    assert down.chat.state(ann, st.conversation_id).turns == 0
    assert len(db.prompts.list()) == n_prompts
    turn = app.chat.send(ann, st.conversation_id, "hello")
    with pytest.raises(InvalidSubmission, match="choice 'C'"):
        app.chat.choose(ann, st.conversation_id, turn.turn, "C")
    with pytest.raises(InvalidSubmission, match="not waiting"):
        app.chat.choose(ann, st.conversation_id, turn.turn + 1, "A")
    with pytest.raises(store.NotFoundError):
        app.chat.choose(bob, st.conversation_id, turn.turn, "A")
    assert db.conversations.get(st.conversation_id).pending is not None
    app.chat.choose(ann, st.conversation_id, turn.turn, "A")
    again = app.chat.choose(ann, st.conversation_id, turn.turn, "B")       # a double click: nothing twice
    assert again.turns == 1 and len(db.comparisons.list(annotator_id=ann.id)) == 1
    with pytest.raises(AppError, match="Chat view is off"):
        AppServices(db, AppConfig()).chat.start(ann)


def test_the_json_api_runs_a_conversation(db, served_tiny):
    from fastapi.testclient import TestClient

    from prefloop.annotate_app.api import build_api

    base_url, model = served_tiny
    app = _app(db, base_url, model)
    ann = db.annotators.add("ann", "annotator", hash_password("password123"))
    bob = db.annotators.add("bob", "annotator", hash_password("password123"))
    _, key = db.api_keys.create(ann.id)
    _, bob_key = db.api_keys.create(bob.id)
    client = TestClient(build_api(app))
    h = {"Authorization": f"Bearer {key}"}
    cid = client.post("/v1/conversations", json={}, headers=h).json()["conversation_id"]
    r = client.post(f"/v1/conversations/{cid}/messages", json={"message": "Hi"}, headers=h)
    assert r.status_code == 200 and r.json()["turn"] == 1 and len(r.json()["candidates"]) == 2
    assert client.post(f"/v1/conversations/{cid}/messages", json={"message": "Hi"}, headers=h).status_code == 409
    r = client.post(f"/v1/conversations/{cid}/choice", json={"turn": 1, "choice": "B"}, headers=h)
    assert r.status_code == 200 and r.json()["turn"] is None and r.json()["messages"][-1]["role"] == "assistant"
    assert client.get("/v1/conversations", headers=h).json()["items"] == [{"id": cid, "model": model, "turns": 1}]
    assert client.get(f"/v1/conversations/{cid}", headers={"Authorization": f"Bearer {bob_key}"}).status_code == 404
    r = client.post(f"/v1/conversations/{cid}/messages", json={"message": "x" * (store.MAX_TEXT_CHARS + 1)}, headers=h)
    assert r.status_code == 422 and "message" in r.json()["detail"]
    down = TestClient(build_api(_app(db, "http://127.0.0.1:9/v1", model)))
    r = down.post(f"/v1/conversations/{cid}/messages", json={"message": "Hi"}, headers=h)
    assert r.status_code == 502 and "conversation is kept" in r.json()["detail"]
