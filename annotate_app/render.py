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

__all__ = ["escape", "render_conversation", "render_response", "edit_diff", "labels", "shuffled",
           "hash_unit", "snippet", "table_cell", "render_review_item", "COLLAPSE_CHARS", "CSS"]

#: Responses longer than this show their start and a "show all" fold.
COLLAPSE_CHARS = 1500
#: Styles of the rendered turns (passed to ``gr.Blocks(css=...)``).
CSS = """
.pf-turn { border-radius: 8px; padding: 6px 12px; margin: 6px 0; }
.pf-user { background: #eef4ff; border-left: 4px solid #3b82f6; }
.pf-assistant { background: #f3f4f6; border-left: 4px solid #9ca3af; }
.pf-system { background: #fff7e6; border-left: 4px solid #f59e0b; }
.pf-role { font-weight: 600; font-size: 0.85em; text-transform: capitalize; }
ins.pf-ins { background: #dcfce7; text-decoration: none; }
del.pf-del { background: #fee2e2; }
.pf-rate { padding: 2px 0; }
#pf-strength-row { display: none; }
#pf-pending-note { font-weight: 600; }
"""


def escape(text: str) -> str:
    """HTML-escape ``text`` (``<``, ``>``, ``&``; quotes kept) so markdown stays markdown and
    HTML becomes visible text."""
    return html.escape(text, quote=False)


def render_conversation(messages: list[dict]) -> str:
    """A prompt conversation as markdown: one block per turn, its role named and styled
    (``pf-user``, ``pf-assistant``, ``pf-system``: users and the assistant look different).

    >>> render_conversation([{"role": "user", "content": "Hi <b>"}])
    '<div class="pf-turn pf-user"><span class="pf-role">user</span>\\n\\nHi &lt;b&gt;\\n\\n</div>'
    """
    parts = []
    for m in messages:
        role = m["role"] if m["role"] in ("user", "assistant", "system") else "user"
        parts.append(f'<div class="pf-turn pf-{role}"><span class="pf-role">{escape(m["role"])}</span>'
                     f"\n\n{escape(m['content'])}\n\n</div>")
    return "\n\n".join(parts)


def render_response(text: str, limit: int = COLLAPSE_CHARS) -> str:
    """A response as escaped markdown; past ``limit`` characters the rest folds away behind
    "Show all" (``<details>``), cut at a paragraph or line break where one is near."""
    body = escape(text)
    if len(text) <= limit:
        return body
    cut = text.rfind("\n", 0, limit)
    cut = cut if cut > limit // 2 else limit
    return (f"{escape(text[:cut])}\n\n<details><summary>Show all ({len(text):,} characters)</summary>"
            f"\n\n{escape(text[cut:])}\n\n</details>")


#: The most matching work :func:`edit_diff` takes on: the number of (original word, equal
#: edit word) pairs, which SequenceMatcher walks in each of its longest-match searches (prose
#: has few repeats: a 1,500-word edit is ~10k; a repetitive 352k-character pair is ~10^10,
#: minutes of CPU). Past it the edit is shown whole, without a diff.
MAX_DIFF_WORK = 100_000


