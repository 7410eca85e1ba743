"""The Gradio labeling app: Label, Chat, Review, Admin and Models tabs on one store.

:func:`build_app` composes the views (:mod:`prefloop.annotate_app.views`), each of which builds
its components and wires handlers that check the caller first
(:func:`prefloop.annotate_app.handlers.handler`); the rules live in the services
(:mod:`prefloop.annotate_app.services`). :func:`launch` serves it behind Gradio's login.
"""

from __future__ import annotations

import gc

import gradio as gr

from prefloop import store

from .auth import LoginGuard, authenticate
from .config import AppConfig
from .errors import AppError
from .handlers import handler
from .render import CSS
from .services import AppServices
from .views.admin import AdminView
from .views.chat import ChatView
from .views.label import LabelView
from .views.models import ModelsView
from .views.review import ReviewView

__all__ = ["build_app", "launch", "KEYBOARD_JS"]

KEYBOARD_JS = """
<script>
// a graded choice (setting strength: true): after A or B, the strength buttons replace the pair
// buttons until one is pressed (or Escape); the state is the body's pf-pending class
window.pfPendingShow = (on) => {
  document.body.classList.toggle('pf-pending', on);
  const row = document.getElementById('pf-strength-row');
  if (row) row.style.display = on ? 'flex' : 'none';
  for (const id of ['pf-a', 'pf-b', 'pf-tie', 'pf-bad']) {
    const el = document.getElementById(id); if (el) el.style.display = on ? 'none' : '';
  }
  if (!on) window.pfPending = '';
};
document.addEventListener('keydown', (e) => {
  const click = (id) => { const el = document.getElementById(id);
                          if (el && el.offsetParent !== null) { e.preventDefault(); el.click(); } };
  if (e.ctrlKey && e.key === 'Enter') { click('pf-submit'); return; }
  const tag = (e.target && e.target.tagName || '').toLowerCase();
  if (tag === 'textarea' || tag === 'input' || e.ctrlKey || e.altKey || e.metaKey) return;
  if (document.body.classList.contains('pf-pending')) {   // A or B pressed: how much better
    if (e.key === 'Escape') window.pfPendingShow(false);
    else if ('1234'.includes(e.key) && e.key.length === 1) click('pf-strength-' + (Number(e.key) - 1));
    return;
  }
  const keys = {'1': 'pf-a', '2': 'pf-b', '3': 'pf-tie', '4': 'pf-bad', 's': 'pf-skip', 'u': 'pf-undo'};
  if (keys[e.key]) click(keys[e.key]);
});
</script>
"""


def build_app(s: store.Store, config: AppConfig | None = None) -> gr.Blocks:
    """The Blocks app (not launched; see :func:`launch`). Its services are
    ``demo.prefloop_services`` (:class:`~prefloop.annotate_app.services.AppServices`)."""
    app = AppServices(s, config)
    with gr.Blocks(title=app.config.title, analytics_enabled=False) as demo:
        with gr.Row():
            who = gr.Markdown("", elem_id="pf-who")
            gr.Button("Log out", link="/logout", size="sm", scale=0, elem_id="pf-logout")
        with gr.Tabs():
            with gr.Tab("Label", id="label"):
                label = LabelView(app)
            with gr.Tab("Chat", id="chat", visible=app.config.chat is not None) as chat_tab:
                chat = ChatView(app)
            with gr.Tab("Review", id="review", visible=False) as review_tab:
                review = ReviewView(app)
            with gr.Tab("Admin", id="admin", visible=False) as admin_tab:
                admin = AdminView(app)
            with gr.Tab("Models", id="models", visible=False) as models_tab:
                models = ModelsView(app)

        @handler(app)
        def load_task(user):
            is_admin, is_reviewer = user.role == "admin", user.role in ("admin", "reviewer")
            tabs = [gr.update(visible=is_admin), gr.update(visible=is_admin), gr.update(visible=is_reviewer)]
            if is_reviewer:   # looking at the dashboard or the review queue must not lease a task
                return label.show(None, user, "Press **Next task** to label.") + tabs
            return label.show(app.labeling.current_task(user), user) + tabs

        demo.load(load_task, None, label.outputs(who) + [admin_tab, models_tab, review_tab],
                  api_name="load_task")
        label.wire(who)
        chat.wire(chat_tab)
        review.wire(review_tab)
        admin.wire(admin_tab)
        models.wire(models_tab)
    demo.prefloop_services = app      # launch() wires the login check to its sessions
    return demo


def api_routes(app: AppServices) -> list:
    """The JSON API (:mod:`prefloop.annotate_app.api`) mounted at ``/api``: given to Gradio's
    FastAPI app as its first routes, so it answers from the server's first request on."""
    from starlette.routing import Mount

    from .api import build_api

    return [Mount("/api", app=build_api(app))]


def start_webhooks(app: AppServices) -> None:
    """The webhook sender thread (:class:`~prefloop.annotate_app.webhooks.WebhookSender`)."""
    from .webhooks import WebhookSender

    app.webhook_sender = WebhookSender(app.store, backoff=app.config.webhook_backoff_seconds,
                                       attempts=max(1, app.config.webhook_attempts),
                                       timeout=app.config.webhook_timeout)
    app.webhook_sender.start()


def launch(s: store.Store, *, host: str = "127.0.0.1", port: int = 7860, config: AppConfig | None = None,
           block: bool = True):
    """Serve the app with Gradio's login (active annotators, argon2-checked passwords)."""
    if not any(a.active for a in s.annotators.list()):
        raise AppError("no active users: create one with `prefloop users add NAME --role admin`")
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:   # a busy port: one line
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise AppError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                           "choose another with --port") from None
    demo = build_app(s, config)
    app = demo.prefloop_services
    demo.queue(default_concurrency_limit=16)
    guard = LoginGuard(max_failures=app.config.max_failed_logins, lockout_seconds=app.config.lockout_seconds)
    from starlette.middleware import Middleware

    from .http_guard import HttpGuard, IssuedTokens

    out = demo.launch(server_name=host, server_port=port, auth=lambda u, p: authenticate(s, u, p, guard, app.sessions),
                      auth_message="Log in with your prefloop user.", head=KEYBOARD_JS, css=CSS,
                      prevent_thread_lock=True, quiet=not block, show_error=True,
                      app_kwargs={"middleware": [Middleware(HttpGuard, fns=demo.fns,
                                                            samesite=app.config.cookie_samesite)],
                                  "routes": api_routes(app)})
    server = out[0]               # Gradio's App: each login token is recorded as it is issued
    server.tokens = IssuedTokens(app.sessions.issued, server.tokens)
    start_webhooks(app)
    # Everything built so far (Gradio, the app, the imports: ~200k objects) lives as long as the
    # process: move it out of the collector's reach, or every full (generation 2) collection
    # scans it again and stalls the event loop, once for 152 ms under the app bench's load
    # (timed with a gc.callbacks hook; gc.freeze, Python docs: "Garbage Collector Interface").
    gc.collect()
    gc.freeze()
    if block:
        demo.block_thread()
    return out
