"""The Bolt app: Slack's requests verified, routed to the handlers in ``commands/``."""

from __future__ import annotations

import logging

from slack_bolt import App
from slack_bolt.error import BoltError

from bot.errors import ConfigError
from bot.services import Services
from commands import (
    bind_domain,
    binding_card,
    domains,
    home,
    takeover,
    unbind_domain,
)

logger = logging.getLogger(__name__)


def build_app(services: Services) -> App:
    """A Bolt app whose handlers ack, then hand their work to the after-ack pool.

    Raises :class:`ConfigError` when Slack refuses the bot token.
    """
    settings = services.config.settings
    secret = settings.slack_signing_secret
    try:
        app = App(
            signing_secret=secret.get_secret_value() if secret else "",
            # Socket Mode's requests come over the bot's own connection, unsigned.
            request_verification_enabled=settings.slack_app_token is None,
            client=services.slack.client,
            process_before_response=False,
            listener_executor=services.workers.listeners,
            # Bolt's own logger is kept, so its messages carry their module names.
            logger=logging.getLogger("slack_bolt"),
        )
    except BoltError as err:
        raise ConfigError(
            [
                "SLACK_BOT_TOKEN was refused by Slack (or Slack could not be reached "
                f"at {services.slack.client.base_url}): {err}; copy the Bot User "
                "OAuth Token again from the app's OAuth & Permissions page"
            ]
        ) from err
    for module in (bind_domain, binding_card, domains, unbind_domain, home, takeover):
        module.register(app, services)
    return app
