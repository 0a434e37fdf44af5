"""Ack latency of ``/bind-domain``, beside a bare Bolt app that only acks.

Run from the repository root::

    .venv/bin/python -m benchmarks.bench_acks [--senders 20] [--requests 50]

Three child processes serve on 127.0.0.1: a fake Slack Web API, the bot (its Bolt
app, services and outbox delivery, over a SQLite file in a temporary directory
unless ``--database-url`` names a PostgreSQL server) and a bare Bolt app whose
listeners only call ``ack()``. Both apps are served by
:class:`bot.server.HttpServer` and get the same signed requests from the same sender
threads in this process, one kind of request at a time:

- ``modal``: ``/bind-domain`` with no text; the bot acks, then opens the modal.
- ``line``: ``/bind-domain <domain> <bucket>``; the bot checks the input, acks with
  a line of text, then binds.
- ``submit``: the modal's submission; the bot checks the input, acks, then binds.

Each app has a process of its own, so that neither the senders nor the other app
compete for its interpreter lock, and each phase starts once the bot's and the fake
Slack's processes are idle, so that work left over from one phase does not slow the
next. Slack wants every ack within 3 s; the target is the bot's p99 at most 1.5
times the bare app's. The exit status is 0 whether or not a target is met.

The sender, the child processes and the temporary database are reused by
:mod:`benchmarks.bench_sweep`.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import math
import os
import random
import secrets
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psycopg
from slack_bolt import Ack, App
from slack_sdk import WebClient
from sqlalchemy.engine import make_url

from bot import server as bot_server
from bot.app import build_app
from bot.config import Config, FileConfig, Settings
from bot.server import HttpServer
from bot.services import Services, build_services
from commands.bind_domain import CALLBACK_ID, ModalState, bind_view
from tests.support.bot_harness import CHANNEL, SIGNING_SECRET
from tests.support.fake_slack import BOT_TOKEN, FakeSlack
from tests.support.slack_requests import Reply, SlackRequests, modal_view

logger = logging.getLogger(__name__)

REPOSITORY = Path(__file__).resolve().parents[1]
USER = "U0000ALICE"
SLACK_ACK_SECONDS = 3.0
P99_RATIO_TARGET = 1.5
KINDS = ("modal", "line", "submit")
KIND_TITLES = {
    "modal": "/bind-domain (opens the modal)",
    "line": "/bind-domain <domain> <bucket>",
    "submit": "modal submission",
}
BUCKET_LIMIT = 1000
# The buckets the senders bind to; bench_sweep adds buckets of its own.
BASE_BUCKETS = (
    {"name": "media-hk", "endpoint": "oss-cn-hongkong.aliyuncs.com"},
    {"name": "eu-assets", "endpoint": "oss-eu-central-1.aliyuncs.com"},
)


def file_config(extra_buckets: Sequence[str] = ()) -> FileConfig:
    """Two buckets of :data:`BUCKET_LIMIT` domains each, and ``extra_buckets``."""
    buckets = [*BASE_BUCKETS]
    buckets += [
        {"name": name, "endpoint": "oss-cn-hongkong.aliyuncs.com"}
        for name in extra_buckets
    ]
    return FileConfig.model_validate(
        {"buckets": [bucket | {"max_domains": BUCKET_LIMIT} for bucket in buckets]}
    )


FILE_CONFIG = file_config()
BUCKETS = tuple(bucket.name for bucket in FILE_CONFIG.buckets)
# A process using less than this share of one core counts as idle.
IDLE_SHARE = 0.05
IDLE_TIMEOUT_SECONDS = 60.0
FAKE_SLACK_BACKLOG = 128
LOG_FORMAT = "%(asctime)s %(processName)s %(levelname)s %(name)s: %(message)s"


@dataclass(frozen=True)
class AckFigures:
    """Latency of one kind of ack, in seconds; errors are failed or non-200 sends."""

    count: int
    errors: int
    p50: float
    p99: float
    worst: float

    @property
    def all_in_time(self) -> bool:
        return self.errors == 0 and self.worst < SLACK_ACK_SECONDS


def ack_figures(samples: Sequence[float], errors: int) -> AckFigures:
    """Nearest-rank percentiles of ``samples``; zeros when there are none."""
    ordered = sorted(samples)
    if not ordered:
        return AckFigures(0, errors, 0.0, 0.0, 0.0)
    return AckFigures(
        count=len(ordered),
        errors=errors,
        p50=_nearest_rank(ordered, 0.50),
        p99=_nearest_rank(ordered, 0.99),
        worst=ordered[-1],
    )


def _nearest_rank(ordered: Sequence[float], fraction: float) -> float:
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


class AckSender:
    """Sends ``/bind-domain`` requests as Slack would; safe to share between threads.

    ``view`` is the modal as the bot opens it: submissions are filled in after its
    blocks. Domains are numbered names under ``zone``, with ``tag`` in them, so
    that no two collide.
    """

    def __init__(
        self, url: str, view: dict[str, Any], tag: str, zone: str = "example.com"
    ) -> None:
        self._slack = SlackRequests(
            url, SIGNING_SECRET, channel_id=CHANNEL, user_id=USER, timeout=30.0
        )
        self._view = view
        self._tag = tag
        self._zone = zone
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    def send(self, kind: str) -> Reply:
        """Send one request of ``kind`` (see :data:`KINDS`); raise OSError as sent."""
        if kind == "modal":
            return self._slack.slash_command("/bind-domain")
        with self._lock:
            number = next(self._numbers)
        domain = f"{kind}-{self._tag}-{number}.{self._zone}"
        bucket = BUCKETS[number % len(BUCKETS)]
        if kind == "line":
            return self._slack.slash_command("/bind-domain", f"{domain} {bucket}")
        view = modal_view(
            CALLBACK_ID,
            private_metadata=str(self._view["private_metadata"]),
            blocks=self._view["blocks"],
            view_id=f"V{self._tag}{number}".upper(),
        )
        return self._slack.submit_view(view, {"domain": domain, "bucket": bucket})


def send_acks(
    sender: AckSender,
    kinds: Sequence[str],
    *,
    senders: int,
    requests: int | None = None,
    stop: threading.Event | None = None,
    pause: float = 0.0,
) -> dict[str, AckFigures]:
    """Send from ``senders`` threads at once and time each ack, by kind.

    Each thread sends ``requests`` requests, or keeps sending until ``stop`` is set,
    cycling through ``kinds`` and waiting ``pause`` seconds on average after each.
    """
    seconds: dict[str, list[float]] = {kind: [] for kind in kinds}
    errors = dict.fromkeys(kinds, 0)
    lock = threading.Lock()

    def work(index: int) -> None:
        if pause:
            # Senders with a pause start at random moments, as people would.
            time.sleep(random.uniform(0, pause))
        for sent in itertools.count():
            if (requests is not None and sent >= requests) or (stop and stop.is_set()):
                return
            kind = kinds[(index + sent) % len(kinds)]
            elapsed = _timed_send(sender, kind)
            with lock:
                if elapsed is None:
                    errors[kind] += 1
                else:
                    seconds[kind].append(elapsed)
            # A random wait, averaging ``pause``, keeps the senders from falling
            # into step and arriving as one burst.
            wait = random.uniform(0, 2 * pause)
            if wait and stop is not None:
                stop.wait(wait)
            elif wait:
                time.sleep(wait)

    threads = [
        threading.Thread(target=work, args=(index,), name=f"sender-{index}")
        for index in range(senders)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {kind: ack_figures(seconds[kind], errors[kind]) for kind in kinds}


def _timed_send(sender: AckSender, kind: str) -> float | None:
    """Seconds until the ack was read; None when it failed or was not a 200."""
    try:
        reply = sender.send(kind)
    except OSError as err:
        logger.warning("request failed kind=%s: %s", kind, err)
        return None
    if reply.status != 200:
        logger.warning("request refused kind=%s status=%d", kind, reply.status)
        return None
    return reply.elapsed


class Child:
    """A benchmark's child process serving on loopback, talking in JSON lines.

    The child says hello on stdout once it serves; closing its stdin tells it to
    stop. Its log goes to ``log``. Raises RuntimeError when it stops unasked.
    """

    def __init__(self, module: str, role: str, args: Sequence[str], log: Path) -> None:
        self.role = role
        self._log_path = log
        self._log = log.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", module, "--role", role, *args],
            cwd=REPOSITORY,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self.hello = self.receive()

    @property
    def pid(self) -> int:
        return self._process.pid

    def send(self, line: str) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(line + "\n")
        self._process.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self.close()
            raise RuntimeError(
                f"the {self.role} process stopped (status "
                f"{self._process.returncode}); its log is {self._log_path}"
            )
        message: dict[str, Any] = json.loads(line)
        return message

    def close(self) -> None:
        """Ask the child to stop and wait for it; kill it after 30 s."""
        if self._process.stdin is not None and not self._process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self._process.stdin.close()
        try:
            self._process.wait(30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._log.close()


def child_log(name: str) -> Path:
    """A fresh log file for a run's child processes, kept after the run."""
    log = Path(tempfile.gettempdir()) / f"domainbot-{name}.log"
    log.write_text("")
    return log


