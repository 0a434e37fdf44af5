"""``domainbot serve`` as an operator runs it: the command, its environment, real DNS.

Slack is the fake Web API; requests are signed as Slack signs them; Knot answers for
the zone and Unbound, the only resolver the bot is given, caches in front of it.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.bot_harness import CHANNEL, SIGNING_SECRET
from tests.support.configs import TOML
from tests.support.dns_lab import DnsLab
from tests.support.fake_slack import Call, FakeSlack
from tests.support.slack_requests import Select, SlackRequests

pytestmark = pytest.mark.dns

RECHECK_SECONDS = 2
TARGET = "media-hk.oss-cn-hongkong.aliyuncs.com"
OWNER = "U0000OWNER"
TAKER = "U0000TAKER"
APPROVER = "UAPPROVER1"
WEB_CHANNEL = "C0000WEB"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def served(
    fake_slack: FakeSlack, dns_lab: DnsLab, tmp_path: Path, port: int
) -> Iterator[SlackRequests]:
    config = tmp_path / "domainbot.toml"
    config.write_text(TOML, encoding="utf-8")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SLACK_BOT_TOKEN": fake_slack.bot_token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'domainbot.db'}",
        "DOMAINBOT_CONFIG": str(config),
        "DOMAINBOT_RESOLVERS": dns_lab.resolver,
        "DOMAINBOT_RECHECK_SECONDS": str(RECHECK_SECONDS),
    }
    log = (tmp_path / "bot.log").open("w")
    bot = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_until_listening(port, bot)
        yield SlackRequests(
            f"http://127.0.0.1:{port}/slack/events",
            SIGNING_SECRET,
            fake=fake_slack,
            channel_id=CHANNEL,
        )
    finally:
        bot.terminate()
        bot.wait(timeout=20)
        log.close()
    logged = (tmp_path / "bot.log").read_text()
    assert bot.returncode == 0, logged
    # Bolt's notice that the bot's own client wins over SLACK_BOT_TOKEN is dropped,
    # and so are the scheduler's lines for every sweep: the log is for changes.
    assert "will be unused" not in logged and "Traceback" not in logged, logged
    assert " INFO apscheduler" not in logged, logged


def _wait_until_listening(port: int, bot: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert bot.poll() is None, "domainbot serve exited early"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("domainbot serve did not start listening within 30 s")


def test_bind_through_the_modal_and_hear_when_the_domain_is_live(
    served: SlackRequests, fake_slack: FakeSlack, dns_lab: DnsLab, port: int
) -> None:
    domain = dns_lab.unique_name("img")

    opened = served.slash_command("/bind-domain")
    assert opened.status == 200 and opened.elapsed < 3
    view = fake_slack.view(fake_slack.wait_for("views.open").response["view"]["id"])
    submitted = served.submit_view(
        view, {"domain": domain, "bucket": Select("media-hk")}
    )
    assert submitted.status == 200 and submitted.elapsed < 3

    card = fake_slack.wait_for("chat.postMessage")
    assert f"add the record CNAME {domain} -> {TARGET}" in card.params["text"]

    # The resolver has cached that the name does not exist when the record appears.
    assert dns_lab.query_resolver(domain, "CNAME").rcode == "NXDOMAIN"
    time.sleep(RECHECK_SECONDS)
    dns_lab.set_record(domain, "CNAME", TARGET)
    added = time.monotonic()
    assert dns_lab.query_resolver(domain, "CNAME").rcode == "NXDOMAIN"

    live = fake_slack.wait_for(
        "chat.postMessage",
        lambda c: c.params.get("thread_ts") == card.response["ts"],
        timeout=30,
    )
    noticed = time.monotonic() - added
    assert live.params["text"] == f"{domain} is live: it points at {TARGET}."
    # Within one re-check interval (the waits grow by 15% a try) and a sweep.
    assert noticed < RECHECK_SECONDS * 1.15**3 + 1.5

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz") as health:
        assert health.status == 200
        checked = health.read().decode().splitlines()
    assert checked[0] == "database: ok (sqlite)"
    assert checked[1].startswith("sweep: ok, last finished")

    forged = served.slash_command("/domains", bad_signature=True)
    stale = served.slash_command("/domains", age=300 + 5)
    assert (forged.status, stale.status) == (401, 401)


def test_a_domain_held_elsewhere_moves_once_after_txt_proof_and_approval(
    served: SlackRequests, fake_slack: FakeSlack, dns_lab: DnsLab, tmp_path: Path
) -> None:
    domain = dns_lab.unique_name("shop")
    fake_slack.set_usergroup("SOPS", ["U0000GROUPIE"])
    served.slash_command(
        "/bind-domain", f"{domain} media-hk", user_id=OWNER, channel_id=WEB_CHANNEL
    )
    fake_slack.wait_for(
        "chat.postMessage", lambda c: c.params["channel"] == WEB_CHANNEL
    )

    served.slash_command("/bind-domain", f"{domain} eu-assets", user_id=TAKER)
    notice = fake_slack.wait_for(
        "chat.postMessage", lambda c: "To move it to eu-assets" in c.params["text"]
    )
    assert f"_dnsauth.{domain}" in str(notice.params["blocks"])
    match = re.search(r"with the value (\S+)\.$", notice.params["text"])
    assert match is not None

    time.sleep(RECHECK_SECONDS)
    dns_lab.set_record(f"_dnsauth.{domain}", "TXT", f'"{match.group(1)}"')
    approval = fake_slack.wait_for(
        "chat.postMessage",
        lambda c: (
            c.params.get("thread_ts") == notice.response["ts"]
            and "approve moving" in c.params["text"].lower()
        ),
        timeout=30,
    )

    card = fake_slack.message(CHANNEL, approval.response["ts"])
    for user in (TAKER, "U0000RANDOM", APPROVER, APPROVER):
        reply = served.click_button(CHANNEL, card, "approval_approve", user_id=user)
        assert reply.status == 200 and reply.elapsed < 3
    told = [
        fake_slack.wait_for(
            "chat.postEphemeral", lambda c, user=user: c.params["user"] == user
        ).params["text"]
        for user in (TAKER, "U0000RANDOM", APPROVER)
    ]
    assert "you asked for this rebind" in told[0]
    assert "only the configured approvers may decide" in told[1]
    assert "was already approved by" in told[2]
    fake_slack.wait_for(
        "chat.postMessage",
        lambda c: c.params["channel"] == WEB_CHANNEL and "released" in c.params["text"],
    )
    fake_slack.wait_for("chat.postMessage", lambda c: is_moved(c, notice))

    served.slash_command("/domains", "media-hk")
    served.slash_command("/domains", "eu-assets")
    listed = [
        fake_slack.wait_for(
            "response_url", lambda c, bucket=bucket: bucket in c.params["text"]
        ).params["text"]
        for bucket in ("media-hk", "eu-assets")
    ]
    assert listed == [
        "No domains are bound to bucket media-hk.",
        "1 bound domain on bucket eu-assets.",
    ]
    moved = [c for c in fake_slack.calls("chat.postMessage") if is_moved(c, notice)]
    assert len(moved) == 1

    # The operator reads back who did what, the refused clicks included.
    audit = subprocess.run(
        [sys.executable, "-m", "bot", "audit", domain.upper()],
        env={**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'domainbot.db'}"},
        capture_output=True,
        text=True,
        check=True,
    )
    header, *lines = audit.stdout.splitlines()
    assert re.split(r"\s{2,}", header) == [
        "when (UTC)",
        "domain",
        "action",
        "by",
        "state",
        "detail",
    ]
    events = [re.split(r"\s{2,}", line)[1:] for line in lines]
    assert events == [
        [domain, "bound", OWNER, "- -> pending_dns", "to bucket media-hk"],
        [domain, "challenge_opened", TAKER, "- -> watching"],
        [
            domain,
            "ownership_verified",
            "domainbot",
            "watching -> verified",
            "ns1.example.test (127.53.0.1)",
        ],
        [domain, "approval_opened", "domainbot", "- -> pending"],
        [
            domain,
            "decision_refused",
            TAKER,
            "pending -> pending",
            "you asked for this rebind, so someone else must approve it",
        ],
        [
            domain,
            "decision_refused",
            "U0000RANDOM",
            "pending -> pending",
            "only the configured approvers may decide",
        ],
        [domain, "approved", APPROVER, "pending -> approved"],
        [
            domain,
            "released_by_takeover",
            APPROVER,
            "pending_dns -> released",
            "moved to eu-assets by approval 1",
        ],
        [domain, "bound", TAKER, "- -> pending_dns", "to bucket eu-assets"],
    ]


def is_moved(call: Call, notice: Call) -> bool:
    """Whether ``call`` is the reply to the conflict notice that the domain moved."""
    return bool(
        call.params.get("thread_ts") == notice.response["ts"]
        and "approved:" in call.params["text"]
    )
