"""Running a handler's real work once Slack has its ack.

Bolt sends the HTTP response as soon as ``ack()`` is called. The listener then
hands the work to the after-ack pool (:class:`bot.workers.Workers`) and returns, so
that its thread is free for the next request's ack however long the work takes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.errors import DomainbotError, SlackError
from bot.messages import escape_mrkdwn
from bot.services import Services
from bot.slack_gateway import Message

logger = logging.getLogger(__name__)

FAILED = (
    "Sorry, that did not go through: the bot hit an error it did not expect, and "
    "nothing was changed. Try again in a minute; if it keeps happening, the bot's "
    "log has the details."
)


def run_after_ack(
    services: Services,
    step: str,
    work: Callable[[], object],
    *,
    user: str,
    channel: str | None,
) -> None:
    """Run ``work`` on the after-ack pool and return at once.

    When the work fails, ``user`` is told privately; either way the delivery is
    woken for the notices it stored.

    TODO: work waiting here lives in memory only. SIGTERM lets it finish, but a
    crash or SIGKILL between the ack and the work's first transaction loses it:
    the requester saw "the details follow" and hears nothing more (asking again
    is safe). Journaling the request before the ack would close that window at
    the cost of a database write on the ack path; the mark can go then.
    """

    def run() -> None:
        try:
            work()
        except DomainbotError as err:
            logger.warning("%s refused user=%s: %s", step, user, err)
            tell(services, user, channel, escape_mrkdwn(str(err)))
        except Exception:
            logger.exception("%s failed user=%s", step, user)
            tell(services, user, channel, FAILED)
        finally:
            services.delivery.wake()

    services.workers.after_ack(run)


def tell(services: Services, user: str, channel: str | None, text: str) -> None:
    """Show ``text`` (mrkdwn, already escaped) to ``user`` only, at once."""
    message = Message(
        text=text,
        blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
    )
    try:
        if channel:
            services.slack.post_ephemeral(channel, user, message)
        else:
            services.slack.post(user, message)
    except SlackError as err:
        logger.warning("could not tell user=%s: %s", user, err.code)
