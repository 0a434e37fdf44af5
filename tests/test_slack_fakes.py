"""The fake Slack Web API and the signed-request client behave as Slack does."""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from slack_bolt import Ack, App, BoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from tests.support.fake_slack import Call, FakeSlack
from tests.support.slack_requests import (
    Select,
    SlackRequests,
    modal_view,
    retry_headers,
    sign_request,
    state_values,
)

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CHANNEL = "C0000OPS"

BIND_FORM_BLOCKS: list[dict[str, Any]] = [
    {
        "type": "input",
        "block_id": "domain",
        "label": {"type": "plain_text", "text": "Domain"},
        "element": {"type": "plain_text_input", "action_id": "domain"},
    },
    {
        "type": "input",
        "block_id": "bucket",
        "label": {"type": "plain_text", "text": "Bucket"},
        "element": {
            "type": "static_select",
            "action_id": "bucket",
            "options": [
                {"text": {"type": "plain_text", "text": "Images"}, "value": "b1"},
                {"text": {"type": "plain_text", "text": "Videos"}, "value": "b2"},
            ],
        },
    },
    {
        "type": "input",
        "block_id": "options",
        "optional": True,
        "label": {"type": "plain_text", "text": "Options"},
        "element": {
            "type": "checkboxes",
            "action_id": "options",
            "options": [
                {"text": {"type": "plain_text", "text": "CDN"}, "value": "cdn"},
                {"text": {"type": "plain_text", "text": "ICP filed"}, "value": "icp"},
            ],
        },
    },
]
BIND_FORM: dict[str, Any] = {
    "type": "modal",
    "callback_id": "bind",
    "title": {"type": "plain_text", "text": "Bind a domain"},
    "submit": {"type": "plain_text", "text": "Bind"},
    "blocks": BIND_FORM_BLOCKS,
}
APPROVAL_BLOCKS: list[dict[str, Any]] = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "Bind img.example.com?"}},
    {
        "type": "actions",
        "block_id": "decision",
        "elements": [
            {
                "type": "button",
                "action_id": "approve",
                "text": {"type": "plain_text", "text": "Approve"},
                "value": "img.example.com",
                "style": "primary",
            }
        ],
    },
]


# -- a loopback endpoint standing in for the bot ---------------------------------


