"""The queries domainbot runs, grouped by what they are about.

A :class:`Transaction` hands out one repository per table group, all sharing one
session, so a change of state, its audit event and the notice that reports it are
committed together or not at all.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, delete, func, insert, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, select

from storage.models import (
    Approval,
    ApprovalState,
    AuditEvent,
    Binding,
    BindingState,
    Challenge,
    ChallengeState,
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
        self.challenges = Challenges(session)
        self.approvals = Approvals(session)
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
        """Write many check results at once; each dict has ``id`` and the columns.

        Rows with the same columns go in one executemany of a plain UPDATE: the
        ORM's bulk update costs twice as much per row, which a sweep of thousands
        of checks feels.
        """
        groups: dict[frozenset[str], list[dict[str, Any]]] = {}
        for change in changes:
            groups.setdefault(frozenset(change), []).append(change)
        table = _table(Binding)
        # Without values(), the SET clause is made of the parameters' other keys.
        statement = update(table).where(table.c.id == bindparam("row_id"))
        for rows in groups.values():
            self.session.execute(
                statement,
                [{**change, "row_id": change["id"]} for change in rows],
            )

    def move_state(
        self, binding_id: int, before: BindingState, after: BindingState, **values: Any
    ) -> bool:
        """Change the state only if it still is ``before``; True if it changed."""
        return _move(self.session, Binding, binding_id, before, after, values)

    def move_many(
        self,
        before: BindingState,
        after: BindingState,
        changes: Sequence[dict[str, Any]],
    ) -> set[int]:
        """Move the bindings of ``changes`` that are still in ``before`` to ``after``.

        Each dict has ``id`` and the other columns to write. The rows are read with
        a lock (on PostgreSQL; on SQLite the transaction holds the write lock) so
        that none changes state between the read and the write. Returns the ids
        that moved.
        """
        if not changes:
            return set()
        query = (
            select(Binding.id)
            .where(col(Binding.id).in_([change["id"] for change in changes]))
            .where(Binding.state == before)
            .with_for_update()
        )
        still = {row for row in self.session.exec(query) if row is not None}
        moving = [
            change | {"state": after} for change in changes if change["id"] in still
        ]
        self.save_checks(moving)
        return still


class Challenges:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, challenge_id: int) -> Challenge | None:
        return self.session.get(Challenge, challenge_id)

    def watching(self, domain: str, bucket: str) -> Challenge | None:
        """The challenge being watched for taking ``domain`` to ``bucket``, if any."""
        query = select(Challenge).where(
            Challenge.domain == domain,
            Challenge.bucket == bucket,
            Challenge.state == ChallengeState.WATCHING,
        )
        return self.session.exec(query).first()

    def add(self, challenge: Challenge) -> Challenge:
        """Insert; raise IntegrityError when one is watched for the pair already."""
        with self.session.begin_nested():
            self.session.add(challenge)
            self.session.flush()
        return challenge

    def open(self) -> list[Challenge]:
        """Challenges still watched, or verified and awaiting a decision."""
        states = (ChallengeState.WATCHING, ChallengeState.VERIFIED)
        query = select(Challenge).where(col(Challenge.state).in_(states))
        return list(self.session.exec(query.order_by(col(Challenge.id))))

    def due(self, now: datetime, limit: int) -> list[Challenge]:
        query = (
            select(Challenge)
            .where(col(Challenge.next_check_at) <= now)
            .where(Challenge.state == ChallengeState.WATCHING)
            .order_by(col(Challenge.next_check_at))
            .limit(limit)
        )
        return list(self.session.exec(query))

    def move_state(
        self,
        challenge_id: int,
        before: ChallengeState,
        after: ChallengeState,
        **values: Any,
    ) -> bool:
        return _move(self.session, Challenge, challenge_id, before, after, values)

    def save_check(self, challenge_id: int, **values: Any) -> None:
        self.session.execute(
            update(Challenge).where(col(Challenge.id) == challenge_id).values(**values)
        )


class Approvals:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, approval_id: int) -> Approval | None:
        return self.session.get(Approval, approval_id)

    def add(self, approval: Approval) -> Approval:
        self.session.add(approval)
        self.session.flush()
        return approval

    def decide(
        self, approval_id: int, after: ApprovalState, now: datetime, **values: Any
    ) -> bool:
        """Decide a pending, unexpired approval; False if it was decided already."""
        result = self.session.execute(
            update(Approval)
            .where(col(Approval.id) == approval_id)
            .where(col(Approval.state) == ApprovalState.PENDING)
            .where(col(Approval.expires_at) > now)
            .values(state=after, **values)
        )
        return bool(getattr(result, "rowcount", 0))

    def expire(self, approval_id: int, **values: Any) -> bool:
        """Mark a still pending approval expired; False if it was decided first."""
        result = self.session.execute(
            update(Approval)
            .where(col(Approval.id) == approval_id)
            .where(col(Approval.state) == ApprovalState.PENDING)
            .values(state=ApprovalState.EXPIRED, **values)
        )
        return bool(getattr(result, "rowcount", 0))

    def finish(self, approval_id: int, **values: Any) -> None:
        self.session.execute(
            update(Approval).where(col(Approval.id) == approval_id).values(**values)
        )

    def pending(self) -> list[Approval]:
        query = select(Approval).where(Approval.state == ApprovalState.PENDING)
        return list(self.session.exec(query.order_by(col(Approval.id))))

    def reminders_due(self, now: datetime) -> list[Approval]:
        query = (
            select(Approval)
            .where(Approval.state == ApprovalState.PENDING)
            .where(col(Approval.reminded).is_(False))
            .where(col(Approval.remind_at) <= now)
        )
        return list(self.session.exec(query))

    def expired(self, now: datetime) -> list[Approval]:
        query = (
            select(Approval)
            .where(Approval.state == ApprovalState.PENDING)
            .where(col(Approval.expires_at) <= now)
        )
        return list(self.session.exec(query))

    def approved_not_applied(self) -> list[Approval]:
        query = (
            select(Approval)
            .where(Approval.state == ApprovalState.APPROVED)
            .where(col(Approval.applied_at).is_(None))
        )
        return list(self.session.exec(query))


def _move(
    session: Session,
    model: type[Binding] | type[Challenge],
    row_id: int,
    before: str,
    after: str,
    values: dict[str, Any],
) -> bool:
    """Change a row's state only if it still is ``before``; True if it changed."""
    result = session.execute(
        update(model)
        .where(col(model.id) == row_id, col(model.state) == before)
        .values(state=after, **values)
    )
    return bool(getattr(result, "rowcount", 0))


def _insert_many(
    session: Session,
    model: type[AuditEvent] | type[OutboxMessage],
    rows: Sequence[Mapping[str, Any]],
) -> None:
    """Insert ``rows`` (column values) of ``model`` with one statement, the database
    giving the ids; a column a row leaves out gets the model's default.

    The session's own pending rows are flushed first, so ids keep the order in
    which rows were stored. A batch of the DNS sweep stores thousands of rows: the
    session's unit of work, or even its bulk insert (which splits the rows wherever
    a column is None in one and set in the next), costs several times the insert.
    """
    if not rows:
        return
    defaults = _defaults(model)
    session.flush()
    values = [{**defaults(), **row} for row in rows]
    session.execute(insert(_table(model)), values)


@functools.cache
def _defaults(model: type[SQLModel]) -> Callable[[], dict[str, Any]]:
    """A function giving the defaults of ``model``'s columns, the id left out.

    Plain defaults are read once; only default factories are called for each row.
    """
    fields = [
        (name, info)
        for name, info in model.model_fields.items()
        if name != "id" and not info.is_required()
    ]
    plain = {name: info.default for name, info in fields if not info.default_factory}
    factories = [
        (name, info.default_factory) for name, info in fields if info.default_factory
    ]

    def defaults() -> dict[str, Any]:
        row = dict(plain)
        for name, factory in factories:
            row[name] = factory()  # type: ignore[call-arg]
        return row

    return defaults


def _table(model: type[SQLModel]) -> Table:
    """The plain table of ``model``, for statements that skip the ORM's work."""
    table = sa_inspect(model).local_table
    assert isinstance(table, Table)
    return table


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

    def record_many(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Insert many events, given as column values, with one statement."""
        _insert_many(self.session, AuditEvent, events)

    def for_domain(self, domain: str) -> list[AuditEvent]:
        query = select(AuditEvent).where(AuditEvent.domain == domain)
        return list(self.session.exec(query.order_by(col(AuditEvent.id))))

    def latest(self, limit: int, domain: str | None = None) -> list[AuditEvent]:
        """The newest ``limit`` events, of one domain or of all, oldest first."""
        query = select(AuditEvent)
        if domain is not None:
            query = query.where(AuditEvent.domain == domain)
        newest = self.session.exec(
            query.order_by(col(AuditEvent.id).desc()).limit(limit)
        )
        return list(reversed(list(newest)))


class Outbox:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, message: OutboxMessage) -> None:
        self.session.add(message)

    def add_many(self, messages: Sequence[Mapping[str, Any]]) -> None:
        """Insert many messages, given as column values, with one statement, after
        the session's own; the order of their ids is the order given.
        """
        _insert_many(self.session, OutboxMessage, messages)

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

    def will_remember(self, key: str) -> bool:
        """True while a message to be remembered under ``key`` is still to be sent."""
        query = (
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.remember_as == key)
            .where(col(OutboxMessage.sent_at).is_(None))
            .where(col(OutboxMessage.abandoned).is_(False))
        )
        return int(self.session.exec(query).one()) > 0

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
