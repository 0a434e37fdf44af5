"""Taking over a domain another bucket holds: the TXT challenge.

Whoever controls a domain's DNS may move it to their bucket. The requester proves
control by publishing ``_dnsauth.<domain>`` with a fresh token; the bot watches the
domain's authoritative servers for exactly that value, with the same growing waits
as CNAME checks, until the token expires (72 hours). Once the record is seen, an
approval is opened (see :mod:`bot.approvals`); nothing is offered before that.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError

from bot import notices
from bot.approvals import ApprovalDesk
from bot.binding import TakeOver
from bot.clock import Clock
from bot.config import FileConfig
from bot.dns_check import TxtLookup, TxtState, clip_words
from bot.errors import DomainConflict
from bot.providers import StorageProvider
from bot.recheck import RecheckPolicy
from storage import Database, Transaction
from storage.models import ApprovalState, AuditEvent, Challenge, ChallengeState

logger = logging.getLogger(__name__)

SYSTEM_ACTOR = "domainbot"
TOKEN_LIFETIME = timedelta(hours=72)
RECORD_PREFIX = "_dnsauth"


class TxtChecker(Protocol):
    def txt_values(self, name: str) -> TxtLookup: ...

    def zone_of(self, name: str) -> str | None: ...


def record_name(domain: str) -> str:
    return f"{RECORD_PREFIX}.{domain}"


def host_field(domain: str, zone: str | None) -> str | None:
    """The record's name as DNS consoles that append the zone want it typed."""
    if not zone or zone == domain or not domain.endswith("." + zone):
        return RECORD_PREFIX if zone == domain else None
    return f"{RECORD_PREFIX}.{domain.removesuffix('.' + zone)}"


