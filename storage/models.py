"""The tables domainbot keeps, as SQLModel classes.

All times are UTC datetimes with their time zone attached; SQLModel stores them as
UTC and hands them back as UTC on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, text
from sqlalchemy import Enum as SqlEnum
from sqlmodel import Field, SQLModel


def _state(enum: type[StrEnum]) -> Any:
    """A state column that stores the enum's values as plain strings.

    Plain strings (not a database enum type) keep partial indexes such as
    ``state = 'watching'`` readable and adding a state a one-line change.
    """
    return Field(
        sa_type=SqlEnum(
            enum,
            values_callable=lambda members: [member.value for member in members],
            native_enum=False,
            create_constraint=False,
            length=16,
        ),
    )


class DnsWatched(SQLModel):
    """Where the DNS checks of a watched row stand: shared by bindings and
    challenges, which the sweep picks by ``next_check_at``."""

    next_check_at: datetime | None = Field(default=None, index=True)
    check_count: int = 0
    last_checked_at: datetime | None = None
    last_found: str | None = Field(default=None, max_length=1000)
    last_problem: str | None = Field(default=None, max_length=1000)
    problem_notified: bool = False


class BindingState(StrEnum):
    PENDING_DNS = "pending_dns"
    LIVE = "live"
    FAILED = "failed"
    RELEASED = "released"


class Binding(DnsWatched, table=True):
    """A domain bound to a bucket, and where its DNS check stands.

    A released binding is kept for history; at most one unreleased binding exists per
    domain (a partial unique index).
    """

    __tablename__ = "bindings"
    __table_args__ = (
        Index(
            "uq_bindings_current_domain",
            "domain",
            unique=True,
            sqlite_where=text("released_at IS NULL"),
            postgresql_where=text("released_at IS NULL"),
        ),
        Index("ix_bindings_bucket_state", "bucket", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    domain: str = Field(max_length=253)
    bucket: str = Field(max_length=63)
    target: str = Field(max_length=253)
    state: BindingState = _state(BindingState)
    cdn: bool = False
    auto_cname: bool = False
    icp_confirmed: bool = False
    requested_by: str = Field(max_length=32)
    channel: str | None = Field(default=None, max_length=32)
    created_at: datetime
    live_at: datetime | None = None
    released_at: datetime | None = None
    # What became of the automatic CNAME record (see bot.auto_cname.CnameStatus).
    cname_status: str | None = Field(default=None, max_length=16)
    cname_zone: str | None = Field(default=None, max_length=253)
    cname_detail: str | None = Field(default=None, max_length=1000)


class ChallengeState(StrEnum):
    WATCHING = "watching"
    VERIFIED = "verified"
    EXPIRED = "expired"
    CLOSED = "closed"


class Challenge(DnsWatched, table=True):
    """A request to take over a domain another bucket holds, proven by a TXT record.

    The record is ``_dnsauth.<domain>`` with ``token`` as its value. At most one
    challenge per domain and bucket is watched at a time.
    """

    __tablename__ = "challenges"
    __table_args__ = (
        Index(
            "uq_challenges_watching",
            "domain",
            "bucket",
            unique=True,
            sqlite_where=text("state = 'watching'"),
            postgresql_where=text("state = 'watching'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    domain: str = Field(max_length=253, index=True)
    bucket: str = Field(max_length=63)
    holder: str = Field(max_length=63)
    holder_since: datetime | None = None
    token: str = Field(max_length=200)
    token_from_provider: bool = False
    zone: str | None = Field(default=None, max_length=253)
    state: ChallengeState = _state(ChallengeState)
    requested_by: str = Field(max_length=32)
    channel: str | None = Field(default=None, max_length=32)
    cdn: bool = False
    auto_cname: bool = False
    icp_confirmed: bool = False
    created_at: datetime
    expires_at: datetime
    verified_at: datetime | None = None
    closed_at: datetime | None = None


class ApprovalState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    FAILED = "failed"


class Approval(SQLModel, table=True):
    """The decision on a verified challenge: move the domain, or leave it.

    Deciding is one conditional update from ``pending``, so two clicks at once
    decide once. ``applied_at`` is set when an approved rebind has been carried
    out; an approval approved but not applied is finished after a restart.
    """

    __tablename__ = "approvals"
    __table_args__ = (Index("ix_approvals_state", "state"),)

    id: int | None = Field(default=None, primary_key=True)
    challenge_id: int = Field(unique=True, foreign_key="challenges.id")
    domain: str = Field(max_length=253, index=True)
    from_bucket: str = Field(max_length=63)
    to_bucket: str = Field(max_length=63)
    requested_by: str = Field(max_length=32)
    channel: str | None = Field(default=None, max_length=32)
    state: ApprovalState = _state(ApprovalState)
    created_at: datetime
    remind_at: datetime
    reminded: bool = False
    expires_at: datetime
    decided_by: str | None = Field(default=None, max_length=32)
    decided_at: datetime | None = None
    applied_at: datetime | None = None
    outcome: str | None = Field(default=None, max_length=1000)


class RegistryEntry(SQLModel, table=True):
    """The ``local`` storage provider's record of which bucket serves a domain."""

    __tablename__ = "registry_entries"

    domain: str = Field(primary_key=True, max_length=253)
    bucket: str = Field(max_length=63, index=True)
    bound_at: datetime


