"""``/unbind-domain <domain>``: release a binding after a confirmation button."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.domain_names import normalise_domain
from bot.errors import ChangeRefused, NotBound, RequestRefused
from bot.messages import escape_mrkdwn
from bot.services import Services
from commands.after_ack import run_after_ack

logger = logging.getLogger(__name__)

USAGE = (
    "Usage: `/unbind-domain <domain>`, for example `/unbind-domain img.example.com`."
)


def register(app: App, services: Services) -> None:
    app.command("/unbind-domain")(_command(services))
    app.action("unbind_confirm")(_confirmed(services))
    app.action("unbind_cancel")(_cancelled)


def _command(services: Services) -> Callable[..., None]:
    def handle(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        text = str(command.get("text") or "").strip()
        if not text or len(text.split()) != 1:
            ack(text=USAGE, response_type="ephemeral")
            return
        try:
            normalise_domain(text)
        except RequestRefused as err:
            ack(text=escape_mrkdwn(str(err)), response_type="ephemeral")
            return
        ack()
        try:
            binding = services.workflow.current(text)
        except NotBound as err:
            respond(text=escape_mrkdwn(str(err)), response_type="ephemeral")
            return
        # Asked here too, so that nobody is shown a button that cannot work; the
        # release itself asks again and audits a refusal.
        verdict = services.workflow.may_change(str(command["user_id"]), binding)
        if not verdict.allowed:
            refused = ChangeRefused(binding.domain, "unbind", verdict.reason)
            respond(text=escape_mrkdwn(str(refused)), response_type="ephemeral")
            return
        message = services.renderer.message(
            "unbind_confirm",
            {
                "domain": binding.domain,
                "bucket": binding.bucket,
                "binding_id": binding.id,
            },
        )
        respond(text=message.text, blocks=message.blocks, response_type="ephemeral")

    return handle


def _confirmed(services: Services) -> Callable[..., None]:
    def handle(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        user = str(body["user"]["id"])
        channel = (body.get("channel") or {}).get("id")
        binding_id = int(body["actions"][0]["value"])

        def release() -> None:
            binding = services.workflow.release_by_id(
                binding_id, actor=user, channel=channel
            )
            respond(
                text=f"Released {binding.domain} from bucket {binding.bucket}.",
                replace_original=True,
            )

        run_after_ack(services, "unbind", release, user=user, channel=channel)

    return handle


def _cancelled(ack: Ack, respond: Respond) -> None:
    ack()
    respond(text="Nothing was unbound.", replace_original=True)
