"""Builds the bot's parts from its configuration and hands them to the front ends."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from bot.approvals import ApprovalDesk
from bot.approvers import ApproverDirectory
from bot.auto_cname import CnameWriter
from bot.binding import BindingWorkflow
from bot.challenges import ChallengeDesk
from bot.clock import Clock, SystemClock
from bot.config import Config
from bot.delivery import Delivery
from bot.dns_check import AuthoritativeDns
from bot.dns_providers.zones import ManagedZones
from bot.messages import Renderer
from bot.providers import StorageProvider
from bot.providers.local import LocalProvider
from bot.recheck import RecheckPolicy
from bot.slack_gateway import SlackGateway
from bot.watch import DnsWatch
from bot.workers import Workers
from storage import Database

logger = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything a Slack handler or a scheduled job needs, made once."""

    config: Config
    db: Database
    clock: Clock
    slack: SlackGateway
    renderer: Renderer
    workflow: BindingWorkflow
    watch: DnsWatch
    challenges: ChallengeDesk
    approvals: ApprovalDesk
    providers: dict[str, StorageProvider]
    delivery: Delivery
    workers: Workers

    def sweep(self) -> None:
        """Run every due DNS check and timer: bindings, challenges, approvals."""
        self.watch.sweep()
        self.challenges.sweep()

    def close(self) -> None:
        """Finish the work already acked, deliver what it left, and disconnect."""
        self.workers.shutdown()
        self.delivery.stop()
        for provider in self.providers.values():
            provider.close()
        self.watch.close()
        self.db.dispose()


def build_services(
    config: Config,
    *,
    clock: Clock | None = None,
    dns: AuthoritativeDns | None = None,
    slack: SlackGateway | None = None,
) -> Services:
    """Connect to the database (creating tables) and wire the parts together."""
    settings = config.settings
    clock = clock or SystemClock()
    db = Database(settings.database_url)
    db.create_tables()
    slack = slack or SlackGateway.connect(
        settings.slack_bot_token.get_secret_value(), settings.slack_api_url
    )
    renderer = Renderer()
    providers = _storage_providers(config, db, clock)
    workers = Workers()
    delivery = Delivery(
        db=db,
        slack=slack,
        renderer=renderer,
        clock=clock,
        requests=workers.requests,
    )
    policy = RecheckPolicy(base=timedelta(seconds=settings.domainbot_recheck_seconds))
    dns = dns or AuthoritativeDns(resolvers=settings.resolvers)
    watch = DnsWatch(
        config=config.file,
        db=db,
        dns=dns,
        clock=clock,
        policy=policy,
        on_notice=delivery.wake,
    )
    cname = CnameWriter(managed_zones(config))
    approvers = ApproverDirectory(config.file.approvers, slack)
    approvals = ApprovalDesk(
        config=config.file,
        db=db,
        providers=providers,
        clock=clock,
        approvers=approvers,
        cname=cname,
        on_notice=delivery.wake,
    )
    challenges = ChallengeDesk(
        config=config.file,
        db=db,
        providers=providers,
        dns=dns,
        clock=clock,
        policy=policy,
        approvals=approvals,
        on_notice=delivery.wake,
    )
    workflow = BindingWorkflow(
        config=config.file,
        db=db,
        providers=providers,
        clock=clock,
        challenges=challenges,
        cname=cname,
        approvers=approvers,
    )
    return Services(
        config=config,
        db=db,
        clock=clock,
        slack=slack,
        renderer=renderer,
        workflow=workflow,
        watch=watch,
        challenges=challenges,
        approvals=approvals,
        providers=providers,
        delivery=delivery,
        workers=workers,
    )


def managed_zones(
    config: Config, environ: Mapping[str, str] | None = None
) -> ManagedZones:
    """The zones the bot may write, with their secrets read from the environment.

    Raises :class:`~bot.errors.ConfigError` listing every zone's problems.
    """
    return ManagedZones.from_config(
        config.file.dns_zones, os.environ if environ is None else environ
    )


def _storage_providers(
    config: Config, db: Database, clock: Clock
) -> dict[str, StorageProvider]:
    """The providers the configured buckets name; ``local`` is always there."""
    providers: dict[str, StorageProvider] = {"local": LocalProvider(db, clock)}
    aliyun = [b for b in config.file.buckets if b.provider == "aliyun"]
    if aliyun:
        from bot.providers.aliyun import AliyunProvider

        settings = config.settings
        providers["aliyun"] = AliyunProvider(
            buckets=aliyun,
            clock=clock,
            oss_endpoint_override=settings.domainbot_oss_endpoint,
            cdn_endpoint=settings.domainbot_cdn_endpoint,
        )
    return providers