@contextlib.contextmanager
def child(module: str, role: str, args: Sequence[str], log: Path) -> Iterator[Child]:
    running = Child(module, role, args, log)
    try:
        yield running
    finally:
        running.close()


def say(message: dict[str, Any], stream: IO[str] | None = None) -> None:
    """Write one JSON line to the parent (stdout, in a child)."""
    out = stream or sys.stdout
    out.write(json.dumps(message) + "\n")
    out.flush()


def wait_for_parent() -> Iterator[str]:
    """Lines from the parent until it closes our stdin."""
    for line in sys.stdin:
        yield line.strip()


def wait_until_idle(pids: Sequence[int], *, quiet: float = 0.3) -> None:
    """Wait until the processes together use under 5% of a core for ``quiet`` s."""
    deadline = time.monotonic() + IDLE_TIMEOUT_SECONDS
    before = _cpu_seconds(pids)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        after = _cpu_seconds(pids)
        if after - before < IDLE_SHARE * quiet:
            return
        before = after
    logger.warning("processes still busy after %gs pids=%s", IDLE_TIMEOUT_SECONDS, pids)


def _cpu_seconds(pids: Sequence[int]) -> float:
    """User and system CPU time of the processes so far, from /proc."""
    ticks = 0
    for pid in pids:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # Fields after the command name, which may hold spaces; utime and stime are
        # fields 14 and 15 of the whole line.
        fields = stat.rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def temporary_database(server_url: str | None, directory: Path) -> Iterator[str]:
    """A database URL for this run only.

    Without ``server_url``, a SQLite file in ``directory``; a ``sqlite:`` URL is used
    as it is. For a PostgreSQL server URL, a database is created there and dropped
    (with every connection to it) at the end.
    """
    if server_url is None:
        yield f"sqlite:///{directory / 'domainbot.db'}"
        return
    url = make_url(server_url)
    if url.get_backend_name() == "sqlite":
        yield server_url
        return
    name = f"domainbot_bench_{secrets.token_hex(6)}"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bot_config(
    api_url: str,
    database_url: str,
    *,
    resolvers: str = "",
    file: FileConfig = FILE_CONFIG,
) -> Config:
    """The bot's configuration: the fake Slack, this run's database, ``file``."""
    settings = Settings(
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=api_url,
        database_url=database_url,
        domainbot_resolvers=resolvers or None,
    )
    return Config(settings=settings, file=file)


