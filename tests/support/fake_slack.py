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

Socket Mode is here too. ``apps.connections.open``, called with the app-level token,
hands out a ``ws://`` link to this same server; the app opens a WebSocket there and
the fake greets it with Slack's ``hello``. A test pushes envelopes down the link with
:meth:`FakeSlack.socket_send` and waits for the app's acknowledgement with
:meth:`FakeSlack.socket_ack`. The WebSocket side is RFC 6455 cut down to what Slack's
clients use: text frames (masked by the client, not by the server), ping and pong,
and the closing handshake; no extensions, no TLS.

Every answer follows the shapes in Slack's method reference, reduced to the fields a
bot reads. Nothing here is reachable from outside 127.0.0.1.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import dataclasses
import email.parser
import email.policy
import hashlib
import io
import itertools
import json
import logging
import secrets
import socket
import struct
import threading
import time
import uuid
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

APP_TOKEN = "xapp-1-A0000DBOT-0000000000001-fakedomainbotapptoken"
"""The app-level token a :class:`FakeSlack` accepts for Socket Mode by default."""

# Slack answers these methods for an app-level token only, the rest for the bot's.
_APP_TOKEN_METHODS = frozenset({"apps.connections.open"})
_ENVELOPE_TYPES = frozenset({"slash_commands", "interactive", "events_api"})
_LINK_PATH = "/link/"
# Slack's messages on a link carry this; the fake's host name is its own.
_DEBUG_INFO = {"host": "applink-fake-1", "build_number": 1}

# RFC 6455: the GUID a server hashes with the client's key, opcodes, close codes.
_WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OP_CONTINUATION = 0x0
_OP_TEXT = 0x1
_OP_BINARY = 0x2
_OP_CLOSE = 0x8
_OP_PING = 0x9
_OP_PONG = 0xA
_OPCODES = frozenset({_OP_CONTINUATION, _OP_TEXT, _OP_BINARY})
_CONTROL_OPCODES = frozenset({_OP_CLOSE, _OP_PING, _OP_PONG})
_CLOSE_NORMAL = 1000
_CLOSE_GOING_AWAY = 1001
_CLOSE_PROTOCOL_ERROR = 1002
_CLOSE_TOO_BIG = 1009
_FRAME_LIMIT = 1 << 20
# How long stop() waits for the app to answer its close frame before hanging up.
_CLOSE_WAIT = 1.0

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


@dataclass(frozen=True)
class SocketConnection:
    """One Socket Mode WebSocket the app opened, as it stood when asked.

    ``opened_at`` is the ``time.monotonic()`` reading when the fake sent ``hello``.
    ``closed_by`` is ``"app"`` when the app sent a close frame first or hung up,
    ``"fake"`` when the fake closed first (:meth:`FakeSlack.stop`, a frame that
    breaks RFC 6455), ``None`` while the connection is open. ``close_code`` is the
    code in the app's close frame, ``None`` when none came.
    """

    connection_id: str
    ticket: str
    opened_at: float
    closed_at: float | None = None
    closed_by: str | None = None
    close_code: int | None = None

    @property
    def is_open(self) -> bool:
        """Whether neither side has closed the connection yet."""
        return self.closed_at is None


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


