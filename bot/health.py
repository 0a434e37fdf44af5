"""What ``/healthz`` reports: whether the bot can do its work, not only answer.

A bot that acks Slack's requests but cannot reach its database, or whose sweep has
stopped, looks alive from outside while no domain is ever noticed going live. The
report therefore asks the database for one row and checks that a sweep finished
recently; a load balancer or a process supervisor then sees the fault.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from storage import Database

# A sweep runs every few seconds; this many intervals without one is a stall.
STALLED_AFTER_SWEEPS = 12
MIN_STALL_SECONDS = 60.0


@dataclass(frozen=True)
class HealthReport:
    """``healthy`` and one line per part checked, each saying what was found."""

    healthy: bool
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "".join(f"{line}\n" for line in self.lines)


class Health:
    """Remembers when the last sweep finished and checks the database on request."""

    def __init__(
        self,
        db: Database,
        *,
        sweep_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._monotonic = monotonic
        self._stall_seconds = max(
            MIN_STALL_SECONDS, sweep_seconds * STALLED_AFTER_SWEEPS
        )
        self._lock = threading.Lock()
        # Until the first sweep, the time since start-up counts instead.
        self._last_sweep = monotonic()

    def sweep_finished(self) -> None:
        with self._lock:
            self._last_sweep = self._monotonic()

    def report(self) -> HealthReport:
        """Check the database and the sweep; never raises."""
        database_ok, database_line = self._database()
        with self._lock:
            waited = self._monotonic() - self._last_sweep
        sweep_ok = waited <= self._stall_seconds
        sweep_line = (
            f"sweep: ok, last finished {waited:.0f} s ago"
            if sweep_ok
            else f"sweep: stalled, none finished for {waited:.0f} s "
            f"(expected every few seconds); see the log for 'dns sweep failed'"
        )
        return HealthReport(database_ok and sweep_ok, (database_line, sweep_line))

    def _database(self) -> tuple[bool, str]:
        problem = self._db.problem()
        if problem is not None:
            return False, f"database: unreachable ({problem})"
        return True, f"database: ok ({self._db.dialect})"
