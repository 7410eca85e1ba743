"""Markdown rendering with raw HTML escaped: a response containing ``<script>`` or
``<img onerror=...>`` shows as text and never runs.

>>> escape("<img src=x onerror=alert(1)> **bold**")
'&lt;img src=x onerror=alert(1)&gt; **bold**'
>>> labels(3)
['A', 'B', 'C']
"""

from __future__ import annotations

import html
import random
import string

__all__ = ["escape", "render_conversation", "labels", "shuffled"]


def escape(text: str) -> str:
    """HTML-escape ``text`` (``<``, ``>``, ``&``; quotes kept) so markdown stays markdown and
    HTML becomes visible text."""
    return html.escape(text, quote=False)


def render_conversation(messages: list[dict]) -> str:
    """A prompt conversation as markdown: one quoted block per turn with its role."""
    parts = []
    for m in messages:
        body = "\n".join("> " + line for line in escape(m["content"]).splitlines() or [""])
        parts.append(f"**{m['role']}**\n\n{body}")
    return "\n\n".join(parts)


def labels(k: int) -> list[str]:
    """Neutral labels A, B, C, ... for ``k`` responses."""
    return list(string.ascii_uppercase[:k])


def shuffled(ids: list[int], annotator_id: int, task_id: int) -> list[int]:
    """The responses in a random order that is stable for this annotator and task (a reload
    shows the same order; different annotators see different orders)."""
    out = list(ids)
    random.Random(f"{annotator_id}:{task_id}").shuffle(out)
    return out
