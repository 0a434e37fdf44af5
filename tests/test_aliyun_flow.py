"""Buckets on the aliyun provider, driven through the bot: OSS's own ownership
token in the TXT step, and a CDN domain from Alibaba Cloud CDN.

OSS and CDN are the local fake that answers as their APIs do and checks every
signature; DNS is the real lab.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.clock import ManualClock
from storage.models import BindingState
from tests.support.bot_harness import CHANNEL, RunningBot, running_bot
from tests.support.configs import file_config
from tests.support.dns_lab import DnsLab
from tests.support.fake_aliyun import FakeAliyun
from tests.support.fake_slack import Call, FakeSlack

pytestmark = pytest.mark.dns

BUCKET = "media-hk"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def cloud(clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAliyun]:
    with FakeAliyun(clock=clock) as fake:
        fake.add_bucket(BUCKET, "cn-hongkong")
        for name, value in fake.environ().items():
            monkeypatch.setenv(name, value)
        yield fake


@pytest.fixture
def bot(
    fake_slack: FakeSlack,
    tmp_path: Path,
    dns_lab: DnsLab,
    cloud: FakeAliyun,
    clock: ManualClock,
) -> Iterator[RunningBot]:
    buckets = [
        {
            "name": BUCKET,
            "endpoint": "oss-cn-hongkong.aliyuncs.com",
            "provider": "aliyun",
        }
    ]
    with running_bot(
        fake_slack,
        tmp_path,
        resolvers=dns_lab.resolver,
        clock=clock,
        file=file_config(buckets=buckets),
        domainbot_oss_endpoint=cloud.oss_url,
        domainbot_cdn_endpoint=cloud.cdn_url,
    ) as running:
        yield running


def first_post(bot: RunningBot, starts: str) -> Call:
    [call] = [
        c
        for c in bot.fake.messages(CHANNEL)
        if c.params["text"].startswith(starts) and "thread_ts" not in c.params
    ]
    return call


def test_oss_wants_proof_and_its_own_token_drives_the_txt_step(
    bot: RunningBot, dns_lab: DnsLab, cloud: FakeAliyun
) -> None:
    domain = dns_lab.unique_name("img")
    bot.slack.slash_command("/bind-domain", f"{domain} {BUCKET}")
    bot.settle()

    token = cloud.token_for(BUCKET, domain)
    assert token is not None
    card = first_post(bot, f"To bind {domain} to {BUCKET}")
    assert card.params["text"].endswith(f"with the value {token.token}.")
    assert "wants proof that you control the DNS" in str(card.params["blocks"])
    assert bot.bindings() == [] and cloud.holder_of(domain) is None

    dns_lab.set_record(f"_dnsauth.{domain}", "TXT", f'"{token.token}"')
    cloud.publish_txt(domain, token.token)
    assert isinstance(bot.clock, ManualClock)
    bot.clock.advance(timedelta(minutes=2))
    bot.sweep()

    assert cloud.holder_of(domain) == BUCKET
    [binding] = bot.bindings()
    assert (binding.domain, binding.state) == (domain, BindingState.PENDING_DNS)
    texts = [c.params["text"] for c in bot.fake.thread(card.response["ts"])]
    assert texts[0] == f"Ownership verified: {domain} is now bound to {BUCKET}."
    assert texts[1].startswith(f"{domain} → bucket {BUCKET}: add the record CNAME")


def test_cdn_acceleration_takes_its_host_from_alibaba_cloud_cdn(
    bot: RunningBot, dns_lab: DnsLab, cloud: FakeAliyun
) -> None:
    domain = dns_lab.unique_name("static")
    cloud.trust(dns_lab.zone)
    bot.slack.slash_command("/bind-domain", f"{domain} {BUCKET} cdn")
    bot.settle()

    cdn = cloud.cdn_domain(domain)
    assert cdn is not None
    card = first_post(bot, f"{domain} → bucket {BUCKET}")
    assert card.params["text"].endswith(f"CNAME {domain} -> {domain}.w.kunlunsl.com")
    assert cloud.holder_of(domain) == BUCKET

    dns_lab.set_record(domain, "CNAME", f"{domain}.w.kunlunsl.com.")
    bot.sweep()
    assert bot.bindings()[0].state is BindingState.LIVE
