"""The queries domainbot runs, grouped by what they are about.

A :class:`Transaction` hands out one repository per table group, all sharing one
session, so a change of state, its audit event and the notice that reports it are
committed together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage.models import (
    AuditEvent,
    Binding,
    BindingState,
    OutboxMessage,
    PostedMessage,
    ProcessedRequest,
    RegistryEntry,
)


class Transaction:
    """The repositories of one database transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.bindings = Bindings(session)
        self.registry = Registry(session)
        self.requests = Requests(session)
        self.audit = Audit(session)
        self.outbox = Outbox(session)

    def prune(self, *, requests_before: datetime, sent_before: datetime) -> int:
        """Delete remembered requests and delivered notices older than given."""
        requests = self.session.execute(
            delete(ProcessedRequest).where(
                col(ProcessedRequest.created_at) < requests_before
            )
        )
        sent = self.session.execute(
            delete(OutboxMessage).where(col(OutboxMessage.sent_at) < sent_before)
        )
        return int(getattr(requests, "rowcount", 0)) + int(getattr(sent, "rowcount", 0))


class Bindings:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, binding_id: int) -> Binding | None:
        return self.session.get(Binding, binding_id)

    def current(self, domain: str) -> Binding | None:
        """The binding of ``domain`` that has not been released, if any."""
        query = select(Binding).where(
            Binding.domain == domain, col(Binding.released_at).is_(None)
        )
        return self.session.exec(query).first()

    def count_current(self, bucket: str) -> int:
        query = (
            select(func.count())
            .select_from(Binding)
            .where(Binding.bucket == bucket, col(Binding.released_at).is_(None))
        )
        return int(self.session.exec(query).one())

    def list_current(self, bucket: str | None = None) -> list[Binding]:
        query = select(Binding).where(col(Binding.released_at).is_(None))
        if bucket is not None:
            query = query.where(Binding.bucket == bucket)
        return list(self.session.exec(query.order_by(Binding.bucket, Binding.domain)))

    def add(self, binding: Binding) -> Binding:
        """Insert ``binding``; raise IntegrityError when the domain is bound already."""
        with self.session.begin_nested():
            self.session.add(binding)
            self.session.flush()
        return binding

    def due(self, now: datetime, limit: int) -> list[Binding]:
        """Pending bindings whose next DNS check is due, the longest-waiting first."""
        query = (
            select(Binding)
            .where(col(Binding.next_check_at) <= now)
            .where(Binding.state == BindingState.PENDING_DNS)
            .order_by(col(Binding.next_check_at))
            .limit(limit)
        )
        return list(self.session.exec(query))

    def save_checks(self, changes: Sequence[dict[str, Any]]) -> None:
        """Write many check results at once; each dict has ``id`` and the columns."""
        if changes:
            self.session.execute(update(Binding), list(changes))

    def move_state(
        self, binding_id: int, before: BindingState, after: BindingState, **values: Any
    ) -> bool:
        """Change the state only if it still is ``before``; True if it changed."""
        result = self.session.execute(
            update(Binding)
            .where(col(Binding.id) == binding_id, col(Binding.state) == before)
            .values(state=after, **values)
        )
        return bool(getattr(result, "rowcount", 0))


class Registry:
    """The ``local`` storage provider's table of which bucket serves a domain."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def holder(self, domain: str) -> RegistryEntry | None:
        return self.session.get(RegistryEntry, domain)

    def add(self, entry: RegistryEntry) -> None:
        with self.session.begin_nested():
            self.session.add(entry)
            self.session.flush()

    def remove(self, domain: str, bucket: str) -> bool:
        entry = self.session.get(RegistryEntry, domain)
        if entry is None or entry.bucket != bucket:
            return False
        self.session.delete(entry)
        self.session.flush()
        return True

    def list(self, bucket: str) -> list[RegistryEntry]:
        query = select(RegistryEntry).where(RegistryEntry.bucket == bucket)
        return list(self.session.exec(query.order_by(RegistryEntry.domain)))


class Requests:
    """Slack requests already acted on, so that a retry does nothing twice."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def claim(self, key: str, now: datetime) -> bool:
        """Record ``key``; False when it was recorded before (a retry)."""
        try:
            with self.session.begin_nested():
                self.session.add(ProcessedRequest(key=key, created_at=now))
                self.session.flush()
        except IntegrityError:
            return False
        return True


class Audit:
    def __init__(self, session: Session) -> None:
        self.session = session

    def record(self, event: AuditEvent) -> None:
        self.session.add(event)

    def for_domain(self, domain: str) -> list[AuditEvent]:
        query = select(AuditEvent).where(AuditEvent.domain == domain)
        return list(self.session.exec(query.order_by(col(AuditEvent.id))))


class Outbox:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, message: OutboxMessage) -> None:
        self.session.add(message)

    def due(self, now: datetime, limit: int) -> list[OutboxMessage]:
        query = (
            select(OutboxMessage)
            .where(col(OutboxMessage.sent_at).is_(None))
            .where(col(OutboxMessage.abandoned).is_(False))
            .where(col(OutboxMessage.next_attempt_at) <= now)
            .order_by(col(OutboxMessage.id))
            .limit(limit)
        )
        return list(self.session.exec(query))

    def get(self, message_id: int) -> OutboxMessage | None:
        return self.session.get(OutboxMessage, message_id)

    def posted(self, key: str) -> PostedMessage | None:
        return self.session.get(PostedMessage, key)

    def remember(self, posted: PostedMessage) -> None:
        self.session.merge(posted)

    def waits_for_earlier(self, message: OutboxMessage) -> bool:
        """True while an older message of the same sequence is still to be sent."""
        if message.sequence is None:
            return False
        query = (
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.sequence == message.sequence)
            .where(col(OutboxMessage.id) < message.id)
            .where(col(OutboxMessage.sent_at).is_(None))
            .where(col(OutboxMessage.abandoned).is_(False))
        )
        return int(self.session.exec(query).one()) > 0
