"""When to check DNS again: a growing wait between tries, and when to give up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RecheckPolicy:
    """Waits start at ``base`` and grow by ``factor`` per try up to ``cap``.

    After ``give_up_after`` from the start the check stops and the binding fails.
    With the defaults the first ten checks fall within about twenty minutes.
    """

    base: timedelta = timedelta(seconds=60)
    factor: float = 1.15
    cap: timedelta = timedelta(hours=4)
    give_up_after: timedelta = timedelta(days=7)

    def wait_after(self, tries: int) -> timedelta:
        """The wait after the ``tries``-th check (1 for the first)."""
        seconds = self.base.total_seconds() * self.factor ** max(tries - 1, 0)
        return min(timedelta(seconds=seconds), self.cap)

    def next_check(
        self, started: datetime, now: datetime, tries: int
    ) -> datetime | None:
        """When to check next, or None when the time allowed has run out."""
        deadline = started + self.give_up_after
        if now >= deadline:
            return None
        return min(now + self.wait_after(tries), deadline)
