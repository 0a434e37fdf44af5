"""Deciding a forced rebind: who may approve, the decision, and the move itself.

An approval is opened once a challenge's TXT record was seen. Only the configured
approvers (users, or members of the configured user groups) may decide, and never
the person who asked for the rebind. Deciding is one conditional update, so two
clicks at once decide once. Approving releases the old binding and makes the new
one: provider calls first (release, then bind, the release undone if the bind
fails), then one transaction for everything the bot stores.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from bot import notices
from bot.approvers import ApproverDirectory, Verdict, unreadable_group
from bot.auto_cname import CnameStatus, CnameWrite, CnameWriter
from bot.binding import insert_binding, note_cname
from bot.clock import Clock
from bot.config import Bucket, FileConfig
from bot.errors import DomainbotError, ProviderError, SlackError
from bot.providers import StorageProvider
from storage import Database, Transaction
from storage.models import (
    Approval,
    ApprovalState,
    AuditEvent,
    Binding,
    BindingState,
    Challenge,
    ChallengeState,
)

logger = logging.getLogger(__name__)

SYSTEM_ACTOR = "domainbot"


class ApprovalDesk:
    """Opens approvals, takes decisions, carries out approved rebinds."""

    def __init__(
        self,
        *,
        config: FileConfig,
        db: Database,
        providers: Mapping[str, StorageProvider],
        clock: Clock,
        approvers: ApproverDirectory,
        cname: CnameWriter,
        on_notice: Callable[[], None] = lambda: None,
    ) -> None:
        self._config = config
        self._db = db
        self._providers = providers
        self._clock = clock
        self._approvers = approvers
        self._cname = cname
        self._on_notice = on_notice
        self._lifetime = timedelta(hours=config.approvers.expire_hours)
        self._apply_lock = threading.Lock()

    def open(
        self, tx: Transaction, challenge: Challenge, *, servers: tuple[str, ...]
    ) -> Approval:
        """Open the approval of a verified challenge, in the caller's transaction.

        When no bucket the bot knows holds the domain (the provider only wanted
        proof of ownership), there is nobody to take it from: the approval is
        granted by the proof itself, and the caller then calls :meth:`apply`.
        """
        assert challenge.id is not None
        now = self._clock.now()
        expires_at = now + self._lifetime
        needs_decision = bool(challenge.holder)
        approval = tx.approvals.add(
            Approval(
                challenge_id=challenge.id,
                domain=challenge.domain,
                from_bucket=challenge.holder,
                to_bucket=challenge.bucket,
                requested_by=challenge.requested_by,
                channel=challenge.channel,
                state=ApprovalState.PENDING
                if needs_decision
                else ApprovalState.APPROVED,
                created_at=now,
                expires_at=expires_at,
                remind_at=expires_at - min(timedelta(hours=24), self._lifetime / 2),
                decided_by=None if needs_decision else SYSTEM_ACTOR,
                decided_at=None if needs_decision else now,
            )
        )
        tx.audit.record(self._event(approval, SYSTEM_ACTOR, "approval_opened", None))
        if needs_decision:
            tx.outbox.add(
                notices.to_channel(
                    "approval_card",
                    now,
                    channel=challenge.channel,
                    user=challenge.requested_by,
                    thread=_challenge_key(approval),
                    remember_as=approval_key(approval.id),
                    **self.facts(approval) | {"servers": list(servers)},
                )
            )
        return approval

    def decide(
        self, approval_id: int, *, user: str, approve: bool, channel: str | None
    ) -> None:
        """Record ``user``'s decision, or tell them privately why it was not taken."""
        now = self._clock.now()
        with self._db.transaction() as tx:
            approval = tx.approvals.get(approval_id)
        if approval is None:
            return
        if approval.state is not ApprovalState.PENDING or now >= approval.expires_at:
            self._tell(approval, user, channel, "approval_closed")
            return
        verdict = self.may_decide(user, approval)
        if not verdict.allowed:
            self._refuse(approval, user, channel, verdict.reason)
            return
        decision = ApprovalState.APPROVED if approve else ApprovalState.REJECTED
        with self._db.transaction() as tx:
            if not tx.approvals.decide(
                approval_id, decision, now, decided_by=user, decided_at=now
            ):
                won = False
            else:
                won = True
                approval.state, approval.decided_by = decision, user
                approval.decided_at = now
                tx.audit.record(
                    self._event(approval, user, decision.value, ApprovalState.PENDING)
                )
                if not approve:
                    self._close_rejected(tx, approval, now)
        if not won:
            with self._db.transaction() as tx:
                latest = tx.approvals.get(approval_id)
            self._tell(latest or approval, user, channel, "approval_closed")
            return
        logger.info(
            "approval decided id=%s domain=%s decision=%s user=%s",
            approval_id,
            approval.domain,
            decision.value,
            user,
        )
        if approve:
            self.apply(approval_id)
        self._on_notice()

    def may_decide(self, user: str, approval: Approval) -> Verdict:
        """Whether ``user`` may decide ``approval``, and if not, why."""
        if user == approval.requested_by:
            return Verdict(
                False, "you asked for this rebind, so someone else must approve it"
            )
        try:
            if self._approvers.includes(user):
                return Verdict(True)
        except SlackError as err:
            return Verdict(False, unreadable_group(err))
        return Verdict(False, "only the configured approvers may decide")

    def tick(self) -> None:
        """Send due reminders, expire undecided approvals, finish approved moves."""
        now = self._clock.now()
        with self._db.transaction() as tx:
            reminders = tx.approvals.reminders_due(now)
            expired = tx.approvals.expired(now)
            unapplied = tx.approvals.approved_not_applied()
        for approval in reminders:
            self._remind(approval, now)
        for approval in expired:
            self._expire(approval, now)
        for approval in unapplied:
            self.apply(approval.id or 0)

    def apply(self, approval_id: int) -> None:
        """Carry out an approved rebind once; safe to call again after a crash."""
        with self._apply_lock:
            with self._db.transaction() as tx:
                approval = tx.approvals.get(approval_id)
                challenge = (
                    tx.challenges.get(approval.challenge_id) if approval else None
                )
            if (
                approval is None
                or challenge is None
                or approval.applied_at
                or approval.state is not ApprovalState.APPROVED
            ):
                return
            try:
                self._move(approval, challenge)
            except DomainbotError as err:
                self._failed(approval, challenge, str(err))
        self._on_notice()

    def facts(self, approval: Approval) -> dict[str, Any]:
        approvers = self._config.approvers
        return {
            "approval_id": approval.id,
            "challenge_id": approval.challenge_id,
            "domain": approval.domain,
            "from_bucket": approval.from_bucket,
            "to_bucket": approval.to_bucket,
            "requester": approval.requested_by,
            "state": approval.state.value,
            "decided_by": approval.decided_by,
            "decided_at": approval.decided_at,
            "expires_at": approval.expires_at,
            "approver_users": list(approvers.users),
            "approver_groups": list(approvers.usergroups),
            "outcome": approval.outcome,
        }

    def _move(self, approval: Approval, challenge: Challenge) -> None:
        to_bucket = self._bucket(approval.to_bucket)
        from_bucket = self._config.bucket(approval.from_bucket)
        with self._db.transaction() as tx:
            old = tx.bindings.current(approval.domain)
            if tx.bindings.count_current(to_bucket.name) >= to_bucket.max_domains:
                raise ProviderError(
                    "domainbot",
                    "rebind",
                    f"bucket {to_bucket.name} already has "
                    f"{to_bucket.max_domains} domains, its maximum",
                )
        provider = self._providers[to_bucket.provider]
        target = (
            provider.cdn_target(to_bucket, approval.domain)
            if challenge.cdn
            else to_bucket.internet_domain
        )
        if from_bucket is not None:
            self._providers[from_bucket.provider].release(from_bucket, approval.domain)
        try:
            provider.take_over(to_bucket, approval.domain)
        except ProviderError:
            self._undo_release(from_bucket, approval.domain)
            raise
        write = (
            self._write_cname(approval.domain, target) if challenge.auto_cname else None
        )
        try:
            self._record_move(approval, challenge, old, to_bucket, target, write)
        except IntegrityError as err:
            provider.release(to_bucket, approval.domain)
            self._undo_release(from_bucket, approval.domain)
            raise ProviderError(
                "domainbot",
                "rebind",
                "the domain was bound to another bucket meanwhile",
            ) from err

    def _write_cname(self, domain: str, target: str) -> tuple[CnameWrite, str | None]:
        """Point the domain's record at its new bucket, in a zone the bot manages.

        The approval moved the domain, so a CNAME to the old bucket is replaced
        without asking again.
        """
        write = self._cname.write(domain, target)
        if write.status is CnameStatus.CONFLICT and write.replaceable:
            return self._cname.replace(domain, target), write.detail
        return write, None

    def _record_move(
        self,
        approval: Approval,
        challenge: Challenge,
        old: Binding | None,
        to_bucket: Bucket,
        target: str,
        write: tuple[CnameWrite, str | None] | None,
    ) -> None:
        assert approval.id is not None and challenge.id is not None
        now = self._clock.now()
        with self._db.transaction() as tx:
            if old is not None and old.id is not None:
                before = old.state
                tx.bindings.move_state(
                    old.id,
                    before,
                    BindingState.RELEASED,
                    released_at=now,
                    next_check_at=None,
                )
                old.state, old.released_at = BindingState.RELEASED, now
                tx.audit.record(
                    AuditEvent(
                        at=now,
                        actor=approval.decided_by or SYSTEM_ACTOR,
                        subject="binding",
                        subject_id=old.id,
                        domain=old.domain,
                        action="released_by_takeover",
                        state_before=before.value,
                        state_after=old.state.value,
                        detail=f"moved to {to_bucket.name} by approval {approval.id}",
                    )
                )
                self._tell_old_channel(tx, approval, old, now)
            binding = Binding(
                domain=approval.domain,
                bucket=to_bucket.name,
                target=target,
                state=BindingState.PENDING_DNS,
                cdn=challenge.cdn,
                auto_cname=challenge.auto_cname,
                icp_confirmed=challenge.icp_confirmed,
                requested_by=challenge.requested_by,
                channel=challenge.channel,
                created_at=now,
                next_check_at=now,
            )
            if write is not None:
                note_cname(binding, write[0], replaced=write[1])
            tx.outbox.add(self._reply("takeover_done", approval, now))
            insert_binding(
                tx,
                binding,
                bucket_domain=to_bucket.internet_domain,
                thread=_challenge_key(approval),
            )
            tx.challenges.move_state(
                challenge.id,
                ChallengeState.VERIFIED,
                ChallengeState.CLOSED,
                closed_at=now,
            )
            tx.approvals.finish(approval.id, applied_at=now, outcome="moved")
            approval.applied_at, approval.outcome = now, "moved"
            tx.outbox.add(self._card_update(approval, now))
        logger.info(
            "domain moved domain=%s from=%s to=%s approval=%s",
            approval.domain,
            approval.from_bucket,
            to_bucket.name,
            approval.id,
        )

    def _tell_old_channel(
        self, tx: Transaction, approval: Approval, old: Binding, now: datetime
    ) -> None:
        assert old.id is not None
        facts = notices.binding_facts(old, old.target)
        key = notices.binding_thread(old.id)
        tx.outbox.add(
            notices.to_channel(
                "binding_taken_over",
                now,
                channel=old.channel,
                user=old.requested_by,
                thread=key,
                broadcast=True,
                **facts
                | {
                    "to_bucket": approval.to_bucket,
                    "taken_by": approval.requested_by,
                    "approved_by": approval.decided_by,
                },
            )
        )
        tx.outbox.add(
            notices.update("binding_card", now, key=key, user=old.requested_by, **facts)
        )

    def _failed(self, approval: Approval, challenge: Challenge, reason: str) -> None:
        assert approval.id is not None and challenge.id is not None
        now = self._clock.now()
        logger.warning(
            "approved rebind failed approval=%s domain=%s: %s",
            approval.id,
            approval.domain,
            reason,
        )
        with self._db.transaction() as tx:
            tx.approvals.finish(
                approval.id, state=ApprovalState.FAILED, applied_at=now, outcome=reason
            )
            approval.state, approval.outcome = ApprovalState.FAILED, reason
            tx.challenges.move_state(
                challenge.id,
                ChallengeState.VERIFIED,
                ChallengeState.CLOSED,
                closed_at=now,
            )
            tx.audit.record(
                self._event(
                    approval,
                    SYSTEM_ACTOR,
                    "rebind_failed",
                    ApprovalState.APPROVED,
                    detail=reason,
                )
            )
            tx.outbox.add(self._reply("takeover_failed", approval, now))
            tx.outbox.add(self._card_update(approval, now))

    def _close_rejected(
        self, tx: Transaction, approval: Approval, now: datetime
    ) -> None:
        tx.challenges.move_state(
            approval.challenge_id,
            ChallengeState.VERIFIED,
            ChallengeState.CLOSED,
            closed_at=now,
        )
        tx.outbox.add(self._reply("takeover_rejected", approval, now))
        tx.outbox.add(self._card_update(approval, now))

    def _remind(self, approval: Approval, now: datetime) -> None:
        assert approval.id is not None
        with self._db.transaction() as tx:
            stored = tx.approvals.get(approval.id)
            if (
                stored is None
                or stored.reminded
                or (stored.state is not ApprovalState.PENDING)
            ):
                return
            tx.approvals.finish(approval.id, reminded=True)
            tx.outbox.add(self._reply("approval_reminder", approval, now))
        self._on_notice()

    def _expire(self, approval: Approval, now: datetime) -> None:
        assert approval.id is not None
        with self._db.transaction() as tx:
            if not tx.approvals.expire(approval.id, decided_at=now):
                return
            approval.state, approval.decided_at = ApprovalState.EXPIRED, now
            tx.challenges.move_state(
                approval.challenge_id,
                ChallengeState.VERIFIED,
                ChallengeState.CLOSED,
                closed_at=now,
            )
            tx.audit.record(
                self._event(
                    approval, SYSTEM_ACTOR, "approval_expired", ApprovalState.PENDING
                )
            )
            tx.outbox.add(self._reply("approval_expired", approval, now))
            tx.outbox.add(self._card_update(approval, now))
        logger.info("approval expired id=%s domain=%s", approval.id, approval.domain)
        self._on_notice()

    def _refuse(
        self, approval: Approval, user: str, channel: str | None, reason: str
    ) -> None:
        with self._db.transaction() as tx:
            tx.audit.record(
                self._event(
                    approval, user, "decision_refused", approval.state, detail=reason
                )
            )
        logger.info("decision refused approval=%s user=%s", approval.id, user)
        self._tell(approval, user, channel, "approval_refused", reason=reason)

    def _tell(
        self,
        approval: Approval,
        user: str,
        channel: str | None,
        notice: str,
        **context: Any,
    ) -> None:
        with self._db.transaction() as tx:
            tx.outbox.add(
                notices.to_user(
                    notice,
                    self._clock.now(),
                    channel=channel or approval.channel,
                    user=user,
                    **self.facts(approval) | context,
                )
            )
        self._on_notice()

    def _reply(self, notice: str, approval: Approval, now: datetime) -> Any:
        """A message in the thread of the approval's challenge."""
        return notices.to_channel(
            notice,
            now,
            channel=approval.channel,
            user=approval.requested_by,
            thread=_challenge_key(approval),
            **self.facts(approval),
        )

    def _card_update(self, approval: Approval, now: datetime) -> Any:
        return notices.update(
            "approval_card",
            now,
            key=approval_key(approval.id),
            user=approval.requested_by,
            **self.facts(approval),
        )

    def _undo_release(self, bucket: Bucket | None, domain: str) -> None:
        if bucket is None:
            return
        try:
            self._providers[bucket.provider].bind(bucket, domain)
        except DomainbotError:
            logger.exception(
                "could not give domain=%s back to bucket=%s", domain, bucket.name
            )

    def _bucket(self, name: str) -> Bucket:
        bucket = self._config.bucket(name)
        if bucket is None:
            raise ProviderError(
                "domainbot", "rebind", f"bucket {name} is no longer configured"
            )
        return bucket

    def _event(
        self,
        approval: Approval,
        actor: str,
        action: str,
        before: ApprovalState | None,
        *,
        detail: str | None = None,
    ) -> AuditEvent:
        return AuditEvent(
            at=self._clock.now(),
            actor=actor,
            subject="approval",
            subject_id=approval.id or 0,
            domain=approval.domain,
            action=action,
            state_before=before.value if before else None,
            state_after=approval.state.value,
            detail=detail,
        )


def approval_key(approval_id: int | None) -> str:
    return f"approval:{approval_id}"


def _challenge_key(approval: Approval) -> str:
    return f"challenge:{approval.challenge_id}"
