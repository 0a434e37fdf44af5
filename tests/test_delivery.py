"""The outbox delivered to a fake Slack: order, retries, 429s, DMs and restarts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot import notices
from bot.clock import ManualClock
from bot.delivery import Delivery
from bot.messages import Renderer
from bot.slack_gateway import SlackGateway
from storage import Database
from storage.models import OutboxMessage
from tests.support.fake_slack import FakeSlack

CARD = {
    "binding_id": 1,
    "domain": "img.example.com",
    "bucket": "media-hk",
    "bucket_domain": "media-hk.oss-cn-hongkong.aliyuncs.com",
    "target": "media-hk.oss-cn-hongkong.aliyuncs.com",
    "state": "pending_dns",
    "cdn": False,
    "auto_cname": False,
    "requester": "U1",
    "created_at": 1_764_000_000,
    "live_at": None,
    "released_at": None,
    "cname_status": None,
    "cname_zone": None,
    "cname_detail": None,
}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def delivery(db: Database, fake: FakeSlack, clock: ManualClock) -> Delivery:
    return Delivery(
        db=db, slack=SlackGateway(fake.web_client()), renderer=Renderer(), clock=clock
    )


def store(db: Database, *messages: OutboxMessage) -> None:
    with db.transaction() as tx:
        for message in messages:
            tx.outbox.add(message)


def card(clock: ManualClock, channel: str = "C1") -> OutboxMessage:
    return notices.to_channel(
        "binding_card",
        clock.now(),
        channel=channel,
        user="U1",
        remember_as="binding:1",
        **CARD,
    )


def reply(clock: ManualClock) -> OutboxMessage:
    return notices.to_channel(
        "binding_live",
        clock.now(),
        channel="C1",
        user="U1",
        thread="binding:1",
        chain=[CARD["target"]],
        **CARD,
    )


def outbox(db: Database) -> list[OutboxMessage]:
    from sqlmodel import select

    with db.transaction() as tx:
        return list(tx.session.exec(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_a_reply_waits_for_its_thread_and_follows_it(
    db: Database, fake_slack: FakeSlack, clock: ManualClock
) -> None:
    store(db, card(clock), reply(clock))
    fake_slack.fail("chat.postMessage", error="internal_error", status=500, times=1)
    worker = delivery(db, fake_slack, clock)
    assert worker.run_once() == 0  # the first message failed; the reply must wait
    assert len(fake_slack.calls("chat.postMessage")) == 1

    clock.advance(timedelta(seconds=5))
    assert worker.run_once() == 2

    root, answer = fake_slack.messages("C1")
    assert "thread_ts" not in root.params
    assert answer.params["thread_ts"] == root.response["ts"]
    assert answer.params["text"].startswith("img.example.com is live")


def test_a_reply_whose_thread_was_never_posted_goes_to_the_channel(
    db: Database, fake_slack: FakeSlack, clock: ManualClock
) -> None:
    store(db, card(clock), reply(clock))
    fake_slack.fail("chat.postMessage", error="invalid_blocks", times=1)
    worker = delivery(db, fake_slack, clock)
    worker.run_once()

    [answer] = fake_slack.messages("C1")
    assert "thread_ts" not in answer.params
    assert answer.params["text"].startswith("img.example.com is live")


def test_stored_notices_are_delivered_after_a_restart(
    db: Database, fake_slack: FakeSlack, clock: ManualClock
) -> None:
    store(db, card(clock), reply(clock))
    first = delivery(db, fake_slack, clock)
    fake_slack.fail("chat.postMessage", error="internal_error", status=500, times=1)
    assert first.run_once() == 0
    assert outbox(db)[0].last_error == "internal_error"

    clock.advance(timedelta(seconds=5))
    restarted = delivery(db, fake_slack, clock)
    while restarted.run_once():
        pass
    assert [m.sent_at is not None for m in outbox(db)] == [True, True]
    assert len(fake_slack.messages("C1")) == 2


def test_a_429_holds_the_channel_for_retry_after(
    db: Database, fake_slack: FakeSlack, clock: ManualClock
) -> None:
    store(db, card(clock))
    fake_slack.rate_limit("chat.postMessage", times=1, retry_after=30)
    worker = delivery(db, fake_slack, clock)

    assert worker.run_once() == 0
    [message] = outbox(db)
    assert message.next_attempt_at == clock.now() + timedelta(seconds=30)
    assert message.attempts == 0  # a 429 is not a failure of the message

    clock.advance(timedelta(seconds=31))
    assert worker.run_once() == 0  # still held: Retry-After is counted in real time


def test_a_channel_the_bot_cannot_post_in_falls_back_to_the_requester(
    db: Database, fake_slack: FakeSlack, clock: ManualClock
) -> None:
    store(db, card(clock, channel="CSECRET"))
    fake_slack.fail("chat.postMessage", error="not_in_channel", times=1)
    worker = delivery(db, fake_slack, clock)

    assert worker.run_once() == 0
    assert worker.run_once() == 1

    dm = fake_slack.calls("chat.postMessage")[-1]
    assert dm.params["channel"] == "U1"
    note = dm.params["blocks"][-1]["elements"][0]["text"]
    assert note.startswith("This was meant for <#CSECRET>, but the bot could not")


def test_a_permanent_error_gives_the_message_up(
    db: Database, fake_slack: FakeSlack, clock: ManualClock
) -> None:
    store(
        db,
        card(clock),
        notices.update("binding_card", clock.now(), key="binding:9", user="U1", **CARD),
    )
    fake_slack.fail("chat.postMessage", error="invalid_blocks", times=1)
    worker = delivery(db, fake_slack, clock)
    worker.run_once()

    posted, update = outbox(db)
    assert (posted.abandoned, posted.last_error) == (True, "invalid_blocks")
    assert (update.abandoned, update.last_error) == (True, "binding:9 was never posted")
