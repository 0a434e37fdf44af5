"""``domainbot serve`` in Socket Mode: Slack's requests come over a WebSocket.

With ``SLACK_APP_TOKEN`` set, the bot asks ``apps.connections.open`` for a link and
keeps a WebSocket open to it instead of listening for HTTP. Here the fake Slack hands
out a ``ws://`` link on loopback, pushes envelopes down it as Slack does and records
the acknowledgements, so a test sees what a user would see: the ephemeral reply
carried by the acknowledgement, and the messages the bot posts afterwards.

The DNS resolver given to the bot is a closed loopback port: nothing here needs
DNS answers, and a bind goes ahead when the name's records cannot be looked up.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from tests.support.bot_harness import CHANNEL, SIGNING_SECRET
from tests.support.configs import TOML
from tests.support.fake_slack import FakeSlack, SocketConnection
from tests.support.slack_requests import Select, SlackRequests

TARGET = "media-hk.oss-cn-hongkong.aliyuncs.com"
# Port 9 (discard) is closed on loopback, so a lookup fails at once.
UNREACHABLE_RESOLVER = "127.0.0.1:9"
STARTUP_SECONDS = 30
ACK_SECONDS = 3
# The SDK's client moves to a new connection once its read of the old one times out.
RECONNECT_SECONDS = 10


@dataclass(frozen=True)
class SocketModeBot:
    """``domainbot serve`` running in Socket Mode, and how to reach it."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    slack: SlackRequests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def socket_bot(fake_slack: FakeSlack, tmp_path: Path) -> Iterator[SocketModeBot]:
    config = tmp_path / "domainbot.toml"
    config.write_text(TOML, encoding="utf-8")
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SLACK_BOT_TOKEN": fake_slack.bot_token,
        "SLACK_APP_TOKEN": fake_slack.app_token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'domainbot.db'}",
        "DOMAINBOT_CONFIG": str(config),
        "DOMAINBOT_RESOLVERS": UNREACHABLE_RESOLVER,
    }
    log_path = tmp_path / "bot.log"
    # The payload builders never post here: in Socket Mode there is nothing to post
    # to, so the URL is a closed port.
    slack = SlackRequests(
        "http://127.0.0.1:9/slack/events",
        SIGNING_SECRET,
        fake=fake_slack,
        channel_id=CHANNEL,
    )
    with log_path.open("w") as log:
        bot = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_connected(fake_slack, bot, log_path)
            yield SocketModeBot(bot, port, log_path, slack)
        finally:
            _stop(bot)
    assert bot.returncode == 0, log_path.read_text()


