"""Every message template renders to Block Kit Slack accepts, with user text escaped."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.messages import Renderer

BINDING = {
    "binding_id": 7,
    "domain": "img.example.com",
    "bucket": "test-1-001",
    "bucket_domain": "test-1-001.oss-cn-hangzhou.aliyuncs.com",
    "target": "test-1-001.oss-cn-hangzhou.aliyuncs.com",
    "state": "pending_dns",
    "cdn": False,
    "auto_cname": False,
    "requester": "U123",
    "created_at": 1_764_000_000,
    "live_at": None,
    "released_at": None,
    "cname_status": None,
    "cname_zone": None,
    "cname_detail": None,
}

CHALLENGE = {
    "challenge_id": 3,
    "domain": "img.example.com",
    "bucket": "eu-assets",
    "holder": "test-1-001",
    "holder_since": 1_764_000_000,
    "record_name": "_dnsauth.img.example.com",
    "token": "tok_en-123",
    "zone": "example.com",
    "host_field": "_dnsauth.img",
    "state": "watching",
    "requester": "U123",
    "expires_at": 1_764_259_200,
    "verified_at": None,
    "found": "'other'",
    "problem": None,
    "next_check": 1_764_000_600,
}

APPROVAL = {
    "approval_id": 4,
    "challenge_id": 3,
    "domain": "img.example.com",
    "from_bucket": "test-1-001",
    "to_bucket": "eu-assets",
    "requester": "U123",
    "state": "pending",
    "decided_by": None,
    "decided_at": None,
    "expires_at": 1_764_259_200,
    "approver_users": ["UAPPROVER1"],
    "approver_groups": ["SOPS"],
    "outcome": None,
    "reason": "only the configured approvers may decide",
}

CONTEXTS: dict[str, dict[str, Any]] = {
    "challenge_card": CHALLENGE,
    "challenge_again": CHALLENGE,
    "challenge_check_result": CHALLENGE,
    "challenge_mismatch": CHALLENGE,
    "challenge_dns_problem": CHALLENGE | {"problem": "ns1 timed out"},
    "challenge_expired": CHALLENGE | {"state": "expired"},
    "approval_card": APPROVAL | {"servers": ["ns1.example.com (192.0.2.53)"]},
    "approval_closed": APPROVAL
    | {"state": "approved", "decided_by": "U9", "decided_at": 1_764_100_000},
    "approval_refused": APPROVAL,
    "approval_reminder": APPROVAL,
    "approval_expired": APPROVAL | {"state": "expired"},
    "takeover_done": APPROVAL | {"state": "approved", "decided_by": "U9"},
    "takeover_rejected": APPROVAL | {"state": "rejected", "decided_by": "U9"},
    "takeover_failed": APPROVAL | {"state": "failed", "outcome": "bucket full"},
    "binding_taken_over": BINDING
    | {"to_bucket": "eu-assets", "taken_by": "U5", "approved_by": "U9"},
    "binding_card": BINDING,
    "binding_live": BINDING | {"state": "live", "chain": [BINDING["target"]]},
    "binding_gave_up": BINDING | {"found": "no record", "problem": None, "tries": 75},
    "dns_problem": BINDING | {"problem": "ns1 timed out", "next_check": 1_764_000_600},
    "binding_released": BINDING | {"actor": "U999", "cname_removed": False},
    "binding_cname_replaced": BINDING
    | {"actor": "U9", "replaced": "CNAME old.net", "cname_status": "replaced"},
    "check_result": BINDING
    | {"found": "no record", "problem": None, "next_check": 1_764_000_600},
    "request_already_bound": {
        "domain": "img.example.com",
        "bucket": "b1",
        "state": "live",
        "binding_id": 1,
        "target": "t.example",
    },
    "request_conflict": {
        "domain": "img.example.com",
        "bucket": "b1",
        "holder": "b2",
        "since": 1_764_000_000,
        "message": "bound",
    },
    "request_refused": {
        "domain": "img.example.com",
        "bucket": "b1",
        "message": "Bucket b1 is full.",
    },
    "unbind_confirm": {"domain": "img.example.com", "bucket": "b1", "binding_id": 1},
}


def render(name: str, context: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    message = Renderer().message(name, context)
    return message.text, message.blocks


@pytest.mark.parametrize("name", sorted(CONTEXTS))
def test_template_renders_valid_blocks(name: str) -> None:
    text, blocks = render(name, CONTEXTS[name])
    assert text.strip()
    assert 0 < len(blocks) <= 50
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None, block
        assert parsed.to_dict() == block


@pytest.mark.parametrize("state", ["pending_dns", "live", "failed", "released"])
def test_binding_card_in_each_state(state: str) -> None:
    _, blocks = render("binding_card", BINDING | {"state": state, "released_by": "U9"})
    buttons = [b for b in blocks if b["type"] == "actions"]
    assert bool(buttons) is (state == "pending_dns")
    shown = str(blocks)
    assert ("CNAME  img.example.com  -&gt;  test-1-001" in shown) is (
        state in ("pending_dns", "failed")
    )


def test_pending_card_shows_record_and_addresses() -> None:
    text, blocks = render("binding_card", BINDING)
    assert text == (
        "img.example.com → bucket test-1-001: add the record CNAME img.example.com "
        "-> test-1-001.oss-cn-hangzhou.aliyuncs.com"
    )
    fields = [f["text"] for b in blocks for f in b.get("fields", [])]
    assert fields == [
        "*Address before binding*\n"
        "`http://test-1-001.oss-cn-hangzhou.aliyuncs.com/&lt;object&gt;`",
        "*Address after binding*\n`http://img.example.com/&lt;object&gt;`",
    ]


def test_user_text_cannot_ping_the_channel_or_break_the_message() -> None:
    hostile = 'x <!channel> & <https://evil.example|click> "quoted" \\ `tick`\n- a: b'
    text, blocks = render(
        "request_refused", {"domain": hostile, "bucket": hostile, "message": hostile}
    )
    everything = text + str(blocks)
    assert "<!channel>" not in everything
    assert "<https://evil" not in everything
    assert "&lt;!channel&gt;" in blocks[0]["text"]["text"]
    assert '"quoted"' in blocks[0]["text"]["text"]
    assert "`x &lt;!channel&gt; &amp;" in blocks[0]["text"]["text"].replace(
        "\u02cb", "`"
    )


def test_dates_render_for_each_reader_with_a_utc_fallback() -> None:
    _, blocks = render("binding_card", BINDING)
    context = blocks[-2]["elements"][0]["text"]
    assert "<!date^1764000000^{date_short_pretty} at {time}|2025-11-24 16:00 UTC>" in (
        context
    )
    assert "<@U123>" in context


def test_bind_modal_shows_icp_only_for_mainland_buckets() -> None:
    renderer = Renderer()
    base = {
        "metadata": "{}",
        "buckets": [
            {
                "name": "b1",
                "label": "b1 (oss-cn-hangzhou)",
                "region": "oss-cn-hangzhou",
                "needs_icp": True,
            }
        ],
        "domain": None,
        "option_list": [{"value": "cdn", "text": "CDN", "description": "d"}],
        "initial_options": [],
    }
    without = renderer.view("bind_modal", base | {"selected": None})
    chosen = renderer.view("bind_modal", base | {"selected": base["buckets"][0]})
    assert [b["block_id"] for b in without["blocks"]] == ["domain", "bucket", "options"]
    assert [b["block_id"] for b in chosen["blocks"]][-1] == "icp"
    assert View(**chosen).to_dict()["blocks"] == chosen["blocks"]


@pytest.mark.parametrize("state", ["approved", "rejected", "expired", "failed"])
def test_a_decided_approval_card_has_no_buttons_and_says_who(state: str) -> None:
    _, blocks = render(
        "approval_card",
        APPROVAL
        | {
            "state": state,
            "decided_by": "U9",
            "decided_at": 1_764_100_000,
            "outcome": "bucket full",
        },
    )
    assert not [b for b in blocks if b["type"] == "actions"]
    if state != "expired":
        assert "<@U9>" in str(blocks) and "<!date^1764100000^" in str(blocks)


def test_the_approval_card_names_who_may_decide() -> None:
    _, blocks = render("approval_card", APPROVAL)
    text = str(blocks)
    assert "<@UAPPROVER1>, or <!subteam^SOPS>" in text
    _, nobody = render(
        "approval_card", APPROVAL | {"approver_users": [], "approver_groups": []}
    )
    assert "no approvers are configured" in str(nobody)


@pytest.mark.parametrize(
    ("status", "detail", "says", "button"),
    [
        (None, None, "manages no DNS zone that img.example.com is in", False),
        ("added", None, "The bot added the CNAME record* in zone `example.com`", False),
        ("apex", None, "is the apex of zone `example.com`", False),
        (
            "conflict",
            "CNAME old.example.net",
            "already has CNAME old.example.net",
            True,
        ),
        ("conflict", "A 192.0.2.1", "remove them first", False),
        ("failed", "REFUSED: check the TSIG key", "refused to add the record", False),
    ],
)
def test_the_card_says_what_became_of_the_automatic_record(
    status: str | None, detail: str | None, says: str, button: bool
) -> None:
    _, blocks = render(
        "binding_card",
        BINDING
        | {
            "auto_cname": True,
            "cname_status": status,
            "cname_zone": "example.com",
            "cname_detail": detail,
        },
    )
    assert says in str(blocks)
    actions = [
        e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]
    ]
    assert ("cname_replace" in actions) is button
