"""The Chat tab (every role, when the app config has a ``chat`` section): write a message, see
the model's candidate replies stream in side by side, pick the better one (or tie, both bad, an
edit), and go on with the conversation; earlier conversations are listed and can be resumed.
The rules are :class:`~prefloop.annotate_app.services.chat.ChatService`'s."""

from __future__ import annotations

import gradio as gr

from prefloop import store

from ..handlers import handler, owned
from ..render import labels, render_conversation, render_response
from ..services import AppServices
from ..services.chat import ChatState, ModelUnavailable
from .label import STRENGTH_LABELS

__all__ = ["ChatView"]

INTRO = ("**Talk to the model under study.** Each of your messages gets {k} candidate replies: "
         "pick the better one (or tie / both bad; you may edit it first), and the one you pick "
         "continues the conversation. Every turn you rank is saved as a label.")


class ChatView:
    """The Chat tab's components (built inside the current ``gr.Tab``) and its handlers."""

    def __init__(self, app: AppServices):
        self.app = app
        chat = app.config.chat
        self.labels = labels(chat.candidates if chat else 2)
        self.note = gr.Markdown(INTRO.format(k=len(self.labels)), elem_id="pf-chat-note")
        with gr.Row():
            self.pick = gr.Dropdown(choices=[], value=None, label="Your conversations", scale=3,
                                    elem_id="pf-chat-list")
            self.b_new = gr.Button("New conversation", scale=0, elem_id="pf-chat-new")
        self.history = gr.Markdown("", elem_id="pf-chat-history")
        with gr.Row(equal_height=False):
            self.cands = [gr.Markdown("", elem_id=f"pf-chat-cand-{lab.lower()}", elem_classes=["pf-response"])
                          for lab in self.labels]
        word = "better" if len(self.labels) == 2 else "best"
        with gr.Row():
            self.b_pick = [gr.Button(f"{lab} is {word}", elem_id=f"pf-chat-{lab.lower()}") for lab in self.labels]
            self.b_tie = gr.Button("Tie", elem_id="pf-chat-tie")
            self.b_bad = gr.Button("Both bad", elem_id="pf-chat-bad")
        self.strength = gr.Radio(choices=list(zip(STRENGTH_LABELS, store.STRENGTHS)), value=None,
                                 label="How much better (optional)", visible=app.config.strength,
                                 elem_id="pf-chat-strength")
        self.edit = gr.Textbox(label="Edit the reply you pick (optional: your version continues the conversation)",
                               lines=2, elem_id="pf-chat-edit")
        with gr.Row():
            self.message = gr.Textbox(label="Your message", lines=2, scale=4, elem_id="pf-chat-msg")
            self.b_send = gr.Button("Send", variant="primary", scale=0, elem_id="pf-chat-send")
        self.status = gr.Markdown("", elem_id="pf-chat-status")
        self.state = gr.State(None)          # [annotator id, conversation id]

    def outputs(self) -> list:
        """What every handler returns, in this order (:meth:`render`)."""
        return [self.state, self.pick, self.history, *self.cands, self.status, self.message, self.edit]

    def render(self, user, st: ChatState | None, status: str, *, message=gr.skip(), partial=None) -> tuple:
        """A conversation on screen: ``partial`` (the candidates' texts so far) while a turn
        streams in; ``message`` the text box (``gr.skip()`` keeps what is typed)."""
        listing = [(f"#{cid} · {turns} turn{'' if turns == 1 else 's'} · {model}", cid) for cid, model, turns in self.app.chat.conversations(user)]
        if st is None:
            return (None, gr.update(choices=listing, value=None), "*No conversation yet: write a message.*",
                    *[""] * len(self.cands), status, message, gr.skip())
        history = render_conversation(st.messages) if st.messages else "*New conversation: write a message.*"
        if partial is not None:
            cands = [f"**{lab}** · *writing...*\n\n{render_response(t)}" for lab, t in zip(self.labels, partial)]
        else:
            by = {c.label: c for c in st.candidates}
            cands = [(f"**{lab}**" + ("" if by[lab].finished else " · *cut off at the length limit*")
                      + f"\n\n{render_response(by[lab].text)}") if lab in by else "" for lab in self.labels]
        return ([user.id, st.conversation_id], gr.update(choices=listing, value=st.conversation_id), history,
                *cands, status, message, "" if partial is None and st.turn is None else gr.skip())

    def _status(self, st: ChatState) -> str:
        if st.turn is not None:
            return f"Turn {st.turn}: pick the better reply."
        return (f"{st.turns} turn{'' if st.turns == 1 else 's'} ranked. Write your next message." if st.turns
                else "Write a message.")

    def wire(self, tab: gr.Tab) -> None:
        """Register the tab's events (inside the Blocks context); ``tab``: the Chat tab."""
        chat = self.app.chat

        @handler(self.app)
        def chat_open(user):
            mine = chat.conversations(user)
            st = chat.state(user, mine[0][0]) if mine else None
            return self.render(user, st, self._status(st) if st else "Write a message to start.")

        @handler(self.app)
        def chat_new(user):
            st = chat.start(user)
            return self.render(user, st, "New conversation: write a message.", message="")

        @handler(self.app)
        def chat_pick(user, conversation_id):
            if conversation_id is None:
                return self.render(user, None, "")
            st = chat.state(user, int(conversation_id))
            return self.render(user, st, self._status(st))

        @handler(self.app)
        def chat_send(user, state, message):
            owned(state, user)
            st = chat.state(user, state[1]) if state else chat.start(user)
            shown = ChatState(st.conversation_id, st.model, [*st.messages, {"role": "user", "content": message or ""}])
            try:
                for out in chat.stream(user, st.conversation_id, message):
                    if isinstance(out, ChatState):
                        yield self.render(user, out, self._status(out), message="")
                    else:
                        yield self.render(user, shown, "Generating the candidates...", partial=out)
            except ModelUnavailable as exc:       # the conversation as it was, the message kept
                yield self.render(user, chat.state(user, st.conversation_id), f"**Not sent.** {exc}")

        def choose(label: str):
            @handler(self.app)
            def chat_choose(user, state, strength, edit):
                owned(state, user)
                if not state:
                    return self.render(user, None, "Write a message first.")
                st = chat.state(user, state[1])
                if st.turn is None:
                    return self.render(user, st, self._status(st))
                out = chat.choose(user, st.conversation_id, st.turn, label, edit=edit or "",
                                  strength=strength if label in self.labels else None)
                return self.render(user, out, f"Saved ({label.replace('_', ' ')}). {self._status(out)}")
            return chat_choose

        outs = self.outputs()
        tab.select(chat_open, None, outs, api_name="chat_open")
        self.b_new.click(chat_new, None, outs, api_name="chat_new")
        self.pick.input(chat_pick, self.pick, outs, api_name="chat_pick")
        send = dict(inputs=[self.state, self.message], outputs=outs)
        self.b_send.click(chat_send, api_name="chat_send", **send)
        self.message.submit(chat_send, api_name=False, **send)
        for lab, button in zip(self.labels, self.b_pick):
            button.click(choose(lab), [self.state, self.strength, self.edit], outs, api_name=f"chat_{lab.lower()}")
        self.b_tie.click(choose("tie"), [self.state, self.strength, self.edit], outs, api_name="chat_tie")
        self.b_bad.click(choose("both_bad"), [self.state, self.strength, self.edit], outs, api_name="chat_both_bad")