class _ProtocolError(Exception):
    """The app sent a frame RFC 6455 forbids; the fake closes with ``code``."""

    def __init__(self, reason: str, code: int = _CLOSE_PROTOCOL_ERROR) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class _Link:
    """The server's end of one WebSocket: its framing and its state.

    ``state`` and ``pongs`` change only with the fake's lock held; sending is
    serialised by the link's own lock, so a test thread and the reading thread may
    both send.
    """

    def __init__(
        self, sock: socket.socket, rfile: io.BufferedIOBase, state: SocketConnection
    ) -> None:
        self.sock = sock
        self.rfile = rfile
        self.state = state
        self.pongs: list[bytes] = []
        self.thread = threading.current_thread()
        self._send_lock = threading.Lock()
        self._closing = False
        self._fragments: list[bytes] = []
        self._fragment_opcode = _OP_TEXT

    @property
    def closing(self) -> bool:
        """Whether the fake has sent its close frame."""
        return self._closing

    def send(self, opcode: int, data: bytes) -> None:
        """Send one unmasked frame, as a server must.

        Raises:
            ConnectionError: the fake has already sent its close frame.
            OSError: the socket failed.
        """
        with self._send_lock:
            if self._closing:
                raise ConnectionError("the fake has closed this WebSocket")
            self.sock.sendall(_frame(opcode, data))

    def send_json(self, message: Mapping[str, Any]) -> None:
        """Send ``message`` as one text frame of JSON."""
        self.send(_OP_TEXT, json.dumps(message).encode())

    def close(self, code: int, reason: str = "") -> bool:
        """Send a close frame, unless one was sent; whether this call sent it."""
        with self._send_lock:
            if self._closing:
                return False
            self._closing = True
            data = struct.pack("!H", code) + reason.encode()[:123]
            # The app may have hung up already; the link ends either way.
            with contextlib.suppress(OSError):
                self.sock.sendall(_frame(_OP_CLOSE, data))
            return True

    def receive(self) -> tuple[int, bytes]:
        """The next control frame or whole data message from the app, unmasked.

        Raises:
            EOFError: the app hung up.
            _ProtocolError: the app broke RFC 6455.
            OSError: the socket failed.
        """
        while True:
            fin, opcode, data = self._read_frame()
            if opcode in _CONTROL_OPCODES:
                return opcode, data
            if opcode != _OP_CONTINUATION:
                if self._fragments:
                    raise _ProtocolError("a message began inside a fragmented one")
                self._fragment_opcode = opcode
            elif not self._fragments:
                raise _ProtocolError("a continuation frame with nothing to continue")
            self._fragments.append(data)
            if fin:
                message, self._fragments = b"".join(self._fragments), []
                return self._fragment_opcode, message

    def _read_frame(self) -> tuple[bool, int, bytes]:
        first, second = self._read(2)
        fin, opcode, length = bool(first & 0x80), first & 0x0F, second & 0x7F
        if first & 0x70:
            raise _ProtocolError("reserved bits set, but no extension was agreed")
        if opcode not in _OPCODES | _CONTROL_OPCODES:
            raise _ProtocolError(f"unknown opcode {opcode:#x}")
        if not second & 0x80:
            raise _ProtocolError("a client must mask its frames")
        if length == 126:
            (length,) = struct.unpack("!H", self._read(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read(8))
        if opcode in _CONTROL_OPCODES and (length > 125 or not fin):
            raise _ProtocolError("a control frame must be whole and short")
        if length > _FRAME_LIMIT:
            raise _ProtocolError("frame too big for the fake", _CLOSE_TOO_BIG)

        mask = self._read(4)
        masked = self._read(length)
        return fin, opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(masked))

    def _read(self, size: int) -> bytes:
        data = self.rfile.read(size)
        if len(data) < size:
            raise EOFError("the app hung up")
        return data


