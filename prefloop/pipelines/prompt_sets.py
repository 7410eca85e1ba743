"""``prefloop prompt-sets``: record which prompts train, which choose (dev) and which only report
(test), once per store, so no sweep or plan choice ever sees a test prompt.

A dataset's prompts are ordered by ``sha256("prompt-sets:SEED:" + text hash)``; the first
``test`` go to the test set, the next ``dev`` to the dev set, the rest to train (or nowhere, with
``train=False``). The order depends only on the prompts' texts, so the same command on another
store with the same data records the same sets, and running it again changes nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from prefloop import store
from prefloop.store.prompt_sets import PromptSetCount

from .errors import PipelineError

__all__ = ["PromptSetPlan", "PromptSetsError", "plan_prompt_sets", "record_prompt_sets"]


class PromptSetsError(PipelineError):
    """A prompt-set request that cannot be met (an empty dataset, too few prompts, or a prompt
    already in another set); the message names the option."""


@dataclass(frozen=True)
class PromptSetPlan:
    """What to record for one dataset: ``test`` and ``dev`` prompt counts (the rest train when
    ``train``), all under ``subset`` (e.g. ``harmless``, ``benign``)."""

    dataset: str
    test: int
    dev: int = 0
    subset: str | None = None
    train: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("test", "dev", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise PromptSetsError(f"--{name}: expected an integer >= 0, found {value!r}")
        if self.subset is not None and not self.subset.strip():
            raise PromptSetsError("--subset: expected a name such as harmless or benign")

    @property
    def rule(self) -> str:
        """How the sets were drawn, recorded with each prompt."""
        return (f"dataset {self.dataset}: test {self.test}, dev {self.dev}, "
                f"{'train the rest' if self.train else 'no train'}, seed {self.seed}")


def plan_prompt_sets(prompts: list[store.Prompt], plan: PromptSetPlan) -> list[tuple[int, str, str | None]]:
    """``(prompt_id, split, subset)`` rows for ``prompts`` under ``plan`` (see the module
    docstring).

    Raises:
        PromptSetsError: fewer prompts than ``test + dev`` (+ 1 when ``train``).
    """
    need = plan.test + plan.dev + (1 if plan.train else 0)
    if len(prompts) < need:
        raise PromptSetsError(f"--test {plan.test} --dev {plan.dev}: dataset {plan.dataset!r} has "
                              f"{len(prompts)} prompts, {need} needed")
    salt = f"prompt-sets:{plan.seed}:"
    order = sorted(prompts, key=lambda p: hashlib.sha256(salt.encode() + p.text_hash).hexdigest())
    rows = []
    for i, p in enumerate(order):
        split = "test" if i < plan.test else "dev" if i < plan.test + plan.dev else "train"
        if split != "train" or plan.train:
            rows.append((p.id, split, plan.subset))
    return rows


def record_prompt_sets(s: store.Store, plan: PromptSetPlan) -> list[PromptSetCount]:
    """Record ``plan``'s sets in the store (idempotent) and return the store's counts.

    Raises:
        PromptSetsError: no such dataset, too few prompts, or a prompt already in another set
            (nothing is written).
    """
    prompts = s.prompts.list(dataset=plan.dataset)
    if not prompts:
        raise PromptSetsError(f"--dataset {plan.dataset!r}: no prompts in that dataset (see `prefloop stats`)")
    rows = plan_prompt_sets(prompts, plan)
    try:
        s.prompt_sets.assign(rows, rule=plan.rule)
    except store.PromptSetConflictError as exc:
        raise PromptSetsError(f"--test {plan.test} --dev {plan.dev} --seed {plan.seed} for "
                              f"{plan.dataset!r}: {exc}") from None
    return s.prompt_sets.counts()