@contextlib.contextmanager
def serving_bot(
    config: Config, *, deliver: bool = True
) -> Iterator[tuple[Services, HttpServer]]:
    """The bot as ``domainbot serve`` runs it, less the scheduled jobs.

    With ``deliver`` false the outbox stays undelivered.
    """
    services = build_services(config)
    server = HttpServer(
        build_app(services),
        host="127.0.0.1",
        port=0,
        requests=services.workers.requests,
    )
    bot_server.favour_acks()
    server.start()
    if deliver:
        services.delivery.start()
    try:
        yield services, server
    finally:
        server.stop()
        services.close()


def bare_app(api_url: str) -> App:
    """A Bolt app that answers the same requests as the bot with a bare ack."""
    app = App(
        signing_secret=SIGNING_SECRET,
        client=WebClient(token=BOT_TOKEN, base_url=api_url),
        logger=logging.getLogger("slack_bolt"),
    )

    def only_ack(ack: Ack) -> None:
        ack()

    app.command("/bind-domain")(only_ack)
    app.view(CALLBACK_ID)(only_ack)
    return app


def modal(services: Services) -> dict[str, Any]:
    """The modal the bot opens for ``/bind-domain``, as the sender fills it in."""
    return bind_view(services, ModalState(channel=CHANNEL, user=USER))


