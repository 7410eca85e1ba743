"""Live conversations ranked turn by turn (the interface that collected HH-RLHF, Bai et al.
2022): an annotator writes a message, a model answers with two or more candidate replies, the
annotator ranks them, and the chosen reply continues the conversation.

Each turn is an ordinary prompt (the conversation so far, ending with the annotator's message),
its candidate responses and, once chosen, a human comparison: exports, reliability and training
read them like any label. This module records which prompt, responses and comparison make up
each turn of each conversation; the conversation's messages are the last turn's prompt plus the
reply chosen on it.

>>> import tempfile, os
>>> from prefloop.store import Store
>>> s = Store(os.path.join(tempfile.mkdtemp(), "p.duckdb"), create=True)
>>> cid = s.conversations.create(1, "tiny")
>>> pid, = s.prompts.add([[{"role": "user", "content": "Hi"}]], dataset="chat")
>>> s.conversations.add_turn(cid, pid, [5, 6])
1
>>> s.conversations.add_turn(cid, pid, [7, 8])
Traceback (most recent call last):
...
prefloop.store.errors.ConversationError: conversation 1: turn 1 has no chosen reply yet; choose one first
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from .engine import Engine, fetch_records
from .errors import ConversationError, NotFoundError, ValidationError

__all__ = ["ConversationsAPI", "Conversation", "ConversationTurn", "MAX_TURNS"]

#: Turns one conversation may have.
MAX_TURNS = 50


@dataclass(frozen=True)
class ConversationTurn:
    """One turn: ``prompt_id`` (the conversation so far, ending with the annotator's message),
    ``response_ids`` (the candidates, in the order shown), and once ranked ``comparison_id``
    and ``chosen_response_id`` (the reply that continues the conversation)."""

    conversation_id: int
    turn: int
    prompt_id: int
    response_ids: list[int]
    comparison_id: int | None = None
    chosen_response_id: int | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class Conversation:
    """A row of ``conversations`` with its turns, oldest first."""

    id: int
    annotator_id: int
    model: str
    created_at: datetime
    updated_at: datetime
    turns: list[ConversationTurn] = field(default_factory=list)

    @property
    def pending(self) -> ConversationTurn | None:
        """The last turn while its candidates are not yet ranked."""
        return self.turns[-1] if self.turns and self.turns[-1].comparison_id is None else None


_TURN_COLS = "conversation_id, turn, prompt_id, response_ids, comparison_id, chosen_response_id, created_at"


class ConversationsAPI:
    """``store.conversations``."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def create(self, annotator_id: int, model: str) -> int:
        """A new, empty conversation of ``annotator_id`` with ``model``; returns its id.

        Raises:
            ValidationError: an empty model name.
        """
        if not isinstance(model, str) or not model.strip():
            raise ValidationError("a conversation needs the name of the model that answers")
        with self.engine.atomic() as con:
            return con.execute("INSERT INTO conversations (annotator_id, model) VALUES (?, ?) RETURNING id",
                               [annotator_id, model.strip()]).fetchall()[0][0]

    def get(self, conversation_id: int) -> Conversation:
        """The conversation and its turns.

        Raises:
            NotFoundError: no such conversation.
        """
        with self.engine.atomic() as con:
            rows = fetch_records(con, Conversation, "SELECT id, annotator_id, model, created_at, updated_at "
                                 "FROM conversations WHERE id = ?", [conversation_id])
            if not rows:
                raise NotFoundError(f"conversation {conversation_id} does not exist")
            turns = fetch_records(con, ConversationTurn, f"SELECT {_TURN_COLS} FROM conversation_turns "
                                  "WHERE conversation_id = ? ORDER BY turn", [conversation_id])
        c = rows[0]
        return Conversation(c.id, c.annotator_id, c.model, c.created_at, c.updated_at, turns)

    def list(self, annotator_id: int | None = None) -> list[tuple[Conversation, int]]:
        """``(conversation without its turns, number of turns)``, the most recently updated
        first; only ``annotator_id``'s when given."""
        with self.engine.atomic() as con:
            cur = con.execute("""
                SELECT c.id, c.annotator_id, c.model, c.created_at, c.updated_at, count(t.turn) AS turns
                FROM conversations c LEFT JOIN conversation_turns t ON t.conversation_id = c.id
                WHERE ?::BIGINT IS NULL OR c.annotator_id = ?
                GROUP BY ALL ORDER BY c.updated_at DESC, c.id DESC""", [annotator_id, annotator_id])
            return [(Conversation(*row[:5]), row[5]) for row in cur.fetchall()]

    def add_turn(self, conversation_id: int, prompt_id: int, response_ids: Sequence[int]) -> int:
        """Record the next turn's prompt and candidates; returns its number (from 1).

        Raises:
            NotFoundError: no such conversation.
            ConversationError: the last turn is not ranked yet, or the conversation has
                :data:`MAX_TURNS` turns.
            ValidationError: fewer than two distinct candidates.
        """
        ids = [int(r) for r in response_ids]
        if len(set(ids)) < 2 or len(set(ids)) != len(ids):
            raise ValidationError(f"a turn needs two or more distinct candidate replies, got {ids}")
        with self.engine.atomic() as con:
            c = self.get(conversation_id)
            if c.pending is not None:
                raise ConversationError(f"conversation {conversation_id}: turn {c.pending.turn} has no "
                                        "chosen reply yet; choose one first")
            if len(c.turns) >= MAX_TURNS:
                raise ConversationError(f"conversation {conversation_id} has {MAX_TURNS} turns, the most "
                                        "one may have: start a new one")
            turn = len(c.turns) + 1
            con.execute("INSERT INTO conversation_turns (conversation_id, turn, prompt_id, response_ids) "
                        "VALUES (?, ?, ?, ?)", [conversation_id, turn, prompt_id, ids])
            con.execute("UPDATE conversations SET updated_at = current_timestamp WHERE id = ?", [conversation_id])
            return turn

    def choose(self, conversation_id: int, turn: int, comparison_id: int, chosen_response_id: int) -> bool:
        """Record the ranking of a turn and the reply that continues the conversation (a
        candidate, or the annotator's edit of one). Returns
        ``False`` (writing nothing) when the turn was ranked already.

        Raises:
            NotFoundError: no such turn. ValidationError: a reply that is not one of its candidates.
        """
        with self.engine.atomic() as con:
            row = con.execute("SELECT response_ids, comparison_id FROM conversation_turns "
                              "WHERE conversation_id = ? AND turn = ?", [conversation_id, turn]).fetchall()
            if not row:
                raise NotFoundError(f"conversation {conversation_id} has no turn {turn}")
            candidates, done = row[0]
            if done is not None:
                return False
            parent = con.execute("SELECT parent_response_id FROM responses WHERE id = ?",
                                 [chosen_response_id]).fetchall()
            if chosen_response_id not in candidates and not (parent and parent[0][0] in candidates):
                raise ValidationError(f"response {chosen_response_id} is neither a candidate of turn "
                                      f"{turn} nor an edit of one")
            con.execute("UPDATE conversation_turns SET comparison_id = ?, chosen_response_id = ? "
                        "WHERE conversation_id = ? AND turn = ?",
                        [comparison_id, chosen_response_id, conversation_id, turn])
            con.execute("UPDATE conversations SET updated_at = current_timestamp WHERE id = ?", [conversation_id])
            return True
