"""``prefloop eval rm``: a reward model on any pair set, recorded as an ``eval-rm`` run.

Pairs come from one of:

* ``export:ID`` (its held-out split), ``export:ID:train`` or ``export:ID:all``;
* a file of RewardBench rows (``prompt``, ``chosen``, ``rejected``, ``subset``) or TRL
  preference rows (:mod:`prefloop.store.formats.pairs`; a bad row stops it with
  ``file:line:field`` and nothing is written);
* a dataset of the store: every pair of its prompts (a fresh export, ``test_fraction`` 0).

The summary (per the pairs, overall and per group of ``by``: ``subset`` for files, ``dataset``
for exports):

* ``accuracy`` with its Wilson 95% CI (``ci_low``, ``ci_high``), ``margin`` (mean
  ``r_c - r_r``, logit units), ``ece`` (:mod:`prefloop.training.rm_eval`) and ``n``;
* ``length_bias``: accuracy when the chosen response is the longer one vs the shorter one
  (characters; a length-loving reward model scores high on the first, low on the second);
* ``rewardbench``: RewardBench v1's section scores and overall score
  (:func:`~prefloop.training.rm_eval.rewardbench_scores`) over the groups;
* for an ensemble, ``member_accuracy`` and the mean disagreement (std over members of
  ``r_c - r_r``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefloop import store
from prefloop.core.models import resolve_model
from prefloop.store.tracking import MetricsLogger, tracked_run

from .errors import EvalError

__all__ = ["RMEvalResult", "load_eval_pairs", "run_rm_eval"]


@dataclass
class RMEvalResult:
    run: store.Run
    summary: dict[str, Any]


def load_eval_pairs(s: store.Store, source: str, *, limit: int | None = None
                    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The pairs of ``source`` (see the module docstring) as rows ``{"prompt": messages,
    "chosen": str, "rejected": str, "group": {"subset": ..., "dataset": ...}}`` and a
    description of where they came from (``{"kind": "export"|"file"|"dataset", ...}``).

    Raises:
        EvalError: an unknown source, an export split that does not exist, no pairs.
        prefloop.store.InvalidInputError: a bad row in a pair file.
    """
    from prefloop.store.formats.pairs import read_pair_file
    from prefloop.store.sources import parse_export_source

    if source.startswith("export:"):
        from prefloop.training.data import load_pairs, resolve_export

        whole = source.endswith(":all")
        export_id, split = parse_export_source(source.removesuffix(":all") if whole else source)
        split = "all" if whole else split
        export = resolve_export(s, export_id)
        if (export.filters or {}).get("format") == "kto":
            raise EvalError(f"--pairs {source}: export {export_id} holds unpaired labels (KTO), "
                            "not pairs")
        data = load_pairs(export)
        names = ["train", "test"] if split == "all" else [split]
        missing = [n for n in names if n not in data]
        if missing:
            raise EvalError(f"--pairs {source}: export {export_id} has no {missing[0]} split "
                            f"(it has {', '.join(data)})")
        rows = [{"prompt": list(r["prompt"]), "chosen": r["chosen"][0]["content"],
                 "rejected": r["rejected"][0]["content"],
                 "group": {"dataset": r["dataset"], "subset": r["dataset"]}}
                for n in names for r in data[n]]
        origin = {"kind": "export", "export_id": export_id, "split": split}
    elif Path(source).expanduser().exists():
        path = Path(source).expanduser()
        rows = [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected,
                 "group": {"subset": p.subset or "all", "dataset": p.subset or "all"}}
                for p in read_pair_file(path, limit=limit)]
        origin = {"kind": "file", "path": str(path.resolve())}
    elif source in s.prompts.datasets():
        from prefloop.training.data import resolve_export

        export = resolve_export(s, dataset=source, test_fraction=0.0)
        return load_eval_pairs(s, f"export:{export.id}:train", limit=limit)
    else:
        raise EvalError(f"--pairs {source!r}: expected export:ID[:train|:all], a pair file "
                        "(RewardBench or TRL rows) or a dataset of the store "
                        f"({', '.join(s.prompts.datasets()) or 'none yet'})")
    if not rows:
        raise EvalError(f"--pairs {source}: no pairs")
    return rows[:limit] if limit else rows, origin


