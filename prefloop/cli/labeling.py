"""``prefloop annotate``, ``prefloop users`` and ``prefloop tasks``: the labeling app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ._common import console, int_list_option, read_option_file, state

app = typer.Typer()
users_app = typer.Typer(no_args_is_help=True, help="Annotator and admin accounts of the labeling app.")
tasks_app = typer.Typer(no_args_is_help=True, help="The labeling queue.")
key_app = typer.Typer(no_args_is_help=True, help="API keys (Authorization: Bearer) of the HTTP API at /api.")
webhooks_app = typer.Typer(no_args_is_help=True, help="Webhooks: URLs told of new labels, exports and runs.")


def register(root: typer.Typer) -> None:
    root.add_typer(app)
    root.add_typer(users_app, name="users")
    root.add_typer(tasks_app, name="tasks")
    root.add_typer(webhooks_app, name="webhooks")
    users_app.add_typer(key_app, name="key")


@key_app.command("create")
def key_create(
    name: Annotated[str, typer.Argument(help="The user the key acts as (with their role).")],
    label: Annotated[str, typer.Option(help="What the key is for (shown in lists).")] = "",
) -> None:
    """Create an API key for a user; it is printed once and stored only as a hash."""
    s = state.store()
    user = s.annotators.get(name)
    row, text = s.api_keys.create(user.id, label)
    console.print(f"API key {row.id} for {user.name} ({user.role}); keep it now, it is not shown again:")
    typer.echo(text)


@key_app.command("list")
def key_list(name: Annotated[Optional[str], typer.Argument(help="Only this user's keys.")] = None) -> None:
    """API keys (never their secret): id, user, label, prefix, created, last used, revoked."""
    s = state.store()
    users = {a.id: a.name for a in s.annotators.list()}
    uid = s.annotators.get(name).id if name else None
    t = Table()
    for col in ("id", "user", "label", "prefix", "created", "last used", "revoked"):
        t.add_column(col)
    fmt = lambda d: d.strftime("%Y-%m-%d %H:%M") if d else "-"   # noqa: E731
    for k in s.api_keys.list(uid):
        t.add_row(str(k.id), users.get(k.annotator_id, "?"), k.name, k.prefix + "...",
                  fmt(k.created_at), fmt(k.last_used_at), fmt(k.revoked_at))
    console.print(t)


@key_app.command("revoke")
def key_revoke(key_id: Annotated[int, typer.Argument(help="The key's id (prefloop users key list).")]) -> None:
    """Revoke an API key: it authenticates nobody from now on."""
    k = state.store().api_keys.revoke(key_id)
    console.print(f"API key {k.id} ({k.prefix}...) revoked.")


@webhooks_app.command("add")
def webhooks_add(
    url: Annotated[str, typer.Argument(help="The receiver's http(s) URL.")],
    events: Annotated[str, typer.Option(help="Comma-separated: comparison.created, task.completed, export.created, run.finished, run.failed.")],
) -> None:
    """Register a webhook (Standard Webhooks signatures; needs $PREFLOOP_WEBHOOK_KEY). The
    signing secret is printed once. Deliveries are sent by the running labeling app."""
    w, secret = state.store().webhooks.add(url, [e.strip() for e in events.split(",") if e.strip()])
    console.print(f"Webhook {w.id} -> {w.url} for {', '.join(w.events)}; its signing secret:")
    typer.echo(secret)


@webhooks_app.command("list")
def webhooks_list() -> None:
    """Webhooks and their deliveries' state."""
    s = state.store()
    t = Table()
    for col in ("id", "url", "events", "active", "delivered", "pending", "failed"):
        t.add_column(col)
    counts: dict[tuple[int, str], int] = {}
    for d in s.webhooks.deliveries(limit=100_000):
        counts[(d.webhook_id, d.status)] = counts.get((d.webhook_id, d.status), 0) + 1
    for w in s.webhooks.list():
        t.add_row(str(w.id), w.url, ", ".join(w.events), "yes" if w.active else "no",
                  *(str(counts.get((w.id, k), 0)) for k in ("delivered", "pending", "failed")))
    console.print(t)


@webhooks_app.command("remove")
def webhooks_remove(webhook_id: Annotated[int, typer.Argument(help="Webhook id.")]) -> None:
    """Deactivate a webhook (its delivery record stays)."""
    state.store().webhooks.remove(webhook_id)
    console.print(f"Webhook {webhook_id} removed.")


@app.command()
def annotate(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 7860,
    config: Annotated[Optional[Path], typer.Option(help="App settings YAML (guidelines, lease_seconds, undo_seconds, gold_rate).")] = None,
) -> None:
    """Serve the labeling app (log in with a `prefloop users` account)."""
    from prefloop.annotate_app.app import launch
    from prefloop.annotate_app.config import AppConfig

    s = state.store()
    app_config = AppConfig.load(config)        # checked before anything starts
    console.print(f"Labeling app on http://{host}:{port} (store {s.path}); Ctrl+C to stop")
    launch(s, host=host, port=port, config=app_config)


