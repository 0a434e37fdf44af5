"""Pending bindings watched at real authoritative servers until they go live or fail.

Knot serves the test zones and Unbound caches in front of it, as in production; the
bot is given only Unbound's address, as an operator would configure it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.clock import ManualClock
from storage.models import AuditEvent, BindingState
from tests.support.bot_harness import CHANNEL, RunningBot, running_bot
from tests.support.dns_lab import TIMEOUT_ZONE, DnsLab
from tests.support.fake_slack import FakeSlack

pytestmark = pytest.mark.dns

TARGET = "media-hk.oss-cn-hongkong.aliyuncs.com"


@pytest.fixture
def bot(fake_slack: FakeSlack, tmp_path: Path, dns_lab: DnsLab) -> Iterator[RunningBot]:
    with running_bot(fake_slack, tmp_path, resolvers=dns_lab.resolver) as running:
        yield running


def bind(bot: RunningBot, domain: str, bucket: str = "media-hk") -> str:
    """Bind through Slack; return the ts of the binding's card."""
    bot.slack.slash_command("/bind-domain", f"{domain} {bucket}")
    bot.settle()
    [posted] = [
        c
        for c in bot.fake.messages(CHANNEL)
        if domain in c.params["text"] and "thread_ts" not in c.params
    ]
    return str(posted.response["ts"])


def thread_texts(bot: RunningBot, ts: str) -> list[str]:
    return [str(c.params["text"]) for c in bot.fake.thread(ts)]


def later(bot: RunningBot, **delta: float) -> None:
    assert isinstance(bot.clock, ManualClock)
    bot.clock.advance(timedelta(**delta))


def test_cname_is_seen_although_the_resolver_cached_its_absence(
    bot: RunningBot, dns_lab: DnsLab
) -> None:
    domain = dns_lab.unique_name("img")
    ts = bind(bot, domain)
    bot.sweep()
    assert bot.bindings()[0].last_found is not None

    assert dns_lab.query_resolver(domain, "CNAME").rcode == "NXDOMAIN"
    dns_lab.set_record(domain, "CNAME", TARGET)
    assert dns_lab.query_resolver(domain, "CNAME").rcode == "NXDOMAIN"  # cached

    later(bot, seconds=60)
    bot.sweep()

    [binding] = bot.bindings()
    assert binding.state is BindingState.LIVE
    [live] = thread_texts(bot, ts)
    assert live == f"{domain} is live: it points at {TARGET}."
    card = bot.fake.message(CHANNEL, ts)
    assert not [b for b in card["blocks"] if b["type"] == "actions"]
    assert "*Live.*" in str(card["blocks"])


def test_a_wrong_cname_is_reported_with_what_was_found(
    bot: RunningBot, dns_lab: DnsLab
) -> None:
    domain = dns_lab.unique_name("img")
    dns_lab.set_record(domain, "CNAME", "old-bucket.oss-cn-hongkong.aliyuncs.com")
    ts = bind(bot, domain)
    message = bot.fake.message(CHANNEL, ts)

    bot.slack.click_button(CHANNEL, message, "check_now")
    answer = bot.fake.wait_for("chat.postEphemeral")

    text = answer.params["blocks"][0]["text"]["text"]
    assert f"*Checked {domain} just now: not live yet.*" in text
    assert f"*Expected:* `CNAME {TARGET}`" in text
    assert "old-bucket.oss-cn-hongkong.aliyuncs.com" in text
    assert thread_texts(bot, ts) == []
    assert bot.bindings()[0].state is BindingState.PENDING_DNS


def test_check_now_makes_a_domain_live_at_once(
    bot: RunningBot, dns_lab: DnsLab
) -> None:
    domain = dns_lab.unique_name("img")
    ts = bind(bot, domain)
    dns_lab.set_record(domain, "CNAME", TARGET)

    bot.slack.click_button(CHANNEL, bot.fake.message(CHANNEL, ts), "check_now")
    bot.settle()

    assert bot.bindings()[0].state is BindingState.LIVE
    assert thread_texts(bot, ts) == [f"{domain} is live: it points at {TARGET}."]
    with bot.services.db.transaction() as tx:
        actors = [(e.action, e.actor) for e in tx.audit.for_domain(domain)]
    assert actors == [("bound", "U0000ALICE"), ("dns_live", "U0000ALICE")]


def test_checks_back_off_and_give_up_after_seven_days(
    bot: RunningBot, dns_lab: DnsLab
) -> None:
    domain = dns_lab.unique_name("img")
    ts = bind(bot, domain)
    waits = []
    for _ in range(4):
        before = bot.clock.now()
        bot.sweep()
        waits.append((bot.bindings()[0].next_check_at - before).total_seconds())
        later(bot, seconds=waits[-1])
    assert waits == pytest.approx([60, 69, 79.35, 91.25], abs=0.01)

    later(bot, days=7)
    bot.sweep()

    [binding] = bot.bindings()
    assert binding.state is BindingState.FAILED
    [gave_up] = thread_texts(bot, ts)
    assert gave_up.startswith(f"Stopped checking {domain}: the CNAME to {TARGET} never")
    assert "no record" in gave_up.lower() or "NXDOMAIN" in gave_up
    with bot.services.db.transaction() as tx:
        [event] = [e for e in tx.audit.for_domain(domain) if e.action == "dns_gave_up"]
    assert isinstance(event, AuditEvent) and event.state_after == "failed"


def test_a_dead_nameserver_is_reported_once_and_retried(
    bot: RunningBot, dns_lab: DnsLab
) -> None:
    bot.services.watch._dns._timeout = 0.2  # type: ignore[attr-defined]
    domain = dns_lab.unique_name("img", zone=TIMEOUT_ZONE)
    ts = bind(bot, domain)

    for _ in range(3):
        bot.sweep()
        later(bot, hours=1)

    [binding] = bot.bindings()
    assert binding.state is BindingState.PENDING_DNS and binding.check_count == 3
    assert binding.last_problem and "timed out" in binding.last_problem
    [warning] = thread_texts(bot, ts)
    assert warning.startswith(f"Could not ask the authoritative servers of {domain}")
