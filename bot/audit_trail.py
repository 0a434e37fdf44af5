"""Reading the audit trail back for an operator: ``domainbot audit [DOMAIN]``.

Every change of state is stored as an :class:`~storage.models.AuditEvent` with who
caused it; this module finds the newest events and lays them out as aligned lines,
oldest first, so that "who moved img.example.com, and who approved it?" has an
answer without opening the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from bot.domain_names import normalise_domain
from bot.errors import ConfigError
from storage import Database, database_url, failure_reason
from storage.models import AuditEvent

NO_STATE = "-"


def read_trail(url: str, limit: int, domain: str | None = None) -> list[AuditEvent]:
    """The newest ``limit`` events in the database at ``url``, oldest first.

    ``domain`` is taken as typed and normalised as ``/bind-domain`` does. Raises
    :class:`ConfigError` when the database cannot be read (it names the setting
    and what to check) and :class:`~bot.errors.InvalidDomain` for a bad domain.
    """
    wanted = normalise_domain(domain) if domain is not None else None
    parsed = database_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""
        if not path or not Path(path).is_file():
            raise ConfigError(
                [
                    f"DATABASE_URL: no database file at {path or '(none)'}; run this "
                    "where domainbot serve runs, or set DATABASE_URL to its database"
                ]
            )
    db = Database(parsed)
    try:
        with db.transaction() as tx:
            return tx.audit.latest(limit, wanted)
    except SQLAlchemyError as err:
        reason = failure_reason(err)
        raise ConfigError(
            [
                "DATABASE_URL: cannot read the audit trail from "
                f"{parsed.render_as_string(hide_password=True)} ({reason}); check "
                "that domainbot serve has run against this database and that the "
                "server is reachable"
            ]
        ) from err
    finally:
        db.dispose()


def trail_lines(events: Sequence[AuditEvent]) -> list[str]:
    """One aligned line per event: when (UTC), domain, what, who, states, detail."""
    rows = [
        (
            f"{_utc(event.at):%Y-%m-%d %H:%M:%S}",
            event.domain,
            event.action,
            event.actor,
            f"{event.state_before or NO_STATE} -> {event.state_after or NO_STATE}",
            event.detail or "",
        )
        for event in events
    ]
    table = [("when (UTC)", "domain", "action", "by", "state", "detail"), *rows]
    # Every column but the last (the free-text detail) is padded to its widest.
    widths = [max(len(row[column]) for row in table) for column in range(5)]

    def line(row: tuple[str, ...]) -> str:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        return "  ".join([*cells, row[5]]).rstrip()

    return [line(row) for row in table]


def _utc(moment: datetime) -> datetime:
    """Stored times are UTC; a database may hand them back in its own zone."""
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment
