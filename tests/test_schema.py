"""Schema versions: a new database is stamped, an older one upgraded, a newer refused.

Each test gets an empty database of its own, a SQLite file or a fresh PostgreSQL
database, because the steps here change tables.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Connection, inspect, text

from bot.errors import ConfigError
from storage import Database
from storage.models import AuditEvent
from storage.schema import SCHEMA_VERSION, Step, bring_up_to_date
from tests.conftest_db import POSTGRES_ADMIN_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def empty(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'domainbot.db'}")
        yield db
        db.dispose()
        return
    name = f"domainbot_schema_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    db = Database(f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}")
    try:
        yield db
    finally:
        db.dispose()
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def version(db: Database) -> int:
    with db.engine.connect() as connection:
        return int(
            connection.execute(text("SELECT version FROM schema_version")).one()[0]
        )


def audit(db: Database, domain: str) -> None:
    with db.transaction() as tx:
        tx.audit.record(
            AuditEvent(
                at=datetime(2026, 12, 1, tzinfo=UTC),
                actor="U0000ALICE",
                subject="binding",
                subject_id=1,
                domain=domain,
                action="bound",
            )
        )


def test_an_empty_database_gets_every_table_and_the_current_version(
    empty: Database,
) -> None:
    empty.create_tables()

    assert version(empty) == SCHEMA_VERSION
    assert {"bindings", "challenges", "approvals", "audit_events"} <= set(
        inspect(empty.engine).get_table_names()
    )
    empty.create_tables()
    assert version(empty) == SCHEMA_VERSION


def test_a_database_from_before_versions_counts_as_the_first(empty: Database) -> None:
    empty.create_tables()
    audit(empty, "img.example.com")
    with empty.engine.begin() as connection:
        connection.execute(text("DROP TABLE schema_version"))

    empty.create_tables()

    assert version(empty) == 1
    with empty.transaction() as tx:
        assert [e.domain for e in tx.audit.for_domain("img.example.com")] == [
            "img.example.com"
        ]


def test_missing_steps_run_in_order_once_and_keep_the_data(empty: Database) -> None:
    empty.create_tables()
    audit(empty, "img.example.com")
    ran: list[int] = []

    def add_column(connection: Connection) -> None:
        ran.append(2)
        connection.execute(text("ALTER TABLE audit_events ADD COLUMN channel TEXT"))

    def fill_column(connection: Connection) -> None:
        ran.append(3)
        connection.execute(text("UPDATE audit_events SET channel = 'C0000OPS'"))

    steps: dict[int, Step] = {2: add_column, 3: fill_column}
    assert bring_up_to_date(empty.engine, target=3, steps=steps) == 3
    assert bring_up_to_date(empty.engine, target=3, steps=steps) == 3

    assert ran == [2, 3]
    assert version(empty) == 3
    with empty.engine.connect() as connection:
        rows = connection.execute(text("SELECT domain, channel FROM audit_events"))
        assert [tuple(row) for row in rows] == [("img.example.com", "C0000OPS")]


def test_a_failing_step_changes_nothing(empty: Database) -> None:
    empty.create_tables()

    def broken(connection: Connection) -> None:
        connection.execute(text("ALTER TABLE audit_events ADD COLUMN channel TEXT"))
        raise RuntimeError("the step's second statement failed")

    with pytest.raises(RuntimeError):
        bring_up_to_date(empty.engine, target=2, steps={2: broken})

    assert version(empty) == 1
    columns = {c["name"] for c in inspect(empty.engine).get_columns("audit_events")}
    assert "channel" not in columns


def test_a_database_written_by_a_newer_release_is_refused(empty: Database) -> None:
    empty.create_tables()
    with empty.engine.begin() as connection:
        connection.execute(text("UPDATE schema_version SET version = 7"))

    with pytest.raises(ConfigError) as refused:
        empty.create_tables()

    assert refused.value.problems == [
        f"DATABASE_URL: the database holds schema version 7, written by a newer "
        f"domainbot; this release knows up to {SCHEMA_VERSION}. Run that newer "
        "release, or restore a backup taken before it ran"
    ]
    assert version(empty) == 7
