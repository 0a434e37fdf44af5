"""A domain another bucket holds: TXT proof at real DNS servers, then an approver.

Runs the bot in-process with the fake Slack, Knot behind a caching Unbound, and a
clock the tests move, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.clock import ManualClock
from storage.models import BindingState
from tests.support.bot_harness import CHANNEL, RunningBot, running_bot
from tests.support.dns_lab import TIMEOUT_ZONE, ZONE, DnsLab
from tests.support.fake_slack import Call, FakeSlack

pytestmark = pytest.mark.dns

OWNER = "U0000OWNER"
TAKER = "U0000TAKER"
APPROVER = "UAPPROVER1"
GROUP_MEMBER = "U0000GROUP"
OTHER_CHANNEL = "C0000WEB"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def bot(
    fake_slack: FakeSlack,
    tmp_path: Path,
    dns_lab: DnsLab,
    database_url: str,
    clock: ManualClock,
) -> Iterator[RunningBot]:
    fake_slack.set_usergroup("SOPS", [GROUP_MEMBER])
    with running_bot(
        fake_slack,
        tmp_path,
        database_url=database_url,
        resolvers=dns_lab.resolver,
        clock=clock,
    ) as running:
        yield running


def later(bot: RunningBot, **delta: float) -> None:
    assert isinstance(bot.clock, ManualClock)
    bot.clock.advance(timedelta(**delta))


def top_level(bot: RunningBot, channel: str, contains: str) -> Call:
    [call] = [
        c
        for c in bot.fake.messages(channel)
        if contains in c.params["text"] and "thread_ts" not in c.params
    ]
    return call


def replies(bot: RunningBot, call: Call) -> list[str]:
    return [str(c.params["text"]) for c in bot.fake.thread(call.response["ts"])]


def blocks_text(message: dict[str, Any]) -> str:
    return str(message.get("blocks"))


def conflict(bot: RunningBot, dns_lab: DnsLab) -> tuple[str, Call]:
    """img bound to media-hk from #web, then asked for eu-assets from #ops."""
    domain = dns_lab.unique_name("img")
    bot.slack.slash_command(
        "/bind-domain", f"{domain} media-hk", user_id=OWNER, channel_id=OTHER_CHANNEL
    )
    bot.settle()
    bot.slack.slash_command("/bind-domain", f"{domain} eu-assets", user_id=TAKER)
    bot.settle()
    return domain, top_level(bot, CHANNEL, "To move it to eu-assets")


def token_of(card: Call) -> str:
    match = re.search(r"with the value (\S+)\.$", card.params["text"])
    assert match is not None
    return match.group(1)


def verify(bot: RunningBot, dns_lab: DnsLab, domain: str, card: Call) -> Call:
    dns_lab.set_record(f"_dnsauth.{domain}", "TXT", f'"{token_of(card)}"')
    later(bot, minutes=2)
    bot.sweep()
    [approval] = [
        c
        for c in bot.fake.thread(card.response["ts"])
        if "approve moving" in c.params["text"].lower()
    ]
    return approval


def click(bot: RunningBot, approval: Call, action: str, user: str) -> None:
    message = bot.fake.message(CHANNEL, approval.response["ts"])
    bot.slack.click_button(CHANNEL, message, action, user_id=user)
    bot.settle()


def ephemerals(bot: RunningBot, user: str) -> list[str]:
    """What ``user`` was shown privately: each message's text and blocks."""
    return [
        f"{c.params['text']}\n{c.params.get('blocks')}"
        for c in bot.fake.calls("chat.postEphemeral")
        if c.params["user"] == user
    ]


def test_conflict_notice_shows_the_txt_record_and_the_holder(
    bot: RunningBot, dns_lab: DnsLab
) -> None:
    domain, card = conflict(bot, dns_lab)
    token = token_of(card)

    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", token)
    fields = [f["text"] for b in card.params["blocks"] for f in b.get("fields", [])]
    assert fields == [f"*Record name*\n`_dnsauth.{domain}`", f"*Value*\n`{token}`"]
    text = blocks_text(card.params)
    host = "_dnsauth." + domain.removesuffix("." + ZONE)
    assert (
        f"adds the zone `{ZONE}` to the host field itself, enter only `{host}`" in text
    )
    assert "is already bound to bucket `media-hk`" in text
    assert "I have added the TXT record" in text
    assert [b.bucket for b in bot.bindings()] == ["media-hk"]

    bot.slack.slash_command("/bind-domain", f"{domain} eu-assets", user_id=TAKER)
    bot.settle()
    [again] = ephemerals(bot, TAKER)
    assert token in again
    assert (
        len([c for c in bot.fake.messages(CHANNEL) if "thread_ts" not in c.params]) == 1
    )


