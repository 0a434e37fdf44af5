"""Who the approvers are: the configured users, and members of the configured groups.

Approvers decide forced rebinds (:mod:`bot.approvals`) and may release any binding
(:mod:`bot.binding`). Users are named by Slack user ID, never by display name.
Group members are read from Slack and kept for a minute, so that a burst of clicks
asks Slack once while a change to a group still counts within a minute.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol

from bot.config import Approvers
from bot.errors import SlackError

GROUP_CACHE_SECONDS = 60.0


class GroupDirectory(Protocol):
    """Reads a user group's members (Slack's ``usergroups.users.list``).

    Raises :class:`~bot.errors.SlackError` when the group cannot be read.
    """

    def usergroup_members(self, usergroup: str) -> set[str]: ...


@dataclass(frozen=True)
class Verdict:
    """Whether someone may do something, and if not, why (a clause, no full stop)."""

    allowed: bool
    reason: str = ""


class ApproverDirectory:
    """Answers "is this user an approver?" from the configuration and Slack."""

    def __init__(self, approvers: Approvers, groups: GroupDirectory) -> None:
        self._approvers = approvers
        self._groups = groups
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, set[str]]] = {}

    def includes(self, user: str) -> bool:
        """Whether ``user`` is a configured approver or in an approvers' group.

        Raises :class:`~bot.errors.SlackError` when a group had to be read and
        could not be.
        """
        if user in self._approvers.users:
            return True
        return any(user in self._members(group) for group in self._approvers.usergroups)

    def _members(self, group: str) -> set[str]:
        with self._lock:
            cached = self._cache.get(group)
        if cached is not None and time.monotonic() - cached[0] < GROUP_CACHE_SECONDS:
            return cached[1]
        members = self._groups.usergroup_members(group)
        with self._lock:
            self._cache[group] = (time.monotonic(), members)
        return members


def unreadable_group(err: SlackError) -> str:
    """The reason given when an approvers' group could not be read from Slack."""
    return (
        f"the bot could not read the approvers' user group from Slack ({err.code}); "
        "try again shortly"
    )