def edit_diff(original: str, edited: str) -> str:
    """Word-level differences of an edit against the original, as HTML: removed words in
    ``<del>``, added in ``<ins>`` (difflib's SequenceMatcher; text escaped). Texts that would
    take more than :data:`MAX_DIFF_WORK` to match get no diff (the edit in full, with a note).

    >>> edit_diff("the cat sat", "the dog sat")
    'the <del class="pf-del">cat</del> <ins class="pf-ins">dog</ins> sat'
    """
    import difflib
    import re
    from collections import Counter

    # a word with the whitespace after it is one token (leading whitespace its own)
    a, b = re.findall(r"^\s+|\S+\s*", original), re.findall(r"^\s+|\S+\s*", edited)
    counts = Counter(b)
    if sum(counts[w] for w in a) > MAX_DIFF_WORK:
        return (f'<p class="pf-note">No word diff: the texts are too long to compare '
                f"({len(a):,} and {len(b):,} words); the edit in full:</p>{escape(edited)}")
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        old, new = escape("".join(a[i1:i2])), escape("".join(b[j1:j2]))
        if op == "equal":
            out.append(old)
        if op in ("delete", "replace") and old.strip():
            out.append(f'<del class="pf-del">{old.rstrip()}</del>{old[len(old.rstrip()):]}')
        if op in ("insert", "replace") and new.strip():
            out.append(f'<ins class="pf-ins">{new.rstrip()}</ins>{new[len(new.rstrip()):]}')
    return "".join(out)


def hash_unit(annotator_id: int, task_id: int) -> float:
    """A number in [0, 1) fixed for this annotator and task (which half of an A/B split)."""
    return random.Random(f"assist:{annotator_id}:{task_id}").random()


def labels(k: int) -> list[str]:
    """Neutral labels A, B, C, ... for ``k`` responses."""
    return list(string.ascii_uppercase[:k])


def shuffled(ids: list[int], annotator_id: int, task_id: int) -> list[int]:
    """The responses in a random order that is stable for this annotator and task (a reload
    shows the same order; different annotators see different orders)."""
    out = list(ids)
    random.Random(f"{annotator_id}:{task_id}").shuffle(out)
    return out


def snippet(text: str, n: int = 80) -> str:
    """``text`` on one line, cut to ``n`` characters with an ellipsis.

    >>> snippet("a  b\\nc", 4)
    'a b\\u2026'
    """
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def table_cell(text: str) -> str:
    """``text`` escaped for one cell of a markdown table: HTML escaped, on one line, and ``|``
    written as ``&#124;`` so it cannot end the cell.

    >>> table_cell("a | b\\nc")
    'a &#124; b c'
    """
    return escape(text).replace("|", "&#124;").replace("\n", " ")


def render_review_item(task_id: int, item, prompt, texts: dict[int, str]) -> str:
    """A task as a reviewer sees it, as markdown: the conversation, its responses under fixed
    labels A, B... in the task's order, every label with its labeler, ranking, graded strength,
    flags, rationale and seconds, the gold ranking and the reasons it needs review.

    ``item``: a :class:`prefloop.store.ReviewItem`; ``prompt``: its :class:`prefloop.store.Prompt`;
    ``texts``: response id -> text.
    """
    labs = labels(len(item.response_ids))
    name = dict(zip(item.response_ids, labs))

    def show(ranking):
        return " > ".join(" = ".join(name.get(r, f"#{r}") for r in g) for g in ranking)

    parts = [f"### Task {task_id}" + (f" - needs review: {', '.join(item.reasons)}" if item.reasons else ""),
             render_conversation(prompt.messages)]
    for lab, rid in zip(labs, item.response_ids):
        parts.append(f"**Response {lab}**\n\n{escape(texts[rid])}")
    if item.gold_ranking:
        parts.append(f"**Gold ranking:** {show(item.gold_ranking)}")
    rows = ["| labeler | kind | ranking | strength | flags | rationale | seconds |",
            "|---|---|---|---|---|---|---|"]
    for c in item.labels:
        secs = "" if c.duration_ms is None else f"{c.duration_ms / 1000:.0f}"
        strength = {None: "", "better": "better"}.get(c.strength, f"{c.strength} better")
        rows.append(f"| {table_cell(c.labeler or '')} | {c.labeler_kind} | {show(c.ranking)} | "
                    f"{strength} | {table_cell(', '.join(c.flags))} | "
                    f"{table_cell((c.rationale or '')[:300])} | {secs} |")
    parts.append("**Labels**\n\n" + ("\n".join(rows) if item.labels else "none yet"))
    return "\n\n".join(parts)