def test_ownership_verified_through_a_resolver_that_cached_its_absence(
    bot: RunningBot, dns_lab: DnsLab
) -> None:
    domain, card = conflict(bot, dns_lab)
    name = f"_dnsauth.{domain}"
    assert dns_lab.query_resolver(name, "TXT").rcode == "NXDOMAIN"
    later(bot, minutes=2)
    bot.sweep()
    assert replies(bot, card) == []  # nothing offered before the record is seen

    dns_lab.set_record(
        name, "TXT", '"unrelated=1"', f'"{token_of(card)[:10]}" "{token_of(card)[10:]}"'
    )
    assert dns_lab.query_resolver(name, "TXT").rcode == "NXDOMAIN"  # still cached
    later(bot, minutes=2)
    bot.sweep()

    [approval] = replies(bot, card)
    assert approval.startswith(f"Ownership of {domain} verified. Approve moving it")
    updated = bot.fake.message(CHANNEL, card.response["ts"])
    assert "Ownership verified" in blocks_text(updated)
    assert not [b for b in updated["blocks"] if b["type"] == "actions"]


def test_a_value_that_differs_only_in_case_or_quotes_does_not_verify(
    bot: RunningBot, dns_lab: DnsLab
) -> None:
    domain, card = conflict(bot, dns_lab)
    wrong = token_of(card).swapcase()
    dns_lab.set_record(f"_dnsauth.{domain}", "TXT", f'" {wrong}"')

    bot.slack.click_button(
        CHANNEL,
        bot.fake.message(CHANNEL, card.response["ts"]),
        "challenge_check",
        user_id=TAKER,
    )
    bot.settle()

    [answer] = ephemerals(bot, TAKER)
    assert "not verified yet" in answer
    [notice] = replies(bot, card)
    assert f"has ' {wrong}', not the expected value {token_of(card)}" in notice
    later(bot, minutes=5)
    bot.sweep()
    assert len(replies(bot, card)) == 1  # the same wrong value is not reported again


def test_many_long_txt_values_are_shown_cut_short_and_checks_go_on(
    bot: RunningBot, dns_lab: DnsLab
) -> None:
    # Ten long records at the name: what was seen no longer fits the stored
    # column (PostgreSQL refuses an over-long value) nor a readable message.
    domain, card = conflict(bot, dns_lab)
    others = [f'"other-{n}-{"x" * 240}"' for n in range(10)]
    dns_lab.set_record(f"_dnsauth.{domain}", "TXT", *others)

    later(bot, minutes=5)
    bot.sweep()
    [notice] = replies(bot, card)
    assert "'other-0-xxx" in notice and "…" in notice
    assert "other-9-" not in notice

    dns_lab.set_record(f"_dnsauth.{domain}", "TXT", *others, f'"{token_of(card)}"')
    later(bot, minutes=10)
    bot.sweep()
    assert "Ownership verified" in blocks_text(
        bot.fake.message(CHANNEL, card.response["ts"])
    )


def test_requester_and_non_approver_cannot_decide(
    bot: RunningBot, dns_lab: DnsLab
) -> None:
    domain, card = conflict(bot, dns_lab)
    approval = verify(bot, dns_lab, domain, card)

    click(bot, approval, "approval_approve", TAKER)
    click(bot, approval, "approval_approve", "U0000RANDOM")

    assert "you asked for this rebind" in ephemerals(bot, TAKER)[0]
    assert (
        "only the configured approvers may decide" in ephemerals(bot, "U0000RANDOM")[0]
    )
    assert [b.bucket for b in bot.bindings() if b.released_at is None] == ["media-hk"]
    with bot.services.db.transaction() as tx:
        refused = [
            (e.actor, e.action)
            for e in tx.audit.for_domain(domain)
            if e.action == "decision_refused"
        ]
    assert refused == [(TAKER, "decision_refused"), ("U0000RANDOM", "decision_refused")]


