"""The buttons of a domain conflict: "I have added the TXT record", Approve, Reject."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App

from bot.services import Services
from commands.after_ack import run_after_ack


def register(app: App, services: Services) -> None:
    app.action("challenge_check")(_check(services))
    app.action("approval_approve")(_decide(services, approve=True))
    app.action("approval_reject")(_decide(services, approve=False))


def _clicker(body: dict[str, Any]) -> tuple[str, str | None, int]:
    user = str(body["user"]["id"])
    channel = (body.get("channel") or {}).get("id")
    return user, channel, int(body["actions"][0]["value"])


def _check(services: Services) -> Callable[..., None]:
    def handle(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        user, channel, challenge_id = _clicker(body)
        run_after_ack(
            services,
            "challenge check",
            lambda: services.challenges.check_now(challenge_id, actor=user),
            user=user,
            channel=channel,
        )

    return handle


def _decide(services: Services, *, approve: bool) -> Callable[..., None]:
    def handle(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        user, channel, approval_id = _clicker(body)
        run_after_ack(
            services,
            "approval decision",
            lambda: services.approvals.decide(
                approval_id, user=user, approve=approve, channel=channel
            ),
            user=user,
            channel=channel,
        )

    return handle
