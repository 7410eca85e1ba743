"""What the labeling app does, without Gradio, one service per concern, composed by
:class:`AppServices` as :class:`prefloop.store.Store` composes its APIs:

* :class:`~.labeling.LabelingService` (``app.labeling``): annotators' tasks and submissions;
* :class:`~.review.ReviewService` (``app.review``): the review queue and decisions;
* :class:`~.admin.AdminService` (``app.admin``): figures, people, queue, exports, models;
* :class:`~.jobs.JobRunner` (``app.jobs``): training and judge jobs as subprocesses;
* :class:`~.platform.PlatformService` (``app.platform``): what other tools do through the JSON API;
* :class:`~.chat.ChatService` (``app.chat``): live conversations ranked turn by turn.

The views (:mod:`prefloop.annotate_app.views`) call these after
:meth:`AppServices.authorize`; tests call them directly. Nothing here imports torch.
"""

from __future__ import annotations

from prefloop import store

from ..auth import SessionGuard, caller
from ..config import AppConfig
from .admin import AdminService
from .chat import ChatService
from .jobs import JOB_KINDS, JobRunner
from .labeling import FLAGS, PAIR_CHOICES, LabelingService, TaskView
from .platform import PlatformService
from .review import ReviewService

__all__ = ["AppServices", "ChatService", "LabelingService", "ReviewService", "AdminService", "JobRunner", "PlatformService",
           "TaskView", "FLAGS", "PAIR_CHOICES", "JOB_KINDS"]


class AppServices:
    """The app's services on one store, with its settings and its login sessions."""

    def __init__(self, s: store.Store, config: AppConfig | None = None):
        self.store = s
        self.config = config or AppConfig()
        self.sessions = SessionGuard(self.config.session_hours * 3600.0)
        self.labeling = LabelingService(s, self.config)
        self.review = ReviewService(s, self.config)
        self.admin = AdminService(s, self.config)
        self.jobs = JobRunner(s)
        self.platform = PlatformService(s, self.config)
        self.chat = ChatService(s, self.config)

    def authorize(self, request, role: str | None = None) -> store.Annotator:
        """The logged-in, active annotator behind a Gradio request (``role="reviewer"``:
        reviewers and admins; ``role="admin"``: only admins), whose session is neither older
        than ``session_hours`` nor from before a password change.

        Raises:
            NotAuthorized: no login, an unknown or disabled user, a lower role, or an ended
                session.
        """
        annotator = caller(self.store, request, role)
        self.sessions.check(request, annotator)
        return annotator
