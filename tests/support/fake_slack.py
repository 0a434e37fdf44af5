"""A fake Slack Web API served over real HTTP on the loopback interface.

The bot reaches Slack only through ``slack_sdk.WebClient``. Pointing the client's
``base_url`` at :attr:`FakeSlack.api_url` lets a test run the real client, real HTTP
and real JSON against a server in the same process that keeps every request as a
:class:`Call`. The same server answers the ``response_url`` links it hands out.

What the fake remembers, so that it can refuse what Slack would refuse:

- messages it accepted, so ``chat.update`` answers ``message_not_found`` for a ``ts``
  the bot never received;
- views it opened, so ``views.update`` checks ``hash`` and ``views.push`` the stack;
- trigger ids, which open one view each and expire after ``trigger_ttl`` seconds;
- user groups, users and channels a test declares.

Faults a test injects per method: :meth:`FakeSlack.rate_limit` (HTTP 429 with
``Retry-After``), :meth:`FakeSlack.fail` (an ``ok: false`` answer) and
:meth:`FakeSlack.delay`. Blocks are checked against the Block Kit limits the bot is
most likely to break (block count, text lengths, unknown block types).

Every answer follows the shapes in Slack's method reference, reduced to the fields a
bot reads. Nothing here is reachable from outside 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import copy
import email.parser
import email.policy
import itertools
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from slack_sdk import WebClient

logger = logging.getLogger(__name__)

BOT_TOKEN = "xoxb-000000000001-000000000002-fakedomainbottoken"
"""The bot token a :class:`FakeSlack` accepts unless told otherwise."""

# Arguments Slack takes as JSON text inside a form body.
_JSON_FIELDS = frozenset({"blocks", "attachments", "view", "metadata", "unfurls"})

_BLOCK_TYPES = frozenset(
    {
        "actions",
        "context",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "table",
        "video",
    }
)
_MESSAGE_BLOCK_LIMIT = 50
_VIEW_BLOCK_LIMIT = 100
_SECTION_TEXT_LIMIT = 3000
_BUTTON_TEXT_LIMIT = 75
_SELECT_OPTION_LIMIT = 100
_MODAL_LABEL_LIMIT = 24
_PRIVATE_METADATA_LIMIT = 3000
_MESSAGE_TEXT_LIMIT = 40000
_VIEW_STACK_LIMIT = 3

MethodHandler = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Call:
    """One request the fake received, and what it answered.

    ``params`` holds the decoded arguments: form fields, a JSON body or both, with
    JSON-encoded fields such as ``blocks`` or ``view`` turned into Python objects.
    ``token`` is the bearer token sent (or a form ``token`` field), ``at`` the
    ``time.monotonic()`` reading when the request arrived. For a post to a
    ``response_url``, ``method`` is ``"response_url"`` and
    ``params["response_url_id"]`` names the link.
    """

    method: str
    params: dict[str, Any]
    token: str | None
    headers: dict[str, str]
    at: float
    status: int = 200
    response: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the fake answered HTTP 200 with ``"ok": true``."""
        return self.status == 200 and self.response.get("ok") is True

    @property
    def error(self) -> str | None:
        """The ``error`` code of a refused call, ``None`` for a successful one."""
        error = self.response.get("error")
        return error if isinstance(error, str) else None


class _Refusal(Exception):
    """Raised inside a method handler to answer ``ok: false``."""

    def __init__(self, error: str, *messages: str) -> None:
        super().__init__(error)
        self.error = error
        self.messages = messages


@dataclass
class _Fault:
    error: str
    remaining: int
    status: int
    retry_after: int | None = None


@dataclass
class _Trigger:
    issued: float
    view_id: str | None
    used: bool = False


