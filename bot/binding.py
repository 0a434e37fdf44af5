"""The binding workflow: bind a domain to a bucket, list bindings, release one.

Plain Python with no Slack in it: the Slack commands, the tests and any other front
end drive it the same way. Every change of state is stored together with its audit
event and the notices that tell people about it (see :mod:`bot.notices`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError

from bot import notices
from bot.approvers import ApproverDirectory, Verdict, unreadable_group
from bot.auto_cname import CnameStatus, CnameWrite, CnameWriter
from bot.clock import Clock
from bot.config import Bucket, FileConfig
from bot.domain_names import is_under, normalise_domain
from bot.errors import (
    BucketFull,
    CdnNotConfigured,
    ChangeRefused,
    DomainConflict,
    IcpConfirmationMissing,
    InvalidDomain,
    InvalidRequest,
    NotBound,
    ProviderError,
    RequestRefused,
    SlackError,
    UnknownBucket,
)
from bot.providers import StorageProvider
from storage import Database, Transaction
from storage.models import AuditEvent, Binding, BindingState, Challenge

logger = logging.getLogger(__name__)

SYSTEM_ACTOR = "domainbot"


@dataclass(frozen=True)
class BindRequest:
    """What a person asked for, as they typed it."""

    domain: str
    bucket: str
    requested_by: str
    channel: str | None = None
    cdn: bool = False
    auto_cname: bool = False
    icp_confirmed: bool = False
    request_key: str | None = None


@dataclass(frozen=True)
class TakeOver:
    """A request to move a domain from the bucket holding it to ``bucket``."""

    domain: str
    bucket: Bucket
    requested_by: str
    channel: str | None
    cdn: bool
    auto_cname: bool
    icp_confirmed: bool


@dataclass(frozen=True)
class CheckedRequest:
    """A request whose input passed every check that needs no storage."""

    domain: str
    bucket: Bucket
    request: BindRequest


class Outcome(StrEnum):
    CREATED = "created"
    ALREADY_BOUND = "already_bound"
    CONFLICT = "conflict"
    REFUSED = "refused"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class BindOutcome:
    outcome: Outcome
    domain: str
    binding_id: int | None = None
    message: str | None = None
    challenge_id: int | None = None


class ChallengeOpener(Protocol):
    """Opens the TXT challenge for a domain another bucket holds."""

    def open(self, request: TakeOver, conflict: DomainConflict) -> Challenge: ...


class BindingWorkflow:
    """Binds domains to buckets and releases them again."""

    def __init__(
        self,
        *,
        config: FileConfig,
        db: Database,
        providers: Mapping[str, StorageProvider],
        clock: Clock,
        challenges: ChallengeOpener,
        cname: CnameWriter,
        approvers: ApproverDirectory,
    ) -> None:
        self._config = config
        self._db = db
        self._providers = providers
        self._clock = clock
        self._challenges = challenges
        self._cname = cname
        self._approvers = approvers

    def check_input(self, request: BindRequest) -> CheckedRequest:
        """Check what needs no storage; raise :class:`InvalidRequest` listing problems.

        Fast and free of I/O, so that a Slack handler can call it before it acks.
        """
        problems: list[RequestRefused] = []
        bucket = self._config.bucket(request.bucket)
        if bucket is None:
            known = [b.name for b in self._config.buckets]
            problems.append(UnknownBucket(request.bucket, known))
        reserved = tuple(sorted({b.reserved_suffix for b in self._config.buckets}))
        domain = ""
        try:
            domain = normalise_domain(request.domain, reserved_suffixes=reserved)
        except RequestRefused as err:
            problems.append(err)
        if bucket is not None:
            self._check_bucket_rules(bucket, domain, request, problems)
        if problems or bucket is None:
            raise InvalidRequest(problems)
        return CheckedRequest(domain, bucket, request)

    def bind(self, request: BindRequest) -> BindOutcome:
        """Bind as asked; the outcome is also left as notices for the requester.

        Input problems raise :class:`InvalidRequest` before anything is stored.
        """
        checked = self.check_input(request)
        with self._db.transaction() as tx:
            if request.request_key and not tx.requests.claim(
                request.request_key, self._clock.now()
            ):
                logger.info("repeated request ignored key=%s", request.request_key)
                return BindOutcome(Outcome.DUPLICATE, checked.domain)
            early = self._refusal(tx, checked)
        if isinstance(early, DomainConflict):
            return self._conflict(checked, early)
        if early is not None:
            return early
        created = False
        try:
            created = self._provider(checked.bucket).bind(
                checked.bucket, checked.domain
            )
            target = self._target(checked)
        except DomainConflict as conflict:
            return self._conflict(checked, conflict)
        except ProviderError as err:
            logger.warning("provider refused bind domain=%s: %s", checked.domain, err)
            if created:
                self._provider(checked.bucket).release(checked.bucket, checked.domain)
            return self._report(checked, Outcome.REFUSED, err)
        return self._record(checked, target, created_at_provider=created)

    def current(self, domain_text: str) -> Binding:
        """The binding of a domain as typed; raise :class:`NotBound` if there is none.

        Raises :class:`InvalidDomain` when the text is not a domain name.
        """
        domain = normalise_domain(domain_text)
        with self._db.transaction() as tx:
            binding = tx.bindings.current(domain)
        if binding is None:
            raise NotBound(domain)
        return binding

    def release(self, domain_text: str, *, actor: str, channel: str | None) -> Binding:
        """Unbind a domain from its bucket.

        Raises :class:`NotBound` if it is unbound, and :class:`ChangeRefused`
        (after auditing the attempt) when ``actor`` may not change it.
        """
        return self._release(self.current(domain_text), actor=actor, channel=channel)

    def may_change(self, user: str, binding: Binding) -> Verdict:
        """Whether ``user`` may release ``binding`` or replace records for it.

        Its requester and the approvers may. Anyone else could otherwise free a
        production domain and bind it to a bucket of their own, skipping the TXT
        proof and the approval a takeover needs.
        """
        if user == binding.requested_by:
            return Verdict(True)
        try:
            if self._approvers.includes(user):
                return Verdict(True)
        except SlackError as err:
            return Verdict(False, unreadable_group(err))
        return Verdict(
            False, "only the person who bound it or a configured approver may do that"
        )

    def release_by_id(
        self, binding_id: int, *, actor: str, channel: str | None
    ) -> Binding:
        """Like :meth:`release`, for the binding a confirmation button names."""
        with self._db.transaction() as tx:
            binding = tx.bindings.get(binding_id)
        if binding is None or binding.released_at is not None:
            raise NotBound(binding.domain if binding else f"binding {binding_id}")
        return self._release(binding, actor=actor, channel=channel)

    def _permit(self, binding: Binding, actor: str, change: str, action: str) -> None:
        """Raise :class:`ChangeRefused`, audited as ``action``, unless allowed."""
        verdict = self.may_change(actor, binding)
        if verdict.allowed:
            return
        with self._db.transaction() as tx:
            self._audit(tx, binding, actor, action, binding.state, verdict.reason)
        logger.info("%s refused domain=%s user=%s", action, binding.domain, actor)
        raise ChangeRefused(binding.domain, change, verdict.reason)

    def _release(self, binding: Binding, *, actor: str, channel: str | None) -> Binding:
        assert binding.id is not None
        domain = binding.domain
        self._permit(binding, actor, "unbind", "unbind_refused")
        bucket = self._config.bucket(binding.bucket)
        if bucket is not None:
            self._provider(bucket).release(bucket, domain)
        removed = binding.cname_status in (
            CnameStatus.ADDED,
            CnameStatus.REPLACED,
        ) and self._remove_cname(domain, binding.target)
        now = self._clock.now()
        with self._db.transaction() as tx:
            before = binding.state
            if not tx.bindings.move_state(
                binding.id,
                before,
                BindingState.RELEASED,
                released_at=now,
                next_check_at=None,
            ):
                raise NotBound(domain)
            binding.state, binding.released_at = BindingState.RELEASED, now
            self._audit(
                tx, binding, actor, "released", before, f"from bucket {binding.bucket}"
            )
            facts = self._facts(binding)
            thread = notices.binding_thread(binding.id)
            tx.outbox.add(
                notices.to_channel(
                    "binding_released",
                    now,
                    channel=channel,
                    user=actor,
                    thread=thread,
                    actor=actor,
                    cname_removed=removed,
                    **facts,
                )
            )
            tx.outbox.add(
                notices.update(
                    "binding_card",
                    now,
                    key=thread,
                    user=binding.requested_by,
                    released_by=actor,
                    **facts,
                )
            )
        logger.info(
            "binding released domain=%s bucket=%s user=%s",
            domain,
            binding.bucket,
            actor,
        )
        return binding

    def bindings(self, bucket: str | None = None) -> list[Binding]:
        """The current bindings, of one bucket or of all."""
        if bucket is not None and self._config.bucket(bucket) is None:
            raise UnknownBucket(bucket, [b.name for b in self._config.buckets])
        with self._db.transaction() as tx:
            return tx.bindings.list_current(bucket)

    def _check_bucket_rules(
        self,
        bucket: Bucket,
        domain: str,
        request: BindRequest,
        problems: list[RequestRefused],
    ) -> None:
        if domain and is_under(domain, bucket.internet_domain):
            problems.append(_own_domain(domain, bucket))
        if bucket.needs_icp and not request.icp_confirmed:
            problems.append(IcpConfirmationMissing(bucket.name, bucket.endpoint))
        if request.cdn and not self._provider(bucket).offers_cdn(bucket):
            problems.append(CdnNotConfigured(bucket.name))

    def _target(self, checked: CheckedRequest) -> str:
        """Where the CNAME must point: the CDN's host, or the bucket's own address.

        Raises ProviderError when the CDN cannot give its host name.
        """
        bucket = checked.bucket
        if not checked.request.cdn:
            return bucket.internet_domain
        return self._provider(bucket).cdn_target(bucket, checked.domain)

    def _refusal(
        self, tx: Transaction, checked: CheckedRequest
    ) -> BindOutcome | DomainConflict | None:
        """Why the request cannot go ahead given what is stored, or None.

        A conflict is returned as it is, for the caller to open a challenge once
        this transaction is over.
        """
        current = tx.bindings.current(checked.domain)
        if current is not None and current.bucket == checked.bucket.name:
            return self._leave(tx, checked, Outcome.ALREADY_BOUND, current)
        if current is not None:
            return DomainConflict(checked.domain, current.bucket, current.created_at)
        if tx.bindings.count_current(checked.bucket.name) >= checked.bucket.max_domains:
            full = BucketFull(checked.bucket.name, checked.bucket.max_domains)
            return self._leave(tx, checked, Outcome.REFUSED, full)
        return None

    def _record(
        self, checked: CheckedRequest, target: str, *, created_at_provider: bool
    ) -> BindOutcome:
        now = self._clock.now()
        request = checked.request
        binding = Binding(
            domain=checked.domain,
            bucket=checked.bucket.name,
            target=target,
            state=BindingState.PENDING_DNS,
            cdn=request.cdn,
            auto_cname=request.auto_cname,
            icp_confirmed=request.icp_confirmed,
            requested_by=request.requested_by,
            channel=request.channel,
            created_at=now,
            next_check_at=now,
        )
        write = (
            self._cname.write(binding.domain, target) if request.auto_cname else None
        )
        if write is not None:
            note_cname(binding, write)
        try:
            with self._db.transaction() as tx:
                refusal = self._refusal(tx, checked)
                if refusal is None:
                    insert_binding(
                        tx, binding, bucket_domain=checked.bucket.internet_domain
                    )
        except IntegrityError:
            # A parallel request bound the domain between our checks and our write.
            with self._db.transaction() as tx:
                refusal = self._refusal(tx, checked)
            refusal = refusal or BindOutcome(Outcome.DUPLICATE, checked.domain)
        if refusal is not None:
            same_bucket = (
                isinstance(refusal, BindOutcome)
                and refusal.outcome is Outcome.ALREADY_BOUND
            )
            if not same_bucket:
                # What this request made, no stored binding backs: undo it.
                self._undo(checked, target, write, created_at_provider)
            if isinstance(refusal, DomainConflict):
                return self._conflict(checked, refusal)
            return refusal
        logger.info(
            "binding made domain=%s bucket=%s user=%s id=%s",
            binding.domain,
            binding.bucket,
            binding.requested_by,
            binding.id,
        )
        return BindOutcome(Outcome.CREATED, binding.domain, binding.id)

    def _undo(
        self,
        checked: CheckedRequest,
        target: str,
        write: CnameWrite | None,
        created_at_provider: bool,
    ) -> None:
        if created_at_provider:
            self._provider(checked.bucket).release(checked.bucket, checked.domain)
        if write is not None and write.status is CnameStatus.ADDED:
            self._remove_cname(checked.domain, target)

    def _remove_cname(self, domain: str, target: str) -> bool:
        try:
            return self._cname.remove(domain, target)
        except ProviderError as err:
            logger.warning("could not remove cname domain=%s: %s", domain, err)
            return False

    def replace_cname(
        self, binding_id: int, *, actor: str, channel: str | None
    ) -> Binding:
        """Replace the CNAME standing in the way, as ``actor`` confirmed.

        Raises :class:`NotBound` when the binding was released meanwhile, and
        :class:`ChangeRefused` (after auditing the attempt) when ``actor`` is
        neither its requester nor an approver.
        """
        with self._db.transaction() as tx:
            binding = tx.bindings.get(binding_id)
        if binding is None or binding.released_at is not None or binding.id is None:
            raise NotBound(binding.domain if binding else f"binding {binding_id}")
        self._permit(
            binding, actor, "replace the CNAME record of", "cname_replace_refused"
        )
        replaced = binding.cname_detail
        write = self._cname.replace(binding.domain, binding.target)
        note_cname(binding, write, replaced=replaced)
        now = self._clock.now()
        with self._db.transaction() as tx:
            tx.bindings.move_state(
                binding.id,
                binding.state,
                binding.state,
                cname_status=binding.cname_status,
                cname_zone=binding.cname_zone,
                cname_detail=binding.cname_detail,
                next_check_at=now if binding.next_check_at else None,
            )
            self._audit(
                tx,
                binding,
                actor,
                f"cname_{write.status.value}",
                binding.state,
                f"was {replaced}" if replaced else None,
            )
            facts = self._facts(binding)
            key = notices.binding_thread(binding.id)
            tx.outbox.add(
                notices.to_channel(
                    "binding_cname_replaced",
                    now,
                    channel=channel,
                    user=actor,
                    thread=key,
                    actor=actor,
                    replaced=replaced,
                    **facts,
                )
            )
            tx.outbox.add(
                notices.update("binding_card", now, key=key, user=actor, **facts)
            )
        return binding

    def _facts(self, binding: Binding) -> dict[str, Any]:
        bucket = self._config.bucket(binding.bucket)
        own = bucket.internet_domain if bucket else binding.target
        return notices.binding_facts(binding, own)

    def _conflict(
        self, checked: CheckedRequest, conflict: DomainConflict
    ) -> BindOutcome:
        """Another bucket holds the domain: open (or show) the TXT challenge."""
        request = checked.request
        challenge = self._challenges.open(
            TakeOver(
                domain=checked.domain,
                bucket=checked.bucket,
                requested_by=request.requested_by,
                channel=request.channel,
                cdn=request.cdn,
                auto_cname=request.auto_cname,
                icp_confirmed=request.icp_confirmed,
            ),
            conflict,
        )
        return BindOutcome(
            Outcome.CONFLICT,
            checked.domain,
            None,
            str(conflict),
            challenge_id=challenge.id,
        )

    def _leave(
        self,
        tx: Transaction,
        checked: CheckedRequest,
        outcome: Outcome,
        reason: RequestRefused | Binding,
    ) -> BindOutcome:
        """Tell the requester, privately, why nothing new was made."""
        request = checked.request
        context: dict[str, object] = {
            "domain": checked.domain,
            "bucket": checked.bucket.name,
        }
        if isinstance(reason, Binding):
            context |= {
                "state": reason.state.value,
                "binding_id": reason.id,
                "target": reason.target,
            }
            message = f"{checked.domain} is already bound to {reason.bucket}."
        else:
            message = str(reason)
            context |= {"message": message}
            if isinstance(reason, DomainConflict):
                context |= {"holder": reason.holder, "since": reason.since}
        tx.outbox.add(
            notices.to_user(
                f"request_{outcome.value}",
                self._clock.now(),
                channel=request.channel,
                user=request.requested_by,
                **context,
            )
        )
        logger.info(
            "bind request not made domain=%s bucket=%s outcome=%s",
            checked.domain,
            checked.bucket.name,
            outcome.value,
        )
        binding_id = reason.id if isinstance(reason, Binding) else None
        return BindOutcome(outcome, checked.domain, binding_id, message)

    def _report(
        self,
        checked: CheckedRequest,
        outcome: Outcome,
        reason: RequestRefused | ProviderError,
    ) -> BindOutcome:
        with self._db.transaction() as tx:
            message = str(reason)
            tx.outbox.add(
                notices.to_user(
                    f"request_{outcome.value}",
                    self._clock.now(),
                    channel=checked.request.channel,
                    user=checked.request.requested_by,
                    domain=checked.domain,
                    bucket=checked.bucket.name,
                    message=message,
                )
            )
        return BindOutcome(outcome, checked.domain, None, message)

    def _audit(
        self,
        tx: Transaction,
        binding: Binding,
        actor: str,
        action: str,
        before: BindingState | None,
        detail: str | None,
    ) -> None:
        assert binding.id is not None
        tx.audit.record(
            AuditEvent(
                at=self._clock.now(),
                actor=actor,
                subject="binding",
                subject_id=binding.id,
                domain=binding.domain,
                action=action,
                state_before=before.value if before else None,
                state_after=binding.state.value,
                detail=detail,
            )
        )

    def _provider(self, bucket: Bucket) -> StorageProvider:
        return self._providers[bucket.provider]


def _own_domain(domain: str, bucket: Bucket) -> RequestRefused:
    return InvalidDomain(
        domain,
        f"{domain} is the bucket's own address. Bind a domain your team owns, such "
        f"as img.example.com; it will point at {bucket.internet_domain}.",
    )


def insert_binding(
    tx: Transaction, binding: Binding, *, bucket_domain: str, thread: str | None = None
) -> Binding:
    """Store a new binding with its audit event and its card.

    The card opens the binding's own thread, or with ``thread`` is posted as a reply
    in that thread. Raises IntegrityError when the domain is bound already.
    """
    tx.bindings.add(binding)
    assert binding.id is not None
    tx.audit.record(
        AuditEvent(
            at=binding.created_at,
            actor=binding.requested_by,
            subject="binding",
            subject_id=binding.id,
            domain=binding.domain,
            action="bound",
            state_before=None,
            state_after=binding.state.value,
            detail=f"to bucket {binding.bucket}",
        )
    )
    tx.outbox.add(
        notices.to_channel(
            "binding_card",
            binding.created_at,
            channel=binding.channel,
            user=binding.requested_by,
            thread=thread,
            remember_as=notices.binding_thread(binding.id),
            **notices.binding_facts(binding, bucket_domain),
        )
    )
    return binding


def note_cname(
    binding: Binding, write: CnameWrite, replaced: str | None = None
) -> None:
    """Keep on the binding what became of its automatic CNAME record."""
    binding.cname_status = write.status.value
    binding.cname_zone = write.zone
    binding.cname_detail = (
        replaced if write.status is CnameStatus.REPLACED else (write.detail)
    )
