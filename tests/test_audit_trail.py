"""``domainbot audit``: the trail read back for an operator, SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.cli import main
from storage import Database
from storage.models import AuditEvent

START = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def store(db: Database, domain: str, action: str, minute: int, **values: str) -> None:
    with db.transaction() as tx:
        tx.audit.record(
            AuditEvent(
                at=START + timedelta(minutes=minute),
                actor=values.get("actor", "U0000ALICE"),
                subject="binding",
                subject_id=1,
                domain=domain,
                action=action,
                state_before=values.get("before"),
                state_after=values.get("after"),
                detail=values.get("detail"),
            )
        )


def audit(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    url: str,
    *args: str,
) -> tuple[int, list[list[str]], str]:
    """Run the command; its exit status, its rows split in cells, and stderr."""
    monkeypatch.setenv("DATABASE_URL", url)
    status = main(["audit", *args])
    out, err = capsys.readouterr()
    return status, [re.split(r"\s{2,}", line) for line in out.splitlines()], err


def test_the_newest_events_are_shown_oldest_first_with_who_and_states(
    db: Database,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store(db, "img.example.com", "bound", 0, after="pending_dns", detail="to bucket a")
    store(db, "cdn.example.com", "bound", 1, after="pending_dns")
    store(
        db,
        "img.example.com",
        "dns_live",
        2,
        actor="domainbot",
        before="pending_dns",
        after="live",
    )
    store(db, "img.example.com", "released", 3, before="live", after="released")

    status, rows, _ = audit(monkeypatch, capsys, database_url, "IMG.example.com.")
    assert status == 0
    assert rows == [
        ["when (UTC)", "domain", "action", "by", "state", "detail"],
        [
            "2026-12-01 09:30:00",
            "img.example.com",
            "bound",
            "U0000ALICE",
            "- -> pending_dns",
            "to bucket a",
        ],
        [
            "2026-12-01 09:32:00",
            "img.example.com",
            "dns_live",
            "domainbot",
            "pending_dns -> live",
        ],
        [
            "2026-12-01 09:33:00",
            "img.example.com",
            "released",
            "U0000ALICE",
            "live -> released",
        ],
    ]

    _, rows, _ = audit(monkeypatch, capsys, database_url, "--limit", "2")
    assert [row[:3] for row in rows[1:]] == [
        ["2026-12-01 09:32:00", "img.example.com", "dns_live"],
        ["2026-12-01 09:33:00", "img.example.com", "released"],
    ]


def test_a_domain_without_events_says_so(
    db: Database,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, rows, _ = audit(monkeypatch, capsys, database_url, "new.example.com")
    assert status == 0
    assert rows == [["domainbot: no audit events for new.example.com yet"]]


def test_bad_input_is_refused_with_one_line_and_nothing_read(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing = tmp_path / "nowhere.db"
    status, _, err = audit(monkeypatch, capsys, f"sqlite:///{missing}")
    assert status == 2
    assert err == (
        f"domainbot: DATABASE_URL: no database file at {missing}; run this where "
        "domainbot serve runs, or set DATABASE_URL to its database\n"
    )
    assert not missing.exists()

    status, _, err = audit(
        monkeypatch, capsys, f"sqlite:///{missing}", "https://img.example.com/a"
    )
    assert status == 2
    assert err.startswith("domainbot: Give only the host name")

    with pytest.raises(SystemExit) as exited:
        audit(monkeypatch, capsys, f"sqlite:///{missing}", "--limit", "0")
    assert exited.value.code == 2
    assert "--limit: give a whole number of 1 or more, not 0" in capsys.readouterr().err


def test_a_database_the_bot_never_ran_on_is_explained(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    status, _, err = audit(monkeypatch, capsys, f"sqlite:///{empty}")
    assert status == 2
    assert "(no such table: audit_events)" in err
    assert "check that domainbot serve has run against this database" in err