@dataclass(frozen=True)
class _Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class FakeSlack:
    """A Slack Web API on ``http://127.0.0.1:<port>``, for tests and benchmarks.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. All methods
    are safe to call from any thread while the server runs.

    Args:
        bot_token: the only token accepted; other tokens get ``invalid_auth``, a
            request without one ``not_authed``.
        strict_triggers: refuse a ``trigger_id`` the fake did not issue through
            :meth:`new_trigger_id` with ``invalid_trigger_id``. When false, an unknown
            trigger id opens one view and is then spent like any other.
        trigger_ttl: seconds an issued trigger id stays usable (Slack allows 3).
        clock: wall clock for message timestamps and view hashes; pass a fixed
            function for reproducible ``ts`` values.
    """

    def __init__(
        self,
        *,
        bot_token: str = BOT_TOKEN,
        team_id: str = "T0000DBOT",
        team_name: str = "Example",
        team_domain: str = "example",
        app_id: str = "A0000DBOT",
        bot_id: str = "B0000DBOT",
        bot_user_id: str = "U0000DBOT",
        bot_name: str = "domainbot",
        strict_triggers: bool = False,
        trigger_ttl: float = 3.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bot_token = bot_token
        self.team_id = team_id
        self.team_name = team_name
        self.team_domain = team_domain
        self.app_id = app_id
        self.bot_id = bot_id
        self.bot_user_id = bot_user_id
        self.bot_name = bot_name
        self.strict_triggers = strict_triggers
        self.trigger_ttl = trigger_ttl
        self._clock = clock

        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._ids = itertools.count(1)
        self._last_ts_us = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._methods: dict[str, MethodHandler] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "views.push": self._views_push,
            "views.publish": self._views_publish,
            "usergroups.users.list": self._usergroups_users_list,
            "conversations.info": self._conversations_info,
            "users.info": self._users_info,
        }
        self._clear_state()

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> Self:
        """Bind a free port on 127.0.0.1 and serve from a background thread.

        Raises:
            RuntimeError: the server is already running.
        """
        if self._server is not None:
            raise RuntimeError("the fake Slack server is already running")
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"fake-slack-{self.port}",
            daemon=True,
        )
        self._thread.start()
        logger.debug("fake slack listening url=%s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket; a no-op when stopped."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        server.server_close()
        thread.join()
        self._server = self._thread = None
        logger.debug("fake slack stopped")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The TCP port the server listens on.

        Raises:
            RuntimeError: the server is not running.
        """
        if self._server is None:
            raise RuntimeError("the fake Slack server is not running: call start()")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, without a trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """The ``base_url`` for ``slack_sdk.WebClient``, ending in ``/api/``."""
        return f"{self.url}/api/"

    def web_client(self, **kwargs: Any) -> WebClient:
        """A ``WebClient`` holding the accepted bot token and aimed at this fake."""
        kwargs.setdefault("token", self.bot_token)
        return WebClient(base_url=self.api_url, **kwargs)

    # -- what a test sets up -----------------------------------------------------

    def rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with HTTP 429.

        The answer carries ``Retry-After: <retry_after>`` and
        ``{"ok": false, "error": "ratelimited"}``, as Slack's does.
        """
        self._add_fault(method, _Fault("ratelimited", times, 429, retry_after))

    def fail(
        self,
        method: str,
        error: str = "channel_not_found",
        times: int = 1,
        status: int = 200,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with ``ok: false``.

        ``status`` other than 200 imitates a failing Slack edge (say 503).
        """
        self._add_fault(method, _Fault(error, times, status))

    def delay(self, method: str, seconds: float) -> None:
        """Wait ``seconds`` before answering each call of ``method``; 0 stops it.

        The call is recorded when it arrives, before the wait.
        """
        with self._lock:
            if seconds > 0:
                self._delays[method] = seconds
            else:
                self._delays.pop(method, None)

    def new_trigger_id(self, view_id: str | None = None) -> str:
        """Issue a trigger id, usable once within ``trigger_ttl`` seconds.

        ``view_id`` names the modal the interaction came from, so that
        ``views.push`` with this trigger pushes onto that modal's stack.
        """
        with self._lock:
            number = next(self._ids)
            trigger_id = f"{number}.{self.team_id}.{secrets.token_hex(12)}"
            self._triggers[trigger_id] = _Trigger(time.monotonic(), view_id)
        return trigger_id

    def new_response_url(self) -> str:
        """A ``response_url`` on this server: ``<url>/response/<id>``.

        Raises:
            RuntimeError: the server is not running.
        """
        base = self.url
        with self._lock:
            url_id = f"{next(self._ids)}{secrets.token_hex(6)}"
            self._response_urls.add(url_id)
        return f"{base}/response/{url_id}"

    def set_usergroup(self, usergroup_id: str, members: Iterable[str]) -> None:
        """Declare a user group and its members for ``usergroups.users.list``."""
        with self._lock:
            self._usergroups[usergroup_id] = list(members)

    def add_user(
        self,
        user_id: str,
        *,
        name: str | None = None,
        real_name: str | None = None,
        is_bot: bool = False,
        deleted: bool = False,
    ) -> None:
        """Declare a user for ``users.info``; other ``U``/``W`` ids get a stub."""
        with self._lock:
            self._users[user_id] = _user_record(
                user_id, self.team_id, name, real_name, is_bot, deleted
            )

    def add_channel(
        self,
        channel_id: str,
        *,
        name: str | None = None,
        is_private: bool = False,
        is_member: bool = True,
    ) -> None:
        """Declare a channel for ``conversations.info`` and posting.

        The bot may post to public channels it has not joined (the app has
        ``chat:write.public``) but not to a private channel it is not in: that
        answers ``channel_not_found``, as Slack does.
        """
        with self._lock:
            self._channels[channel_id] = _channel_record(
                channel_id, name, is_private, is_member
            )

    def seed_message(
        self,
        channel: str,
        *,
        text: str = "",
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        user: str | None = None,
    ) -> dict[str, Any]:
        """Store a message as if it had been posted earlier and return it.

        Lets a test click buttons on, or update, a message the bot did not post
        during the test.
        """
        params: dict[str, Any] = {"text": text}
        if blocks is not None:
            params["blocks"] = blocks
        if thread_ts is not None:
            params["thread_ts"] = thread_ts
        with self._lock:
            ts = self._next_ts()
            message = self._new_message(params, ts)
            if user is not None:
                message["user"] = user
            self._messages[(channel, ts)] = message
            return copy.deepcopy(message)

    def reset(self) -> None:
        """Forget every call, fault, delay, message, view, trigger and declaration.

        Ids and ``ts`` values keep increasing across a reset.
        """
        with self._lock:
            self._clear_state()

    # -- what a test inspects ----------------------------------------------------

    def calls(self, method: str | None = None) -> list[Call]:
        """Every call received so far, oldest first, optionally of one method."""
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def wait_for(
        self,
        method: str,
        predicate: Callable[[Call], bool] | None = None,
        timeout: float = 10.0,
    ) -> Call:
        """Return the earliest call of ``method`` that matches, waiting if needed.

        Raises:
            AssertionError: no such call arrived within ``timeout`` seconds; the
                message lists every call seen.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for call in self._calls:
                    if call.method == method and (predicate is None or predicate(call)):
                        return call
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            seen = "\n".join(_describe(call) for call in self._calls) or "  (none)"
        matching = " matching the predicate" if predicate is not None else ""
        raise AssertionError(
            f"no {method} call{matching} arrived within {timeout} s; calls seen:\n"
            f"{seen}"
        )

    def messages(self, channel: str | None = None) -> list[Call]:
        """Successful ``chat.postMessage`` calls, optionally to one channel.

        ``channel`` matches either the argument sent or the channel id the fake
        answered (a user id is answered with that user's DM channel).
        """
        return [
            call
            for call in self.calls("chat.postMessage")
            if call.ok
            and (
                channel is None
                or channel in (call.params.get("channel"), call.response["channel"])
            )
        ]

    def thread(self, ts: str) -> list[Call]:
        """Successful ``chat.postMessage`` replies whose ``thread_ts`` is ``ts``."""
        return [
            call
            for call in self.messages()
            if "thread_ts" in call.params and str(call.params["thread_ts"]) == ts
        ]

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        """The message as it stands now, after any ``chat.update``.

        Raises:
            KeyError: no such message.
        """
        with self._lock:
            return copy.deepcopy(self._messages[(channel, ts)])

    def view(self, view_id: str) -> dict[str, Any]:
        """The view as it stands now, after any ``views.update``.

        Raises:
            KeyError: no such view.
        """
        with self._lock:
            return copy.deepcopy(self._views[view_id])

    def home_view(self, user_id: str) -> dict[str, Any]:
        """The Home tab last published for ``user_id``.

        Raises:
            KeyError: nothing was published for that user.
        """
        with self._lock:
            return copy.deepcopy(self._views[self._homes[user_id]])

    # -- serving -----------------------------------------------------------------

    def _answer_api(
        self, method: str, query: str, body: bytes, headers: dict[str, str]
    ) -> _Answer:
        arrived = time.monotonic()
        token = _bearer_token(headers)
        decode_error: _Refusal | None = None
        try:
            params = _decode_params(_header(headers, "Content-Type"), body, query)
        except _Refusal as refusal:
            params, decode_error = {}, refusal
        if token is None and isinstance(params.get("token"), str):
            token = params.pop("token")

        with self._lock:
            status, reply, extra = self._dispatch(method, params, token, decode_error)
            self._record(Call(method, params, token, headers, arrived, status, reply))
            delay = self._delays.get(method, 0.0)
        return _Answer(status, reply, extra, delay)

    def _answer_response_url(
        self, url_id: str, body: bytes, headers: dict[str, str]
    ) -> _Answer:
        arrived = time.monotonic()
        params: dict[str, Any] = {}
        status: int = 200
        reply: dict[str, Any] = {"ok": True}
        extra: dict[str, str] = {}
        try:
            decoded = json.loads(body or b"null")
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            params.update(decoded)
        params["response_url_id"] = url_id

        with self._lock:
            fault = self._take_fault("response_url")
            if fault is not None:
                status, reply, extra = _fault_answer(fault)
            elif url_id not in self._response_urls:
                # The fake's own error name: Slack documents none for this case.
                status, reply = 404, {"ok": False, "error": "unknown_response_url"}
            elif not isinstance(decoded, dict):
                status, reply = 400, {"ok": False, "error": "invalid_payload"}
            call = Call("response_url", params, None, headers, arrived, status, reply)
            self._record(call)
            delay = self._delays.get("response_url", 0.0)
        return _Answer(status, reply, extra, delay)

    def _dispatch(
        self,
        method: str,
        params: dict[str, Any],
        token: str | None,
        decode_error: _Refusal | None,
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        fault = self._take_fault(method)
        if fault is not None:
            return _fault_answer(fault)
        handler = self._methods.get(method)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        if token is None:
            return 200, {"ok": False, "error": "not_authed"}, {}
        if token != self.bot_token:
            return 200, {"ok": False, "error": "invalid_auth"}, {}

        try:
            if decode_error is not None:
                raise decode_error
            return 200, {"ok": True, **handler(params)}, {}
        except _Refusal as refusal:
            reply: dict[str, Any] = {"ok": False, "error": refusal.error}
            if refusal.messages:
                reply["response_metadata"] = {"messages": list(refusal.messages)}
            return 200, reply, {}

    def _record(self, call: Call) -> None:
        self._calls.append(call)
        self._changed.notify_all()
        logger.debug(
            "fake slack answered method=%s status=%s error=%s",
            call.method,
            call.status,
            call.error,
        )

    def _add_fault(self, method: str, fault: _Fault) -> None:
        if fault.remaining < 1:
            raise ValueError(f"times must be at least 1, not {fault.remaining}")
        with self._lock:
            self._faults.setdefault(method, []).append(fault)

    def _take_fault(self, method: str) -> _Fault | None:
        queue = self._faults.get(method)
        if not queue:
            return None
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining == 0:
            queue.pop(0)
        return fault

    def _clear_state(self) -> None:
        self._calls: list[Call] = []
        self._faults: dict[str, list[_Fault]] = {}
        self._delays: dict[str, float] = {}
        self._triggers: dict[str, _Trigger] = {}
        self._response_urls: set[str] = set()
        self._messages: dict[tuple[str, str], dict[str, Any]] = {}
        self._views: dict[str, dict[str, Any]] = {}
        self._stacks: dict[str, list[str]] = {}
        self._last_root: str | None = None
        self._homes: dict[str, str] = {}
        self._usergroups: dict[str, list[str]] = {}
        self._users: dict[str, dict[str, Any]] = {}
        self._channels: dict[str, dict[str, Any]] = {}

    # -- Web API methods ---------------------------------------------------------

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_name,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        _check_message_content(params)
        ts = self._next_ts()
        message = self._new_message(params, ts)
        self._messages[(channel, ts)] = message
        return {"channel": channel, "ts": ts, "message": copy.deepcopy(message)}

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        ts = str(params.get("ts", ""))
        message = self._messages.get((channel, ts))
        if message is None:
            raise _Refusal("message_not_found")
        if not any(params.get(name) for name in ("text", "blocks", "attachments")):
            raise _Refusal("no_text")
        _check_blocks(params.get("blocks"), _MESSAGE_BLOCK_LIMIT, "invalid_blocks")

        for name in ("text", "attachments", "metadata"):
            if name in params:
                message[name] = copy.deepcopy(params[name])
        if "blocks" in params:
            message["blocks"] = _with_block_ids(params["blocks"])
        message["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        return {
            "channel": channel,
            "ts": ts,
            "text": message.get("text", ""),
            "message": copy.deepcopy(message),
        }

    def _chat_post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        self._resolve_channel(params.get("channel"))
        if not params.get("user"):
            raise _Refusal("user_not_in_channel")
        _check_message_content(params)
        return {"message_ts": self._next_ts()}

    def _views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        self._exchange_trigger(params.get("trigger_id"))
        spec = _view_spec(params, "modal")
        view = self._store_view(spec, previous=None, root=None)
        self._stacks[view["id"]] = [view["id"]]
        self._last_root = view["id"]
        return {"view": copy.deepcopy(view)}

    def _views_push(self, params: dict[str, Any]) -> dict[str, Any]:
        trigger = self._exchange_trigger(params.get("trigger_id"))
        spec = _view_spec(params, "modal")
        stack = self._stack_for(trigger.view_id)
        if stack is None:
            raise _Refusal("invalid_arguments", "[ERROR] no modal is open to push onto")
        if len(stack) >= _VIEW_STACK_LIMIT:
            raise _Refusal("push_limit_reached")
        view = self._store_view(spec, previous=stack[-1], root=stack[0])
        stack.append(view["id"])
        return {"view": copy.deepcopy(view)}

    def _views_update(self, params: dict[str, Any]) -> dict[str, Any]:
        current = self._find_view(params.get("view_id"), params.get("external_id"))
        _check_hash(params.get("hash"), current)
        spec = _view_spec(params, current["type"])
        view = self._store_view(
            spec,
            view_id=current["id"],
            previous=current["previous_view_id"],
            root=current["root_view_id"],
        )
        return {"view": copy.deepcopy(view)}

    def _views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        user_id = params.get("user_id")
        if not isinstance(user_id, str) or not user_id:
            raise _Refusal(
                "invalid_arguments", "[ERROR] missing required field: user_id"
            )
        existing = self._homes.get(user_id)
        if existing is not None:
            _check_hash(params.get("hash"), self._views[existing])
        spec = _view_spec(params, "home")
        view = self._store_view(spec, view_id=existing, previous=None, root=None)
        self._homes[user_id] = view["id"]
        return {"view": copy.deepcopy(view)}

    def _usergroups_users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        members = self._usergroups.get(str(params.get("usergroup", "")))
        if members is None:
            raise _Refusal("no_such_subteam")
        return {"users": list(members)}

    def _conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        channel_id = str(params.get("channel", ""))
        record = self._channels.get(channel_id)
        if record is None and channel_id[:1] in ("C", "G", "D") and len(channel_id) > 1:
            record = _channel_record(channel_id, None, channel_id[0] == "G", True)
        if record is None or (record["is_private"] and not record["is_member"]):
            raise _Refusal("channel_not_found")
        return {"channel": copy.deepcopy(record)}

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user_id = str(params.get("user", ""))
        record = self._users.get(user_id)
        if record is None and user_id[:1] in ("U", "W") and len(user_id) > 1:
            record = _user_record(user_id, self.team_id, None, None, False, False)
        if record is None:
            raise _Refusal("user_not_found")
        return {"user": copy.deepcopy(record)}

    # -- helpers that read or change state (called with the lock held) -----------

    def _next_ts(self) -> str:
        micros = max(int(self._clock() * 1_000_000), self._last_ts_us + 1)
        self._last_ts_us = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _next_view_id(self) -> str:
        return f"V{next(self._ids):010X}"

    def _new_message(self, params: dict[str, Any], ts: str) -> dict[str, Any]:
        message: dict[str, Any] = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "text": params.get("text", ""),
            "ts": ts,
        }
        if params.get("blocks"):
            message["blocks"] = _with_block_ids(params["blocks"])
        for name in ("attachments", "metadata"):
            if name in params:
                message[name] = copy.deepcopy(params[name])
        if params.get("thread_ts"):
            message["thread_ts"] = str(params["thread_ts"])
        return message

    def _resolve_channel(self, channel: object) -> str:
        if not isinstance(channel, str) or len(channel) < 2:
            raise _Refusal("channel_not_found")
        if channel[0] in ("U", "W"):
            return "D" + channel[1:]
        if channel.startswith("#"):
            named = [c for c in self._channels.values() if c["name"] == channel[1:]]
            if not named:
                raise _Refusal("channel_not_found")
            channel = str(named[0]["id"])
        if channel[0] not in ("C", "G", "D"):
            raise _Refusal("channel_not_found")
        record = self._channels.get(channel)
        if record is not None and record["is_private"] and not record["is_member"]:
            raise _Refusal("channel_not_found")
        return channel

    def _exchange_trigger(self, trigger_id: object) -> _Trigger:
        if not isinstance(trigger_id, str) or not trigger_id:
            raise _Refusal(
                "invalid_arguments", "[ERROR] missing required field: trigger_id"
            )
        trigger = self._triggers.get(trigger_id)
        if trigger is None:
            if self.strict_triggers:
                raise _Refusal("invalid_trigger_id")
            trigger = _Trigger(time.monotonic(), None)
            self._triggers[trigger_id] = trigger
        if trigger.used:
            raise _Refusal("exchanged_trigger_id")
        if time.monotonic() - trigger.issued > self.trigger_ttl:
            raise _Refusal("expired_trigger_id")
        trigger.used = True
        return trigger

    def _stack_for(self, view_id: str | None) -> list[str] | None:
        if view_id is not None:
            for stack in self._stacks.values():
                if view_id in stack:
                    return stack
        if self._last_root is None:
            return None
        return self._stacks.get(self._last_root)

    def _find_view(self, view_id: object, external_id: object) -> dict[str, Any]:
        if isinstance(view_id, str) and view_id:
            view = self._views.get(view_id)
        elif isinstance(external_id, str) and external_id:
            view = next(
                (v for v in self._views.values() if v["external_id"] == external_id),
                None,
            )
        else:
            raise _Refusal(
                "invalid_arguments", "[ERROR] either view_id or external_id is required"
            )
        if view is None:
            raise _Refusal("not_found")
        return view

    def _store_view(
        self,
        spec: dict[str, Any],
        *,
        view_id: str | None = None,
        previous: str | None,
        root: str | None,
    ) -> dict[str, Any]:
        view_id = view_id or self._next_view_id()
        view: dict[str, Any] = {
            "id": view_id,
            "team_id": self.team_id,
            "type": spec["type"],
            "blocks": _with_block_ids(spec.get("blocks", [])),
            "private_metadata": spec.get("private_metadata", ""),
            "callback_id": spec.get("callback_id", ""),
            "external_id": spec.get("external_id", ""),
            "state": {"values": {}},
            "hash": f"{int(self._clock())}.{secrets.token_hex(4)}",
            "title": copy.deepcopy(spec.get("title")),
            "close": copy.deepcopy(spec.get("close")),
            "submit": copy.deepcopy(spec.get("submit")),
            "clear_on_close": bool(spec.get("clear_on_close", False)),
            "notify_on_close": bool(spec.get("notify_on_close", False)),
            "previous_view_id": previous,
            "root_view_id": root or view_id,
            "app_id": self.app_id,
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }
        self._views[view_id] = view
        return view


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeSlack) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer is normal in timeout tests.
        logger.debug("fake slack request failed client=%s", client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fake slack http %s", format % args)

    def _serve(self) -> None:
        target = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers = dict(self.headers.items())
        fake = self.server.fake

        if target.path.startswith("/api/"):
            method = target.path.removeprefix("/api/")
            answer = fake._answer_api(method, target.query, body, headers)
        elif target.path.startswith("/response/"):
            url_id = target.path.removeprefix("/response/")
            answer = fake._answer_response_url(url_id, body, headers)
        else:
            answer = _Answer(404, {"ok": False, "error": "not_found"})

        if answer.delay > 0:
            time.sleep(answer.delay)
        self._write(answer)

    def _write(self, answer: _Answer) -> None:
        data = json.dumps(answer.body).encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


# -- request decoding --------------------------------------------------------------


def _header(headers: Mapping[str, str], name: str) -> str:
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), "")


def _bearer_token(headers: Mapping[str, str]) -> str | None:
    scheme, _, token = _header(headers, "Authorization").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _decode_params(content_type: str, body: bytes, query: str) -> dict[str, Any]:
    params: dict[str, Any] = _form_fields(query)
    media_type = content_type.split(";", 1)[0].strip().lower()
    if not body:
        pass
    elif media_type == "application/json":
        try:
            decoded = json.loads(body)
        except ValueError as err:
            raise _Refusal("invalid_json") from err
        if not isinstance(decoded, dict):
            raise _Refusal("invalid_json")
        params.update(decoded)
    elif media_type == "application/x-www-form-urlencoded":
        params.update(_form_fields(body.decode("utf-8", "replace")))
    elif media_type == "multipart/form-data":
        params.update(_multipart_fields(content_type, body))
    elif not media_type:
        raise _Refusal("missing_post_type")
    else:
        raise _Refusal("invalid_post_type")

    for name in _JSON_FIELDS & params.keys():
        if isinstance(params[name], str):
            # Text that is not JSON stays text: the method then refuses it.
            with contextlib.suppress(ValueError):
                params[name] = json.loads(params[name])
    return params


def _form_fields(text: str) -> dict[str, Any]:
    return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}


def _multipart_fields(content_type: str, body: bytes) -> dict[str, Any]:
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    parser = email.parser.BytesParser(policy=email.policy.HTTP)
    fields: dict[str, Any] = {}
    for part in parser.parsebytes(head + body).walk():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes) and part.get_filename() is None:
            fields[name] = payload.decode("utf-8", "replace")
        else:
            fields[name] = payload
    return fields


# -- answers and checks ------------------------------------------------------------


def _fault_answer(fault: _Fault) -> tuple[int, dict[str, Any], dict[str, str]]:
    headers = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = str(fault.retry_after)
    return fault.status, {"ok": False, "error": fault.error}, headers


def _describe(call: Call) -> str:
    outcome = "ok" if call.ok else f"error={call.error}"
    shown = []
    for name in ("channel", "ts", "thread_ts", "user", "trigger_id", "view_id"):
        if name in call.params:
            shown.append(f"{name}={call.params[name]}")
    text = call.params.get("text")
    if isinstance(text, str) and text:
        shown.append(f"text={text[:60]!r}")
    return f"  {call.method} -> {call.status} {outcome} {' '.join(shown)}".rstrip()


def _user_record(
    user_id: str,
    team_id: str,
    name: str | None,
    real_name: str | None,
    is_bot: bool,
    deleted: bool,
) -> dict[str, Any]:
    name = name or user_id.lower()
    real_name = real_name or name
    return {
        "id": user_id,
        "team_id": team_id,
        "name": name,
        "real_name": real_name,
        "deleted": deleted,
        "is_bot": is_bot,
        "tz": "Etc/UTC",
        "profile": {"display_name": name, "real_name": real_name},
    }


def _channel_record(
    channel_id: str, name: str | None, is_private: bool, is_member: bool
) -> dict[str, Any]:
    is_im = channel_id.startswith("D")
    return {
        "id": channel_id,
        "name": name or channel_id.lower(),
        "is_channel": not is_im and not is_private,
        "is_group": is_private,
        "is_im": is_im,
        "is_private": is_private or is_im,
        "is_archived": False,
        "is_member": is_member,
    }


