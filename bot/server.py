"""Serving Slack's requests: HTTP on a port, or Socket Mode with an app token."""

from __future__ import annotations

import gc
import logging
import sys
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.health import HealthReport
from bot.workers import RequestsInFlight

logger = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
# Python passes the interpreter lock between busy threads every 5 ms. An ack takes
# a dozen short steps (reads, Bolt's checks, the write), and each waits that long
# while after-ack work is computing; 1 ms keeps an ack from queueing behind it.
SWITCH_INTERVAL_SECONDS = 0.001

StartResponse = Callable[..., Any]


def favour_acks() -> None:
    """Tune this process for short requests beside long work.

    Call it once the app is built, just before serving. Besides the switch interval
    (see above), it moves everything made so far (modules, settings, templates,
    table metadata: objects that live as long as the process) out of the garbage
    collector's reach. A full collection walks every tracked object while no thread
    runs; with the start-up heap included that pause reached 100 ms, and any ack
    caught in it waited that long.
    """
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    gc.collect()
    gc.freeze()


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    # socketserver listens with a backlog of 5: a burst of Slack requests (or a
    # load balancer's connections) beyond that waits for the client's SYN retry,
    # a second or more, which eats most of an ack's 3 s.
    request_queue_size = 128


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("http %s", format % args)


def wsgi_app(
    app: App,
    requests: RequestsInFlight | None = None,
    health: Callable[[], HealthReport] | None = None,
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """Slack's requests at ``/slack/events``, a health check, 404 for the rest.

    Slack's requests are counted in ``requests`` while they are answered. The
    health check answers 200 or 503 with ``health``'s report, or a bare 200
    without one.
    """
    slack = SlackRequestHandler(app)
    requests = requests or RequestsInFlight()

    def route(
        environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == EVENTS_PATH and environ.get("REQUEST_METHOD") == "POST":
            with requests.answering():
                return slack(environ, start_response)
        if path == HEALTH_PATH:
            report = health() if health else HealthReport(True, ("ok",))
            status = "200 OK" if report.healthy else "503 Service Unavailable"
            start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
            return [report.text.encode()]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"Slack sends its requests to /slack/events\n"]

    return route


class HttpServer:
    """A threaded HTTP server for the Bolt app; each request gets its own thread."""

    def __init__(
        self,
        app: App,
        *,
        host: str = "0.0.0.0",
        port: int = 3000,
        requests: RequestsInFlight | None = None,
        health: Callable[[], HealthReport] | None = None,
    ) -> None:
        self._server = make_server(
            host,
            port,
            wsgi_app(app, requests, health),
            server_class=_ThreadingWSGIServer,
            handler_class=_QuietHandler,
        )
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def serve_forever(self) -> None:
        logger.info("listening for Slack on port %d at %s", self.port, EVENTS_PATH)
        self._server.serve_forever(poll_interval=0.5)

    def start(self) -> None:
        """Serve in a background thread (for tests and benchmarks)."""
        self._thread = threading.Thread(
            target=self.serve_forever, name="http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def serve_socket_mode(app: App, app_token: str) -> None:
    """Connect to Slack over Socket Mode; needs no public URL.

    Blocks until interrupted (SIGTERM arrives as KeyboardInterrupt), then closes
    the connection with a proper close frame.
    """
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    handler = SocketModeHandler(app, app_token)
    logger.info("connecting to Slack in Socket Mode")
    handler.connect()  # type: ignore[no-untyped-call]
    try:
        threading.Event().wait()
    finally:
        handler.close()  # type: ignore[no-untyped-call]
        logger.info("Socket Mode connection closed")
