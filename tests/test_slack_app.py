"""The bot as Slack sees it: signed requests in, Web API calls out (to a fake Slack)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.clock import SystemClock
from bot.workers import LISTENER_THREADS
from storage.models import BindingState
from tests.support.bot_harness import CHANNEL, RunningBot, running_bot
from tests.support.configs import file_config
from tests.support.fake_slack import FakeSlack
from tests.support.slack_requests import Select, retry_headers

HK = "media-hk"
HANGZHOU = "test-1-001"


@pytest.fixture
def bot(fake_slack: FakeSlack, tmp_path: Path) -> Iterator[RunningBot]:
    with running_bot(fake_slack, tmp_path) as running:
        yield running


def open_modal(bot: RunningBot) -> dict[str, Any]:
    reply = bot.slack.slash_command("/bind-domain")
    assert reply.status == 200
    call = bot.fake.wait_for("views.open")
    return bot.fake.view(call.response["view"]["id"])


def card(bot: RunningBot) -> dict[str, Any]:
    [posted] = [c for c in bot.fake.messages(CHANNEL) if "thread_ts" not in c.params]
    return bot.fake.message(CHANNEL, posted.response["ts"])


def section_texts(message: dict[str, Any]) -> str:
    texts = []
    for block in message.get("blocks", []):
        if "text" in block and isinstance(block["text"], dict):
            texts.append(block["text"]["text"])
        texts.extend(f["text"] for f in block.get("fields", []))
        texts.extend(e.get("text", "") for e in block.get("elements", []))
    return "\n".join(str(t) for t in texts)


def test_forged_and_stale_requests_get_401_and_do_nothing(bot: RunningBot) -> None:
    forged = bot.slack.slash_command(
        "/bind-domain", "img.example.com media-hk", bad_signature=True
    )
    stale = bot.slack.slash_command("/bind-domain", "img.example.com media-hk", age=301)
    unsigned = bot.slack.slash_command("/domains", unsigned=True)

    assert (forged.status, stale.status, unsigned.status) == (401, 401, 401)
    time.sleep(0.3)
    assert bot.bindings() == []
    assert [c.method for c in bot.fake.calls() if c.method != "auth.test"] == []


def test_the_modal_binds_and_posts_the_record_to_add(bot: RunningBot) -> None:
    view = open_modal(bot)
    assert [b["block_id"] for b in view["blocks"]] == ["domain", "bucket", "options"]

    reply = bot.slack.submit_view(
        view, {"domain": " IMG.Example.com ", "bucket": Select(HK)}
    )

    assert reply.status == 200 and reply.body == ""
    bot.settle()
    message = card(bot)
    text = section_texts(message)
    assert (
        "CNAME  img.example.com  -&gt;  media-hk.oss-cn-hongkong.aliyuncs.com" in text
    )
    assert "`http://media-hk.oss-cn-hongkong.aliyuncs.com/&lt;object&gt;`" in text
    assert "`http://img.example.com/&lt;object&gt;`" in text
    assert "Requested by <@U0000ALICE>" in text
    assert message["text"].startswith("img.example.com → bucket media-hk")
    [binding] = bot.bindings()
    assert (binding.domain, binding.state) == (
        "img.example.com",
        BindingState.PENDING_DNS,
    )
    assert binding.channel == CHANNEL


def test_choosing_a_mainland_bucket_adds_the_icp_question(bot: RunningBot) -> None:
    view = open_modal(bot)
    reply = bot.slack.send_payload(_select_bucket(bot, view, HANGZHOU))
    assert reply.status == 200
    update = bot.fake.wait_for("views.update")
    blocks = [b["block_id"] for b in update.params["view"]["blocks"]]
    assert blocks == ["domain", "bucket", "options", "icp"]
    icp = update.params["view"]["blocks"][-1]
    assert "mainland-China region (oss-cn-hangzhou)" in icp["hint"]["text"]


def _select_bucket(
    bot: RunningBot, view: dict[str, Any], bucket: str
) -> dict[str, Any]:
    """What Slack sends when a bucket is picked in the modal's select."""
    head = bot.slack.view_submission_payload(view, {"bucket": Select(bucket)})
    head["type"] = "block_actions"
    head["container"] = {"type": "view", "view_id": view["id"]}
    head["actions"] = [
        {
            "type": "static_select",
            "action_id": "bucket_select",
            "block_id": "bucket",
            "selected_option": {
                "text": {"type": "plain_text", "text": bucket},
                "value": bucket,
            },
            "action_ts": "1700000000.000001",
        }
    ]
    return head


def test_a_refused_modal_stays_open_with_the_problems_shown(bot: RunningBot) -> None:
    view = open_modal(bot)
    reply = bot.slack.submit_view(view, {"domain": "192.0.2.1", "bucket": Select(HK)})

    assert reply.status == 200
    assert reply.json == {
        "response_action": "errors",
        "errors": {
            "domain": "192.0.2.1 is an IP address. A domain name is needed, "
            "because the binding works through a CNAME record."
        },
    }
    time.sleep(0.2)
    assert bot.bindings() == []
    assert bot.fake.messages() == []


