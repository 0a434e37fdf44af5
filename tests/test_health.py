"""``/healthz``: the database reachable and the sweep running, or why not."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from slack_bolt import App

from bot.health import MIN_STALL_SECONDS, Health, HealthReport
from bot.server import wsgi_app
from storage import Database


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_running_sweep_and_a_reachable_database_are_healthy(db: Database) -> None:
    ticks = Ticks()
    health = Health(db, sweep_seconds=0.5, monotonic=ticks)
    ticks.now += 3

    report = health.report()

    assert report.healthy
    assert report.text == (
        f"database: ok ({db.dialect})\nsweep: ok, last finished 3 s ago\n"
    )


def test_a_sweep_that_stopped_finishing_is_reported(db: Database) -> None:
    ticks = Ticks()
    health = Health(db, sweep_seconds=5, monotonic=ticks)
    ticks.now += 5 * 12 + 1

    stalled = health.report()
    assert not stalled.healthy
    assert stalled.lines[1] == (
        "sweep: stalled, none finished for 61 s (expected every few seconds); "
        "see the log for 'dns sweep failed'"
    )

    health.sweep_finished()
    assert health.report().healthy


def test_short_sweeps_still_get_a_minute_before_they_count_as_stalled(
    db: Database,
) -> None:
    ticks = Ticks()
    health = Health(db, sweep_seconds=0.5, monotonic=ticks)
    ticks.now += MIN_STALL_SECONDS - 1
    assert health.report().healthy
    ticks.now += 2
    assert not health.report().healthy


def test_an_unreachable_database_is_reported() -> None:
    # Nothing listens on port 9 (discard) on loopback here.
    db = Database("postgresql://postgres@127.0.0.1:9/test?connect_timeout=2")
    try:
        report = Health(db, sweep_seconds=1).report()
    finally:
        db.dispose()
    assert not report.healthy
    assert report.lines[0].startswith("database: unreachable (connection failed:")
    assert report.lines[1].startswith("sweep: ok")


def test_the_check_does_not_wait_for_sqlites_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "domainbot.db"
    db = Database(f"sqlite:///{path}")
    db.create_tables()
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        report = Health(db, sweep_seconds=1).report()
        took = time.monotonic() - started
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        db.dispose()
    assert report.healthy
    assert took < 1


def test_the_endpoint_answers_503_with_the_report_when_unhealthy() -> None:
    app = App(
        signing_secret="secret", token="xoxb-test", token_verification_enabled=False
    )
    reports = iter(
        [
            HealthReport(False, ("database: unreachable (refused)", "sweep: ok")),
            HealthReport(True, ("database: ok (sqlite)", "sweep: ok")),
        ]
    )
    route = wsgi_app(app, health=lambda: next(reports))
    statuses: list[str] = []
    bodies = [
        b"".join(
            route(
                {"PATH_INFO": "/healthz", "REQUEST_METHOD": "GET"},
                lambda status, _headers: statuses.append(status),
            )
        ).decode()
        for _ in range(2)
    ]
    answers = list(zip(statuses, bodies, strict=True))

    assert answers == [
        ("503 Service Unavailable", "database: unreachable (refused)\nsweep: ok\n"),
        ("200 OK", "database: ok (sqlite)\nsweep: ok\n"),
    ]
