"""The buttons on a binding's card: "Check now" and "Replace the record"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App

from bot.services import Services
from commands.after_ack import run_after_ack


def register(app: App, services: Services) -> None:
    app.action("check_now")(_clicked(services))
    app.action("cname_replace")(_replace(services))


def _clicked(services: Services) -> Callable[..., None]:
    def handle(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        user = str(body["user"]["id"])
        channel = (body.get("channel") or {}).get("id")
        binding_id = int(body["actions"][0]["value"])
        run_after_ack(
            services,
            "check now",
            lambda: services.watch.check_now(binding_id, actor=user),
            user=user,
            channel=channel,
        )

    return handle


def _replace(services: Services) -> Callable[..., None]:
    def handle(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        user = str(body["user"]["id"])
        channel = (body.get("channel") or {}).get("id")
        binding_id = int(body["actions"][0]["value"])
        run_after_ack(
            services,
            "replace cname",
            lambda: services.workflow.replace_cname(
                binding_id, actor=user, channel=channel
            ),
            user=user,
            channel=channel,
        )

    return handle