class _Endpoint(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, app: App | None) -> None:
        super().__init__(("127.0.0.1", 0), _EndpointHandler)
        self.app = app
        self.received: list[tuple[dict[str, str], bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/slack/events"


class _EndpointHandler(BaseHTTPRequestHandler):
    """Hands requests to a Bolt app, or answers 200 and keeps them."""

    server: _Endpoint

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        headers = dict(self.headers.items())
        self.server.received.append((headers, body))

        status, answer_headers, answer = 200, {"Content-Type": "text/plain"}, b""
        if self.server.app is not None:
            request = BoltRequest(
                body=body.decode(),
                headers={name.lower(): [value] for name, value in headers.items()},
            )
            response = self.server.app.dispatch(request)
            status, answer = response.status, response.body.encode()
            answer_headers = {k: ", ".join(v) for k, v in response.headers.items()}

        self.send_response(status)
        for name, value in answer_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows failures, not every request."""


@contextlib.contextmanager
def _endpoint(app: App | None = None) -> Iterator[_Endpoint]:
    server = _Endpoint(app)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# -- the fake Web API ---------------------------------------------------------------


def test_web_client_posts_a_message_and_the_fake_records_it(
    fake_slack: FakeSlack,
) -> None:
    client = fake_slack.web_client()

    first = client.chat_postMessage(channel=CHANNEL, text="hi", blocks=APPROVAL_BLOCKS)
    second = client.chat_postMessage(channel=CHANNEL, text="again")

    call = fake_slack.wait_for("chat.postMessage")
    assert call.token == fake_slack.bot_token
    assert call.params["blocks"][1]["elements"][0]["action_id"] == "approve"
    assert first["channel"] == CHANNEL
    assert first["message"]["text"] == "hi"
    assert first["message"]["bot_id"] == fake_slack.bot_id
    assert float(first["ts"]) < float(second["ts"])
    assert len(first["ts"].split(".")[1]) == 6
    assert [c.params["text"] for c in fake_slack.messages(CHANNEL)] == ["hi", "again"]


def test_timestamps_follow_the_given_clock() -> None:
    with FakeSlack(clock=lambda: 1700000000.0) as fake:
        client = fake.web_client()

        stamps = [
            client.chat_postMessage(channel=CHANNEL, text="x")["ts"] for _ in "ab"
        ]

    assert stamps == ["1700000000.000000", "1700000000.000001"]


def test_concurrent_posts_get_distinct_timestamps(fake_slack: FakeSlack) -> None:
    def post_many() -> None:
        client = fake_slack.web_client()
        for number in range(20):
            client.chat_postMessage(channel=CHANNEL, text=f"message {number}")

    threads = [threading.Thread(target=post_many) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    stamps = [call.response["ts"] for call in fake_slack.messages(CHANNEL)]
    assert len(stamps) == len(set(stamps)) == 120
    assert stamps == sorted(stamps, key=float)


def test_form_body_fields_holding_json_are_decoded(fake_slack: FakeSlack) -> None:
    client = fake_slack.web_client()

    client.api_call(
        "chat.postMessage",
        params={"channel": CHANNEL, "text": "[x]", "blocks": '[{"type": "divider"}]'},
    )

    call = fake_slack.wait_for("chat.postMessage")
    assert call.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert call.params["text"] == "[x]"
    assert call.params["blocks"][0]["type"] == "divider"


def test_multipart_bodies_are_decoded(fake_slack: FakeSlack) -> None:
    fake_slack.web_client().api_call(
        "chat.postMessage",
        data={"channel": CHANNEL, "text": "with a file"},
        files={"file": io.BytesIO(b"zone data")},
    )

    call = fake_slack.wait_for("chat.postMessage")
    assert call.headers["Content-Type"].startswith("multipart/form-data")
    assert call.params == {
        "channel": CHANNEL,
        "text": "with a file",
        "file": b"zone data",
    }
    assert call.ok


def test_auth_test_answers_with_the_bot_identity(fake_slack: FakeSlack) -> None:
    answer = fake_slack.web_client().auth_test()

    assert answer["team_id"] == fake_slack.team_id
    assert answer["user_id"] == fake_slack.bot_user_id
    assert answer["bot_id"] == fake_slack.bot_id


@pytest.mark.parametrize(
    ("token", "error"), [("xoxb-not-the-bot", "invalid_auth"), (None, "not_authed")]
)
def test_a_wrong_or_missing_token_is_refused(
    fake_slack: FakeSlack, token: str | None, error: str
) -> None:
    client = WebClient(token=token, base_url=fake_slack.api_url)

    with pytest.raises(SlackApiError) as refused:
        client.chat_postMessage(channel=CHANNEL, text="hi")

    assert refused.value.response["error"] == error
    assert fake_slack.calls("chat.postMessage")[0].token == token


def test_rate_limit_surfaces_as_http_429_with_retry_after(
    fake_slack: FakeSlack,
) -> None:
    fake_slack.rate_limit("chat.postMessage", times=1, retry_after=7)
    client = fake_slack.web_client()

    with pytest.raises(SlackApiError) as limited:
        client.chat_postMessage(channel=CHANNEL, text="hi")
    after = client.chat_postMessage(channel=CHANNEL, text="hi")

    assert limited.value.response.status_code == 429
    assert limited.value.response.headers["Retry-After"] == "7"
    assert limited.value.response["error"] == "ratelimited"
    assert after["ok"] is True
    assert [c.status for c in fake_slack.calls()] == [429, 200]


def test_slack_sdk_retry_handler_waits_out_a_rate_limit(fake_slack: FakeSlack) -> None:
    fake_slack.rate_limit("chat.postMessage", times=1, retry_after=0)
    client = fake_slack.web_client(retry_handlers=[RateLimitErrorRetryHandler()])

    answer = client.chat_postMessage(channel=CHANNEL, text="hi")

    assert answer["ok"] is True
    assert [c.status for c in fake_slack.calls("chat.postMessage")] == [429, 200]


def test_injected_failures_run_out(fake_slack: FakeSlack) -> None:
    fake_slack.fail("chat.postMessage", error="channel_not_found", times=2)
    client = fake_slack.web_client()

    errors: list[str | None] = []
    for _ in range(3):
        try:
            client.chat_postMessage(channel=CHANNEL, text="hi")
            errors.append(None)
        except SlackApiError as err:
            errors.append(err.response["error"])

    assert errors == ["channel_not_found", "channel_not_found", None]


def test_a_delay_holds_the_answer_back(fake_slack: FakeSlack) -> None:
    fake_slack.delay("auth.test", 0.2)
    client = fake_slack.web_client()

    started = time.monotonic()
    client.auth_test()

    assert time.monotonic() - started >= 0.2


def test_unknown_methods_are_refused_and_recorded(fake_slack: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as refused:
        fake_slack.web_client().api_call("chat.postMessages", json={"text": "x"})

    assert refused.value.response["error"] == "unknown_method"
    assert fake_slack.calls()[0].method == "chat.postMessages"


def test_blocks_slack_would_refuse_are_refused(fake_slack: FakeSlack) -> None:
    client = fake_slack.web_client()
    too_many = [{"type": "divider"}] * 51

    with pytest.raises(SlackApiError) as misspelt:
        client.chat_postMessage(channel=CHANNEL, text="x", blocks=[{"type": "sectoin"}])
    with pytest.raises(SlackApiError) as crowded:
        client.chat_postMessage(channel=CHANNEL, text="x", blocks=too_many)

    assert misspelt.value.response["error"] == "invalid_blocks"
    assert "sectoin" in misspelt.value.response["response_metadata"]["messages"][0]
    assert crowded.value.response["error"] == "invalid_blocks"


def test_chat_update_changes_only_a_message_it_knows(fake_slack: FakeSlack) -> None:
    client = fake_slack.web_client()
    posted = client.chat_postMessage(channel=CHANNEL, text="pending")

    client.chat_update(channel=CHANNEL, ts=posted["ts"], text="approved", blocks=[])
    with pytest.raises(SlackApiError) as missing:
        client.chat_update(channel=CHANNEL, ts="1.000001", text="approved")

    assert fake_slack.message(CHANNEL, posted["ts"])["text"] == "approved"
    assert missing.value.response["error"] == "message_not_found"


def test_thread_replies_and_ephemeral_messages(fake_slack: FakeSlack) -> None:
    client = fake_slack.web_client()
    parent = client.chat_postMessage(channel=CHANNEL, text="binding img.example.com")

    client.chat_postMessage(channel=CHANNEL, text="CNAME seen", thread_ts=parent["ts"])
    ephemeral = client.chat_postEphemeral(channel=CHANNEL, user="U0000ALICE", text="x")
    direct = client.chat_postMessage(channel="U0000ALICE", text="your binding")

    assert [c.params["text"] for c in fake_slack.thread(parent["ts"])] == ["CNAME seen"]
    assert ephemeral["message_ts"]
    assert direct["channel"] == "D0000ALICE"
    assert len(fake_slack.messages("U0000ALICE")) == 1


def test_a_trigger_opens_one_modal(fake_slack: FakeSlack) -> None:
    client = fake_slack.web_client()
    trigger_id = fake_slack.new_trigger_id()

    opened = client.views_open(trigger_id=trigger_id, view=BIND_FORM)
    with pytest.raises(SlackApiError) as again:
        client.views_open(trigger_id=trigger_id, view=BIND_FORM)

    view = opened["view"]
    assert view["id"].startswith("V")
    assert view["hash"]
    assert view["callback_id"] == "bind"
    assert fake_slack.view(view["id"])["blocks"][0]["block_id"] == "domain"
    assert again.value.response["error"] == "exchanged_trigger_id"


def test_unknown_and_late_triggers_are_refused() -> None:
    with FakeSlack(strict_triggers=True, trigger_ttl=0.05) as fake:
        client = fake.web_client()
        late = fake.new_trigger_id()
        time.sleep(0.1)

        errors = []
        for trigger_id in ("123.456.unknown", late):
            with pytest.raises(SlackApiError) as refused:
                client.views_open(trigger_id=trigger_id, view=BIND_FORM)
            errors.append(refused.value.response["error"])

    assert errors == ["invalid_trigger_id", "expired_trigger_id"]


def test_views_update_push_and_publish(fake_slack: FakeSlack) -> None:
    client = fake_slack.web_client()
    root = client.views_open(trigger_id=fake_slack.new_trigger_id(), view=BIND_FORM)
    root_id, old_hash = root["view"]["id"], root["view"]["hash"]

    updated = client.views_update(view_id=root_id, hash=old_hash, view=BIND_FORM)
    with pytest.raises(SlackApiError) as stale:
        client.views_update(view_id=root_id, hash=old_hash, view=BIND_FORM)
    pushed = client.views_push(
        trigger_id=fake_slack.new_trigger_id(root_id), view=BIND_FORM
    )
    home = {"type": "home", "blocks": [{"type": "divider"}]}
    published = client.views_publish(user_id="U0000ALICE", view=home)

    assert updated["view"]["id"] == root_id
    assert updated["view"]["hash"] != old_hash
    assert stale.value.response["error"] == "hash_conflict"
    assert pushed["view"]["previous_view_id"] == root_id
    assert pushed["view"]["root_view_id"] == root_id
    assert published["view"]["type"] == "home"
    assert fake_slack.home_view("U0000ALICE")["id"] == published["view"]["id"]


def test_user_groups_users_and_channels(fake_slack: FakeSlack) -> None:
    fake_slack.set_usergroup("S0000APPROVERS", ["U0000BOB", "U0000CAROL"])
    fake_slack.add_user("U0000BOB", name="bob", real_name="Bob Example")
    fake_slack.add_channel(
        "G0000SECRET", name="secret", is_private=True, is_member=False
    )
    client = fake_slack.web_client()

    members = client.usergroups_users_list(usergroup="S0000APPROVERS")["users"]
    bob = client.users_info(user="U0000BOB")["user"]
    channel = client.conversations_info(channel=CHANNEL)["channel"]
    with pytest.raises(SlackApiError) as no_group:
        client.usergroups_users_list(usergroup="S0000NOBODY")
    with pytest.raises(SlackApiError) as hidden:
        client.chat_postMessage(channel="G0000SECRET", text="hi")

    assert members == ["U0000BOB", "U0000CAROL"]
    assert bob["real_name"] == "Bob Example"
    assert channel["id"] == CHANNEL
    assert no_group.value.response["error"] == "no_such_subteam"
    assert hidden.value.response["error"] == "channel_not_found"


def test_response_url_posts_are_recorded(fake_slack: FakeSlack) -> None:
    url = fake_slack.new_response_url()

    answer = WebhookClient(url).send(text="Bound.", replace_original=True)

    call = fake_slack.wait_for("response_url")
    assert answer.status_code == 200
    assert url.endswith("/" + call.params["response_url_id"])
    assert call.params["text"] == "Bound."
    assert call.params["replace_original"] is True


def test_wait_for_blocks_until_the_call_arrives(fake_slack: FakeSlack) -> None:
    client = fake_slack.web_client()
    timer = threading.Timer(
        0.1, client.chat_postMessage, kwargs={"channel": CHANNEL, "text": "late"}
    )
    timer.start()
    try:
        call = fake_slack.wait_for("chat.postMessage", timeout=5)
    finally:
        timer.join()

    assert call.params["text"] == "late"
    assert call.at <= time.monotonic()


def test_wait_for_lists_the_calls_it_saw_on_timeout(fake_slack: FakeSlack) -> None:
    fake_slack.web_client().chat_postMessage(channel=CHANNEL, text="hello there")

    with pytest.raises(AssertionError) as timed_out:
        fake_slack.wait_for("chat.update", timeout=0.1)

    assert "chat.postMessage -> 200 ok channel=C0000OPS" in str(timed_out.value)
    assert "'hello there'" in str(timed_out.value)


def test_reset_forgets_calls_and_faults(fake_slack: FakeSlack) -> None:
    fake_slack.fail("auth.test", times=5)
    client = fake_slack.web_client()
    with pytest.raises(SlackApiError):
        client.auth_test()

    fake_slack.reset()

    assert client.auth_test()["ok"] is True
    assert [c.method for c in fake_slack.calls()] == ["auth.test"]


# -- signed requests ----------------------------------------------------------------


def _verify(received: tuple[dict[str, str], bytes]) -> bool:
    headers, body = received
    return SignatureVerifier(SIGNING_SECRET).is_valid_request(body, headers)


def test_signed_requests_verify_with_slack_sdk() -> None:
    with _endpoint() as endpoint:
        slack = SlackRequests(endpoint.url, SIGNING_SECRET)

        reply = slack.slash_command("/domains", "b1")
        slack.send_raw(
            b"command=%2Fdomains&text=b2",
            content_type="application/x-www-form-urlencoded",
            headers={"X-Slack-Signature": sign_request(SIGNING_SECRET, "1", b"x")},
        )
        slack.slash_command("/domains", bad_signature=True)
        slack.slash_command("/domains", age=301)

    headers, body = endpoint.received[0]
    assert reply.status == 200
    assert reply.elapsed > 0
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert b"command=%2Fdomains&text=b1" in body
    assert [_verify(received) for received in endpoint.received] == [
        True,
        False,
        False,
        False,
    ]


def test_a_tampered_body_fails_verification() -> None:
    with _endpoint() as endpoint:
        SlackRequests(endpoint.url, SIGNING_SECRET).slash_command("/domains", "b1")

    headers, body = endpoint.received[0]
    assert not _verify((headers, body.replace(b"b1", b"b2")))


def test_slash_command_bodies_carry_what_slack_sends(fake_slack: FakeSlack) -> None:
    slack = SlackRequests("http://127.0.0.1:9/slack/events", "x", fake=fake_slack)

    first = slack.slash_command_body("/bind-domain", "img.example.com b1")
    second = slack.slash_command_body("/bind-domain")

    assert first["command"] == "/bind-domain"
    assert first["team_id"] == fake_slack.team_id
    assert first["response_url"].startswith(fake_slack.url + "/response/")
    assert first["trigger_id"] != second["trigger_id"]
    assert set(first) >= {"user_id", "user_name", "channel_id", "channel_name", "token"}


def test_retry_headers_and_events_reach_the_endpoint() -> None:
    with _endpoint() as endpoint:
        slack = SlackRequests(endpoint.url, SIGNING_SECRET)
        slack.app_home_opened(user_id="U0000BOB", headers=retry_headers(2))

    headers, body = endpoint.received[0]
    assert headers["X-Slack-Retry-Num"] == "2"
    assert headers["X-Slack-Retry-Reason"] == "http_timeout"
    assert headers["Content-Type"] == "application/json"
    assert b'"app_home_opened"' in body
    assert _verify((headers, body))


def test_state_values_follow_the_view_elements() -> None:
    view = modal_view("bind", blocks=BIND_FORM_BLOCKS)

    state = state_values({"domain": "img.example.com", "bucket": "b2"}, view)

    assert state["domain"]["domain"] == {
        "type": "plain_text_input",
        "value": "img.example.com",
    }
    assert state["bucket"]["bucket"]["selected_option"]["value"] == "b2"
    assert state["bucket"]["bucket"]["selected_option"]["text"]["text"] == "Videos"
    assert state["options"]["options"] == {"type": "checkboxes", "selected_options": []}


def test_state_values_refuse_what_no_user_could_enter() -> None:
    view = modal_view("bind", blocks=BIND_FORM_BLOCKS)

    with pytest.raises(AssertionError, match="no input block"):
        state_values({"domian": "img.example.com"}, view)
    with pytest.raises(AssertionError, match="offers no option 'b9'"):
        state_values({"bucket": "b9"}, view)


def test_state_values_without_a_view_use_plain_types() -> None:
    state = state_values({"domain": "img.example.com", "bucket": Select("b1")})

    assert state["domain"]["domain"]["type"] == "plain_text_input"
    assert state["bucket"]["bucket"]["selected_option"]["value"] == "b1"
    assert state_values({"o": ["cdn"]})["o"]["o"]["selected_options"][0]["value"] == (
        "cdn"
    )


def test_a_button_that_is_not_in_the_message_cannot_be_clicked() -> None:
    slack = SlackRequests("http://127.0.0.1:9/slack/events", SIGNING_SECRET)
    message = {"ts": "1700000000.000100", "blocks": APPROVAL_BLOCKS}

    payload = slack.button_click_payload(CHANNEL, message, "approve")
    with pytest.raises(AssertionError, match=r"its buttons: \['approve'\]"):
        slack.button_click_payload(CHANNEL, message, "reject")

    assert payload["container"]["message_ts"] == "1700000000.000100"
    assert payload["actions"][0]["block_id"] == "decision"
    assert payload["actions"][0]["value"] == "img.example.com"


# -- both together, through a real Bolt app ------------------------------------------


def _bind_app(fake: FakeSlack) -> App:
    app = App(client=fake.web_client(), signing_secret=SIGNING_SECRET)

    @app.command("/bind-domain")
    def open_form(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        view = {**BIND_FORM, "private_metadata": body["channel_id"]}
        client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.view("bind")
    def bind(ack: Ack, view: dict[str, Any], client: WebClient) -> None:
        values = view["state"]["values"]
        domain = values["domain"]["domain"]["value"]
        if "." not in domain:
            ack(response_action="errors", errors={"domain": "Type a full domain."})
            return
        ack()
        client.chat_postMessage(
            channel=view["private_metadata"], text="Approve?", blocks=APPROVAL_BLOCKS
        )

    @app.action("approve")
    def approve(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        client.chat_update(
            channel=body["channel"]["id"],
            ts=body["message"]["ts"],
            text=f"Approved by <@{body['user']['id']}>",
            blocks=[],
        )

    return app


def test_a_bolt_app_runs_a_whole_binding_conversation(fake_slack: FakeSlack) -> None:
    with _endpoint(_bind_app(fake_slack)) as endpoint:
        slack = SlackRequests(endpoint.url, SIGNING_SECRET, fake=fake_slack)

        command = slack.slash_command("/bind-domain")
        view = fake_slack.wait_for("views.open").response["view"]
        refused = slack.submit_view(view, {"domain": "localhost", "bucket": "b1"})
        accepted = slack.submit_view(
            view, {"domain": "img.example.com", "bucket": "b1"}
        )
        posted = fake_slack.wait_for("chat.postMessage").response
        card = fake_slack.message(posted["channel"], posted["ts"])
        clicked = slack.click_button(
            posted["channel"], card, "approve", user_id="U0000BOB"
        )
        fake_slack.wait_for("chat.update", lambda call: call.ok)
        forged = slack.slash_command("/bind-domain", bad_signature=True)
        stale = slack.slash_command("/bind-domain", age=600)

    assert command.status == accepted.status == clicked.status == 200
    assert refused.json == {
        "response_action": "errors",
        "errors": {"domain": "Type a full domain."},
    }
    assert posted["channel"] == CHANNEL
    assert (
        fake_slack.message(CHANNEL, posted["ts"])["text"] == "Approved by <@U0000BOB>"
    )
    assert forged.status == stale.status == 401
    assert len(fake_slack.calls("views.open")) == 1


def test_calls_are_values(fake_slack: FakeSlack) -> None:
    fake_slack.web_client().auth_test()

    call = fake_slack.calls()[0]

    assert isinstance(call, Call)
    with pytest.raises(AttributeError):
        call.method = "other"  # type: ignore[misc]
