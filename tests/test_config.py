"""Settings: what an operator sees when the environment or the TOML file is wrong."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.config import load_config, load_file_config, parse_resolvers
from bot.errors import ConfigError
from storage import Database
from tests.support.configs import TOML

TOKENS = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "secret"}


def serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``domainbot serve`` as an operator would, with only ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "bot", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "domainbot.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as refused:
        load_file_config(write(tmp_path, text))
    return refused.value.problems


def test_the_documented_example_loads(tmp_path: Path) -> None:
    config = load_file_config(Path(__file__).parents[1] / "domainbot.example.toml")
    assert [bucket.name for bucket in config.buckets] == ["test-1-001", "media-hk"]
    assert config.buckets[0].needs_icp and not config.buckets[1].needs_icp


def test_buckets_know_their_address_region_and_icp_rule(tmp_path: Path) -> None:
    config = load_file_config(write(tmp_path, TOML))
    hangzhou, _, frankfurt = config.buckets
    assert hangzhou.internet_domain == "test-1-001.oss-cn-hangzhou.aliyuncs.com"
    assert hangzhou.max_domains == 20 and frankfurt.max_domains == 3
    assert [b.needs_icp for b in config.buckets] == [True, False, False]
    assert frankfurt.cdn_target("img.example.com") == "img.example.com.w.kunlunsl.com"
    assert config.approvers.users == ("UAPPROVER1",)


def test_every_problem_is_named_with_its_setting(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
[[buckets]]
name = "Bad_Name"
endpoint = "https://oss-cn-hangzhou.aliyuncs.com/"
max_domains = 0
colour = "blue"

[approvers]
users = ["alice"]
""",
    )
    text = "\n".join(found)
    assert len(found) == 5, text
    assert "buckets[Bad_Name].name: a bucket name has 3 to 63" in text
    assert "buckets[Bad_Name].endpoint: give the endpoint's host name only" in text
    assert (
        "buckets[Bad_Name].max_domains: Input should be greater than or equal" in text
    )
    assert "buckets[Bad_Name].colour: unknown setting" in text
    assert "approvers.users: 'alice' is not a Slack user ID" in text
    assert all(line.startswith(str(tmp_path)) for line in found)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "buckets: missing; add it"),
        ("buckets = []", "no buckets: add at least one [[buckets]] table"),
        ("[[buckets]\nname=", "not valid TOML"),
        (
            '[[buckets]]\nname = "b-1"\nendpoint = "e.example"\n'
            '[[buckets]]\nname = "b-1"\nendpoint = "e.example"\n',
            "bucket names must be unique: b-1",
        ),
    ],
)
def test_bad_files_are_explained(tmp_path: Path, text: str, says: str) -> None:
    assert says in "\n".join(problems(tmp_path, text))


def test_a_missing_file_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        load_file_config(tmp_path / "nowhere.toml")
    assert refused.value.problems == [
        f"DOMAINBOT_CONFIG: no file at {tmp_path / 'nowhere.toml'}; create it (the "
        "README has an example) or point DOMAINBOT_CONFIG at yours"
    ]


def test_missing_tokens_and_bad_values_are_all_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config({"DOMAINBOT_RECHECK_SECONDS": "soon", "PORT": "99999"})
    text = "\n".join(refused.value.problems)
    assert "SLACK_BOT_TOKEN is not set; copy the Bot User OAuth Token" in text
    assert "SLACK_SIGNING_SECRET is not set; copy the Signing Secret" in text
    assert "DOMAINBOT_RECHECK_SECONDS: Input should be a valid number" in text
    assert "PORT: Input should be less than or equal to 65535" in text


def test_resolvers_are_parsed_and_bad_ones_refused(tmp_path: Path) -> None:
    assert parse_resolvers("192.0.2.53, 192.0.2.54:5353,[2001:db8::53]:53,::1") == (
        ("192.0.2.53", 53),
        ("192.0.2.54", 5353),
        ("2001:db8::53", 53),
        ("::1", 53),
    )
    env = TOKENS | {
        "DOMAINBOT_RESOLVERS": "dns.example.com",
        "DOMAINBOT_CONFIG": str(write(tmp_path, TOML)),
    }
    with pytest.raises(ConfigError) as refused:
        load_config(env)
    assert refused.value.problems[0].startswith(
        "DOMAINBOT_RESOLVERS: 'dns.example.com' is not an address"
    )


def test_serve_exits_with_one_line_per_problem_and_no_traceback(
    tmp_path: Path,
) -> None:
    env = {"PATH": "/usr/bin:/bin", "DOMAINBOT_CONFIG": str(tmp_path / "none.toml")}
    run = serve(env)
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.splitlines() == [
        "domainbot: SLACK_BOT_TOKEN is not set; copy the Bot User OAuth Token "
        "(xoxb-...) from the Slack app's OAuth & Permissions page",
        "domainbot: SLACK_SIGNING_SECRET is not set; copy the Signing Secret from the "
        "Slack app's Basic Information page (Socket Mode, with SLACK_APP_TOKEN, needs "
        "none)",
    ]


def test_serve_reports_a_bad_file_the_same_way(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        **TOKENS,
        "DOMAINBOT_CONFIG": str(write(tmp_path, "[[buckets]]\nname = 1\n")),
    }
    run = serve(env)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert all(line.startswith("domainbot: ") for line in run.stderr.splitlines())
    assert "buckets[1].endpoint: missing; add it" in run.stderr


def test_serve_says_when_slack_cannot_be_reached(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/api/"
    env = {
        "PATH": "/usr/bin:/bin",
        **TOKENS,
        "SLACK_API_URL": closed,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'domainbot.db'}",
        "DOMAINBOT_CONFIG": str(write(tmp_path, TOML)),
    }
    run = serve(env)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert run.stderr.splitlines()[-1] == (
        f"domainbot: Slack could not be reached at {closed} to check SLACK_BOT_TOKEN "
        "([Errno 111] Connection refused); check this host's network, proxy and DNS "
        "(or SLACK_API_URL), then start again"
    )


def test_serve_refuses_a_database_written_by_a_newer_release(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'domainbot.db'}"
    db = Database(url)
    db.create_tables()
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE schema_version SET version = 99"))
    db.dispose()
    env = {
        "PATH": "/usr/bin:/bin",
        **TOKENS,
        "DATABASE_URL": url,
        "DOMAINBOT_CONFIG": str(write(tmp_path, TOML)),
    }

    run = serve(env)

    assert run.returncode == 2
    assert run.stderr.splitlines()[-1].startswith(
        "domainbot: DATABASE_URL: the database holds schema version 99, written by "
        "a newer domainbot"
    )
    assert "Traceback" not in run.stderr


def test_a_bad_log_level_is_one_line_too(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        **TOKENS,
        "DOMAINBOT_LOG_LEVEL": "loud",
        "DOMAINBOT_CONFIG": str(write(tmp_path, TOML)),
    }
    run = serve(env)
    assert (run.returncode, run.stderr) == (
        2,
        "domainbot: DOMAINBOT_LOG_LEVEL: 'LOUD' is not a level; use one of DEBUG, "
        "INFO, WARNING, ERROR\n",
    )


def test_socket_mode_needs_no_signing_secret(tmp_path: Path) -> None:
    env = {
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_APP_TOKEN": "xapp-test",
        "DOMAINBOT_CONFIG": str(write(tmp_path, TOML)),
    }
    config = load_config(env)
    assert config.settings.slack_signing_secret is None
    assert config.settings.slack_app_token is not None
