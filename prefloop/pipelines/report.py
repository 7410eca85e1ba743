"""How the pipelines' results read on a terminal: the eval tables and the leaderboards (rich).

The library functions (:func:`prefloop.pipelines.evaluation.run_eval`, the trainers) return
results and log progress; the CLI and the pipelines' own summaries print with these.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from prefloop import store

__all__ = ["print_eval", "print_leaderboards", "print_rm_eval"]


def _rate(w: dict | None) -> str:
    """A win rate over its 95% CI on the next line."""
    if not w or w.get("n", 0) == 0:
        return "-"
    return f"{w['rate']:.2f}\n[{w['low']:.2f}, {w['high']:.2f}]"


def _mean(view: dict | None) -> str:
    return "-" if not view else f"{view['mean']:.3f}"


def print_eval(console: Console, run: store.Run) -> None:
    """An eval run's two tables (80 columns wide): the model versions (length, EOS rate, KL to
    the reference, mean reward-model scores), then each version's win rates against the
    baseline with 95% CIs."""
    sm = run.summary or {}
    base = sm.get("baseline")
    t = Table(title=f"eval run {run.id}: {sm.get('prompts')} prompts ({sm.get('prompt_source')}), "
                    f"baseline {base}")
    for col in ("model", "kind", "tokens", "EOS", "KL nats", "proxy RM", "gold RM"):
        t.add_column(col, justify="left" if col in ("model", "kind") else "right",
                     overflow="fold")
    for r in sm.get("models", []):
        t.add_row(r["model"], r["kind"], f"{r['mean_tokens']:.0f}", f"{r['eos_rate']:.2f}",
                  "-" if r.get("kl") is None else f"{r['kl']:.2f}", _mean(r.get("proxy")),
                  _mean(r.get("gold")))
    console.print(t)
    w = Table(title="win rate against the baseline (ties count half), 95% bootstrap CI",
              caption="LC: length-controlled, the win rate at equal length (Dubois et al. 2024)")
    for col in ("model", "proxy", "proxy LC", "gold", "gold LC", "judge", "judge LC"):
        w.add_column(col, justify="left" if col == "model" else "right", overflow="fold")
    for r in sm.get("models", []):
        if r["model"] == base:
            continue
        j = r.get("judge", {})
        judge = _rate(j.get("win"))
        if j.get("win"):
            judge += f"\n{j['win']['wins']}/{j['win']['ties']}/{j['win']['losses']} W/T/L"
        proxy, gold = r.get("proxy", {}), r.get("gold", {})
        w.add_row(r["model"], _rate(proxy.get("win")), _rate(proxy.get("length_controlled")),
                  _rate(gold.get("win")), _rate(gold.get("length_controlled")),
                  judge, _rate(j.get("length_controlled")))
    console.print(w)
    sec = sm.get("seconds", {})
    if sec:
        console.print("  seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in sec.items())
                      + (f"; judge {sm['judge']['judge']} under principle {sm['judge']['principle']}"
                         if sm.get("judge") else ""))


def print_leaderboards(console: Console, boards: dict[str, list[dict[str, Any]]],
                       length_coef: dict[str, dict[str, float]] | None = None) -> None:
    """Bradley-Terry ratings (Elo scale, 95% bootstrap CI) per vote group; a ``<group>-length``
    board is the same votes at equal length (style control), titled with the voters' length
    coefficient (``length_coef``: ``{group: {coef, low, high}}``)."""
    if not boards:
        console.print("Leaderboard: no votes between model versions yet (queue eval tasks with "
                      "--tasks, or judge with --judge).")
        return
    for group, rows in boards.items():
        if group.endswith("-length"):
            c = (length_coef or {}).get(group)
            coef = f"; length coefficient {c['coef']:+.2f} [{c['low']:+.2f}, {c['high']:+.2f}]" if c else ""
            title = f"leaderboard ({group.removesuffix('-length')} votes) at equal length{coef}"
        else:
            title = f"leaderboard ({group} votes): Bradley-Terry, Elo scale, 95% CI"
        t = Table(title=title)
        for col in ("model", "rating", "CI", "votes"):
            t.add_column(col, justify="left" if col == "model" else "right")
        for r in rows:
            t.add_row(r["model"], f"{r['rating']:.0f}", f"{r['low']:.0f} .. {r['high']:.0f}", str(r["votes"]))
        console.print(t)


def _acc(m: dict) -> str:
    if not m.get("n"):
        return "-"
    return f"{m['accuracy']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"


def print_rm_eval(console: Console, run: store.Run) -> None:
    """An ``eval-rm`` run (:mod:`prefloop.pipelines.reward_eval`): overall and per-group
    accuracy with 95% CIs, margin, ECE, length bias, RewardBench's section scores."""
    s = run.summary or {}
    t = Table(title=f"eval-rm run {run.id}: {s.get('model')} on {s.get('pairs')} (by {s.get('by')})")
    for col in ("pairs", "n", "accuracy [95% CI]", "margin", "ECE", "chosen longer", "chosen shorter"):
        t.add_column(col)
    rows = [("all", s)] + list((s.get("groups") or {}).items())
    for name, m in rows:
        lb = m.get("length_bias", {})
        t.add_row(name, str(m.get("n")), _acc(m), f"{m['margin']:.3f}", f"{m['ece']:.3f}",
                  _acc(lb.get("chosen_longer", {})), _acc(lb.get("chosen_shorter", {})))
    console.print(t)
    rb = s.get("rewardbench") or {}
    if rb.get("sections"):
        parts = ", ".join(f"{k} {v:.3f}" for k, v in rb["sections"].items())
        console.print(f"RewardBench v1 scoring: {parts}; score {rb['score']:.3f}")
    if "member_accuracy" in s:
        console.print(f"ensemble ({s.get('aggregate')}): member accuracy "
                      + ", ".join(f"{a:.3f}" for a in s["member_accuracy"])
                      + f"; mean disagreement {s['disagreement_mean']:.3f}")