def set_listen_backlog(size: int) -> None:
    """Let :class:`bot.server.HttpServer` queue ``size`` connections, not 5."""
    bot_server._ThreadingWSGIServer.request_queue_size = size


def _serve(args: argparse.Namespace) -> int:
    """The child side: serve one role until the parent closes our stdin."""
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    if args.role == "fake-slack":
        # Python's servers queue 5 connections by default and the kernel drops
        # further SYNs, which the client resends after a second; Slack's edge
        # queues far more, so the fake must not add those seconds to the bot's work.
        socketserver.TCPServer.request_queue_size = FAKE_SLACK_BACKLOG
        with FakeSlack() as fake:
            say({"api_url": fake.api_url})
            for _ in wait_for_parent():
                pass
    if args.listen_backlog:
        # An experiment (see --listen-backlog), not how the bot is served.
        set_listen_backlog(args.listen_backlog)
    if args.role == "bot":
        config = bot_config(args.slack_url, args.database_url)
        with serving_bot(config) as (services, server):
            say({"port": server.port, "view": modal(services)})
            for _ in wait_for_parent():
                pass
    else:
        server = HttpServer(bare_app(args.slack_url), host="127.0.0.1", port=0)
        # As `domainbot serve` does for the bot, to compare like with like.
        bot_server.favour_acks()
        server.start()
        say({"port": server.port})
        for _ in wait_for_parent():
            pass
        server.stop()
    return 0


@dataclass(frozen=True)
class PhaseResult:
    """One kind of request sent to one app; ``cpu`` is its process's CPU seconds
    per request, the work after the ack included."""

    kind: str
    app: str
    figures: AckFigures
    cpu: float


def _measure(
    args: argparse.Namespace, bot: Child, bare: Child, slack: Child
) -> list[PhaseResult]:
    tag = secrets.token_hex(3)
    view = bot.hello["view"]
    apps = {"bare": bare, "bot": bot}
    senders = {
        name: AckSender(_events_url(app), view, f"{tag}{name}")
        for name, app in apps.items()
    }
    everyone = [bot.pid, bare.pid, slack.pid]
    results = []
    for kind in args.kinds:
        for name, app in apps.items():
            wait_until_idle(everyone)
            send_acks(senders[name], [kind], senders=args.senders, requests=args.warmup)
            wait_until_idle(everyone)
            started = _cpu_seconds([app.pid])
            figures = send_acks(
                senders[name],
                [kind],
                senders=args.senders,
                requests=args.requests,
                pause=args.pause,
            )
            wait_until_idle(everyone)
            cpu = (_cpu_seconds([app.pid]) - started) / max(1, figures[kind].count)
            results.append(PhaseResult(kind, name, figures[kind], cpu))
            logger.info("phase done kind=%s app=%s", kind, name)
    return results


def _events_url(server: Child) -> str:
    return f"http://127.0.0.1:{server.hello['port']}/slack/events"