def test_an_approver_moves_the_domain_once(bot: RunningBot, dns_lab: DnsLab) -> None:
    domain, card = conflict(bot, dns_lab)
    approval = verify(bot, dns_lab, domain, card)
    message = bot.fake.message(CHANNEL, approval.response["ts"])

    threads = [
        threading.Thread(
            target=bot.slack.click_button,
            args=(CHANNEL, message, "approval_approve"),
            kwargs={"user_id": user},
        )
        for user in (APPROVER, GROUP_MEMBER, APPROVER)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    bot.settle()

    current = [b for b in bot.bindings() if b.released_at is None]
    assert [(b.bucket, b.state) for b in current] == [
        ("eu-assets", BindingState.PENDING_DNS)
    ]
    moved = [t for t in replies(bot, card) if "approved:" in t]
    assert len(moved) == 1
    late = ephemerals(bot, APPROVER) + ephemerals(bot, GROUP_MEMBER)
    assert len(late) == 2 and all("was already approved by" in t for t in late)
    card_after = bot.fake.message(CHANNEL, approval.response["ts"])
    assert not [b for b in card_after["blocks"] if b["type"] == "actions"]
    assert "*Approved* by" in blocks_text(card_after)
    new_card = [t for t in replies(bot, card) if t.startswith(f"{domain} → bucket eu")]
    assert new_card and "add the record CNAME" in new_card[0]
    old = top_level(bot, OTHER_CHANNEL, f"{domain} → bucket media-hk")
    [told] = replies(bot, old)
    assert (
        told == f"{domain} was released from bucket media-hk: it now serves eu-assets."
    )
    assert bot.fake.thread(old.response["ts"])[0].params.get("reply_broadcast") is True

    bot.slack.slash_command("/domains", "media-hk")
    bot.settle()
    bot.slack.slash_command("/domains", "eu-assets")
    bot.settle()
    listings = [c.params["text"] for c in bot.fake.calls("response_url")]
    assert listings[0] == "No domains are bound to bucket media-hk."
    assert listings[1] == "1 bound domain on bucket eu-assets."


def test_reject_changes_nothing_and_says_who(bot: RunningBot, dns_lab: DnsLab) -> None:
    domain, card = conflict(bot, dns_lab)
    approval = verify(bot, dns_lab, domain, card)

    click(bot, approval, "approval_reject", GROUP_MEMBER)

    assert [b.bucket for b in bot.bindings() if b.released_at is None] == ["media-hk"]
    rejected = replies(bot, card)[-1]
    assert (
        rejected == f"{GROUP_MEMBER} rejected moving {domain} to eu-assets; "
        "nothing changed."
    )
    thread = bot.fake.thread(card.response["ts"])
    assert f"<@{TAKER}>" in str(thread[-1].params["blocks"])


def test_an_undecided_approval_is_reminded_once_then_expires(
    bot: RunningBot, dns_lab: DnsLab
) -> None:
    domain, card = conflict(bot, dns_lab)
    approval = verify(bot, dns_lab, domain, card)
    stale = bot.fake.message(CHANNEL, approval.response["ts"])

    later(bot, hours=49)
    bot.sweep()
    later(bot, hours=1)
    bot.sweep()
    reminders = [t for t in replies(bot, card) if t.startswith("Reminder")]
    assert len(reminders) == 1

    later(bot, hours=23)
    bot.sweep()
    assert replies(bot, card)[-1].endswith(
        "expired without a decision; nothing changed."
    )
    # The card lost its buttons; a client still showing the old card can click.
    bot.slack.click_button(CHANNEL, stale, "approval_approve", user_id=APPROVER)
    bot.settle()
    assert "This approval expired" in str(
        bot.fake.calls("chat.postEphemeral")[-1].params["blocks"]
    )
    assert [b.bucket for b in bot.bindings() if b.released_at is None] == ["media-hk"]


def test_an_unproven_challenge_expires_after_72_hours(
    bot: RunningBot, dns_lab: DnsLab
) -> None:
    domain, card = conflict(bot, dns_lab)
    for _ in range(3):
        later(bot, hours=25)
        bot.sweep()
    [expired] = replies(bot, card)
    assert expired.startswith(f"The request to move {domain} to eu-assets expired")
    assert "*Expired.*" in blocks_text(bot.fake.message(CHANNEL, card.response["ts"]))


def test_a_challenge_survives_a_restart(
    fake_slack: FakeSlack, tmp_path: Path, dns_lab: DnsLab, clock: ManualClock
) -> None:
    with running_bot(
        fake_slack, tmp_path, resolvers=dns_lab.resolver, clock=clock
    ) as first:
        domain, card = conflict(first, dns_lab)
    dns_lab.set_record(f"_dnsauth.{domain}", "TXT", f'"{token_of(card)}"')
    clock.advance(timedelta(minutes=5))
    with running_bot(
        fake_slack, tmp_path, resolvers=dns_lab.resolver, clock=clock
    ) as second:
        second.sweep()
        [approval] = replies(second, card)
    assert approval.startswith(f"Ownership of {domain} verified")


def test_dead_nameservers_are_reported_once(bot: RunningBot, dns_lab: DnsLab) -> None:
    bot.services.challenges._dns._timeout = 0.2  # type: ignore[attr-defined]
    domain = dns_lab.unique_name("img", zone=TIMEOUT_ZONE)
    bot.slack.slash_command("/bind-domain", f"{domain} media-hk", user_id=OWNER)
    bot.settle()
    bot.slack.slash_command("/bind-domain", f"{domain} eu-assets", user_id=TAKER)
    bot.settle()
    card = top_level(bot, CHANNEL, "To move it to eu-assets")
    for _ in range(3):
        later(bot, hours=1)
        bot.sweep()
    [problem] = replies(bot, card)
    assert problem.startswith(f"Could not ask the authoritative servers of {domain}")