def test_icp_is_required_for_mainland_buckets(bot: RunningBot) -> None:
    reply = bot.slack.slash_command("/bind-domain", "img.example.com test-1-001")
    assert reply.status == 200
    assert (
        "ICP filing" in reply.json["text"] and "Nothing was bound" in reply.json["text"]
    )
    ok = bot.slack.slash_command("/bind-domain", "img.example.com test-1-001 icp")
    assert ok.json["text"].startswith("Binding img.example.com to bucket test-1-001")
    bot.settle()
    assert [b.icp_confirmed for b in bot.bindings()] == [True]


def test_a_resubmitted_modal_or_retried_command_binds_once(bot: RunningBot) -> None:
    view = open_modal(bot)
    values = {"domain": "img.example.com", "bucket": Select(HK)}
    bot.slack.submit_view(view, values)
    bot.slack.submit_view(view, values, headers=retry_headers(1))

    fields = bot.slack.slash_command_body("/bind-domain", "cdn.example.com media-hk")
    bot.slack.send_form(fields)
    bot.slack.send_form(fields, headers=retry_headers(1, "http_timeout"))
    bot.settle()
    time.sleep(0.2)
    bot.settle()

    assert sorted(b.domain for b in bot.bindings()) == [
        "cdn.example.com",
        "img.example.com",
    ]
    assert len(bot.fake.messages(CHANNEL)) == 2


def test_the_twenty_first_domain_is_refused_privately(bot: RunningBot) -> None:
    for number in range(20):
        bot.slack.slash_command("/bind-domain", f"n{number}.example.com media-hk")
    bot.settle()
    assert len(bot.bindings()) == 20

    bot.slack.slash_command("/bind-domain", "n20.example.com media-hk")
    refusal = bot.fake.wait_for("chat.postEphemeral")

    assert refusal.params["user"] == "U0000ALICE"
    assert "already has 20 domains bound or pending" in refusal.params["text"]
    assert len(bot.bindings()) == 20


def test_user_text_is_escaped_in_replies(bot: RunningBot) -> None:
    reply = bot.slack.slash_command("/bind-domain", "img.example.com <!channel> bad&")
    text = reply.json["text"]
    assert "<!channel>" not in text
    assert "`bad&amp;`" in text


