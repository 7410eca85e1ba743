"""What ``prefloop eval`` returns, typed: an :class:`EvalSummary` with one :class:`EvalRow` per
model version, each with its figures over all prompts and per subset (:class:`Slice`) and one
:class:`View` per judge of quality (the proxy reward model, a second reward model, an AI judge,
people). They become JSON only at the store's edge (:meth:`EvalSummary.to_json`, the eval run's
``summary``) and come back with :meth:`EvalSummary.from_json`. No heavy imports.

>>> w = WinRate(0.6, 0.5, 0.7, 10, 6, 0, 4)
>>> row = EvalRow("run:3", "run:3", "dpo", 3, None, Slice(n=10, second_rm=View(win=w)))
>>> s = EvalSummary(baseline="base", prompts=10, prompt_source="set:test", rows=[row])
>>> EvalSummary.from_json(s.to_json()).row("run:3").overall.second_rm.win.rate
0.6
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from prefloop.core.stats import WinRate

from .errors import EvalError

__all__ = ["WinRate", "View", "Slice", "EvalRow", "EvalSummary", "VIEWS"]

#: The views of an eval row, in the order the tables show them: the reward model the policy
#: trained against, a second reward model (same labels, same recipe: not independent), an AI
#: judge, and people's blind labels (gold: independent of the training labels).
VIEWS = ("proxy", "second_rm", "judge", "people")


@dataclass
class View:
    """One judge of quality on one slice: ``win`` against the baseline (ties count half, 95% CI),
    the length-controlled win rate (length and finished-vs-truncated as covariates), the mean
    score (reward models), and how many comparisons had no usable verdict."""

    win: WinRate
    length_controlled: WinRate | None = None
    mean: float | None = None
    unusable: int = 0

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> View | None:
        if not d:
            return None
        lc = d.get("length_controlled")
        return cls(WinRate(**d["win"]), WinRate(**lc) if lc else None, d.get("mean"), d.get("unusable", 0))


@dataclass
class Slice:
    """One version's figures on a set of prompts: ``n`` prompts, mean generated tokens, EOS
    rate (share that ended before the token budget), KL to the reference (nats per response),
    refusal rate (XSTest's string match, :mod:`prefloop.core.refusal`), and the views."""

    n: int = 0
    mean_tokens: float = 0.0
    eos_rate: float = 0.0
    kl: float | None = None
    refusal_rate: float = 0.0
    proxy: View | None = None
    second_rm: View | None = None
    judge: View | None = None
    people: View | None = None

    def view(self, name: str) -> View | None:
        """The view named ``name`` (one of :data:`VIEWS`)."""
        if name not in VIEWS:
            raise EvalError(f"unknown view {name!r}: expected one of {', '.join(VIEWS)}")
        return getattr(self, name)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Slice:
        return cls(d["n"], d["mean_tokens"], d["eos_rate"], d.get("kl"), d.get("refusal_rate", 0.0),
                   *(View.from_json(d.get(v)) for v in VIEWS))


@dataclass
class EvalRow:
    """A model version: its name in samples and leaderboards (``model``), the spec it was given
    as, the kind of run that made it (``base`` for a model without one), its figures over all
    prompts (``overall``) and per subset (``subsets``: ``harmless``, ``benign``, ...; prompts
    without a recorded subset are only in ``overall``)."""

    model: str
    spec: str
    kind: str
    run_id: int | None
    parent_run_id: int | None
    overall: Slice
    subsets: dict[str, Slice] = field(default_factory=dict)

    def slice(self, subset: str | None = None) -> Slice | None:
        """``overall`` (``subset=None``) or that subset's slice (``None`` if it has no prompts)."""
        return self.overall if subset is None else self.subsets.get(subset)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EvalRow:
        return cls(d["model"], d["spec"], d["kind"], d.get("run_id"), d.get("parent_run_id"),
                   Slice.from_json(d["overall"]), {k: Slice.from_json(v) for k, v in d.get("subsets", {}).items()})


@dataclass
class EvalSummary:
    """An eval run's result. ``responses``: each version's response id per prompt id (what the
    people view matches labels against); ``outcomes``: per view and version, each prompt's
    outcome against the baseline (1 / 0.5 / 0; what a seed-level bootstrap resamples);
    ``tasks``: blind tasks queued; ``leaderboard``: rows per vote group; ``seconds`` per stage."""

    baseline: str
    prompts: int
    prompt_source: str
    rows: list[EvalRow]
    reward_model: str | None = None
    second_reward_model: str | None = None
    reference: str | None = None
    judge: dict[str, str] | None = None
    responses: dict[str, dict[int, int]] = field(default_factory=dict)
    outcomes: dict[str, dict[str, dict[int, float]]] = field(default_factory=dict)
    responses_sampled: int = 0
    tasks: int = 0
    max_new_tokens: int | None = None
    leaderboard: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    leaderboard_length_coef: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def row(self, model: str) -> EvalRow:
        """The row of a version (by its name or the spec it was given as).

        Raises:
            EvalError: no such version in this evaluation.
        """
        for r in self.rows:
            if model in (r.model, r.spec):
                return r
        raise EvalError(f"no model version {model!r} in this evaluation (versions: "
                        f"{', '.join(r.model for r in self.rows)})")

    def compared(self) -> list[EvalRow]:
        """Every row but the baseline's."""
        return [r for r in self.rows if r.model != self.baseline]

    def subsets(self) -> list[str]:
        """The subsets any row has, sorted."""
        return sorted({k for r in self.rows for k in r.subsets})

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["responses"] = {m: {str(p): r for p, r in d.items()} for m, d in self.responses.items()}
        out["outcomes"] = {v: {m: {str(p): o for p, o in d.items()} for m, d in x.items()}
                           for v, x in self.outcomes.items()}
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EvalSummary:
        """The summary of an eval run.

        Raises:
            EvalError: a summary recorded by an older prefloop (no typed rows).
        """
        if "rows" not in d:
            raise EvalError("this eval run was recorded by an older prefloop: run the evaluation again")
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["rows"] = [EvalRow.from_json(r) for r in d["rows"]]
        kw["responses"] = {m: {int(p): r for p, r in x.items()} for m, x in d.get("responses", {}).items()}
        kw["outcomes"] = {v: {m: {int(p): o for p, o in x.items()} for m, x in y.items()}
                          for v, y in d.get("outcomes", {}).items()}
        return cls(**kw)
