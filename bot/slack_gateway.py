"""All the bot's calls to Slack's Web API, through one class: the seam tests fake.

Bolt's listeners get the same ``WebClient`` for the calls that must happen inside a
request (opening a modal), but everything the bot posts on its own goes through here,
so that errors arrive as :class:`~bot.errors.SlackError` with Slack's error string and
the ``Retry-After`` of a 429.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.errors import SlackError

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class Message:
    """A rendered message: Block Kit blocks and the plain-text fallback."""

    text: str
    blocks: list[dict[str, Any]]


@dataclass(frozen=True)
class Posted:
    channel: str
    ts: str


class SlackGateway:
    """Posts, updates and reads through Slack's Web API."""

    def __init__(self, client: WebClient) -> None:
        self.client = client

    @classmethod
    def connect(cls, token: str, base_url: str | None = None) -> SlackGateway:
        kwargs: dict[str, Any] = {"token": token, "timeout": DEFAULT_TIMEOUT_SECONDS}
        if base_url:
            kwargs["base_url"] = base_url
        return cls(WebClient(**kwargs))

    def post(
        self,
        channel: str,
        message: Message,
        *,
        thread_ts: str | None = None,
        broadcast: bool = False,
    ) -> Posted:
        """Post ``message`` in ``channel``, in the thread ``thread_ts`` if given.

        With ``broadcast``, a thread reply also shows in the channel.
        """
        extra: dict[str, Any] = {"reply_broadcast": True} if broadcast else {}
        response = self._call(
            "chat.postMessage",
            self.client.chat_postMessage,
            channel=channel,
            text=message.text,
            blocks=message.blocks,
            thread_ts=thread_ts,
            unfurl_links=False,
            unfurl_media=False,
            **extra,
        )
        return Posted(str(response["channel"]), str(response["ts"]))

    def update(self, channel: str, ts: str, message: Message) -> None:
        self._call(
            "chat.update",
            self.client.chat_update,
            channel=channel,
            ts=ts,
            text=message.text,
            blocks=message.blocks,
        )

    def post_ephemeral(self, channel: str, user: str, message: Message) -> None:
        """Show ``message`` to ``user`` only, in ``channel``."""
        self._call(
            "chat.postEphemeral",
            self.client.chat_postEphemeral,
            channel=channel,
            user=user,
            text=message.text,
            blocks=message.blocks,
        )

    def open_view(self, trigger_id: str, view: dict[str, Any]) -> None:
        self._call(
            "views.open", self.client.views_open, trigger_id=trigger_id, view=view
        )

    def update_view(self, view_id: str, view: dict[str, Any], view_hash: str) -> None:
        self._call(
            "views.update",
            self.client.views_update,
            view_id=view_id,
            view=view,
            hash=view_hash,
        )

    def publish_home(self, user: str, view: dict[str, Any]) -> None:
        self._call("views.publish", self.client.views_publish, user_id=user, view=view)

    def usergroup_members(self, usergroup: str) -> set[str]:
        """The user IDs of a user group's members."""
        response = self._call(
            "usergroups.users.list",
            self.client.usergroups_users_list,
            usergroup=usergroup,
        )
        return {str(user) for user in response.get("users", [])}

    def _call(self, method: str, function: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            response = function(**kwargs)
        except SlackApiError as err:
            code = str(err.response.get("error", "unknown_error"))
            retry_after = None
            if err.response.status_code == 429:
                code = "ratelimited"
                retry_after = float(err.response.headers.get("Retry-After", 1))
            logger.warning("slack call failed method=%s error=%s", method, code)
            raise SlackError(method, code, retry_after=retry_after) from err
        except (SlackClientError, OSError) as err:
            logger.warning(
                "slack unreachable method=%s: %s", method, type(err).__name__
            )
            raise SlackError(method, "unreachable") from err
        logger.debug("slack call ok method=%s", method)
        return response
