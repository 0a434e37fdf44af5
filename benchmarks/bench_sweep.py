"""A DNS sweep over thousands of due checks, alone and with acks sent while it runs.

Run from the repository root::

    .venv/bin/python -m benchmarks.bench_sweep [--bindings 100000] [--due 10000]
    .venv/bin/python -m benchmarks.bench_sweep \\
        --database-url postgresql://postgres@127.0.0.1:5432/test

It starts the DNS lab (Knot behind Unbound, on loopback), stores ``--bindings``
bindings in a fresh database (a SQLite file, or a database made for the run on the
PostgreSQL server given and dropped after) and publishes the due ones' records at
Knot with RFC 2136 updates of many records each. Of the due bindings half (or
``--live-percent``) have their CNAME to the bucket, a tenth a CNAME to another name
(followed to another zone) and the rest no record yet; one in a hundred of those has
waited too long and gives up. The others are live already or due hours later.

The bot then runs in a child process as ``domainbot serve`` would (Bolt app, HTTP
server, services; only the delivery to the fake Slack is left out, see below) and is
asked for two sweeps over everything due: one alone, and one, after the database has
been seeded afresh, while ``--senders`` threads here send it ``/bind-domain``
requests of every kind and time the acks. The figures of each: checks per second
over the whole pass (results written included), whether every result was written,
the peak RSS of the bot's process so far, and the acks' latency. Targets: at least
2,000 checks per second, under 200 MB, every ack within 3 s. The exit status is 0
whether or not they are met.

The outbox delivery is not started in the bot: the thousands of notices a pass of
this size leaves (every binding that goes live has two) would be posted to the fake
Slack while the sweep runs, which measures the fake rather than the sweep.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dns.name
import dns.query
import dns.rcode
import dns.update
from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from benchmarks.bench_acks import (
    BUCKET_LIMIT,
    KIND_TITLES,
    KINDS,
    LOG_FORMAT,
    SLACK_ACK_SECONDS,
    USER,
    AckFigures,
    AckSender,
    Child,
    add_shared_options,
    bot_config,
    child,
    child_log,
    file_config,
    modal,
    say,
    send_acks,
    serving_bot,
    set_listen_backlog,
    temporary_database,
    wait_for_parent,
)
from benchmarks.bench_acks import print_ack_table as _print_ack_table
from bot.config import FileConfig
from storage import Database
from storage.models import BindingState
from tests.support.bot_harness import CHANNEL
from tests.support.dns_lab import DnsLab

logger = logging.getLogger(__name__)

MODULE = "benchmarks.bench_sweep"
RATE_TARGET = 2000.0
RSS_TARGET_MB = 200.0
# Rows per INSERT statement batch when seeding, and records per RFC 2136 update:
# 500 CNAME records keep an update well inside the 64 KiB a TCP message may hold.
SEED_CHUNK = 5000
RECORDS_PER_UPDATE = 500
DUE_PREFIX = "due-"
OTHER_TARGET_ZONE = "example.net.test"
BUCKET_ENDPOINT = "oss-cn-hongkong.aliyuncs.com"


@dataclass(frozen=True)
class SeedPlan:
    """How many bindings to store, and what the due ones will find.

    The bindings are spread over as many buckets as they need, each holding at
    most the configuration's limit of domains.
    """

    bindings: int
    due: int
    live_percent: int = 50

    @property
    def buckets(self) -> list[str]:
        count = max(1, -(-self.bindings // BUCKET_LIMIT))
        return [f"bench-{number:03d}" for number in range(count)]

    def file_config(self) -> FileConfig:
        return file_config(self.buckets)

    def bucket_of(self, number: int) -> tuple[str, str]:
        """The bucket of binding ``number``, and its domain (the CNAME's target)."""
        names = self.buckets
        name = names[number % len(names)]
        return name, f"{name}.{BUCKET_ENDPOINT}"

    def kind_of_due(self, number: int) -> str:
        """``live``, ``elsewhere``, ``missing`` or ``expired`` for due binding n."""
        share = number % 100
        if share < self.live_percent:
            return "live"
        if share < self.live_percent + 10:
            return "elsewhere"
        return "expired" if share == 99 else "missing"

    def expected(self) -> dict[str, int]:
        """How many due bindings should end in each state after the pass."""
        counts = dict.fromkeys(("live", "waiting", "failed"), 0)
        for number in range(self.due):
            kind = self.kind_of_due(number)
            state = {"live": "live", "expired": "failed"}.get(kind, "waiting")
            counts[state] += 1
        return counts


@dataclass(frozen=True)
class SweepFigures:
    """What the bot's process reported about one sweep."""

    checked: int
    live: int
    failed: int
    seconds: float
    rss_before_kb: int
    peak_rss_kb: int

    @property
    def rate(self) -> float:
        return self.checked / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Pass:
    """One sweep as measured: the bot's figures, what was written, the acks."""

    sweep: SweepFigures
    written: dict[str, int]
    acks: dict[str, AckFigures]


@dataclass(frozen=True)
class Run:
    """Everything measured in one run, for the report."""

    plan: SeedPlan
    dialect: str
    seed_seconds: float
    records: int
    updates: int
    publish_seconds: float
    passes: dict[str, Pass]


def bindings_table() -> Table:
    return SQLModel.metadata.tables["bindings"]


def seed(database_url: str, plan: SeedPlan, now: datetime) -> float:
    """Empty the tables and store the plan's bindings; return the seconds taken.

    The rows go in with multi-row inserts of plain table statements.
    """
    started = time.perf_counter()
    db = Database(database_url)
    try:
        db.create_tables()
        with db.engine.begin() as connection:
            for table in reversed(SQLModel.metadata.sorted_tables):
                connection.execute(table.delete())
            rows = (_binding_row(plan, number, now) for number in range(plan.bindings))
            for chunk in _chunks(rows, SEED_CHUNK):
                connection.execute(insert(bindings_table()), chunk)
        # A database in service has statistics; without them PostgreSQL may scan
        # the whole table for the due bindings.
        with db.engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    finally:
        db.dispose()
    return time.perf_counter() - started


def _binding_row(plan: SeedPlan, number: int, now: datetime) -> dict[str, Any]:
    """The columns of binding ``number``: the first ``plan.due`` are due now."""
    bucket, target = plan.bucket_of(number)
    row: dict[str, Any] = {
        "domain": f"{DUE_PREFIX}{number}.example.test",
        "bucket": bucket,
        "target": target,
        "state": BindingState.PENDING_DNS,
        "cdn": False,
        "auto_cname": False,
        "icp_confirmed": False,
        "requested_by": USER,
        "channel": CHANNEL,
        "created_at": now - timedelta(hours=1),
        "live_at": None,
        "released_at": None,
        "next_check_at": now - timedelta(seconds=number % 600),
        "check_count": 3,
        "last_checked_at": now - timedelta(minutes=5),
        "last_found": "no record (NXDOMAIN)",
        "last_problem": None,
        "problem_notified": False,
    }
    if number < plan.due:
        if plan.kind_of_due(number) == "expired":
            row["created_at"] = now - timedelta(days=8)
        return row

    # Not due: live already, or checked again within the next hours.
    row["domain"] = f"later-{number}.example.com"
    if number % 3 == 0:
        row |= {"state": BindingState.LIVE, "next_check_at": None, "live_at": now}
    else:
        row["next_check_at"] = now + timedelta(hours=1, seconds=number % 7200)
    return row


def publish_records(lab: DnsLab, plan: SeedPlan) -> tuple[int, int, float]:
    """Add the due bindings' CNAMEs at Knot; return records, updates and seconds."""
    started = time.perf_counter()
    records = []
    for number in range(plan.due):
        kind = plan.kind_of_due(number)
        if kind == "live":
            records.append((number, plan.bucket_of(number)[1]))
        elif kind == "elsewhere":
            records.append((number, f"other-{number}.{OTHER_TARGET_ZONE}"))

    keyring = lab.tsig.keyring()
    keyname = dns.name.from_text(lab.tsig.name)
    address, port = lab.authoritative
    updates = 0
    for chunk in _chunks(iter(records), RECORDS_PER_UPDATE):
        update = dns.update.UpdateMessage(lab.zone, keyring=keyring, keyname=keyname)
        for number, target in chunk:
            owner = dns.name.from_text(f"{DUE_PREFIX}{number}.{lab.zone}")
            update.replace(owner, 300, "CNAME", target + ".")
        response = dns.query.tcp(update, address, port=port, timeout=30)
        if response.rcode() != dns.rcode.NOERROR:
            raise RuntimeError(
                f"Knot refused an update of {len(chunk)} records: "
                f"{dns.rcode.to_text(response.rcode())}"
            )
        updates += 1
    return len(records), updates, time.perf_counter() - started


def _chunks(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def written_states(database_url: str, since: datetime) -> dict[str, int]:
    """Due bindings whose check was written after ``since``, counted by state."""
    table = bindings_table()
    query = (
        select(table.c.state, func.count())
        .where(table.c.domain.like(f"{DUE_PREFIX}%"))
        .where(table.c.last_checked_at >= since)
        .group_by(table.c.state)
    )
    db = Database(database_url)
    try:
        with db.engine.connect() as connection:
            rows = connection.execute(query).all()
    finally:
        db.dispose()
    words = {BindingState.PENDING_DNS: "waiting"}
    return {words.get(state, str(state)): int(count) for state, count in rows}


def _serve(args: argparse.Namespace) -> int:
    """The child side: the bot, and one sweep each time the parent asks."""
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    if args.listen_backlog:
        set_listen_backlog(args.listen_backlog)
    plan = SeedPlan(args.bindings, args.due, args.live_percent)
    config = bot_config(
        args.slack_url,
        args.database_url,
        resolvers=args.resolvers,
        file=plan.file_config(),
    )
    with serving_bot(config, deliver=False) as (services, server):
        say({"port": server.port, "view": modal(services)})
        for line in wait_for_parent():
            if line != "sweep":
                continue
            rss_before = _current_rss_kb()
            report = services.watch.sweep(budget_seconds=args.budget)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            say({**asdict(report), "rss_before_kb": rss_before, "peak_rss_kb": peak})
    return 0


def _current_rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _run(args: argparse.Namespace, directory: Path) -> Run:
    plan = SeedPlan(args.bindings, min(args.due, args.bindings), args.live_percent)
    lab_directory = directory / "lab"
    lab_directory.mkdir()
    with (
        DnsLab(lab_directory) as lab,
        temporary_database(args.database_url, directory) as database_url,
    ):
        seed_seconds = seed(database_url, plan, datetime.now(UTC))
        records, updates, publish_seconds = publish_records(lab, plan)
        log = child_log("bench-sweep")
        with child("benchmarks.bench_acks", "fake-slack", [], log) as slack:
            bot_args = [
                *("--slack-url", slack.hello["api_url"]),
                *("--database-url", database_url),
                *("--resolvers", lab.resolver),
                *("--budget", str(args.budget)),
                *("--bindings", str(plan.bindings)),
            ]
            if args.listen_backlog:
                bot_args += ["--listen-backlog", str(args.listen_backlog)]
            with child(MODULE, "bot", bot_args, log) as bot:
                passes = {"alone": _pass(args, bot, database_url, lab.zone, 0)}
                if args.senders:
                    seed(database_url, plan, datetime.now(UTC))
                    passes["with acks"] = _pass(
                        args, bot, database_url, lab.zone, args.senders
                    )
    return Run(
        plan=plan,
        dialect=make_url(database_url).get_backend_name(),
        seed_seconds=seed_seconds,
        records=records,
        updates=updates,
        publish_seconds=publish_seconds,
        passes=passes,
    )


def _pass(
    args: argparse.Namespace, bot: Child, database_url: str, zone: str, senders: int
) -> Pass:
    """Ask the bot for a sweep, sending it acks from ``senders`` threads meanwhile."""
    url = f"http://127.0.0.1:{bot.hello['port']}/slack/events"
    sender = AckSender(url, bot.hello["view"], secrets.token_hex(3), zone=zone)
    stop = threading.Event()
    acks: dict[str, AckFigures] = {}

    def load() -> None:
        acks.update(
            send_acks(sender, KINDS, senders=senders, stop=stop, pause=args.pause)
        )

    loader = threading.Thread(target=load, name="ack-load")
    started = datetime.now(UTC)
    if senders:
        loader.start()
    try:
        bot.send("sweep")
        report = bot.receive()
    finally:
        stop.set()
        if senders:
            loader.join()
    sweep = SweepFigures(
        checked=int(report["checked"]),
        live=int(report["live"]),
        failed=int(report["failed"]),
        seconds=float(report["seconds"]),
        rss_before_kb=int(report["rss_before_kb"]),
        peak_rss_kb=int(report["peak_rss_kb"]),
    )
    return Pass(sweep, written_states(database_url, started), acks)


def _print_report(args: argparse.Namespace, run: Run) -> None:
    plan = run.plan
    names = list(run.passes)
    print()
    print(
        f"DNS sweep: {plan.bindings:,} bindings stored ({run.dialect}), "
        f"{plan.due:,} due ({plan.live_percent}% of them live), Knot on loopback, "
        f"{os.cpu_count()} cores"
    )
    print(f"  seeded {plan.bindings:,} bindings in {run.seed_seconds:.2f} s")
    print(
        f"  published {run.records:,} CNAME records in {run.updates} RFC 2136 "
        f"updates in {run.publish_seconds:.2f} s"
    )
    if args.senders:
        print(
            f"  with acks: {args.senders} senders, {args.pause:g} s average pause "
            "after each request"
        )
    print()
    print(f"{'':<34}" + "".join(f"{name:>18}" for name in names) + f"{'target':>18}")
    _rows(run, plan)
    for name, measured in run.passes.items():
        if measured.acks:
            print()
            _print_ack_table(
                f"Acks during the sweep ({name})",
                [(KIND_TITLES[k], "bot", f) for k, f in measured.acks.items()],
            )


def _rows(run: Run, plan: SeedPlan) -> None:
    expected = plan.expected()
    passes = list(run.passes.values())

    def row(label: str, values: list[str], target: str = "") -> None:
        print(f"{label:<34}" + "".join(f"{v:>18}" for v in values) + f"{target:>18}")

    def verdicts(label: str, met: list[bool]) -> None:
        row(label, ["yes" if ok else "NO" for ok in met])

    row("checks in the pass", [f"{p.sweep.checked:,}" for p in passes])
    row(
        "due: live/waiting/failed",
        ["/".join(f"{p.written.get(s, 0):,}" for s in expected) for p in passes],
        "/".join(f"{n:,}" for n in expected.values()),
    )
    verdicts(
        "  every result written",
        [p.written == {s: n for s, n in expected.items() if n} for p in passes],
    )
    row("sweep seconds", [f"{p.sweep.seconds:.2f}" for p in passes])
    row(
        "checks per second",
        [f"{p.sweep.rate:,.0f}" for p in passes],
        f">= {RATE_TARGET:,.0f}",
    )
    verdicts("  met", [p.sweep.rate >= RATE_TARGET for p in passes])
    row(
        "RSS before the sweep, MB",
        [f"{p.sweep.rss_before_kb / 1024:.0f}" for p in passes],
    )
    row(
        "peak RSS of the bot so far, MB",
        [f"{p.sweep.peak_rss_kb / 1024:.0f}" for p in passes],
        f"< {RSS_TARGET_MB:.0f}",
    )
    verdicts("  met", [p.sweep.peak_rss_kb / 1024 < RSS_TARGET_MB for p in passes])
    if any(p.acks for p in passes):
        worst = [max((f.worst for f in p.acks.values()), default=0.0) for p in passes]
        row(
            "slowest ack, s",
            [f"{w:.3f}" if p.acks else "-" for p, w in zip(passes, worst, strict=True)],
            f"< {SLACK_ACK_SECONDS:g}",
        )
        verdicts("  met", [all(f.all_in_time for f in p.acks.values()) for p in passes])


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_sweep",
        description="A DNS sweep over many due checks, alone and with acks.",
    )
    parser.add_argument("--bindings", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument(
        "--live-percent",
        type=int,
        default=50,
        choices=range(90),
        metavar="0-89",
        help="share of the due bindings whose CNAME is live",
    )
    parser.add_argument(
        "--senders",
        type=int,
        default=20,
        help="ack senders during the second sweep (0: no second sweep)",
    )
    parser.add_argument(
        "--pause",
        type=float,
        default=1.0,
        help="seconds each sender waits after a request, on average",
    )
    parser.add_argument(
        "--budget", type=float, default=120.0, help="the sweep's time budget, seconds"
    )
    add_shared_options(parser, servers="the bot's HTTP server")
    parser.add_argument("--resolvers", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.role:
        return _serve(args)
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as temporary:
        run = _run(args, Path(temporary))
    _print_report(args, run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
