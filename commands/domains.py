"""``/domains [bucket]``: the bound domains and where each one stands."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.errors import RequestRefused
from bot.messages import escape_mrkdwn
from bot.services import Services

logger = logging.getLogger(__name__)

MAX_ROWS = 45


def register(app: App, services: Services) -> None:
    app.command("/domains")(_command(services))


def _command(services: Services) -> Callable[..., None]:
    def handle(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        ack()
        bucket = str(command.get("text") or "").strip() or None
        try:
            bindings = services.workflow.bindings(bucket)
        except RequestRefused as err:
            respond(text=escape_mrkdwn(str(err)), response_type="ephemeral")
            return
        configured = services.config.file.bucket(bucket) if bucket else None
        message = services.renderer.message(
            "domains_list",
            {
                "bucket": bucket,
                "bindings": bindings,
                "requests": services.challenges.open_requests(bucket),
                "limit": configured.max_domains if configured else None,
                "max_rows": MAX_ROWS,
            },
        )
        respond(text=message.text, blocks=message.blocks, response_type="ephemeral")
        logger.debug(
            "listed domains user=%s count=%d", command["user_id"], len(bindings)
        )

    return handle
