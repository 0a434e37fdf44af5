"""The Bolt app: Slack's requests verified, routed to the handlers in ``commands/``."""

from __future__ import annotations

import logging

from slack_bolt import App
from slack_bolt.error import BoltError
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped

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
    bolt_logger = logging.getLogger("slack_bolt")
    quiet = _SameTokenNotice()
    bolt_logger.addFilter(quiet)
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
    except OSError as err:
        # Bolt checks the token with auth.test at once; a network fault surfaces
        # as urllib's URLError (an OSError), not as a BoltError.
        raise ConfigError(
            [
                f"Slack could not be reached at {services.slack.client.base_url} to "
                f"check SLACK_BOT_TOKEN ({getattr(err, 'reason', err)}); check this "
                "host's network, proxy and DNS (or SLACK_API_URL), then start again"
            ]
        ) from err
    finally:
        bolt_logger.removeFilter(quiet)
    for module in (bind_domain, binding_card, domains, unbind_domain, home, takeover):
        module.register(app, services)
    return app


class _SameTokenNotice(logging.Filter):
    """Drops Bolt's warning that the client given wins over SLACK_BOT_TOKEN.

    Bolt reads SLACK_BOT_TOKEN from the environment by itself and warns that the
    client passed in is used instead; that client holds the same token, so the
    warning would only puzzle an operator at every start.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()
