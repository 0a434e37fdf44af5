"""The version of the tables, and the steps that bring an older database up to date.

A release that changes a table raises :data:`SCHEMA_VERSION` and adds the step that
turns a database of the previous version into one of the new, written as plain
statements on the connection it is given (``ALTER TABLE ...``). At start-up
:func:`bring_up_to_date` runs the missing steps in order, in one transaction with
stamping the new version, so an upgrade either happens whole or not at all, and a
database written by a newer release is refused rather than misread.

A database made before versions were kept counts as :data:`BASELINE_VERSION`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, Table, inspect, select
from sqlmodel import SQLModel

from bot.errors import ConfigError
from storage.models import SchemaVersion

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
BASELINE_VERSION = 1

Step = Callable[[Connection], None]
# The step under version N turns a database of version N - 1 into version N.
STEPS: Mapping[int, Step] = {}

_VERSION_TABLE: Table = SQLModel.metadata.tables[SchemaVersion.__tablename__]
# A table every version has had: its presence tells an old database from an empty one.
_FIRST_TABLE = "bindings"


def bring_up_to_date(
    engine: Engine,
    *,
    target: int = SCHEMA_VERSION,
    steps: Mapping[int, Step] = STEPS,
) -> int:
    """Create what is missing and run the steps up to ``target``; return it.

    Raises :class:`ConfigError` when the database holds a newer version than
    ``target`` or a step is missing; nothing is changed then.
    """
    with engine.begin() as connection:
        stamped = _stamped_version(connection)
        found = stamped if stamped is not None else _unstamped_version(connection)
        if found is None:
            SQLModel.metadata.create_all(connection)
            _stamp(connection, target)
            logger.info("database schema created version=%d", target)
            return target
        if found > target:
            raise ConfigError(
                [
                    f"DATABASE_URL: the database holds schema version {found}, "
                    f"written by a newer domainbot; this release knows up to "
                    f"{target}. Run that newer release, or restore a backup taken "
                    "before it ran"
                ]
            )
        missing = [v for v in range(found + 1, target + 1) if v not in steps]
        if missing:
            raise ConfigError(
                [f"domainbot has no upgrade step to schema version {missing[0]}"]
            )
        for version in range(found + 1, target + 1):
            steps[version](connection)
            logger.info("database schema upgraded version=%d", version)
        # Tables a step did not need to touch, such as ones new in this release.
        SQLModel.metadata.create_all(connection)
        if stamped != target:
            _stamp(connection, target)
        return target


def _stamped_version(connection: Connection) -> int | None:
    """The version written in the database, if one is."""
    if not inspect(connection).has_table(_VERSION_TABLE.name):
        return None
    row = connection.execute(select(_VERSION_TABLE.c.version)).first()
    return None if row is None else int(row[0])


def _unstamped_version(connection: Connection) -> int | None:
    """The version of a database with none written: old, or empty (None)."""
    return BASELINE_VERSION if inspect(connection).has_table(_FIRST_TABLE) else None


def _stamp(connection: Connection, version: int) -> None:
    connection.execute(_VERSION_TABLE.delete())
    connection.execute(
        _VERSION_TABLE.insert().values(
            id=1, version=version, changed_at=datetime.now(UTC)
        )
    )