def _metrics(r_c, r_r, rows) -> dict[str, Any]:
    from prefloop.training.rm_eval import accuracy_ci, length_bias, reward_metrics

    m = reward_metrics(r_c, r_r)
    m["ci_low"], m["ci_high"] = accuracy_ci(int((r_c > r_r).sum()), len(rows))
    m["length_bias"] = length_bias(r_c, r_r, [len(x["chosen"]) for x in rows],
                                   [len(x["rejected"]) for x in rows])
    return m


def run_rm_eval(s: store.Store, model: str, pairs: str, *, by: str | None = None,
                limit: int | None = None, batch_size: int = 8) -> RMEvalResult:
    """Score reward model ``model`` (any spec :func:`~prefloop.core.models.resolve_model`
    takes with ``require="reward"``: an rm run, an ensemble run with ``@mean|@wco|@uwo``, a
    checkpoint) on ``pairs`` and record an ``eval-rm`` run (see the module docstring).
    ``by``: ``subset`` or ``dataset`` (default: ``subset`` for files, ``dataset`` otherwise).

    Raises:
        EvalError, prefloop.core.models.ModelNotFoundError, prefloop.store.InvalidInputError:
            a bad model, pair source or ``by``, before any run row is written.
    """
    import torch

    from prefloop.training.rm_eval import rewardbench_scores
    from prefloop.training.scoring import EnsembleScorer, reward_scorer

    if by not in (None, "subset", "dataset"):
        raise EvalError(f"--by {by!r}: expected subset or dataset")
    if limit is not None and limit < 1:
        raise EvalError(f"--limit {limit}: expected at least 1")
    ref = resolve_model(model, s, require="reward")
    rows, origin = load_eval_pairs(s, pairs, limit=limit)
    by = by or ("subset" if origin["kind"] == "file" else "dataset")
    config = {"model": model, "model_path": str(ref.path), "pairs": pairs, "origin": origin,
              "by": by, "limit": limit, "n": len(rows)}
    with tracked_run(s, "eval-rm", config, parent_run_id=ref.run_id) as run:
        t0 = time.perf_counter()
        scorer = reward_scorer(ref, batch_size=batch_size)
        convs = [x["prompt"] for x in rows]
        if isinstance(scorer, EnsembleScorer):
            per_c = scorer.member_scores(convs, [x["chosen"] for x in rows])
            per_r = scorer.member_scores(convs, [x["rejected"] for x in rows])
            r_c, r_r = scorer.combine(per_c), scorer.combine(per_r)
        else:
            r_c = scorer.score(convs, [x["chosen"] for x in rows])
            r_r = scorer.score(convs, [x["rejected"] for x in rows])
        summary: dict[str, Any] = {"model": model, "pairs": pairs, "by": by, **_metrics(r_c, r_r, rows)}
        groups: dict[str, list[int]] = {}
        for i, x in enumerate(rows):
            groups.setdefault(str(x["group"][by]), []).append(i)
        summary["groups"] = {}
        for name, idx in sorted(groups.items()):
            ix = torch.tensor(idx)
            summary["groups"][name] = _metrics(r_c[ix], r_r[ix], [rows[i] for i in idx])
        summary["rewardbench"] = rewardbench_scores(
            {g: m["accuracy"] for g, m in summary["groups"].items()},
            {g: m["n"] for g, m in summary["groups"].items()})
        if isinstance(scorer, EnsembleScorer):
            summary["member_accuracy"] = [float(a) for a in (per_c > per_r).float().mean(1)]
            summary["disagreement_mean"] = float(EnsembleScorer.disagreement(per_c, per_r).mean())
            summary["aggregate"] = scorer.aggregate
        summary["seconds"] = round(time.perf_counter() - t0, 1)
        MetricsLogger(s, run.id).log(0, {k: summary[k] for k in ("accuracy", "margin", "ece")
                                         if summary[k] == summary[k]})
        run = s.runs.update(run.id, status="finished", summary=summary)
    return RMEvalResult(run, summary)