def _read_password(password_file: Optional[Path]) -> str:
    if password_file is not None:
        from prefloop.core.secrets import register_secret

        password = read_option_file(password_file, "--password-file").strip()
        register_secret(password)              # never echoed in an error
        return password
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name (the login).")],
    role: Annotated[str, typer.Option(help="annotator, reviewer (also reviews and adjudicates) or admin.")] = "annotator",
    password_file: Annotated[Optional[Path], typer.Option(help="Read the password from this file instead of prompting.")] = None,
) -> None:
    """Create a user; the password is stored only as an argon2 hash."""
    from prefloop.annotate_app.auth import hash_password
    from prefloop.annotate_app.errors import AppError

    try:
        hashed = hash_password(_read_password(password_file))
    except ValueError as exc:
        raise AppError(str(exc)) from None
    a = state.store().annotators.add(name, role, hashed)
    console.print(f"User {a.name} ({a.role}) created.")


@users_app.command("list")
def users_list() -> None:
    """Users with role and status."""
    t = Table()
    for col in ("id", "name", "role", "active", "created"):
        t.add_column(col)
    for a in state.store().annotators.list():
        t.add_row(str(a.id), a.name, a.role, "yes" if a.active else "no",
                  a.created_at.strftime("%Y-%m-%d") if a.created_at else "-")
    console.print(t)


@users_app.command("disable")
def users_disable(name: Annotated[str, typer.Argument(help="User name.")]) -> None:
    """Disable a user: they can no longer log in or call the app."""
    state.store().annotators.update(name, active=False)
    console.print(f"User {name} disabled.")


@users_app.command("rename")
def users_rename(
    name: Annotated[str, typer.Argument(help="Current user name.")],
    new_name: Annotated[str, typer.Argument(help="New user name (the new login).")],
) -> None:
    """Rename a user; their labels stay theirs (comparisons name annotators by id)."""
    state.store().annotators.update(name, new_name=new_name)
    console.print(f"User {name} is now {new_name}.")


@users_app.command("passwd")
def users_passwd(
    name: Annotated[str, typer.Argument(help="User name.")],
    password_file: Annotated[Optional[Path], typer.Option(help="Read the password from this file.")] = None,
) -> None:
    """Set a user's password."""
    from prefloop.annotate_app.auth import hash_password

    state.store().annotators.update(name, password_hash=hash_password(_read_password(password_file)))
    console.print(f"Password of {name} changed.")


@tasks_app.command("add")
def tasks_add(
    dataset: Annotated[Optional[str], typer.Option(help="Prompts of this dataset (default: all).")] = None,
    prompts: Annotated[Optional[str], typer.Option(help="Comma-separated prompt ids.")] = None,
    overlap: Annotated[int, typer.Option(help="Annotators per task.")] = 1,
    priority: Annotated[int, typer.Option(help="Higher is served first.")] = 0,
    limit: Annotated[Optional[int], typer.Option(help="At most N tasks.")] = None,
    k: Annotated[Optional[int], typer.Option(help="At most K responses per task (default: all).")] = None,
    gold: Annotated[bool, typer.Option("--gold", help="Gold tasks from imported human labels (known answers).")] = False,
    update: Annotated[bool, typer.Option("--update", help="Give tasks already queued the new overlap and priority.")] = False,
) -> None:
    """Queue tasks: one per prompt with 2+ responses (or gold tasks with known answers).

    A prompt already queued with the same responses is not queued twice; with --update it
    takes the new overlap and priority."""
    s = state.store()
    if gold:
        ids = s.tasks.create_gold(dataset=dataset, limit=limit)
        console.print(f"{len(ids)} gold tasks in the queue.")
        return
    pids = int_list_option(prompts, "--prompts")
    r = s.tasks.create_for_prompts(dataset=dataset, prompt_ids=pids, k=k, overlap=overlap,
                                   priority=priority, limit=limit, update_existing=update)
    console.print(f"{r.created} tasks created, {r.existing} already queued.")
    if r.updated:
        console.print(f"{r.updated} queued tasks now have overlap {overlap} and priority {priority}.")
    elif r.differing:
        console.print(f"{r.differing} queued tasks have another overlap or priority and were left "
                      "as they are: pass --update to apply the new ones.")


@tasks_app.command("list")
def tasks_list(
    limit: Annotated[int, typer.Option(help="Show N tasks.")] = 30,
    all_: Annotated[bool, typer.Option("--all", help="Include completed tasks.")] = False,
) -> None:
    """The queue, highest priority first, with progress and the reason each task was queued."""
    t = Table()
    for col in ("task", "prompt", "k", "overlap", "done", "leased", "priority", "gold", "reason"):
        t.add_column(col)
    for task, done, leased in state.store().tasks.list(limit=limit, open_only=not all_):
        t.add_row(str(task.id), str(task.prompt_id), str(len(task.response_ids)), str(task.overlap),
                  str(done), str(leased), str(task.priority), "yes" if task.gold_ranking else "",
                  task.reason or "")
    console.print(t)
