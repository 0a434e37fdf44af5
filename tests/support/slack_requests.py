"""Requests to the bot's HTTP endpoint, built and signed the way Slack does.

Slack signs every request it sends an app: ``X-Slack-Request-Timestamp`` carries the
Unix time, and ``X-Slack-Signature`` carries ``v0=`` followed by the hex HMAC-SHA256,
keyed with the app's signing secret, of ``v0:<timestamp>:<raw body>``.

:class:`SlackRequests` builds the bodies Slack sends for slash commands, button
clicks (in a message or in a modal), modal submissions and Events API callbacks,
signs them (or, on request, signs them wrongly or with an old timestamp) and posts
them with ``http.client``. Every ``send`` method answers a :class:`Reply`; none
raises for an HTTP error status. The client keeps no global state and one instance
may be shared by many threads, which makes it usable from benchmarks too.

Buttons are looked up in the message or view that carries them, so a test cannot
click a button no user could see; to forge a click, build the payload with a
``*_payload`` method, change it and send it with :meth:`SlackRequests.send_payload`.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import itertools
import json
import logging
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict, Unpack
from urllib.parse import urlencode, urlsplit

logger = logging.getLogger(__name__)

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
JSON_CONTENT_TYPE = "application/json"

# Element types grouped by the key Slack puts their value under in state.values.
_STATE_KEYS = {
    "plain_text_input": "value",
    "email_text_input": "value",
    "url_text_input": "value",
    "number_input": "value",
    "rich_text_input": "rich_text_value",
    "static_select": "selected_option",
    "external_select": "selected_option",
    "radio_buttons": "selected_option",
    "multi_static_select": "selected_options",
    "multi_external_select": "selected_options",
    "checkboxes": "selected_options",
    "users_select": "selected_user",
    "multi_users_select": "selected_users",
    "conversations_select": "selected_conversation",
    "multi_conversations_select": "selected_conversations",
    "channels_select": "selected_channel",
    "multi_channels_select": "selected_channels",
    "datepicker": "selected_date",
    "timepicker": "selected_time",
}
_MULTI_VALUE_KEYS = frozenset(
    {
        "selected_options",
        "selected_users",
        "selected_conversations",
        "selected_channels",
    }
)


class SendOptions(TypedDict, total=False):
    """How to deliver a request; every key is optional.

    ``age``: seconds the timestamp lies in the past (negative: in the future).
    ``bad_signature``: sign with a secret other than the app's.
    ``unsigned``: send neither signature header.
    ``headers``: extra headers, applied last, so they may replace the signature
    (for example ``X-Slack-Retry-Num``; see :func:`retry_headers`).
    ``timeout``: socket timeout in seconds for this request.
    """

    age: float
    bad_signature: bool
    unsigned: bool
    headers: Mapping[str, str]
    timeout: float


class InteractionSource(Protocol):
    """What the client needs from a fake Slack (``tests.support.fake_slack``)."""

    @property
    def team_id(self) -> str: ...

    @property
    def app_id(self) -> str: ...

    @property
    def bot_user_id(self) -> str: ...

    def new_trigger_id(self, view_id: str | None = None) -> str: ...

    def new_response_url(self) -> str: ...


@dataclass(frozen=True)
class Reply:
    """What the bot's endpoint answered.

    ``json`` is the parsed body when it is JSON, else ``None``; ``elapsed`` is the
    wall time in seconds from sending the request to reading the whole answer.
    """

    status: int
    headers: dict[str, str]
    body: str
    json: Any
    elapsed: float

    def header(self, name: str) -> str | None:
        """The value of header ``name``, looked up without regard to case."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)


@dataclass(frozen=True)
class Select:
    """A static-select choice for :func:`state_values` when no view is at hand."""

    value: str
    text: str | None = None


