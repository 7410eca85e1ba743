"""How the pipelines' results read on a terminal: the eval tables and the leaderboards (rich).

The library functions (:func:`prefloop.pipelines.evaluation.run_eval`, the trainers) return
results and log progress; the CLI prints them with these.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from prefloop import store
from prefloop.core.display import cell, interval
from prefloop.core.stats import WinRate
from prefloop.pipelines.eval_results import EvalRow, EvalSummary

__all__ = ["print_eval", "print_leaderboards", "print_rm_eval"]


def _rate(w: WinRate | None) -> str:
    """A win rate over its 95% CI on the next line."""
    return "-" if w is None else interval(w.rate, w.low, w.high, n=w.n, sep="\n")


def _num(v: float | None, digits: int = 2) -> str:
    return cell(v, digits)


def _people(row: EvalRow, subset: str | None, progress) -> str:
    sl = row.slice(subset)
    view = sl.people if sl is not None else None
    if view is not None:
        return _rate(view.win) + f"\n{view.win.n} labels"
    if progress is not None and progress.tasks:
        return f"waiting:\n{progress.waiting}\nlabels" if progress.waiting else "-"
    return "-"


def _view_cell(view) -> str:
    """A view's win rate over its CI, the length-controlled rate below."""
    if view is None or view.win.n == 0:
        return "-"
    lc = view.length_controlled
    return _rate(view.win) + (f"\nLC {lc.rate:.2f}" if lc is not None and lc.n else "")


def print_eval(console: Console, run_id: int, sm: EvalSummary, progress=None) -> None:
    """An eval run's tables (80 columns wide): the model versions (length, EOS rate, refusals,
    KL to the reference, mean reward-model scores), then per subset each version's win rates
    against the baseline with 95% CIs: people first (the headline; "waiting" for N labels
    while the blind tasks are open), then the diagnostics, each with its length-controlled
    rate (LC: length and finished-or-cut-off as covariates)."""
    t = Table(title=f"eval run {run_id}: {sm.prompts} prompts ({sm.prompt_source}), baseline "
                    f"{sm.baseline}, {sm.max_new_tokens} new tokens at most")
    for col in ("model", "kind", "tokens", "EOS", "refusals", "KL nats", "proxy RM", "2nd RM"):
        t.add_column(col, justify="left" if col in ("model", "kind") else "right", overflow="fold")
    for r in sm.rows:
        o = r.overall
        t.add_row(r.model, r.kind, f"{o.mean_tokens:.0f}", f"{o.eos_rate:.2f}", f"{o.refusal_rate:.2f}",
                  _num(o.kl), _num(o.proxy.mean if o.proxy else None, 3),
                  _num(o.second_rm.mean if o.second_rm else None, 3))
    console.print(t)
    for subset in [None, *sm.subsets()]:
        name = "all prompts" if subset is None else f"{subset} prompts"
        w = Table(title=f"win rate against the baseline, {name} (ties half; 95% CI)",
                  caption="people: blind labels, the headline; the rest are diagnostics")
        for col in ("model", "n", "people", "proxy RM", "2nd RM", "AI judge", "refusals"):
            w.add_column(col, justify="left" if col == "model" else "right", overflow="fold")
        base = sm.row(sm.baseline).slice(subset)
        for r in sm.compared():
            sl = r.slice(subset)
            if sl is None:
                continue
            refusals = f"{sl.refusal_rate:.2f}" + (f"\nbase {base.refusal_rate:.2f}" if base else "")
            w.add_row(r.model, str(sl.n), _people(r, subset, progress), _view_cell(sl.proxy),
                      _view_cell(sl.second_rm), _view_cell(sl.judge), refusals)
        console.print(w)
    if progress is not None and progress.tasks:
        console.print(f"  people: {progress.given} of {progress.asked} blind labels given on "
                      f"{progress.tasks} tasks; `prefloop eval show {run_id}` shows them as they arrive")
    if sm.seconds:
        console.print("  seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in sm.seconds.items())
                      + (f"; judge {sm.judge['judge']} under principle {sm.judge['principle']}"
                         if sm.judge else ""))


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


