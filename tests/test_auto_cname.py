"""The "add the CNAME record automatically" switch, end to end through the bot.

Zones are written through real servers: the lab's Knot with RFC 2136 updates, and
a PowerDNS through lexicon, delegated from Knot so that the bot finds it the way it
finds any authoritative server. Nobody touches DNS by hand in the happy paths.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import pytest

from bot.clock import ManualClock
from storage.models import BindingState
from tests.support.bot_harness import CHANNEL, RunningBot, running_bot
from tests.support.configs import file_config
from tests.support.dns_lab import OTHER_ZONE, ZONE, DnsLab
from tests.support.fake_slack import Call, FakeSlack
from tests.support.powerdns import PowerDns

pytestmark = pytest.mark.dns

HK_TARGET = "media-hk.oss-cn-hongkong.aliyuncs.com"
PDNS_ADDRESS = "127.53.3.1"


def rfc2136_zone(dns_lab: DnsLab) -> dict[str, Any]:
    tsig = dns_lab.tsig
    return {
        "zone": ZONE,
        "provider": "rfc2136",
        "server": tsig.server,
        "port": tsig.port,
        "tsig_name": tsig.name,
        "tsig_algorithm": tsig.algorithm,
        "tsig_secret_env": "TEST_TSIG_SECRET",
    }


@pytest.fixture
def bot(
    fake_slack: FakeSlack,
    tmp_path: Path,
    dns_lab: DnsLab,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[RunningBot]:
    monkeypatch.setenv("TEST_TSIG_SECRET", dns_lab.tsig.secret)
    config = file_config(dns_zones=[rfc2136_zone(dns_lab)])
    with running_bot(
        fake_slack, tmp_path, resolvers=dns_lab.resolver, file=config
    ) as running:
        yield running


def at_authoritative(address: tuple[str, int], name: str, rdtype: str) -> set[str]:
    query = dns.message.make_query(name, rdtype)
    response = dns.query.tcp(query, address[0], port=address[1], timeout=5)
    return {
        rdata.to_text().rstrip(".")
        for rrset in response.answer
        if rrset.name.to_text().rstrip(".") == name
        for rdata in rrset
    }


def bind(bot: RunningBot, line: str) -> Call:
    bot.slack.slash_command("/bind-domain", line)
    bot.settle()
    domain = line.split()[0]
    [card] = [
        c
        for c in bot.fake.messages(CHANNEL)
        if c.params["text"].startswith(domain + " ") and "thread_ts" not in c.params
    ]
    return card


def card_text(bot: RunningBot, card: Call) -> str:
    return str(bot.fake.message(CHANNEL, card.response["ts"])["blocks"])


def later(bot: RunningBot) -> None:
    assert isinstance(bot.clock, ManualClock)
    bot.clock.advance(timedelta(minutes=2))
    bot.sweep()


def test_the_record_is_written_and_the_domain_goes_live(
    bot: RunningBot, dns_lab: DnsLab
) -> None:
    domain = dns_lab.unique_name("img")
    card = bind(bot, f"{domain} media-hk auto-cname")

    assert f"The bot added the CNAME record* in zone `{ZONE}`" in card_text(bot, card)
    assert at_authoritative(dns_lab.authoritative, domain, "CNAME") == {HK_TARGET}
    later(bot)
    assert bot.bindings()[0].state is BindingState.LIVE
    [live] = bot.fake.thread(card.response["ts"])
    assert live.params["text"] == f"{domain} is live: it points at {HK_TARGET}."


def test_with_cdn_the_record_and_the_checks_use_the_cdn_host(
    bot: RunningBot, dns_lab: DnsLab
) -> None:
    domain = dns_lab.unique_name("static")
    cdn_host = f"{domain}.w.kunlunsl.com"
    card = bind(bot, f"{domain} eu-assets cdn auto-cname")

    text = card_text(bot, card)
    assert f"CNAME  {domain}  -&gt;  {cdn_host}" in text
    assert "*CDN acceleration is on.*" in text and "own address keeps working" in text
    assert at_authoritative(dns_lab.authoritative, domain, "CNAME") == {cdn_host}
    later(bot)
    assert [(b.target, b.state) for b in bot.bindings()] == [
        (cdn_host, BindingState.LIVE)
    ]


def test_an_existing_cname_is_kept_until_someone_confirms(
    bot: RunningBot, dns_lab: DnsLab
) -> None:
    domain = dns_lab.unique_name("img")
    dns_lab.set_record(domain, "CNAME", "old-bucket.oss-cn-hongkong.aliyuncs.com.")
    card = bind(bot, f"{domain} media-hk auto-cname")

    text = card_text(bot, card)
    assert "already has CNAME old-bucket.oss-cn-hongkong.aliyuncs.com" in text
    assert at_authoritative(dns_lab.authoritative, domain, "CNAME") == {
        "old-bucket.oss-cn-hongkong.aliyuncs.com"
    }

    message = bot.fake.message(CHANNEL, card.response["ts"])
    # Someone who neither asked for the binding nor approves cannot replace it.
    bot.fake.set_usergroup("SOPS", [])
    bot.slack.click_button(CHANNEL, message, "cname_replace", user_id="U0000MALLORY")
    bot.settle()
    refused = bot.fake.wait_for("chat.postEphemeral")
    assert refused.params["user"] == "U0000MALLORY"
    assert refused.params["text"] == (
        f"You cannot replace the CNAME record of {domain}: only the person who "
        "bound it or a configured approver may do that. Nothing changed."
    )
    assert at_authoritative(dns_lab.authoritative, domain, "CNAME") == {
        "old-bucket.oss-cn-hongkong.aliyuncs.com"
    }

    bot.slack.click_button(CHANNEL, message, "cname_replace")
    bot.settle()

    assert at_authoritative(dns_lab.authoritative, domain, "CNAME") == {HK_TARGET}
    [replaced] = bot.fake.thread(card.response["ts"])
    assert replaced.params["text"] == (
        f"U0000ALICE replaced the record at {domain}: it now points at {HK_TARGET}."
    )
    later(bot)
    assert bot.bindings()[0].state is BindingState.LIVE


def test_a_zone_apex_is_explained_and_not_written(
    fake_slack: FakeSlack,
    tmp_path: Path,
    dns_lab: DnsLab,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    apex = f"apex-{secrets.token_hex(3)}.{ZONE}"
    monkeypatch.setenv("TEST_TSIG_SECRET", dns_lab.tsig.secret)
    zone = rfc2136_zone(dns_lab) | {"zone": apex}
    with running_bot(
        fake_slack,
        tmp_path,
        resolvers=dns_lab.resolver,
        file=file_config(dns_zones=[zone]),
    ) as bot:
        card = bind(bot, f"{apex} media-hk auto-cname")
        text = card_text(bot, card)
    assert f"No CNAME was added: {apex} is the apex of zone `{apex}`" in text
    assert "ALIAS or ANAME record, or CNAME flattening" in text
    assert at_authoritative(dns_lab.authoritative, apex, "CNAME") == set()


def test_a_zone_the_bot_does_not_manage_gets_the_manual_steps(
    bot: RunningBot, dns_lab: DnsLab
) -> None:
    domain = dns_lab.unique_name("img", zone=OTHER_ZONE)
    card = bind(bot, f"{domain} media-hk auto-cname")

    text = card_text(bot, card)
    assert f"The bot manages no DNS zone that {domain} is in" in text
    assert f"CNAME  {domain}  -&gt;  {HK_TARGET}" in text
    assert at_authoritative(dns_lab.authoritative, domain, "CNAME") == set()


def test_unbinding_removes_the_record_the_bot_added(
    bot: RunningBot, dns_lab: DnsLab
) -> None:
    domain = dns_lab.unique_name("img")
    card = bind(bot, f"{domain} media-hk auto-cname")
    binding_id = bot.bindings()[0].id

    confirm = {
        "ts": "1.0",
        "blocks": [
            {
                "type": "actions",
                "block_id": "unbind",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "unbind_confirm",
                        "text": {"type": "plain_text", "text": "Unbind"},
                        "value": str(binding_id),
                    }
                ],
            }
        ],
    }
    bot.slack.click_button(CHANNEL, confirm, "unbind_confirm")
    bot.settle()

    assert at_authoritative(dns_lab.authoritative, domain, "CNAME") == set()
    [released] = bot.fake.thread(card.response["ts"])
    assert "deleted the CNAME record it had added" in str(released.params["blocks"])


def test_through_lexicon_against_powerdns(
    fake_slack: FakeSlack,
    tmp_path: Path,
    dns_lab: DnsLab,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    zone = f"pdns-{secrets.token_hex(3)}.{ZONE}"
    # Knot delegates the zone to PowerDNS, so the bot finds PowerDNS as it would
    # find any authoritative server.
    dns_lab.set_record(zone, "NS", f"ns1.{zone}.")
    dns_lab.set_record(f"ns1.{zone}", "A", PDNS_ADDRESS)
    (tmp_path / "pdns").mkdir()
    with PowerDns(
        tmp_path / "pdns", zone=zone, address=PDNS_ADDRESS, dns_port=53
    ) as powerdns:
        monkeypatch.setenv("PDNS_TEST_KEY", powerdns.api_key)
        lexicon_zone = {
            "zone": zone,
            "provider": "lexicon",
            "lexicon_provider": "powerdns",
            "pdns_server": powerdns.api_url,
            "auth_token_env": "PDNS_TEST_KEY",
        }
        config = file_config(dns_zones=[lexicon_zone])
        with running_bot(
            fake_slack, tmp_path, resolvers=dns_lab.resolver, file=config
        ) as bot:
            domain = f"img.{zone}"
            card = bind(bot, f"{domain} media-hk auto-cname")
            assert f"The bot added the CNAME record* in zone `{zone}`" in card_text(
                bot, card
            )
            assert powerdns.query(domain, "CNAME")[1] == {HK_TARGET + "."}
            later(bot)
            assert bot.bindings()[0].state is BindingState.LIVE