class ProcessedRequest(SQLModel, table=True):
    """A Slack request already acted on; a retry or resubmission is ignored."""

    __tablename__ = "processed_requests"

    key: str = Field(primary_key=True, max_length=200)
    created_at: datetime = Field(index=True)


class AuditEvent(SQLModel, table=True):
    """One change of state: who caused it, when, and the states before and after."""

    __tablename__ = "audit_events"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(index=True)
    actor: str = Field(max_length=32)
    subject: str = Field(max_length=32)
    subject_id: int
    domain: str = Field(max_length=253, index=True)
    action: str = Field(max_length=64)
    state_before: str | None = Field(default=None, max_length=32)
    state_after: str | None = Field(default=None, max_length=32)
    detail: str | None = Field(default=None, max_length=2000)


class OutboxMessage(SQLModel, table=True):
    """A notice waiting to be delivered to Slack, stored with the change it reports.

    Messages refer to each other by key (``binding:12``): one is remembered under a
    key once posted (``remember_as``), later ones reply in its thread (``thread``)
    or replace it (``updates``). Messages of one ``sequence`` are delivered in the
    order they were stored.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_due",
            "next_attempt_at",
            sqlite_where=text("sent_at IS NULL AND NOT abandoned"),
            postgresql_where=text("sent_at IS NULL AND NOT abandoned"),
        ),
        Index("ix_outbox_sequence", "sequence", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime
    notice: str = Field(max_length=64)
    context: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    channel: str | None = Field(default=None, max_length=32)
    user: str | None = Field(default=None, max_length=32)
    ephemeral: bool = False
    thread: str | None = Field(default=None, max_length=64)
    remember_as: str | None = Field(default=None, max_length=64)
    updates: str | None = Field(default=None, max_length=64)
    broadcast: bool = False
    sequence: str | None = Field(default=None, max_length=64)
    attempts: int = 0
    next_attempt_at: datetime
    sent_at: datetime | None = None
    abandoned: bool = False
    note: str | None = Field(default=None, max_length=500)
    last_error: str | None = Field(default=None, max_length=1000)


class PostedMessage(SQLModel, table=True):
    """A message the bot posted and may reply to or update, by its key."""

    __tablename__ = "posted_messages"

    key: str = Field(primary_key=True, max_length=64)
    channel: str = Field(max_length=32)
    ts: str = Field(max_length=32)
    thread_ts: str = Field(max_length=32)


class SchemaVersion(SQLModel, table=True):
    """The one row saying which version of these tables the database holds."""

    __tablename__ = "schema_version"

    id: int = Field(default=1, primary_key=True)
    version: int
    changed_at: datetime