def test_acks_do_not_wait_for_a_locked_database(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    with running_bot(fake_slack, tmp_path, clock=SystemClock()) as bot:
        lock = sqlite3.connect(tmp_path / "bot.db")
        lock.execute("BEGIN EXCLUSIVE")
        try:
            reply = bot.slack.slash_command("/bind-domain", "img.example.com media-hk")
            assert reply.status == 200 and reply.elapsed < 1.0
        finally:
            time.sleep(0.5)
            lock.rollback()
            lock.close()
        bot.fake.wait_for("chat.postMessage")
        assert [b.domain for b in bot.bindings()] == ["img.example.com"]


def test_acks_keep_coming_while_more_work_waits_than_there_are_threads(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    # Every binding below waits for the locked database, so the work queues up;
    # the acks must not queue behind it.
    requests = 3 * LISTENER_THREADS
    roomy = file_config(
        buckets=[
            {
                "name": "media-hk",
                "endpoint": "oss-cn-hongkong.aliyuncs.com",
                "max_domains": requests,
            }
        ]
    )
    with running_bot(fake_slack, tmp_path, clock=SystemClock(), file=roomy) as bot:
        lock = sqlite3.connect(tmp_path / "bot.db")
        lock.execute("BEGIN EXCLUSIVE")
        try:
            replies = [
                bot.slack.slash_command("/bind-domain", f"d{n}.example.com media-hk")
                for n in range(requests)
            ]
        finally:
            lock.rollback()
            lock.close()
        assert [r.status for r in replies] == [200] * requests
        assert max(r.elapsed for r in replies) < 1.0
        assert "Binding d0.example.com to bucket media-hk" in replies[0].json["text"]
        bot.settle(timeout=60)
        bound = sorted(b.domain for b in bot.bindings())
    assert bound == sorted(f"d{n}.example.com" for n in range(requests))


def test_a_429_is_waited_out_and_the_message_still_arrives(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    with running_bot(fake_slack, tmp_path, clock=SystemClock()) as bot:
        fake_slack.rate_limit("chat.postMessage", times=1, retry_after=1)
        started = time.monotonic()
        bot.slack.slash_command("/bind-domain", "img.example.com media-hk")
        posted = bot.fake.wait_for("chat.postMessage", lambda c: c.ok)
        waited = time.monotonic() - started
    attempts = fake_slack.calls("chat.postMessage")
    assert [c.status for c in attempts] == [429, 200]
    assert waited >= 1.0
    assert attempts[1].at - attempts[0].at >= 1.0
    assert "img.example.com" in posted.params["text"]


def test_domains_lists_bindings_with_their_state(bot: RunningBot) -> None:
    bot.slack.slash_command("/bind-domain", "img.example.com media-hk")
    bot.slack.slash_command("/bind-domain", "cdn.example.com eu-assets cdn")
    bot.settle()

    bot.slack.slash_command("/domains", "media-hk")
    listed = bot.fake.wait_for("response_url")
    unknown = bot.slack.slash_command("/domains", "nope")
    assert unknown.status == 200
    refusal = bot.fake.wait_for("response_url", lambda c: c is not listed)

    text = section_texts(listed.params)
    assert "`img.example.com` → `media-hk` · *pending DNS*" in text
    assert "cdn.example.com" not in text
    assert "1 of 20 allowed" in text
    assert "There is no bucket called 'nope'" in refusal.params["text"]


def test_unbind_asks_first_then_releases(bot: RunningBot) -> None:
    bot.slack.slash_command("/bind-domain", "img.example.com media-hk")
    bot.settle()

    bot.slack.slash_command("/unbind-domain", "img.example.com")
    confirm = bot.fake.wait_for("response_url")
    assert "Unbind img.example.com from bucket" in confirm.params["text"]
    assert [b.state for b in bot.bindings()] == [BindingState.PENDING_DNS]

    message = {"ts": "1.0", "blocks": confirm.params["blocks"]}
    bot.slack.click_button(CHANNEL, message, "unbind_confirm")
    done = bot.fake.wait_for("response_url", lambda c: c is not confirm)
    bot.settle()

    assert done.params["text"] == "Released img.example.com from bucket media-hk."
    assert [b.state for b in bot.bindings()] == [BindingState.RELEASED]
    root = card(bot)
    assert "*Released.*" in section_texts(root)
    assert not [b for b in root["blocks"] if b["type"] == "actions"]
    [reply] = bot.fake.thread(root["ts"])
    assert reply.params["text"] == "img.example.com was released from bucket media-hk."

    bot.slack.click_button(CHANNEL, message, "unbind_confirm")
    again = bot.fake.wait_for("chat.postEphemeral")
    assert "is not bound to any bucket" in again.params["text"]


def test_only_the_requester_or_an_approver_may_unbind(bot: RunningBot) -> None:
    bot.slack.slash_command("/bind-domain", "img.example.com media-hk")
    bot.settle()
    bot.fake.set_usergroup("SOPS", [])

    bot.slack.slash_command("/unbind-domain", "img.example.com", user_id="U0000EVE")
    refused = bot.fake.wait_for("response_url")
    bot.settle()
    assert refused.params["text"] == (
        "You cannot unbind img.example.com: only the person who bound it or a "
        "configured approver may do that. Nothing changed."
    )
    assert "blocks" not in refused.params or not refused.params["blocks"]

    bot.slack.slash_command("/unbind-domain", "img.example.com", user_id="UAPPROVER1")
    confirm = bot.fake.wait_for("response_url", lambda c: c is not refused)
    # Shown to the approver, the button is clicked by someone else who saw it.
    message = {"ts": "1.0", "blocks": confirm.params["blocks"]}
    bot.slack.click_button(CHANNEL, message, "unbind_confirm", user_id="U0000EVE")
    bot.settle()
    told = bot.fake.wait_for("chat.postEphemeral")
    assert told.params["user"] == "U0000EVE"
    assert told.params["text"].startswith("You cannot unbind img.example.com")
    assert [b.state for b in bot.bindings()] == [BindingState.PENDING_DNS]

    bot.slack.click_button(CHANNEL, message, "unbind_confirm", user_id="UAPPROVER1")
    bot.settle()
    assert [b.state for b in bot.bindings()] == [BindingState.RELEASED]


def test_parallel_commands_are_all_acked_quickly(bot: RunningBot) -> None:
    results: list[float] = []

    def send(number: int) -> None:
        reply = bot.slack.slash_command(
            "/bind-domain", f"p{number}.example.com media-hk"
        )
        assert reply.status == 200
        results.append(reply.elapsed)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    bot.settle()
    assert len(results) == 20 and max(results) < 3.0
    assert len(bot.bindings()) == 20


def test_the_home_tab_lists_what_is_waiting(bot: RunningBot) -> None:
    bot.slack.slash_command("/bind-domain", "img.example.com media-hk")
    bot.settle()

    reply = bot.slack.app_home_opened()
    assert reply.status == 200
    bot.fake.wait_for("views.publish")

    home = section_texts(bot.fake.home_view("U0000ALICE"))
    assert "*Waiting for DNS* (1)" in home
    assert "`img.example.com` → `media-hk` · found: not checked yet" in home
    assert "*Requests to take a domain over* (0)" in home


def test_unbind_of_an_unbound_domain_or_bad_input_says_so(bot: RunningBot) -> None:
    usage = bot.slack.slash_command("/unbind-domain", "")
    bad = bot.slack.slash_command("/unbind-domain", "http://x.example.com/")
    bot.slack.slash_command("/unbind-domain", "Nope.Example.com")
    unbound = bot.fake.wait_for("response_url")

    assert usage.json["text"].startswith("Usage: `/unbind-domain <domain>`")
    assert "without scheme or path: x.example.com" in bad.json["text"]
    assert unbound.params["text"] == (
        "nope.example.com is not bound to any bucket. /domains lists the bound domains."
    )