class FakeSlack:
    """A Slack Web API on ``http://127.0.0.1:<port>``, for tests and benchmarks.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. All methods
    are safe to call from any thread while the server runs.

    Args:
        bot_token: the only token accepted by the methods a bot calls; the app
            token gets ``not_allowed_token_type``, other tokens ``invalid_auth``, a
            request without one ``not_authed``.
        app_token: the only token ``apps.connections.open`` accepts; the bot token
            gets ``not_allowed_token_type``, other tokens ``invalid_auth``.
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
        app_token: str = APP_TOKEN,
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
        self.app_token = app_token
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
        self._links: list[_Link] = []
        self._methods: dict[str, MethodHandler] = {
            "apps.connections.open": self._apps_connections_open,
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
        """Stop serving and close the listening socket; a no-op when stopped.

        Open Socket Mode connections are closed first: each gets a close frame
        (1001, going away) and a second to answer it before the fake hangs up.
        """
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._close_links()
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

        Socket Mode tickets, envelopes and the app's messages go too, but open
        connections stay open. Ids and ``ts`` values keep increasing across a reset.
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

    # -- Socket Mode -------------------------------------------------------------

    def wait_for_socket(
        self, timeout: float = 10.0, *, opened: int = 1
    ) -> SocketConnection:
        """Wait until the app has opened ``opened`` connections; return the newest.

        A connection counts once the fake has sent it ``hello``; the newest one must
        still be open. Pass ``opened=2`` to wait for a reconnection.

        Raises:
            AssertionError: that did not happen within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                if len(self._links) >= opened and self._links[-1].state.is_open:
                    return self._links[-1].state
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            seen = [link.state for link in self._links]
            opens = len(self.calls("apps.connections.open"))
        raise AssertionError(
            f"the app did not open Socket Mode connection number {opened} within "
            f"{timeout} s; apps.connections.open calls: {opens}; connections: {seen}"
        )

    def socket_connections(self) -> list[SocketConnection]:
        """Every Socket Mode connection the app opened, oldest first."""
        with self._lock:
            return [link.state for link in self._links]

    def socket_send(
        self,
        payload_type: str,
        payload: Mapping[str, Any],
        *,
        accepts_response_payload: bool | None = None,
        retry_attempt: int = 0,
        retry_reason: str = "",
    ) -> str:
        """Push an envelope to the app over its newest open connection; its id.

        ``payload`` is what Slack would post over HTTP, as a JSON object: for
        ``slash_commands`` the command's fields, for ``interactive`` the interaction
        itself (not inside a ``payload`` form field), for ``events_api`` the
        ``event_callback`` body. ``accepts_response_payload`` defaults to true,
        except for ``events_api``, whose envelopes also carry ``retry_attempt`` and
        ``retry_reason``.

        Raises:
            ValueError: ``payload_type`` is none of the three.
            RuntimeError: the app has no open connection.
        """
        if payload_type not in _ENVELOPE_TYPES:
            raise ValueError(f"unknown Socket Mode payload type {payload_type!r}")
        if accepts_response_payload is None:
            accepts_response_payload = payload_type != "events_api"
        envelope_id = str(uuid.uuid4())
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "payload": copy.deepcopy(dict(payload)),
            "type": payload_type,
            "accepts_response_payload": accepts_response_payload,
        }
        if payload_type == "events_api":
            envelope.update(retry_attempt=retry_attempt, retry_reason=retry_reason)

        with self._lock:
            link = self._newest_link()
            self._envelopes[envelope_id] = envelope
        link.send_json(envelope)
        logger.debug(
            "fake slack sent envelope=%s type=%s connection=%s",
            envelope_id,
            payload_type,
            link.state.connection_id,
        )
        return envelope_id

    def socket_ack(self, envelope_id: str, timeout: float = 3.0) -> dict[str, Any]:
        """The app's acknowledgement of ``envelope_id``, waiting if needed.

        The answer is the message as the app sent it: ``envelope_id``, and
        ``payload`` when the app acknowledged with content (``text``,
        ``response_action``, ...).

        Raises:
            AssertionError: no acknowledgement arrived within ``timeout`` seconds;
                the message lists the envelopes sent and which were acknowledged.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while envelope_id not in self._acks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    sent = [
                        f"  {key} {envelope['type']} acked={key in self._acks}"
                        for key, envelope in self._envelopes.items()
                    ]
                    raise AssertionError(
                        f"no acknowledgement of envelope {envelope_id} within "
                        f"{timeout} s; envelopes sent:\n"
                        + ("\n".join(sent) or "  (none)")
                    )
                self._changed.wait(remaining)
            return copy.deepcopy(self._acks[envelope_id])

    def socket_messages(self) -> list[dict[str, Any]]:
        """Every text message the app sent over Socket Mode, oldest first.

        Messages are decoded from JSON; one that is not a JSON object is kept as
        ``{"unparsed": <text>}``.
        """
        with self._lock:
            return copy.deepcopy(self._socket_messages)

    def socket_ping(self, data: bytes = b"fake-slack", timeout: float = 3.0) -> float:
        """Ping the app's newest connection; the seconds until its pong came back.

        Raises:
            RuntimeError: the app has no open connection.
            AssertionError: no pong carrying ``data`` came within ``timeout`` s.
        """
        with self._lock:
            link = self._newest_link()
        started = time.monotonic()
        link.send(_OP_PING, data)
        with self._changed:
            while data not in link.pongs:
                remaining = started + timeout - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no pong within {timeout} s")
                self._changed.wait(remaining)
            link.pongs.remove(data)
        return time.monotonic() - started

    def socket_disconnect(self, reason: str = "refresh_requested") -> None:
        """Send Slack's ``disconnect`` message on the newest open connection.

        Slack sends it before it retires a connection (``refresh_requested``,
        ``warning``, ``link_disabled``); a Socket Mode client answers by opening a
        new one. The fake leaves the old connection open for the app to close.

        Raises:
            RuntimeError: the app has no open connection.
        """
        with self._lock:
            link = self._newest_link()
        link.send_json(
            {"type": "disconnect", "reason": reason, "debug_info": _DEBUG_INFO}
        )

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
        expected = self.app_token if method in _APP_TOKEN_METHODS else self.bot_token
        if token != expected:
            # Slack tells a token of the wrong kind from one it does not know.
            known = token in (self.app_token, self.bot_token)
            error = "not_allowed_token_type" if known else "invalid_auth"
            return 200, {"ok": False, "error": error}, {}

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
        self._tickets: dict[str, bool] = {}
        self._envelopes: dict[str, dict[str, Any]] = {}
        self._acks: dict[str, dict[str, Any]] = {}
        self._socket_messages: list[dict[str, Any]] = []

    # -- Socket Mode links (each runs on its request's thread) -------------------

    def _claim_ticket(self, ticket: str) -> _Answer | None:
        """Spend a ticket from ``apps.connections.open``; the refusal, if any."""
        with self._lock:
            if ticket not in self._tickets:
                # The fake's own error names: Slack documents none for the link.
                return _Answer(401, {"ok": False, "error": "invalid_ticket"})
            if self._tickets[ticket]:
                return _Answer(401, {"ok": False, "error": "used_ticket"})
            self._tickets[ticket] = True
        return None

    def _serve_link(
        self, sock: socket.socket, rfile: io.BufferedIOBase, ticket: str
    ) -> None:
        """Greet the app, then answer its frames until the link closes. Blocks."""
        with self._lock:
            number = next(self._ids)
            connections = 1 + sum(1 for link in self._links if link.state.is_open)
        link = _Link(sock, rfile, SocketConnection(f"L{number:06d}", ticket, 0.0))
        link.send_json(self._hello(connections))
        with self._changed:
            link.state = dataclasses.replace(link.state, opened_at=time.monotonic())
            self._links.append(link)
            self._changed.notify_all()
        logger.debug("fake slack socket opened connection=%s", link.state.connection_id)

        closed_by, code = "app", None
        try:
            closed_by, code = self._read_link(link)
        except _ProtocolError as err:
            logger.debug("fake slack socket protocol error: %s", err.reason)
            link.close(err.code, err.reason)
            closed_by = "fake"
        except (EOFError, OSError):
            closed_by = "fake" if link.closing else "app"
        finally:
            with self._changed:
                link.state = dataclasses.replace(
                    link.state,
                    closed_at=time.monotonic(),
                    closed_by=closed_by,
                    close_code=code,
                )
                self._changed.notify_all()
            logger.debug(
                "fake slack socket closed connection=%s by=%s code=%s",
                link.state.connection_id,
                closed_by,
                code,
            )

    def _read_link(self, link: _Link) -> tuple[str, int | None]:
        """Answer frames until a close frame; who closed first and the app's code."""
        while True:
            opcode, data = link.receive()
            if opcode == _OP_PING and not link.closing:
                link.send(_OP_PONG, data)
            elif opcode == _OP_PONG:
                with self._changed:
                    link.pongs.append(data)
                    self._changed.notify_all()
            elif opcode == _OP_TEXT:
                self._receive_socket_message(data)
            elif opcode == _OP_CLOSE:
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
                answered = link.close(code or _CLOSE_NORMAL)
                return ("app" if answered else "fake"), code
            else:
                logger.debug("fake slack ignored a binary frame of %d bytes", len(data))

    def _receive_socket_message(self, data: bytes) -> None:
        text = data.decode("utf-8", "replace")
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            message = {"unparsed": text}
        envelope_id = message.get("envelope_id")
        with self._changed:
            self._socket_messages.append(message)
            if isinstance(envelope_id, str):
                self._acks.setdefault(envelope_id, message)
            self._changed.notify_all()
        logger.debug("fake slack socket received a message envelope=%s", envelope_id)

    def _newest_link(self) -> _Link:
        open_links = [link for link in self._links if link.state.is_open]
        if not open_links or open_links[-1].closing:
            raise RuntimeError("the app has no open Socket Mode connection")
        return open_links[-1]

    def _close_links(self) -> None:
        with self._lock:
            links = list(self._links)
        for link in links:
            link.close(_CLOSE_GOING_AWAY, "the fake Slack is stopping")
        for link in links:
            link.thread.join(_CLOSE_WAIT)
            if link.thread.is_alive():
                with contextlib.suppress(OSError):
                    link.sock.shutdown(socket.SHUT_RDWR)
                link.thread.join()

    def _hello(self, connections: int) -> dict[str, Any]:
        return {
            "type": "hello",
            "num_connections": connections,
            "debug_info": {**_DEBUG_INFO, "approximate_connection_time": 18060},
            "connection_info": {"app_id": self.app_id},
        }

    # -- Web API methods ---------------------------------------------------------

    def _apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        ticket = str(uuid.uuid4())
        self._tickets[ticket] = False
        query = f"ticket={ticket}&app_id={self.app_id}"
        return {"url": f"ws://127.0.0.1:{self.port}{_LINK_PATH}?{query}"}

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
        if urlsplit(self.path).path == _LINK_PATH:
            self._serve_link()
        else:
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

    def _serve_link(self) -> None:
        """Upgrade to a WebSocket for Socket Mode, or refuse with a JSON answer."""
        fake = self.server.fake
        headers = dict(self.headers.items())
        ticket = _form_fields(urlsplit(self.path).query).get("ticket", "")
        refusal = _handshake_refusal(headers) or fake._claim_ticket(ticket)
        if refusal is not None:
            logger.debug("fake slack refused a link: %s", refusal.body["error"])
            self._write(refusal)
            return

        accept = _accept_value(_header(headers, "Sec-WebSocket-Key"))
        self.wfile.write(
            (
                "HTTP/1.1 101 Switching Protocols\r\n"
                "Upgrade: websocket\r\n"
                "Connection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        self.close_connection = True
        fake._serve_link(self.connection, self.rfile, ticket)

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


# -- WebSocket framing --------------------------------------------------------------


def _handshake_refusal(headers: Mapping[str, str]) -> _Answer | None:
    """Why an opening handshake breaks RFC 6455, as an HTTP 400 answer."""
    problems = []
    if _header(headers, "Upgrade").lower() != "websocket":
        problems.append("Upgrade: websocket is missing")
    if "upgrade" not in _header(headers, "Connection").lower():
        problems.append("Connection: Upgrade is missing")
    if not _header(headers, "Sec-WebSocket-Key").strip():
        problems.append("Sec-WebSocket-Key is missing")
    if _header(headers, "Sec-WebSocket-Version").strip() != "13":
        problems.append("Sec-WebSocket-Version must be 13")
    if not problems:
        return None
    body = {"ok": False, "error": "bad_handshake", "problems": problems}
    return _Answer(400, body, {"Sec-WebSocket-Version": "13"})


def _accept_value(key: str) -> str:
    digest = hashlib.sha1((key.strip() + _WEBSOCKET_GUID).encode()).digest()
    return base64.b64encode(digest).decode()


def _frame(opcode: int, data: bytes) -> bytes:
    """One final, unmasked frame: the form a server sends."""
    head = bytes([0x80 | opcode])
    if len(data) < 126:
        head += bytes([len(data)])
    elif len(data) < 1 << 16:
        head += struct.pack("!BH", 126, len(data))
    else:
        head += struct.pack("!BQ", 127, len(data))
    return head + data


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