def _wait_until_connected(
    fake: FakeSlack, bot: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while not any(link.is_open for link in fake.socket_connections()):
        assert bot.poll() is None, f"domainbot serve exited early:\n{log.read_text()}"
        assert time.monotonic() < deadline, (
            f"domainbot serve opened no Socket Mode connection within "
            f"{STARTUP_SECONDS} s:\n{log.read_text()}"
        )
        time.sleep(0.05)


def _stop(bot: subprocess.Popen[bytes]) -> None:
    bot.terminate()
    try:
        bot.wait(timeout=10)
    except subprocess.TimeoutExpired:
        bot.kill()
        bot.wait(timeout=10)


def _once_settled(
    fake: FakeSlack, settled: Callable[[list[SocketConnection]], bool]
) -> list[SocketConnection]:
    """The fake's Socket Mode connections once ``settled`` holds of them."""
    deadline = time.monotonic() + ACK_SECONDS
    while not settled(links := fake.socket_connections()):
        assert time.monotonic() < deadline, f"connections did not settle: {links}"
        time.sleep(0.02)
    return links


def _listening_ports(pid: int) -> set[int]:
    """The TCP ports process ``pid`` listens on, read from Linux's ``/proc``."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:  # closed since the directory was listed
            continue
        if target.startswith("socket:["):
            inodes.add(target.removeprefix("socket:[").removesuffix("]"))
    ports = set()
    for table in ("tcp", "tcp6"):
        for row in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = row.split()
            # fields: sl, local address, remote address, state (0A is LISTEN), ...
            if fields[3] == "0A" and fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_connects_with_the_app_token_opens_no_port_and_follows_a_refresh(
    socket_bot: SocketModeBot, fake_slack: FakeSlack
) -> None:
    opened = fake_slack.wait_for("apps.connections.open")
    assert opened.ok and opened.token == fake_slack.app_token
    link = fake_slack.wait_for_socket()
    assert f"ticket={link.ticket}&" in opened.response["url"]

    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", socket_bot.port), timeout=1).close()
    assert _listening_ports(socket_bot.process.pid) == set()

    fake_slack.socket_disconnect("refresh_requested")
    fake_slack.wait_for_socket(timeout=RECONNECT_SECONDS, opened=2)
    command = socket_bot.slack.slash_command_body("/bind-domain", "help")
    envelope_id = fake_slack.socket_send("slash_commands", command)
    ack = fake_slack.socket_ack(envelope_id, timeout=RECONNECT_SECONDS)
    assert ack["payload"]["text"].startswith("Usage: `/bind-domain` opens a form")
    links = _once_settled(fake_slack, lambda links: not links[0].is_open)
    assert [(link.closed_by, link.close_code) for link in links] == [
        ("app", None),
        (None, None),
    ]
    assert len(fake_slack.calls("apps.connections.open")) == 2


def test_a_slash_command_is_acknowledged_over_the_socket_and_the_card_posted(
    socket_bot: SocketModeBot, fake_slack: FakeSlack
) -> None:
    command = socket_bot.slack.slash_command_body(
        "/bind-domain", "img.example.com media-hk"
    )

    envelope_id = fake_slack.socket_send("slash_commands", command)
    ack = fake_slack.socket_ack(envelope_id, timeout=ACK_SECONDS)

    assert ack["payload"] == {
        "text": "Binding img.example.com to bucket media-hk; "
        "the details follow in the channel.",
        "response_type": "ephemeral",
    }
    card = fake_slack.wait_for("chat.postMessage")
    assert card.ok and card.params["channel"] == CHANNEL
    assert f"add the record CNAME img.example.com -> {TARGET}" in card.params["text"]


def test_an_invalid_domain_in_the_modal_is_refused_in_the_acknowledgement(
    socket_bot: SocketModeBot, fake_slack: FakeSlack
) -> None:
    command = socket_bot.slack.slash_command_body("/bind-domain")
    opening = fake_slack.socket_ack(fake_slack.socket_send("slash_commands", command))
    assert "payload" not in opening
    view = fake_slack.view(fake_slack.wait_for("views.open").response["view"]["id"])
    submission = socket_bot.slack.view_submission_payload(
        view, {"domain": "img..example.com", "bucket": Select("media-hk")}
    )

    envelope_id = fake_slack.socket_send("interactive", submission)
    ack = fake_slack.socket_ack(envelope_id, timeout=ACK_SECONDS)

    assert ack["payload"]["response_action"] == "errors"
    assert ack["payload"]["errors"]["domain"].startswith(
        "img..example.com is not a valid host name"
    )


def test_the_fake_refuses_tokens_of_the_wrong_kind(fake_slack: FakeSlack) -> None:
    client = WebClient(base_url=fake_slack.api_url)
    refused = {}
    for name, token in (
        ("bot token", fake_slack.bot_token),
        ("unknown app token", "xapp-1-A0000DBOT-1-unknown"),
    ):
        with pytest.raises(SlackApiError) as caught:
            client.apps_connections_open(app_token=token)
        refused[name] = caught.value.response["error"]
    with pytest.raises(SlackApiError) as caught:
        client.auth_test(token=fake_slack.app_token)

    assert refused == {
        "bot token": "not_allowed_token_type",
        "unknown app token": "invalid_auth",
    }
    assert caught.value.response["error"] == "not_allowed_token_type"