class ChallengeDesk:
    """Opens challenges, watches DNS for their records and hands them to approval."""

    def __init__(
        self,
        *,
        config: FileConfig,
        db: Database,
        providers: Mapping[str, StorageProvider],
        dns: TxtChecker,
        clock: Clock,
        policy: RecheckPolicy,
        approvals: ApprovalDesk,
        on_notice: Callable[[], None] = lambda: None,
    ) -> None:
        self._config = config
        self._db = db
        self._providers = providers
        self._dns = dns
        self._clock = clock
        self._policy = policy
        self._approvals = approvals
        self._on_notice = on_notice

    def open(self, request: TakeOver, conflict: DomainConflict) -> Challenge:
        """Post the TXT record to add, or show the one already asked for.

        Raises :class:`~bot.errors.ProviderError` when the provider's token cannot
        be had.
        """
        with self._db.transaction() as tx:
            existing = tx.challenges.watching(request.domain, request.bucket.name)
            if existing is not None and existing.expires_at > self._clock.now():
                self._tell_again(tx, existing, request)
                return existing
        token, expires_at, from_provider = self._token(request)
        zone = self._dns.zone_of(request.domain)
        now = self._clock.now()
        challenge = Challenge(
            domain=request.domain,
            bucket=request.bucket.name,
            holder=conflict.holder,
            holder_since=conflict.since,
            token=token,
            token_from_provider=from_provider,
            zone=zone,
            state=ChallengeState.WATCHING,
            requested_by=request.requested_by,
            channel=request.channel,
            cdn=request.cdn,
            auto_cname=request.auto_cname,
            icp_confirmed=request.icp_confirmed,
            created_at=now,
            expires_at=expires_at,
            next_check_at=min(now + self._policy.base, expires_at),
        )
        try:
            with self._db.transaction() as tx:
                self._expire_stale(tx, request)
                tx.challenges.add(challenge)
                self._audit(
                    tx, challenge, request.requested_by, "challenge_opened", None
                )
                tx.outbox.add(self._card(challenge, now))
        except IntegrityError:
            # A parallel request opened the same challenge; show that one.
            with self._db.transaction() as tx:
                existing = tx.challenges.watching(request.domain, request.bucket.name)
                assert existing is not None
                self._tell_again(tx, existing, request)
                return existing
        logger.info(
            "challenge opened domain=%s bucket=%s holder=%s id=%s",
            challenge.domain,
            challenge.bucket,
            challenge.holder,
            challenge.id,
        )
        self._on_notice()
        return challenge

    def sweep(self, *, limit: int = 200) -> int:
        """Check every challenge that is due; also run the approvals' timers."""
        with self._db.transaction() as tx:
            due = tx.challenges.due(self._clock.now(), limit)
        for challenge in due:
            self._check(challenge, asked_by=None)
        self._approvals.tick()
        return len(due)

    def open_requests(self, bucket: str | None = None) -> list[dict[str, Any]]:
        """Challenges not yet closed (of ``bucket``, as taker or holder), with
        their approval's state, for listings."""
        with self._db.transaction() as tx:
            challenges = tx.challenges.open()
            pending = {a.challenge_id: a for a in tx.approvals.pending()}
        rows = []
        for challenge in challenges:
            if bucket is not None and bucket not in (
                challenge.bucket,
                challenge.holder,
            ):
                continue
            approval = pending.get(challenge.id or 0)
            rows.append(
                challenge_facts(challenge)
                | {"approval_expires_at": approval.expires_at if approval else None}
            )
        return rows

    def check_now(self, challenge_id: int, *, actor: str) -> Challenge | None:
        """Check one challenge at once, as asked by ``actor`` with the button."""
        with self._db.transaction() as tx:
            challenge = tx.challenges.get(challenge_id)
        if challenge is None:
            return None
        if challenge.state is not ChallengeState.WATCHING:
            self._tell_state(challenge, actor)
            return challenge
        self._check(challenge, asked_by=actor)
        with self._db.transaction() as tx:
            return tx.challenges.get(challenge_id)

    def _token(self, request: TakeOver) -> tuple[str, datetime, bool]:
        provider = self._providers[request.bucket.provider]
        own = provider.ownership_token(request.bucket, request.domain)
        if own is not None:
            return own.token, own.expires_at, True
        return secrets.token_urlsafe(24), self._clock.now() + TOKEN_LIFETIME, False

    def _expire_stale(self, tx: Transaction, request: TakeOver) -> None:
        """Close a watched challenge whose token ran out but was not swept yet."""
        stale = tx.challenges.watching(request.domain, request.bucket.name)
        if stale is not None and stale.id is not None:
            tx.challenges.move_state(
                stale.id,
                ChallengeState.WATCHING,
                ChallengeState.EXPIRED,
                closed_at=self._clock.now(),
                next_check_at=None,
            )

    def _check(self, challenge: Challenge, *, asked_by: str | None) -> None:
        assert challenge.id is not None
        now = self._clock.now()
        if now >= challenge.expires_at:
            self._expire(challenge, now)
            return
        lookup = self._dns.txt_values(record_name(challenge.domain))
        if lookup.state is TxtState.FOUND and challenge.token in lookup.values:
            self._verified(challenge, lookup, asked_by or SYSTEM_ACTOR, now)
            return
        self._keep_watching(challenge, lookup, now, asked_by)

    def _keep_watching(
        self,
        challenge: Challenge,
        lookup: TxtLookup,
        now: datetime,
        asked_by: str | None,
    ) -> None:
        """Record a check that did not verify; tell the thread only what is new."""
        assert challenge.id is not None
        tries = challenge.check_count + 1
        next_at = min(now + self._policy.wait_after(tries), challenge.expires_at)
        found = _found_words(lookup)
        problem = lookup.problem if lookup.state is TxtState.DNS_ERROR else None
        # A problem is told once until a check gets through again; a wrong value
        # is told each time a different one is seen.
        new_problem = problem is not None and not challenge.problem_notified
        new_values = lookup.state is TxtState.FOUND and found != challenge.last_found
        context = self._facts(challenge) | {
            "found": found,
            "problem": problem,
            "next_check": next_at,
        }
        with self._db.transaction() as tx:
            tx.challenges.save_check(
                challenge.id,
                check_count=tries,
                last_checked_at=now,
                next_check_at=next_at,
                last_found=challenge.last_found if problem else found,
                last_problem=problem,
                problem_notified=problem is not None,
            )
            if new_problem:
                tx.outbox.add(
                    self._reply("challenge_dns_problem", challenge, now, **context)
                )
            elif new_values:
                tx.outbox.add(
                    self._reply("challenge_mismatch", challenge, now, **context)
                )
            if asked_by is not None:
                tx.outbox.add(
                    notices.to_user(
                        "challenge_check_result",
                        now,
                        channel=challenge.channel,
                        user=asked_by,
                        **context,
                    )
                )
        if asked_by is not None or new_values or new_problem:
            self._on_notice()

    def _verified(
        self, challenge: Challenge, lookup: TxtLookup, actor: str, now: datetime
    ) -> None:
        assert challenge.id is not None
        with self._db.transaction() as tx:
            if not tx.challenges.move_state(
                challenge.id,
                ChallengeState.WATCHING,
                ChallengeState.VERIFIED,
                verified_at=now,
                next_check_at=None,
                last_checked_at=now,
                check_count=challenge.check_count + 1,
                last_found=_found_words(lookup),
                last_problem=None,
            ):
                return
            challenge.state = ChallengeState.VERIFIED
            self._audit(
                tx,
                challenge,
                actor,
                "ownership_verified",
                ChallengeState.WATCHING,
                detail=", ".join(lookup.servers),
            )
            tx.outbox.add(
                notices.update(
                    "challenge_card",
                    now,
                    key=_key(challenge),
                    user=challenge.requested_by,
                    **self._facts(challenge),
                )
            )
            approval = self._approvals.open(tx, challenge, servers=lookup.servers)
        logger.info(
            "ownership verified domain=%s bucket=%s challenge=%s",
            challenge.domain,
            challenge.bucket,
            challenge.id,
        )
        if approval.state is ApprovalState.APPROVED:
            self._approvals.apply(approval.id or 0)
        self._on_notice()

    def _expire(self, challenge: Challenge, now: datetime) -> None:
        assert challenge.id is not None
        with self._db.transaction() as tx:
            if not tx.challenges.move_state(
                challenge.id,
                ChallengeState.WATCHING,
                ChallengeState.EXPIRED,
                closed_at=now,
                next_check_at=None,
            ):
                return
            challenge.state = ChallengeState.EXPIRED
            self._audit(
                tx,
                challenge,
                SYSTEM_ACTOR,
                "challenge_expired",
                ChallengeState.WATCHING,
            )
            facts = self._facts(challenge)
            tx.outbox.add(self._reply("challenge_expired", challenge, now, **facts))
            tx.outbox.add(
                notices.update(
                    "challenge_card",
                    now,
                    key=_key(challenge),
                    user=challenge.requested_by,
                    **facts,
                )
            )
        logger.info(
            "challenge expired domain=%s challenge=%s", challenge.domain, challenge.id
        )
        self._on_notice()

    def _tell_again(
        self, tx: Transaction, challenge: Challenge, request: TakeOver
    ) -> None:
        tx.outbox.add(
            notices.to_user(
                "challenge_again",
                self._clock.now(),
                channel=request.channel,
                user=request.requested_by,
                **self._facts(challenge),
            )
        )
        self._on_notice()

    def _tell_state(self, challenge: Challenge, user: str) -> None:
        with self._db.transaction() as tx:
            tx.outbox.add(
                notices.to_user(
                    "challenge_check_result",
                    self._clock.now(),
                    channel=challenge.channel,
                    user=user,
                    **self._facts(challenge)
                    | {
                        "found": challenge.last_found,
                        "problem": None,
                        "next_check": None,
                    },
                )
            )
        self._on_notice()

    def _card(self, challenge: Challenge, now: datetime) -> Any:
        return notices.to_channel(
            "challenge_card",
            now,
            channel=challenge.channel,
            user=challenge.requested_by,
            remember_as=_key(challenge),
            **self._facts(challenge),
        )

    def _reply(
        self, notice: str, challenge: Challenge, now: datetime, **context: Any
    ) -> Any:
        return notices.to_channel(
            notice,
            now,
            channel=challenge.channel,
            user=challenge.requested_by,
            thread=_key(challenge),
            **context,
        )

    def _facts(self, challenge: Challenge) -> dict[str, Any]:
        return challenge_facts(challenge)

    def _audit(
        self,
        tx: Transaction,
        challenge: Challenge,
        actor: str,
        action: str,
        before: ChallengeState | None,
        *,
        detail: str | None = None,
    ) -> None:
        assert challenge.id is not None
        tx.audit.record(
            AuditEvent(
                at=self._clock.now(),
                actor=actor,
                subject="challenge",
                subject_id=challenge.id,
                domain=challenge.domain,
                action=action,
                state_before=before.value if before else None,
                state_after=challenge.state.value,
                detail=detail,
            )
        )


def challenge_facts(challenge: Challenge) -> dict[str, Any]:
    """What every message about a challenge may show."""
    return {
        "challenge_id": challenge.id,
        "domain": challenge.domain,
        "bucket": challenge.bucket,
        "holder": challenge.holder,
        "holder_since": challenge.holder_since,
        "record_name": record_name(challenge.domain),
        "token": challenge.token,
        "zone": challenge.zone,
        "host_field": host_field(challenge.domain, challenge.zone),
        "state": challenge.state.value,
        "requester": challenge.requested_by,
        "expires_at": challenge.expires_at,
        "verified_at": challenge.verified_at,
    }


def challenge_key(challenge_id: int | None) -> str:
    return f"challenge:{challenge_id}"


def _key(challenge: Challenge) -> str:
    return challenge_key(challenge.id)


def _found_words(lookup: TxtLookup) -> str:
    if lookup.state is TxtState.DNS_ERROR:
        return "no answer"
    if not lookup.values:
        return "no TXT record"
    return clip_words(", ".join(repr(value) for value in lookup.values))