def print_demo(console: Console, r, prefloop_cmd: str, store_path) -> None:
    """A demo's summary (one row per stage with its figures and seconds), its targets (met, gap,
    or waiting for people's labels), the admin password when it was just created, and how to
    open the labeling app and see the people column fill in."""
    st = r.stages
    t = Table(title=f"prefloop demo summary (run {r.run.id}, plan {r.plan.name}, seed {r.seed})")
    for col in ("stage", "result", "seconds"):
        t.add_column(col, justify="right" if col == "seconds" else "left")
    imp, ex = st["import"], st["export"]
    t.add_row("import", f"HH {imp['hh']['imported']} pairs ({imp['hh']['rejected']} rejected), AlpacaEval "
              f"{imp['alpaca_eval']['imported']} rows, MT-Bench {imp['mt_bench']['imported']} prompts",
              f"{imp['seconds']:.0f}")
    sets = {k: v for k, v in st["prompt_sets"].items() if k != "seconds"}
    totals = {name: sum(v for k, v in sets.items() if k.startswith(name + ":")) for name in ("train", "dev", "test")}
    t.add_row("prompt sets", ", ".join(f"{k} {v}" for k, v in totals.items()), f"{st['prompt_sets']['seconds']:.0f}")
    t.add_row("export", f"half A {ex['a']['train']} / half B {ex['b']['train']} train pairs; "
              f"{ex['a']['held_out']} labels of dev and test prompts left out", f"{ex['seconds']:.0f}")
    for key, name in (("rm", "proxy RM"), ("second_rm", "second RM")):
        x = st[key]
        acc = "-" if x["accuracy"] is None else f"{x['accuracy']:.3f}"
        t.add_row(name, f"run {x['run_id']}: held-out accuracy {acc} on {x['eval_pairs']} pairs", f"{x['seconds']:.0f}")
    if "rehearsal" in st:
        t.add_row("rehearsal", f"generate run {st['rehearsal']['generate_run_id']}: the base's best finished answer "
                  f"to {st['rehearsal']['labeled']} benign prompts; SFT export {st['rehearsal']['export_id']} "
                  f"({st['rehearsal']['rows']} demonstrations)", f"{st['rehearsal']['seconds']:.0f}")
    if "sft" in st:
        t.add_row("SFT", f"run {st['sft']['run_id']}: {st['sft']['steps']} steps on {st['sft']['rows']} "
                  "demonstrations", f"{st['sft']['seconds']:.0f}")
    if "dpo" in st:
        t.add_row("DPO", f"run {st['dpo']['run_id']}: {st['dpo']['steps']} steps on half A's "
                  f"{st['dpo']['pairs']} pairs, from the SFT policy", f"{st['dpo']['seconds']:.0f}")
    if "ppo" in st:
        curve = ", ".join(f"{a:.2f}" for a in st["ppo"].get("probe_reward_model", []))
        t.add_row("PPO", f"run {st['ppo']['run_id']}: probe reward per iteration {curve}", f"{st['ppo']['seconds']:.0f}")
    t.add_row("evaluation", f"run {st['eval']['run_id']}: {st['eval']['tasks']} blind tasks for people "
              "(tables below)", f"{st['eval']['seconds']:.0f}")
    t.add_row("total", f"final policy {r.final}", f"{sum(v['seconds'] for v in st.values()):.0f}")
    console.print(t)
    tt = Table(title="the demo's targets (2 CPU cores)")
    for col in ("target", "measured", ""):
        tt.add_column(col, justify="left" if col == "target" else "right")
    for x in r.targets:
        tt.add_row(x.name, x.measured, "waiting" if x.met is None else "met" if x.met else "[bold red]gap[/]")
    console.print(tt)
    if r.admin_password:
        console.print(f"Created user [bold]admin[/] with password [bold]{r.admin_password}[/] (shown once, "
                      "stored only as an argon2 hash; change it with `prefloop users passwd admin`)")
    console.print(f"People are the arbiter: label the blind pairs in the app, [bold]{prefloop_cmd} --db "
                  f"{store_path} annotate[/] (http://127.0.0.1:7860), or through the JSON API "
                  f"(docs/api.md); then [bold]{prefloop_cmd} --db {store_path} eval show "
                  f"{r.eval_run.id}[/] shows the people column.", soft_wrap=True)


def _seed_cell(win: WinRate | None, per_seed: list[float | None]) -> str:
    """A seed-level win rate over its CI, the per-seed values below."""
    seeds = " ".join("-" if v is None else f"{v:.2f}" for v in per_seed)
    if win is None:
        return f"-\n({seeds})" if any(v is not None for v in per_seed) else "-"
    return f"{win.rate:.2f}\n[{win.low:.2f}, {win.high:.2f}]\n({seeds})"


def print_board(console: Console, run: store.Run, rows) -> None:
    """The method board: per method, people's win rate against the base on the harmless and
    the benign test prompts, then the second and the proxy reward models', each the seed-level
    rate with its CI (two-level bootstrap) over the per-seed values; KL, tokens, EOS rate and
    refusals on benign prompts, means over seeds."""
    cfg = run.config.get("board", {})
    print_seed_rows(console, f"method board (run {run.id}): win rate against the base on the test prompts, seeds "
                    f"{', '.join(map(str, cfg.get('seeds', [])))}; {cfg.get('budget', 0):.0f} s of training each",
                    rows)


def print_seed_rows(console: Console, title: str, rows) -> None:
    """Rows of :func:`prefloop.pipelines.board.seed_rows` (one per method or version) as a
    table: people's seed-level win rate against the base (all, harmless, benign), then the
    reward models', each with its CI and per-seed values; KL, tokens, EOS, benign refusals."""
    t = Table(title=title, caption="seed-level CI: resample seeds, then prompts; (per-seed values); "
                                   "people: blind labels so far")
    for col in ("method", "people", "people harmless", "people benign", "2nd RM", "proxy RM", "KL nats",
                "tokens", "EOS", "benign refusals"):
        t.add_column(col, justify="left" if col == "method" else "right", overflow="fold",
                     no_wrap=col == "method")          # a role name reads whole ("random labels")
    for r in rows:
        t.add_row(r.method, _seed_cell(r.win["people"]["all"], r.per_seed["people:all"]),
                  _seed_cell(r.win["people"]["harmless"], r.per_seed["people:harmless"]),
                  _seed_cell(r.win["people"]["benign"], r.per_seed["people:benign"]),
                  _seed_cell(r.win["second_rm"]["all"], r.per_seed["second_rm:all"]),
                  _seed_cell(r.win["proxy"]["all"], r.per_seed["proxy:all"]), _num(r.kl),
                  f"{r.tokens:.0f}", f"{r.eos_rate:.2f}", f"{r.refusal_rate.get('benign', 0.0):.2f}")
    console.print(t)
