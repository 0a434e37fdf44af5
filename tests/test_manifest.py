"""The Slack app manifest is valid for Slack and asks for no more than the bot needs."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "app-manifest.yml"
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "shared" / "slack-manifest-schema"
SCHEMA_FILE = "manifest.schema.1.0.0.json"

REQUEST_URL = "https://domainbot.example.com/slack/events"
EXPECTED_COMMANDS = {
    "/bind-domain": "[domain bucket [cdn] [auto-cname] [icp]]",
    "/domains": "[bucket]",
    "/unbind-domain": "<domain>",
}
EXPECTED_BOT_SCOPES = {"commands", "chat:write", "chat:write.public", "usergroups:read"}


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    loaded = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), f"{MANIFEST} does not hold a YAML mapping"
    return loaded


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema_path = SCHEMA_DIR / SCHEMA_FILE
    if not schema_path.is_file():
        # CI must run this check, never skip it: a missing schema is a broken setup.
        pytest.fail(
            f"Slack's manifest schema is missing: expected {schema_path}. The tests "
            "look for shared/slack-manifest-schema/ beside the repository; copy "
            "shared/ there (CI lays it beside the clone)."
        )
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def _problems(
    validator: jsonschema.protocols.Validator, document: dict[str, Any]
) -> list[str]:
    return sorted(
        f"{'/'.join(str(part) for part in error.absolute_path) or '(top)'}: "
        f"{error.message}"
        for error in validator.iter_errors(document)
    )


def test_manifest_matches_slacks_schema(
    manifest: dict[str, Any], validator: jsonschema.protocols.Validator
) -> None:
    problems = _problems(validator, manifest)

    assert not problems, "app-manifest.yml breaks Slack's schema:\n" + "\n".join(
        problems
    )


def test_schema_refuses_a_misspelt_manifest(
    manifest: dict[str, Any], validator: jsonschema.protocols.Validator
) -> None:
    broken = copy.deepcopy(manifest)
    broken["features"]["slash_commands"][0]["usage_hnt"] = "[domain]"
    broken["settings"]["interactivity"]["request_url"] = "domainbot.example.com"

    problems = _problems(validator, broken)

    assert len(problems) == 2, problems


def test_every_slash_command_reaches_the_events_endpoint(
    manifest: dict[str, Any],
) -> None:
    commands = manifest["features"]["slash_commands"]

    assert {c["command"]: c["usage_hint"] for c in commands} == EXPECTED_COMMANDS
    for command in commands:
        assert command["url"].endswith("/slack/events"), command
        assert command["url"] == REQUEST_URL, command
        assert command["should_escape"] is False, command


def test_interactivity_and_events_share_the_request_url(
    manifest: dict[str, Any],
) -> None:
    settings = manifest["settings"]

    assert settings["interactivity"] == {"is_enabled": True, "request_url": REQUEST_URL}
    assert settings["event_subscriptions"] == {
        "request_url": REQUEST_URL,
        "bot_events": ["app_home_opened"],
    }
    assert settings["socket_mode_enabled"] is False


def test_bot_scopes_are_exactly_what_the_bot_uses(manifest: dict[str, Any]) -> None:
    scopes = manifest["oauth_config"]["scopes"]

    assert set(scopes) == {"bot"}, "the bot asks for no user scopes"
    assert sorted(scopes["bot"]) == sorted(EXPECTED_BOT_SCOPES)


def test_home_tab_and_bot_user_are_on(manifest: dict[str, Any]) -> None:
    features = manifest["features"]

    assert features["app_home"]["home_tab_enabled"] is True
    assert features["app_home"]["messages_tab_enabled"] is True
    assert features["bot_user"]["display_name"] == "domainbot"
    assert manifest["display_information"]["name"] == "domainbot"


def test_manifest_explains_the_switch_to_socket_mode() -> None:
    text = MANIFEST.read_text(encoding="utf-8")

    for needed in ("socket_mode_enabled", "connections:write", "SLACK_APP_TOKEN"):
        assert needed in text.split("socket_mode_enabled: false")[0], needed