def sign_request(signing_secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Slack-Signature`` value for ``body`` sent at ``timestamp``."""
    base = b"v0:" + timestamp.encode() + b":" + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return f"v0={digest}"


def retry_headers(number: int = 1, reason: str = "http_timeout") -> dict[str, str]:
    """The headers Slack adds when it redelivers an Events API request."""
    return {"X-Slack-Retry-Num": str(number), "X-Slack-Retry-Reason": reason}


def modal_view(
    callback_id: str,
    *,
    private_metadata: str = "",
    blocks: Sequence[Mapping[str, Any]] = (),
    view_id: str = "V0000MODAL",
    view_hash: str = "1700000000.0a1b2c3d",
) -> dict[str, Any]:
    """A minimal modal as Slack describes it in payloads, for tests without a fake.

    A view returned by the fake's ``views.open`` or ``FakeSlack.view`` serves the
    same purpose and is closer to what the bot really opened.
    """
    return {
        "id": view_id,
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": private_metadata,
        "blocks": [dict(block) for block in blocks],
        "hash": view_hash,
        "state": {"values": {}},
        "title": {"type": "plain_text", "text": "domainbot"},
        "previous_view_id": None,
        "root_view_id": view_id,
    }


def state_values(
    values: Mapping[str, Any], view: Mapping[str, Any] | None = None
) -> dict[str, dict[str, dict[str, Any]]]:
    """Build ``view.state.values`` from a plain mapping of block id to value.

    A value may be a string, a list of strings, a :class:`Select`, ``None``, a
    mapping of action id to such a value, or a typed element value (a mapping with a
    ``type`` key) used as it is. When ``view`` has blocks, each value is typed after
    the element in its block (a string for a static select picks the option with
    that value), and inputs left out carry their initial or empty value, as in
    Slack's payloads. Without a view, a string becomes a ``plain_text_input``, a
    list ``checkboxes`` and the action id is the block id.

    Raises:
        AssertionError: a block, action or option does not exist in ``view``, so no
            user could have entered that value.
    """
    elements = _interactive_elements(view.get("blocks", [])) if view else {}
    unknown = sorted(set(values) - set(elements)) if elements else []
    if unknown:
        raise AssertionError(
            f"no input block {unknown} in view {view and view.get('id')}; "
            f"it has {sorted(elements)}"
        )

    state: dict[str, dict[str, dict[str, Any]]] = {}
    for block_id, by_action in elements.items():
        state[block_id] = {
            action_id: _initial_value(element)
            for action_id, element in by_action.items()
        }
    for block_id, given in values.items():
        state.setdefault(block_id, {}).update(
            _block_state(block_id, given, elements.get(block_id))
        )
    return state


class SlackRequests:
    """Sends what Slack would send to the bot's request URL.

    Args:
        url: the bot's endpoint, ``http://127.0.0.1:<port>/slack/events``.
        signing_secret: the app's signing secret, as the bot is configured.
        fake: a fake Slack to issue trigger ids and response URLs, so that
            ``views.open`` and ``response_url`` posts reach it. Without one, trigger
            ids are made up locally and response URLs point at a closed loopback
            port.
        user_id, user_name, channel_id, channel_name: who clicks and where, unless
            a call says otherwise.
    """

    def __init__(
        self,
        url: str,
        signing_secret: str,
        *,
        fake: InteractionSource | None = None,
        team_id: str | None = None,
        team_domain: str = "example",
        api_app_id: str | None = None,
        verification_token: str = "fake-verification-token",
        user_id: str = "U0000ALICE",
        user_name: str = "alice",
        channel_id: str = "C0000OPS",
        channel_name: str = "ops",
        timeout: float = 10.0,
    ) -> None:
        target = urlsplit(url)
        if target.scheme != "http" or not target.hostname:
            raise ValueError(f"expected an http:// URL on loopback, got {url!r}")
        self._host = target.hostname
        self._port = target.port or 80
        self._path = target.path or "/"
        self._signing_secret = signing_secret
        self._fake = fake
        self.team_id = team_id or (fake.team_id if fake else "T0000DBOT")
        self.team_domain = team_domain
        self.api_app_id = api_app_id or (fake.app_id if fake else "A0000DBOT")
        self.verification_token = verification_token
        self.user_id = user_id
        self.user_name = user_name
        self.channel_id = channel_id
        self.channel_name = channel_name
        self._timeout = timeout
        self._numbers = itertools.count(1)
        self._numbers_lock = threading.Lock()

    # -- slash commands ----------------------------------------------------------

    def slash_command_body(
        self,
        command: str,
        text: str = "",
        *,
        user_id: str | None = None,
        user_name: str | None = None,
        channel_id: str | None = None,
        channel_name: str | None = None,
    ) -> dict[str, str]:
        """The form fields of a slash command, with a new trigger id."""
        return {
            "token": self.verification_token,
            "team_id": self.team_id,
            "team_domain": self.team_domain,
            "channel_id": channel_id or self.channel_id,
            "channel_name": channel_name or self.channel_name,
            "user_id": user_id or self.user_id,
            "user_name": user_name or self.user_name,
            "command": command,
            "text": text,
            "api_app_id": self.api_app_id,
            "is_enterprise_install": "false",
            "response_url": self._response_url(),
            "trigger_id": self._trigger_id(),
        }

    def slash_command(
        self,
        command: str,
        text: str = "",
        *,
        user_id: str | None = None,
        user_name: str | None = None,
        channel_id: str | None = None,
        channel_name: str | None = None,
        **options: Unpack[SendOptions],
    ) -> Reply:
        """Send a slash command, as typed by ``user_id`` in ``channel_id``."""
        fields = self.slash_command_body(
            command,
            text,
            user_id=user_id,
            user_name=user_name,
            channel_id=channel_id,
            channel_name=channel_name,
        )
        return self.send_form(fields, **options)

    # -- interactivity -----------------------------------------------------------

    def button_click_payload(
        self,
        channel_id: str,
        message: Mapping[str, Any],
        action_id: str,
        *,
        user_id: str | None = None,
        user_name: str | None = None,
        channel_name: str | None = None,
    ) -> dict[str, Any]:
        """A ``block_actions`` payload for a click on a button in ``message``.

        ``message`` is the message as Slack shows it (``ts``, ``blocks``, maybe
        ``thread_ts``), for example ``FakeSlack.message(channel, ts)``.

        Raises:
            AssertionError: the message has no button with ``action_id``.
        """
        block_id, button = _find_button(
            message.get("blocks", []), action_id, f"message ts={message.get('ts')}"
        )
        container: dict[str, Any] = {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": channel_id,
            "is_ephemeral": False,
        }
        if message.get("thread_ts"):
            container["thread_ts"] = message["thread_ts"]
        return {
            **self._interaction_head("block_actions", user_id, user_name, None),
            "container": container,
            "channel": {"id": channel_id, "name": channel_name or self.channel_name},
            "message": json.loads(json.dumps(message)),
            "state": {"values": {}},
            "response_url": self._response_url(),
            "actions": [self._button_action(block_id, button)],
        }

    def click_button(
        self,
        channel_id: str,
        message: Mapping[str, Any],
        action_id: str,
        *,
        user_id: str | None = None,
        user_name: str | None = None,
        **options: Unpack[SendOptions],
    ) -> Reply:
        """Send a click on the button ``action_id`` of ``message``.

        Raises:
            AssertionError: the message has no such button.
        """
        payload = self.button_click_payload(
            channel_id, message, action_id, user_id=user_id, user_name=user_name
        )
        return self.send_payload(payload, **options)

    def view_button_click_payload(
        self,
        view: Mapping[str, Any],
        action_id: str,
        values: Mapping[str, Any] | None = None,
        *,
        user_id: str | None = None,
        user_name: str | None = None,
    ) -> dict[str, Any]:
        """A ``block_actions`` payload for a click on a button inside a modal.

        ``values`` are what the user has typed so far, as for :func:`state_values`.

        Raises:
            AssertionError: the view has no button with ``action_id``.
        """
        view_id = str(view.get("id", ""))
        block_id, button = _find_button(
            view.get("blocks", []), action_id, f"view {view_id}"
        )
        return {
            **self._interaction_head("block_actions", user_id, user_name, view_id),
            "container": {"type": "view", "view_id": view_id},
            "view": self._view_with_state(view, values or {}),
            "actions": [self._button_action(block_id, button)],
        }

    def click_view_button(
        self,
        view: Mapping[str, Any],
        action_id: str,
        values: Mapping[str, Any] | None = None,
        *,
        user_id: str | None = None,
        user_name: str | None = None,
        **options: Unpack[SendOptions],
    ) -> Reply:
        """Send a click on the button ``action_id`` inside the modal ``view``."""
        payload = self.view_button_click_payload(
            view, action_id, values, user_id=user_id, user_name=user_name
        )
        return self.send_payload(payload, **options)

    def view_submission_payload(
        self,
        view: Mapping[str, Any],
        values: Mapping[str, Any] | None = None,
        *,
        user_id: str | None = None,
        user_name: str | None = None,
    ) -> dict[str, Any]:
        """A ``view_submission`` payload for ``view`` filled in with ``values``.

        ``view`` keeps its ``id``, ``hash``, ``callback_id`` and
        ``private_metadata``; ``values`` become ``state.values`` through
        :func:`state_values`.
        """
        view_id = str(view.get("id", ""))
        return {
            **self._interaction_head("view_submission", user_id, user_name, view_id),
            "view": self._view_with_state(view, values or {}),
            "response_urls": [],
        }

    def submit_view(
        self,
        view: Mapping[str, Any],
        values: Mapping[str, Any] | None = None,
        *,
        user_id: str | None = None,
        user_name: str | None = None,
        **options: Unpack[SendOptions],
    ) -> Reply:
        """Send the submission of ``view`` filled in with ``values``."""
        payload = self.view_submission_payload(
            view, values, user_id=user_id, user_name=user_name
        )
        return self.send_payload(payload, **options)

    # -- Events API --------------------------------------------------------------

    def event_body(
        self, event: Mapping[str, Any], *, event_id: str | None = None
    ) -> dict[str, Any]:
        """The ``event_callback`` envelope Slack wraps around ``event``."""
        number = self._next_number()
        bot_user_id = self._fake.bot_user_id if self._fake else "U0000DBOT"
        return {
            "token": self.verification_token,
            "team_id": self.team_id,
            "api_app_id": self.api_app_id,
            "event": dict(event),
            "type": "event_callback",
            "event_id": event_id or f"Ev{number:08d}{secrets.token_hex(3).upper()}",
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }

    def send_event(
        self,
        event: Mapping[str, Any],
        *,
        event_id: str | None = None,
        **options: Unpack[SendOptions],
    ) -> Reply:
        """Send ``event`` wrapped as an Events API callback, as JSON.

        To send a redelivery, pass the same ``event_id`` and
        ``headers=retry_headers(1)``.
        """
        body = json.dumps(self.event_body(event, event_id=event_id)).encode()
        return self.send_raw(body, content_type=JSON_CONTENT_TYPE, **options)

    def app_home_opened(
        self,
        *,
        user_id: str | None = None,
        tab: str = "home",
        event_id: str | None = None,
        **options: Unpack[SendOptions],
    ) -> Reply:
        """Send the ``app_home_opened`` event for ``user_id`` opening ``tab``."""
        user = user_id or self.user_id
        event = {
            "type": "app_home_opened",
            "user": user,
            "channel": "D" + user[1:],
            "tab": tab,
            "event_ts": f"{time.time():.6f}",
        }
        return self.send_event(event, event_id=event_id, **options)

    # -- sending -----------------------------------------------------------------

    def send_form(
        self, fields: Mapping[str, str], **options: Unpack[SendOptions]
    ) -> Reply:
        """Send ``fields`` form-encoded, as Slack sends slash commands."""
        body = urlencode(fields).encode()
        return self.send_raw(body, content_type=FORM_CONTENT_TYPE, **options)

    def send_payload(
        self, payload: Mapping[str, Any], **options: Unpack[SendOptions]
    ) -> Reply:
        """Send ``payload`` as the JSON form field ``payload``, as for interactivity."""
        return self.send_form({"payload": json.dumps(payload)}, **options)

    def send_raw(
        self, body: bytes, *, content_type: str, **options: Unpack[SendOptions]
    ) -> Reply:
        """Sign ``body`` (unless told not to) and post it; never raises on a status.

        Raises:
            OSError: the endpoint could not be reached or did not answer in time.
        """
        headers = {"Content-Type": content_type, "User-Agent": "Slackbot 1.0"}
        if not options.get("unsigned", False):
            timestamp = str(int(time.time() - options.get("age", 0.0)))
            secret = self._signing_secret
            if options.get("bad_signature", False):
                secret = "not-" + secret
            headers["X-Slack-Request-Timestamp"] = timestamp
            headers["X-Slack-Signature"] = sign_request(secret, timestamp, body)
        headers.update(options.get("headers", {}))
        return self._post(body, headers, options.get("timeout", self._timeout))

    def _post(self, body: bytes, headers: dict[str, str], timeout: float) -> Reply:
        connection = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        try:
            started = time.perf_counter()
            connection.request("POST", self._path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            elapsed = time.perf_counter() - started
            answer_headers = dict(response.getheaders())
            status = response.status
        finally:
            connection.close()

        text = data.decode("utf-8", "replace")
        logger.debug(
            "slack request answered path=%s status=%s elapsed=%.3f",
            self._path,
            status,
            elapsed,
        )
        return Reply(status, answer_headers, text, _parse_json(text), elapsed)

    # -- pieces ------------------------------------------------------------------

    def _next_number(self) -> int:
        with self._numbers_lock:
            return next(self._numbers)

    def _trigger_id(self, view_id: str | None = None) -> str:
        if self._fake is not None:
            return self._fake.new_trigger_id(view_id)
        return f"{self._next_number()}.{int(time.time())}.{secrets.token_hex(12)}"

    def _response_url(self) -> str:
        if self._fake is not None:
            return self._fake.new_response_url()
        # Port 9 (discard) is closed on loopback: a post there fails fast.
        return f"http://127.0.0.1:9/response/{secrets.token_hex(8)}"

    def _interaction_head(
        self,
        kind: str,
        user_id: str | None,
        user_name: str | None,
        view_id: str | None,
    ) -> dict[str, Any]:
        name = user_name or self.user_name
        return {
            "type": kind,
            "team": {"id": self.team_id, "domain": self.team_domain},
            "user": {
                "id": user_id or self.user_id,
                "username": name,
                "name": name,
                "team_id": self.team_id,
            },
            "api_app_id": self.api_app_id,
            "token": self.verification_token,
            "trigger_id": self._trigger_id(view_id),
            "enterprise": None,
            "is_enterprise_install": False,
        }

    @staticmethod
    def _button_action(block_id: str, button: Mapping[str, Any]) -> dict[str, Any]:
        action: dict[str, Any] = {
            "action_id": button["action_id"],
            "block_id": block_id,
            "text": button.get("text"),
            "type": "button",
            "action_ts": f"{time.time():.6f}",
        }
        for name in ("value", "style"):
            if name in button:
                action[name] = button[name]
        return action

    @staticmethod
    def _view_with_state(
        view: Mapping[str, Any], values: Mapping[str, Any]
    ) -> dict[str, Any]:
        copied: dict[str, Any] = json.loads(json.dumps(view))
        has_blocks = bool(copied.get("blocks"))
        copied["state"] = {
            "values": state_values(values, copied if has_blocks else None)
        }
        return copied


def _parse_json(text: str) -> Any:
    if not text.lstrip().startswith(("{", "[")):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _find_button(
    blocks: Sequence[Mapping[str, Any]], action_id: str, where: str
) -> tuple[str, Mapping[str, Any]]:
    labels = []
    for block in blocks:
        candidates = (
            list(block.get("elements", [])) if block.get("type") == "actions" else []
        )
        if isinstance(block.get("accessory"), Mapping):
            candidates.append(block["accessory"])
        for element in candidates:
            if element.get("type") != "button":
                continue
            if element.get("action_id") == action_id:
                return str(block.get("block_id", "")), element
            labels.append(str(element.get("action_id")))
    raise AssertionError(
        f"no button with action_id={action_id!r} in {where}; its buttons: {labels}"
    )


def _interactive_elements(
    blocks: Sequence[Mapping[str, Any]],
) -> dict[str, dict[str, Mapping[str, Any]]]:
    """Block id to action id to element, for every element that holds a value."""
    found: dict[str, dict[str, Mapping[str, Any]]] = {}
    for block in blocks:
        block_id = str(block.get("block_id", ""))
        if block.get("type") == "input":
            candidates = [block.get("element")]
        elif block.get("type") == "actions":
            candidates = list(block.get("elements", []))
        else:
            candidates = [block.get("accessory")]
        for element in candidates:
            if isinstance(element, Mapping) and element.get("type") in _STATE_KEYS:
                action_id = str(element.get("action_id", ""))
                found.setdefault(block_id, {})[action_id] = element
    return found


def _initial_value(element: Mapping[str, Any]) -> dict[str, Any]:
    kind = str(element["type"])
    key = _STATE_KEYS[kind]
    initial_key = "initial_" + key.removeprefix("selected_")
    if key == "value":
        initial_key = "initial_value"
    empty: Any = [] if key in _MULTI_VALUE_KEYS else None
    return {"type": kind, key: element.get(initial_key, empty)}


def _block_state(
    block_id: str, given: Any, elements: Mapping[str, Mapping[str, Any]] | None
) -> dict[str, dict[str, Any]]:
    if isinstance(given, Mapping) and "type" not in given:
        by_action = dict(given)
    elif elements and len(elements) > 1:
        raise AssertionError(
            f"block {block_id} holds {sorted(elements)}: name the action id"
        )
    else:
        action_id = next(iter(elements)) if elements else block_id
        by_action = {action_id: given}

    state = {}
    for action_id, value in by_action.items():
        element = elements.get(action_id) if elements else None
        if elements and element is None:
            raise AssertionError(
                f"block {block_id} has no action {action_id!r}; "
                f"it has {sorted(elements)}"
            )
        state[action_id] = _typed_value(value, element)
    return state


def _typed_value(value: Any, element: Mapping[str, Any] | None) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    if element is None:
        return _untyped_value(value)

    kind = str(element["type"])
    key = _STATE_KEYS[kind]
    if key == "selected_option":
        return {"type": kind, key: _option(element, value)}
    if key == "selected_options":
        chosen = [value] if isinstance(value, str) else list(value or [])
        return {"type": kind, key: [_option(element, v) for v in chosen]}
    return {"type": kind, key: value}


def _untyped_value(value: Any) -> dict[str, Any]:
    if isinstance(value, Select):
        return {"type": "static_select", "selected_option": _made_option(value)}
    if isinstance(value, list | tuple):
        options = [_made_option(Select(str(v))) for v in value]
        return {"type": "checkboxes", "selected_options": options}
    return {"type": "plain_text_input", "value": value}


def _made_option(choice: Select) -> dict[str, Any]:
    text = {"type": "plain_text", "text": choice.text or choice.value, "emoji": True}
    return {"text": text, "value": choice.value}


def _option(element: Mapping[str, Any], value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, Select):
        value = value.value
    options = list(element.get("options", []))
    for group in element.get("option_groups", []):
        options.extend(group.get("options", []))
    if not options:
        # External selects load their options from the app at run time.
        return _made_option(Select(str(value)))
    for option in options:
        if option.get("value") == value:
            return dict(option)
    offered = [option.get("value") for option in options]
    raise AssertionError(
        f"{element.get('action_id')} offers no option {value!r}; it offers {offered}"
    )