def _with_block_ids(blocks: object) -> Any:
    """Copy ``blocks``, giving each block without a ``block_id`` one, as Slack does."""
    copied = copy.deepcopy(blocks)
    if isinstance(copied, list):
        for block in copied:
            if isinstance(block, dict) and not block.get("block_id"):
                block["block_id"] = secrets.token_urlsafe(4)
    return copied


def _check_message_content(params: dict[str, Any]) -> None:
    if not any(params.get(name) for name in ("text", "blocks", "attachments")):
        raise _Refusal("no_text")
    text = params.get("text")
    if isinstance(text, str) and len(text) > _MESSAGE_TEXT_LIMIT:
        raise _Refusal("msg_too_long")
    _check_blocks(params.get("blocks"), _MESSAGE_BLOCK_LIMIT, "invalid_blocks")


def _check_blocks(blocks: object, limit: int, error: str) -> None:
    if blocks is None:
        return
    problems = _block_problems(blocks, limit)
    if problems:
        raise _Refusal(error, *(f"[ERROR] {problem}" for problem in problems))


def _block_problems(blocks: object, limit: int) -> list[str]:
    if not isinstance(blocks, list):
        return ["blocks must be a JSON array"]
    problems = []
    if len(blocks) > limit:
        problems.append(f"no more than {limit} blocks allowed, got {len(blocks)}")
    for index, block in enumerate(blocks):
        where = f"blocks/{index}"
        if not isinstance(block, dict) or block.get("type") not in _BLOCK_TYPES:
            kind = block.get("type") if isinstance(block, dict) else block
            problems.append(f"{where}: unsupported block type {kind!r}")
            continue
        text = block.get("text") if block["type"] == "section" else None
        text_length = len(str(text.get("text", ""))) if isinstance(text, dict) else 0
        if text_length > _SECTION_TEXT_LIMIT:
            problems.append(f"{where}/text: longer than {_SECTION_TEXT_LIMIT}")
        problems.extend(_element_problems(block, where))
    return problems


