"""Quality control on every labeler, from their own submissions (Potato's time checks and
suspicious-activity view; OpenAssistant's moderation): over each annotator's last ``window``
task submissions, the time spent per item (measured by the server from lease to submit), how
often they gave the same answer (the first-shown response, the second, a tie, both bad), and
their accuracy on gold items (attention items with a known answer). A labeler who answers
faster than ``min_seconds`` on most items, gives one answer almost always, or fails gold items
is flagged with the evidence; with ``pause`` the app closes their queue, as the rolling-gold
check does, until an admin re-enables them.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Any

from prefloop import store
from prefloop.store.counts import recent_submissions

from ..config import QualityConfig
from ..render import shuffled

__all__ = ["QualityConfig", "QualityReport", "quality_reports", "ANSWERS"]

#: What a two-response submission answered, by what the annotator saw.
ANSWERS = ("first shown", "second shown", "tie", "both bad")


@dataclass(frozen=True)
class QualityReport:
    """One annotator's figures over their last submissions and the flags they raise
    (``flags``: one line each, with the evidence; empty: nothing suspicious)."""

    annotator: str
    annotator_id: int
    items: int
    median_seconds: float | None
    fast_share: float | None
    answers: dict[str, int]
    gold_right: int
    gold_items: int
    flags: tuple[str, ...]

    @property
    def same_answer(self) -> tuple[str, float] | None:
        """The most frequent answer and its share of two-response submissions."""
        n = sum(self.answers.values())
        if not n:
            return None
        answer, k = max(self.answers.items(), key=lambda kv: kv[1])
        return answer, k / n

    def row(self) -> dict[str, Any]:
        """The admin table's row."""
        same = self.same_answer
        return {"annotator": self.annotator, "items": self.items,
                "median_seconds": None if self.median_seconds is None else round(self.median_seconds, 1),
                "under_floor": None if self.fast_share is None else f"{self.fast_share:.0%}",
                "most_given": "-" if same is None else f"{same[0]} {same[1]:.0%}",
                "gold": f"{self.gold_right} of {self.gold_items}" if self.gold_items else "n/a (no gold)",
                "flags": "; ".join(self.flags) or "-"}


def _answer(sub: dict[str, Any]) -> str | None:
    """What a two-response submission answered, as shown to its annotator (else ``None``)."""
    ids, ranking = list(sub["response_ids"]), [list(g) for g in sub["ranking"]]
    if len(ids) != 2:
        return None
    if len(ranking[0]) > 1:
        return "both bad" if "both_bad" in (sub["flags"] or []) else "tie"
    shown = shuffled(ids, sub["annotator_id"], sub["task_id"])
    return ANSWERS[shown.index(ranking[0][0])]


def _report(name: str, annotator_id: int, subs: list[dict[str, Any]], cfg: QualityConfig) -> QualityReport:
    secs = [s["duration_ms"] / 1000 for s in subs if s["duration_ms"] is not None]
    fast = sum(x < cfg.min_seconds for x in secs) / len(secs) if secs else None
    answers = Counter(a for a in map(_answer, subs) if a is not None)
    gold = [s for s in subs if s["gold_ranking"] is not None]
    right = sum([list(g) for g in s["ranking"]] == [list(g) for g in s["gold_ranking"]] for s in gold)
    flags = []
    if len(secs) >= cfg.min_items and fast is not None and fast > cfg.max_fast_share:
        flags.append(f"fast: {fast:.0%} of {len(secs)} items under {cfg.min_seconds:g} s "
                     f"(median {statistics.median(secs):.1f} s)")
    n_ans = sum(answers.values())
    if n_ans >= cfg.min_items:
        answer, k = max(answers.items(), key=lambda kv: kv[1])
        if k / n_ans >= cfg.max_same_share:
            flags.append(f"same answer: '{answer}' on {k} of {n_ans} pairs ({k / n_ans:.0%})")
    if len(gold) >= 5 and right / len(gold) < cfg.min_gold_accuracy:
        flags.append(f"gold: {right} of {len(gold)} right ({right / len(gold):.0%})")
    return QualityReport(name, annotator_id, len(subs), statistics.median(secs) if secs else None, fast,
                         dict(answers), right, len(gold), tuple(flags))


def quality_reports(s: store.Store, cfg: QualityConfig, annotator_id: int | None = None,
                    since=None) -> list[QualityReport]:
    """One :class:`QualityReport` per annotator with task submissions (or only
    ``annotator_id``'s since ``since``: an admin's re-enabling starts the count again), by
    name."""
    by: dict[int, list[dict[str, Any]]] = {}
    names: dict[int, str] = {}
    for sub in recent_submissions(s, cfg.window, annotator_id, since):
        by.setdefault(sub["annotator_id"], []).append(sub)
        names[sub["annotator_id"]] = sub["annotator"]
    return [_report(names[a], a, subs, cfg) for a, subs in sorted(by.items(), key=lambda kv: names[kv[0]])]
