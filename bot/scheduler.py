"""The scheduled jobs: the DNS sweep and the clean-up of old bookkeeping.

One sweep job runs every few seconds and picks due checks from storage; there is no
job per binding, so nothing about a binding lives only in the scheduler and a restart
loses nothing.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from bot.health import Health
from bot.services import Services

logger = logging.getLogger(__name__)

MAX_SWEEP_SECONDS = 5.0
MIN_SWEEP_SECONDS = 0.5


def sweep_interval(recheck_seconds: float) -> float:
    """Sweep often enough that a due check waits at most a quarter of the base wait."""
    return min(MAX_SWEEP_SECONDS, max(MIN_SWEEP_SECONDS, recheck_seconds / 4))


class Jobs:
    """Starts and stops the background jobs."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._scheduler = BackgroundScheduler(timezone="UTC")
        interval = sweep_interval(services.config.settings.domainbot_recheck_seconds)
        self.health = Health(services.db, sweep_seconds=interval)
        self._scheduler.add_job(
            self._sweep,
            "interval",
            seconds=interval,
            id="dns-sweep",
            max_instances=1,
            coalesce=True,
        )
        self._scheduler.add_job(
            self._prune, "interval", hours=6, id="prune", max_instances=1
        )

    def start(self) -> None:
        self._scheduler.start()
        self._services.delivery.start()
        logger.info("scheduler started")

    def stop(self) -> None:
        self._scheduler.shutdown(wait=True)
        self._services.delivery.stop()

    def _sweep(self) -> None:
        try:
            self._services.sweep()
        except Exception:
            logger.exception("dns sweep failed; the next one retries")
            return
        self.health.sweep_finished()

    def _prune(self) -> None:
        now = self._services.clock.now()
        try:
            with self._services.db.transaction() as tx:
                removed = tx.prune(
                    requests_before=now - timedelta(days=7),
                    sent_before=now - timedelta(days=30),
                )
        except Exception:
            logger.exception("pruning old bookkeeping failed")
            return
        logger.info("pruned old bookkeeping rows=%d", removed)
