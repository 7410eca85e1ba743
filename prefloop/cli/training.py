"""``prefloop train``, ``prefloop runs`` and ``prefloop generate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
import yaml
from rich.table import Table

from prefloop.core.display import cell
from prefloop.core.kinds import METHODS as KINDS
from prefloop.core.kinds import ONPOLICY_KINDS, REWARDED_METHODS

from ._common import OptionError, console, state

app = typer.Typer()
runs_app = typer.Typer(no_args_is_help=True, help="List and inspect runs (training, generation, judging).")


def register(root: typer.Typer) -> None:
    root.add_typer(app)
    root.add_typer(runs_app, name="runs")



def _parse_sets(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise typer.BadParameter(f"--set {item!r}: expected key=value")
        key, value = item.split("=", 1)
        out[key.strip().replace("-", "_")] = yaml.safe_load(value)
    return out


@app.command()
def train(
    kind: Annotated[str, typer.Argument(help=f"What to train: {', '.join(KINDS)}.")],
    config: Annotated[Optional[Path], typer.Option(help="YAML file of config fields.")] = None,
    model: Annotated[Optional[str], typer.Option(help="Model spec: smollm2-135m-instruct, minilm, run:ID or a path.")] = None,
    reward_model: Annotated[Optional[str], typer.Option(help="ppo/grpo: reward model (run:ID or path).")] = None,
    export: Annotated[Optional[int], typer.Option(help="Train on this recorded export id.")] = None,
    source: Annotated[Optional[str], typer.Option(help="Fresh export: labels from human, ai or all.")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Fresh export: only this dataset.")] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after N optimizer steps (ppo: iterations).")] = None,
    output: Annotated[Optional[Path], typer.Option(help="Output dir (default runs/KIND-ID next to the store).")] = None,
    report_to: Annotated[Optional[str], typer.Option(help="none or tensorboard.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the newest interrupted/failed run of KIND from its last checkpoint.")] = False,
    run: Annotated[Optional[int], typer.Option(help="With --resume: the run id to continue.")] = None,
    set_: Annotated[list[str], typer.Option("--set", help="Any config field: --set beta=0.2 (repeatable).")] = [],
) -> None:
    """Train a reward model or a policy (DPO, SFT, PPO, GRPO, RLOO, KTO, ORPO) from the store's
    labels; iterative-dpo and rs-sft sample from the policy, label, and train, in rounds
    (--set rounds=2 --set n=4 --set labeler=reward-model|judge|self)."""
    from prefloop.training.train import train as run_training

    if kind not in KINDS:
        raise typer.BadParameter(f"{kind!r}: expected one of {', '.join(KINDS)}")
    overrides = {"model": model, "reward_model": reward_model, "export_id": export, "source": source,
                 "dataset": dataset, "max_steps": max_steps,
                 "output_dir": str(output) if output else None, "report_to": report_to,
                 **_parse_sets(set_)}
    if kind in ONPOLICY_KINDS:
        _train_onpolicy(kind, config, overrides, resume or run is not None)
        return
    if kind not in REWARDED_METHODS:
        overrides.pop("reward_model")
    import os

    main = os.environ.get("RANK", "0") == "0"     # under accelerate launch only rank 0 opens the store
    result = run_training(state.store() if main else None, kind, config_path=config,
                          overrides=overrides, resume=resume or run is not None, resume_run_id=run)
    if not main:
        return
    console.print(f"Run [bold]{result.run.id}[/] ({kind}) finished in {result.seconds:.0f} s "
                  f"-> {result.final_dir}")
    _print_summary(result.summary)


def _train_onpolicy(kind: str, config: Path | None, overrides: dict, resume: bool) -> None:
    """``prefloop train iterative-dpo|rs-sft``: :mod:`prefloop.pipelines.onpolicy`."""
    from prefloop.pipelines.onpolicy import onpolicy_config, run_onpolicy

    settings = {}
    if config is not None:
        from prefloop.core.files import read_config_file
        from prefloop.pipelines.errors import OnPolicyConfigError

        settings = read_config_file(config, OnPolicyConfigError, what="config") or {}
        if not isinstance(settings, dict):
            raise OnPolicyConfigError(f"{config}: expected a mapping of settings")
    settings.update({k: v for k, v in overrides.items() if v is not None})
    cfg = onpolicy_config(kind, settings, where=str(config) if config else "--set")
    result = run_onpolicy(state.store(), cfg, fresh=not resume)
    console.print(f"Run [bold]{result.run.id}[/] ({kind}): {len(result.rounds)} rounds; the policy is "
                  f"[bold]{result.policy}[/]")
    t = Table(title=f"{kind} rounds")
    for col in ("round", "generate run", "labeler", "pairs", "mean reward", "train run", "loss"):
        t.add_column(col)
    for i, r in enumerate(result.rounds, 1):
        t.add_row(str(i), str(r["generate_run_id"]), r["labeler"], str(r["pairs"]),
                  _fmt(r["mean_reward"]) if r["mean_reward"] is not None else "-",
                  str(r["train_run_id"]), _fmt(r["train_loss"]))
    console.print(t)


def _print_summary(summary: dict) -> None:
    ev = summary.get("eval")
    flat = {k: v for k, v in summary.items() if k != "eval"}
    console.print("  " + ", ".join(f"{k}={_fmt(v)}" for k, v in flat.items()))
    if isinstance(ev, dict):
        t = Table(title="held-out evaluation")
        first = next(iter(ev.values()))
        if isinstance(first, dict):
            t.add_column("group")
            for col in first:
                t.add_column(col, justify="right")
            for group, m in ev.items():
                t.add_row(group, *(_fmt(m.get(c)) for c in first))
        else:
            t.add_column("metric")
            t.add_column("value", justify="right")
            for k, v in ev.items():
                t.add_row(k, _fmt(v))
        console.print(t)


def _fmt(v) -> str:
    return cell(v, sig=True)


@runs_app.command("list")
def runs_list(kind: Annotated[Optional[str], typer.Option(help="Only runs of this kind.")] = None) -> None:
    """All runs with status, lineage and headline metrics."""
    s = state.store()
    s.runs.reap()
    t = Table()
    for col in ("id", "kind", "status", "parent", "export", "started", "summary"):
        t.add_column(col)
    for r in s.runs.list(kind=kind):
        head = {k: v for k, v in (r.summary or {}).items() if not isinstance(v, (dict, list))
                and k not in ("output_dir",)}
        t.add_row(str(r.id), r.kind, r.status, str(r.parent_run_id or "-"), str(r.export_id or "-"),
                  r.started_at.strftime("%Y-%m-%d %H:%M") if r.started_at else "-",
                  ", ".join(f"{k}={_fmt(v)}" for k, v in list(head.items())[:4]))
    console.print(t)


@runs_app.command("show")
def runs_show(run_id: Annotated[int, typer.Argument(help="Run id.")]) -> None:
    """One run: config, lineage (run -> export -> label sources -> parent run), metrics."""
    s = state.store()
    s.runs.reap()
    r = s.runs.get(run_id)
    console.print(f"Run [bold]{r.id}[/] {r.kind} [{r.status}] started {r.started_at} "
                  f"finished {r.finished_at or '-'}")
    console.print(f"  checkpoint: {r.checkpoint_path or '-'}")
    chain, parent = [], r.parent_run_id
    while parent:
        p = s.runs.get(parent)
        chain.append(f"run {p.id} ({p.kind}, {p.status})")
        parent = p.parent_run_id
    if r.export_id:
        e = s.exports.get(r.export_id)
        console.print(f"  export {e.id}: {e.n_pairs} pairs, filters {json.dumps(e.filters)}, "
                      f"sha256 {e.sha256[:16]}..., {e.path}")
    console.print(f"  lineage: run {r.id} <- " + (" <- ".join(chain) if chain else "base model "
                                                     f"{r.config.get('model', '-')}"))
    if r.summary:
        _print_summary(r.summary)
    metrics = s.runs.metrics(r.id)
    if metrics:
        by_name: dict[str, list] = {}
        for m in metrics:
            by_name.setdefault(m.name, []).append(m)
        t = Table(title=f"metrics ({len(metrics)} values)")
        for col in ("metric", "first", "last", "steps"):
            t.add_column(col)
        for name, ms in sorted(by_name.items()):
            t.add_row(name, _fmt(ms[0].value), _fmt(ms[-1].value), f"{ms[0].step}..{ms[-1].step}")
        console.print(t)


@app.command()
def generate(
    prompts: Annotated[str, typer.Option(help="A dataset of the store, a prompts file, export:ID (held-out split) or export:ID:train.")],
    model: Annotated[Optional[str], typer.Option(help="Policy: smollm2-135m-instruct, run:ID or a path.")] = None,
    limit: Annotated[Optional[int], typer.Option(help="At most N prompts.")] = None,
    n: Annotated[int, typer.Option(help="Responses per prompt.")] = 4,
    reward_model: Annotated[Optional[str], typer.Option(help="Score responses with this rm (run:ID or path).")] = None,
    select: Annotated[str, typer.Option(help="uncertain (closest rewards) or random.")] = "uncertain",
    tasks: Annotated[int, typer.Option(help="Queue this many labeling tasks.")] = 0,
    overlap: Annotated[int, typer.Option(help="Annotators per task.")] = 1,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per response.")] = 128,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.7,
    batch_size: Annotated[int, typer.Option(help="Sequences per generate() call.")] = 16,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    label_best: Annotated[bool, typer.Option("--label-best", help="Label each prompt's best sample under --reward-model (rejection-sampling fine-tuning data: export --labeler reward-model:SPEC, then train sft).")] = False,
    pairs: Annotated[Optional[str], typer.Option(help="Label on-policy pairs under --reward-model: best-worst (one per prompt) or all (every pair with a reward gap >= --margin); DPO data (or: prefloop train iterative-dpo).")] = None,
    margin: Annotated[float, typer.Option(help="With --pairs all: the smallest reward gap of a pair.")] = 0.0,
    max_prompt_tokens: Annotated[Optional[int], typer.Option(help="Leave out prompts longer than this (chat-formatted tokens).")] = None,
) -> None:
    """Sample new responses from a policy, store them, and queue the most informative pairs
    (or label the best of each prompt's samples with a reward model)."""
    from prefloop.training.generate import GenParams
    from prefloop.training.generate import generate as run_generate

    params = GenParams(n=n, max_new_tokens=max_new_tokens, temperature=temperature,
                       batch_size=batch_size, seed=seed)
    r = run_generate(state.store(), model, prompts, limit=limit, params=params,
                     reward_model=reward_model, select=select, n_tasks=tasks, overlap=overlap,
                     label_best=label_best, pairs=pairs, margin=margin,
                     max_prompt_tokens=max_prompt_tokens)
    console.print(f"Run [bold]{r.run.id}[/] (generate): {r.n_responses} responses for "
                  f"{r.n_prompts} prompts at {r.tokens_per_second:.1f} tokens/s"
                  + (f", mean reward {r.mean_reward:.3f}" if r.mean_reward is not None else "")
                  + (f"; {len(r.comparison_ids)} labels recorded" if r.comparison_ids else "")
                  + f"; {len(r.task_ids)} tasks queued")


@app.command("serve-rm")
def serve_rm(
    model: Annotated[str, typer.Option(help="Reward model: run:ID (an rm run), minilm or a path.")],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 5000,
    batch_size: Annotated[int, typer.Option(help="Sequences per forward pass (concurrent requests are batched together).")] = 32,
) -> None:
    """Serve a reward model over HTTP in OpenRLHF's remote reward contract (POST /get_reward
    {"query": [texts]} -> {"rewards": [...]}); verl: prefloop/training/verl_reward.py."""
    import socket

    from prefloop.core.models import resolve_model
    from prefloop.training.serve_rm import serve_reward_model

    ref = resolve_model(model, state.store() if model.startswith("run:") else None, require="reward")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise OptionError(f"--port {port}: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    console.print(f"Reward model {ref.name} on http://{host}:{port}/get_reward; Ctrl+C to stop")
    serve_reward_model(ref, host=host, port=port, batch_size=batch_size, model_name=ref.name)