def _element_problems(block: dict[str, Any], where: str) -> list[str]:
    elements = list(block.get("elements", [])) if block["type"] == "actions" else []
    for key in ("accessory", "element"):
        if isinstance(block.get(key), dict):
            elements.append(block[key])
    problems = []
    for element in elements:
        if not isinstance(element, dict):
            continue
        if element.get("type") == "button":
            label = str(element.get("text", {}).get("text", ""))
            if len(label) > _BUTTON_TEXT_LIMIT:
                problems.append(
                    f"{where}: button text longer than {_BUTTON_TEXT_LIMIT}"
                )
        if len(element.get("options", [])) > _SELECT_OPTION_LIMIT:
            problems.append(f"{where}: more than {_SELECT_OPTION_LIMIT} options")
    return problems


def _view_spec(params: dict[str, Any], kind: str) -> dict[str, Any]:
    spec = params.get("view")
    if not isinstance(spec, dict):
        raise _Refusal("invalid_arguments", "[ERROR] view must be a JSON object")
    problems = []
    if spec.get("type") != kind:
        problems.append(f"view type must be {kind!r}, got {spec.get('type')!r}")
    if kind == "modal":
        if not isinstance(spec.get("title"), dict):
            problems.append("a modal needs a title")
        for name in ("title", "submit", "close"):
            label = spec.get(name)
            text = label.get("text", "") if isinstance(label, dict) else ""
            if len(str(text)) > _MODAL_LABEL_LIMIT:
                problems.append(f"{name} longer than {_MODAL_LABEL_LIMIT} characters")
    if len(str(spec.get("private_metadata", ""))) > _PRIVATE_METADATA_LIMIT:
        problems.append(f"private_metadata longer than {_PRIVATE_METADATA_LIMIT}")
    problems.extend(_block_problems(spec.get("blocks", []), _VIEW_BLOCK_LIMIT))
    if problems:
        raise _Refusal("invalid_arguments", *(f"[ERROR] {p}" for p in problems))
    return spec


def _check_hash(sent: object, view: dict[str, Any]) -> None:
    if sent not in (None, "") and sent != view["hash"]:
        raise _Refusal("hash_conflict")
