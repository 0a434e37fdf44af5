"""The App Home tab: what is waiting for DNS, and takeovers waiting for a decision."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App

from bot.errors import SlackError
from bot.services import Services
from storage.models import BindingState

logger = logging.getLogger(__name__)


def register(app: App, services: Services) -> None:
    app.event("app_home_opened")(_opened(services))


def _opened(services: Services) -> Callable[..., None]:
    def handle(event: dict[str, Any]) -> None:
        if event.get("tab") not in (None, "home"):
            return
        pending = [
            b
            for b in services.workflow.bindings()
            if b.state is BindingState.PENDING_DNS
        ]
        view = services.renderer.view(
            "app_home",
            {"pending": pending, "requests": services.challenges.open_requests()},
        )
        try:
            services.slack.publish_home(str(event["user"]), view)
        except SlackError as err:
            logger.warning(
                "home not published user=%s: %s", event.get("user"), err.code
            )

    return handle
