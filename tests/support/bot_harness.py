"""The bot running in-process on a loopback port, wired to a fake Slack.

It is the same app ``domainbot serve`` runs (Bolt, the HTTP server, the services,
the outbox delivery thread); only the DNS sweep is driven by the test, so that
tests say when checks happen. ``tests/test_serve.py`` runs the real command.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bot.app import build_app
from bot.clock import Clock, ManualClock
from bot.config import Config, FileConfig, Settings
from bot.server import HttpServer
from bot.services import Services, build_services
from storage.models import Binding, OutboxMessage
from tests.support.configs import file_config
from tests.support.fake_slack import FakeSlack
from tests.support.slack_requests import SlackRequests

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CHANNEL = "C0000OPS"


class RunningBot:
    def __init__(
        self, services: Services, server: HttpServer, fake: FakeSlack, clock: Clock
    ) -> None:
        self.services = services
        self.server = server
        self.fake = fake
        self.clock = clock
        self.url = f"http://127.0.0.1:{server.port}/slack/events"
        self.slack = SlackRequests(
            self.url, SIGNING_SECRET, fake=fake, channel_id=CHANNEL
        )

    def bindings(self) -> list[Binding]:
        from sqlmodel import select

        with self.services.db.transaction() as tx:
            return list(tx.session.exec(select(Binding).order_by(Binding.id)))

    def outbox(self) -> list[OutboxMessage]:
        from sqlmodel import select

        with self.services.db.transaction() as tx:
            return list(tx.session.exec(select(OutboxMessage)))

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until every notice due now has been delivered or given up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.services.workers.wait_idle(deadline - time.monotonic()):
                break
            now = self.clock.now()
            pending = [
                m
                for m in self.outbox()
                if m.sent_at is None and not m.abandoned and m.next_attempt_at <= now
            ]
            if not pending and not self.services.workers.unfinished:
                return
            self.services.delivery.wake()
            time.sleep(0.05)
        raise AssertionError("the bot did not settle: work or notices are left")

    def sweep(self) -> None:
        self.services.sweep()
        self.settle()


def bot_config(
    fake: FakeSlack,
    database_url: str,
    *,
    resolvers: str = "",
    file: FileConfig | None = None,
    recheck: float = 60,
    **more: Any,
) -> Config:
    settings = Settings(
        **more,
        slack_bot_token=fake.bot_token,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=fake.api_url,
        database_url=database_url,
        domainbot_resolvers=resolvers or None,
        domainbot_recheck_seconds=recheck,
    )
    return Config(settings=settings, file=file or file_config())


@contextmanager
def running_bot(
    fake: FakeSlack,
    tmp_path: Path,
    *,
    database_url: str | None = None,
    resolvers: str = "",
    clock: Clock | None = None,
    file: FileConfig | None = None,
    **settings: Any,
) -> Iterator[RunningBot]:
    """The bot on a loopback port; ``settings`` are more environment settings."""
    url = database_url or f"sqlite:///{tmp_path / 'bot.db'}"
    config = bot_config(fake, url, resolvers=resolvers, file=file, **settings)
    clock = clock or ManualClock()
    services = build_services(config, clock=clock)
    server = HttpServer(
        build_app(services),
        host="127.0.0.1",
        port=0,
        requests=services.workers.requests,
    )
    server.start()
    services.delivery.start()
    try:
        yield RunningBot(services, server, fake, clock)
    finally:
        server.stop()
        services.close()
