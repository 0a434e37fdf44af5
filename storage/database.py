"""Connecting to the database, creating the tables, and running transactions.

SQLite (the default) and PostgreSQL are supported. On SQLite every transaction takes
the write lock when it begins (``BEGIN IMMEDIATE``), so that two threads never both
read a row and then race to change it; PostgreSQL relies on conditional updates.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlmodel import Session, create_engine

from bot.errors import ConfigError
from storage import models as _models  # noqa: F401 - registers the tables
from storage.repositories import Transaction
from storage.schema import bring_up_to_date

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000


def database_url(text: str) -> URL:
    """Parse ``DATABASE_URL``; plain ``postgresql://`` URLs use the psycopg driver."""
    try:
        url = make_url(text)
    except ArgumentError as err:
        raise ConfigError(
            [
                "DATABASE_URL: not a database URL; use sqlite:///path/domainbot.db or "
                "postgresql://user@host:5432/dbname"
            ]
        ) from err
    if url.drivername in {"postgres", "postgresql"}:
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in {"sqlite", "postgresql"}:
        raise ConfigError(
            [
                f"DATABASE_URL: {url.get_backend_name()} is not supported; use "
                "SQLite or PostgreSQL"
            ]
        )
    return url


def failure_reason(err: Exception) -> str:
    """The database's own first line about ``err``, without the SQL sent.

    ``err`` is SQLAlchemy's wrapper or the driver's own error.
    """
    lines = str(getattr(err, "orig", None) or err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


class Database:
    """The bot's database: one engine, and transactions over it."""

    def __init__(self, url: str | URL, *, echo: bool = False) -> None:
        self.url = database_url(url) if isinstance(url, str) else url
        self.engine = _make_engine(self.url, echo=echo)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def create_tables(self) -> None:
        """Create the tables of an empty database, or bring an older one up to date.

        See :mod:`storage.schema`. Raises :class:`ConfigError` for a database
        written by a newer release.
        """
        version = bring_up_to_date(self.engine)
        logger.info("database ready dialect=%s schema=%d", self.dialect, version)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One transaction: committed when the block ends, rolled back on an error."""
        with (
            Session(self.engine, expire_on_commit=False) as session,
            session.begin(),
        ):
            yield Transaction(session)

    def problem(self) -> str | None:
        """Ask the server for one row; None if it answered, else why it did not.

        No transaction is begun, so this never waits for SQLite's write lock.
        """
        # The driver's own errors come through unwrapped on this path.
        driver_error = self.engine.dialect.loaded_dbapi.Error
        try:
            connection = self.engine.raw_connection()
        except (SQLAlchemyError, driver_error) as err:
            return failure_reason(err)
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT 1")
            cursor.fetchall()
            cursor.close()
        except driver_error as err:
            connection.invalidate()
            return failure_reason(err)
        finally:
            connection.close()
        return None

    def dispose(self) -> None:
        self.engine.dispose()


def _make_engine(url: URL, *, echo: bool) -> Engine:
    if url.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 30},
        )
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(
        url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=10
    )


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")
