"""The notices the workflow leaves for people, stored in the outbox with the change.

A notice names a message template and carries the plain facts it shows; the Slack
side renders and delivers it later (:mod:`bot.delivery`). Nothing here knows Slack.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.clock import epoch_seconds
from storage.models import Binding, OutboxMessage


def binding_thread(binding_id: int) -> str:
    """The key of the conversation about one binding."""
    return f"binding:{binding_id}"


def to_channel(
    notice: str,
    now: datetime,
    *,
    channel: str | None,
    user: str,
    thread: str | None = None,
    remember_as: str | None = None,
    broadcast: bool = False,
    **context: Any,
) -> OutboxMessage:
    """A message for everyone in ``channel`` (``user``'s DM if there is none).

    With ``thread``, it replies in the thread of the message remembered under that
    key (and with ``broadcast``, shows in the channel too); with ``remember_as``, it
    is remembered under that key for later replies and updates.
    """
    return OutboxMessage(
        **channel_row(
            notice,
            now,
            channel=channel,
            user=user,
            thread=thread,
            remember_as=remember_as,
            broadcast=broadcast,
            **context,
        )
    )


def channel_row(
    notice: str,
    now: datetime,
    *,
    channel: str | None,
    user: str,
    thread: str | None = None,
    remember_as: str | None = None,
    broadcast: bool = False,
    **context: Any,
) -> dict[str, Any]:
    """The columns of the message :func:`to_channel` makes, as a row for
    :meth:`storage.repositories.Outbox.add_many`: a batch of thousands skips the
    cost of building each model.
    """
    return {
        "created_at": now,
        "next_attempt_at": now,
        "notice": notice,
        "context": _jsonable(context),
        "channel": channel or user,
        "user": user,
        "thread": thread,
        "remember_as": remember_as,
        "broadcast": broadcast,
        "sequence": thread or remember_as,
    }


def to_user(
    notice: str, now: datetime, *, channel: str | None, user: str, **context: Any
) -> OutboxMessage:
    """A message only ``user`` sees, shown in ``channel`` (or their DM with the bot)."""
    return OutboxMessage(
        created_at=now,
        next_attempt_at=now,
        notice=notice,
        context=_jsonable(context),
        channel=channel,
        user=user,
        ephemeral=True,
    )


def update(
    notice: str, now: datetime, *, key: str, user: str, **context: Any
) -> OutboxMessage:
    """Replace the message remembered under ``key`` (its buttons and status)."""
    return OutboxMessage(**update_row(notice, now, key=key, user=user, **context))


def update_row(
    notice: str, now: datetime, *, key: str, user: str, **context: Any
) -> dict[str, Any]:
    """The columns of the message :func:`update` makes, as :func:`channel_row`."""
    return {
        "created_at": now,
        "next_attempt_at": now,
        "notice": notice,
        "context": _jsonable(context),
        "user": user,
        "updates": key,
        "sequence": key,
    }


def binding_facts(binding: Binding, bucket_domain: str) -> dict[str, Any]:
    """What every message about a binding may show."""
    return {
        "binding_id": binding.id,
        "domain": binding.domain,
        "bucket": binding.bucket,
        "bucket_domain": bucket_domain,
        "target": binding.target,
        "state": binding.state.value,
        "cdn": binding.cdn,
        "auto_cname": binding.auto_cname,
        "requester": binding.requested_by,
        "created_at": epoch_seconds(binding.created_at),
        "live_at": binding.live_at and epoch_seconds(binding.live_at),
        "released_at": binding.released_at and epoch_seconds(binding.released_at),
        "cname_status": binding.cname_status,
        "cname_zone": binding.cname_zone,
        "cname_detail": binding.cname_detail,
    }


def _jsonable(context: dict[str, Any]) -> dict[str, Any]:
    return {
        key: epoch_seconds(value) if isinstance(value, datetime) else value
        for key, value in context.items()
    }