def print_ack_table(
    title: str,
    rows: Sequence[tuple[str, str, AckFigures]],
    cpu: Sequence[float] = (),
) -> None:
    """Print ack figures in milliseconds, one row per kind of request and app.

    ``cpu``, when given, holds each row's CPU milliseconds per request.
    """
    print(title)
    header = (
        f"{'request':<32}{'app':<6}{'acks':>7}{'errors':>8}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
    )
    header += f"{'cpu ms/req':>12}" if cpu else ""
    print(header)
    print("-" * len(header))
    for number, (label, app, figures) in enumerate(rows):
        line = (
            f"{label:<32}{app:<6}{figures.count:>7}{figures.errors:>8}"
            f"{figures.p50 * 1000:>9.1f}{figures.p99 * 1000:>9.1f}"
            f"{figures.worst * 1000:>9.1f}"
        )
        print(line + (f"{cpu[number] * 1000:>12.1f}" if cpu else ""))


def _print_report(args: argparse.Namespace, results: Sequence[PhaseResult]) -> None:
    print()
    print_ack_table(
        f"Ack latency: {args.senders} concurrent senders x {args.requests} requests "
        f"per phase, {args.pause:g} s average pause, 127.0.0.1, "
        f"{os.cpu_count()} cores",
        [(KIND_TITLES[r.kind], r.app, r.figures) for r in results],
        [r.cpu for r in results],
    )
    print()
    print(f"{'target':<52}{'figure':>14}   met")
    by_key = {(r.kind, r.app): r.figures for r in results}
    for kind in args.kinds:
        bot, bare = by_key[(kind, "bot")], by_key[(kind, "bare")]
        ratio = bot.p99 / bare.p99 if bare.p99 else float("inf")
        _print_target(
            f"{kind}: bot p99 <= {P99_RATIO_TARGET:g} x bare p99",
            f"{ratio:.2f}x",
            ratio <= P99_RATIO_TARGET,
        )
        _print_target(
            f"{kind}: every bot ack within {SLACK_ACK_SECONDS:g} s",
            f"max {bot.worst:.3f} s",
            bot.all_in_time,
        )


def _print_target(label: str, figure: str, met: bool) -> None:
    print(f"{label:<52}{figure:>14}   {'yes' if met else 'NO'}")


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_acks",
        description="Ack latency of /bind-domain beside a bare Bolt app.",
    )
    parser.add_argument("--senders", type=int, default=20, help="concurrent senders")
    parser.add_argument(
        "--requests", type=int, default=50, help="requests per sender per phase"
    )
    parser.add_argument(
        "--warmup", type=int, default=3, help="unmeasured requests per sender first"
    )
    parser.add_argument(
        "--pause",
        type=float,
        default=0.0,
        help="seconds each sender waits after an ack, on average; with 0 the "
        "senders keep each app busy, and its acks wait for its earlier work",
    )
    parser.add_argument(
        "--kinds",
        nargs="+",
        choices=KINDS,
        default=list(KINDS),
        help="kinds of request to measure",
    )
    add_shared_options(parser, servers="both apps' HTTP servers")
    return parser.parse_args(argv)


def add_shared_options(parser: argparse.ArgumentParser, *, servers: str) -> None:
    """Options every benchmark takes, and the hidden ones its children are given."""
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server URL (a database is made there for the run and "
        "dropped after); default: a SQLite file in a temporary directory",
    )
    parser.add_argument(
        "--listen-backlog",
        type=int,
        metavar="N",
        help=f"an experiment: let {servers} queue N connections "
        "instead of the 128 bot.server asks for",
    )
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("--slack-url", help=argparse.SUPPRESS)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.role:
        return _serve(args)
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    module = "benchmarks.bench_acks"
    with (
        tempfile.TemporaryDirectory(prefix="bench-acks-") as temporary,
        temporary_database(args.database_url, Path(temporary)) as database_url,
    ):
        log = child_log("bench-acks")
        with child(module, "fake-slack", [], log) as slack:
            served = ["--slack-url", slack.hello["api_url"]]
            if args.listen_backlog:
                served += ["--listen-backlog", str(args.listen_backlog)]
            database = ["--database-url", database_url]
            with (
                child(module, "bot", [*served, *database], log) as bot,
                child(module, "bare", served, log) as bare,
            ):
                results = _measure(args, bot, bare, slack)
    _print_report(args, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
