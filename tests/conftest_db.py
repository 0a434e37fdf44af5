"""Databases for tests: a SQLite file and a fresh PostgreSQL database per test run.

PostgreSQL is the server at 127.0.0.1:5432 (user postgres, trust auth). Each test
session creates its own database and drops it at the end, so parallel runs and
leftovers cannot interfere. A test that needs PostgreSQL fails, never skips, when
the server is down.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from storage import Database

POSTGRES_ADMIN_URL = os.environ.get(
    "DOMAINBOT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    name = f"domainbot_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True)
    except psycopg.OperationalError as err:
        pytest.fail(
            f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {err}. Start it "
            "(scripts/test does) or set DOMAINBOT_TEST_POSTGRES."
        )
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _empty_tables(db: Database) -> None:
    from sqlmodel import SQLModel

    with db.engine.begin() as connection:
        for table in reversed(SQLModel.metadata.sorted_tables):
            connection.execute(table.delete())


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL of each kind, with the tables created and empty."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'domainbot.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    db = Database(url)
    db.create_tables()
    _empty_tables(db)
    db.dispose()
    yield url


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.create_tables()
    yield database
    database.dispose()
