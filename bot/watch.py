"""Watching DNS for pending bindings until their CNAME record is live.

One sweep picks the checks that are due from storage (an indexed next-check time,
no job per binding), asks the authoritative servers for many of them at once, and
writes every result back in one transaction per batch. A check that finds the record
makes the binding live; one that runs out of time fails it; the thread hears of each
change of state once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from bot import notices
from bot.clock import Clock
from bot.config import FileConfig
from bot.dns_check import CheckState, CnameCheck, clip_words
from bot.recheck import RecheckPolicy
from storage import Database, Transaction
from storage.models import Binding, BindingState, OutboxMessage

logger = logging.getLogger(__name__)

SYSTEM_ACTOR = "domainbot"


class CnameChecker(Protocol):
    def check_cname(self, domain: str, expected_target: str) -> CnameCheck: ...

    def check_cnames(
        self,
        pairs: Sequence[tuple[str, str]],
        *,
        executor: Executor | None = None,
    ) -> list[CnameCheck]: ...


@dataclass(frozen=True)
class SweepReport:
    checked: int = 0
    live: int = 0
    failed: int = 0
    seconds: float = 0.0


class DnsWatch:
    """Runs the DNS checks of pending bindings and records what they found."""

    def __init__(
        self,
        *,
        config: FileConfig,
        db: Database,
        dns: CnameChecker,
        clock: Clock,
        policy: RecheckPolicy,
        workers: int = 32,
        batch_size: int = 500,
        on_notice: Callable[[], None] = lambda: None,
    ) -> None:
        self._config = config
        self._db = db
        self._dns = dns
        self._clock = clock
        self._policy = policy
        self._batch_size = batch_size
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="dns-check")
        self._on_notice = on_notice

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def sweep(self, *, budget_seconds: float = 30.0) -> SweepReport:
        """Check every binding that is due, batch by batch, within the time budget."""
        started = time.monotonic()
        checked = live = failed = 0
        with self._db.transaction() as tx:
            due = self._due(tx)
        while due:
            # The pool takes the few checks that need more than one question.
            pairs = [(binding.domain, binding.target) for binding in due]
            results = self._dns.check_cnames(pairs, executor=self._pool)
            in_time = time.monotonic() - started < budget_seconds
            with self._db.transaction() as tx:
                batch_live, batch_failed = self._write(
                    tx, due, results, actor=SYSTEM_ACTOR
                )
                checked += len(due)
                # The next batch is read in the same transaction: on SQLite each
                # transaction waits for the write lock, which binds hold often.
                due = self._due(tx) if in_time else []
            if batch_live or batch_failed:
                self._on_notice()
            live, failed = live + batch_live, failed + batch_failed
        report = SweepReport(checked, live, failed, time.monotonic() - started)
        if checked:
            # INFO only when something changed; checks that found nothing new
            # would otherwise add a line every few seconds.
            logger.log(
                logging.INFO if live or failed else logging.DEBUG,
                "dns sweep checked=%d live=%d failed=%d seconds=%.2f",
                checked,
                live,
                failed,
                report.seconds,
            )
        return report

    def check_now(self, binding_id: int, *, actor: str) -> Binding | None:
        """Check one binding at once, as asked by ``actor``; None if it is gone.

        The person who asked is told what was found; the thread only hears of a
        change of state, as with scheduled checks.
        """
        with self._db.transaction() as tx:
            binding = tx.bindings.get(binding_id)
        if binding is None or binding.released_at is not None:
            return None
        if binding.state is not BindingState.PENDING_DNS:
            self._tell_requester(binding, actor, None)
            return binding
        result = self._check(binding)
        self._record([binding], [result], actor=actor, asked_by=actor)
        with self._db.transaction() as tx:
            return tx.bindings.get(binding_id)

    def _check(self, binding: Binding) -> CnameCheck:
        return self._dns.check_cname(binding.domain, binding.target)

    def _due(self, tx: Transaction) -> list[Binding]:
        return tx.bindings.due(self._clock.now(), self._batch_size)

    def _record(
        self,
        bindings: Sequence[Binding],
        results: Sequence[CnameCheck],
        *,
        actor: str,
        asked_by: str | None = None,
    ) -> tuple[int, int]:
        """Write results in a transaction of their own; return (live, failed)."""
        with self._db.transaction() as tx:
            live, failed = self._write(
                tx, bindings, results, actor=actor, asked_by=asked_by
            )
        if live or failed or asked_by:
            self._on_notice()
        return live, failed

    def _write(
        self,
        tx: Transaction,
        bindings: Sequence[Binding],
        results: Sequence[CnameCheck],
        *,
        actor: str,
        asked_by: str | None = None,
    ) -> tuple[int, int]:
        """Write the results of a batch; return how many went live and failed.

        The checks that change nothing but the next check's time are written with
        one statement, and so are the changes of state: a row at a time, they cost
        more than the checks themselves.
        """
        now = self._clock.now()
        waiting: list[dict[str, Any]] = []
        going_live: list[tuple[Binding, CnameCheck]] = []
        giving_up: list[tuple[Binding, CnameCheck]] = []
        for binding, result in zip(bindings, results, strict=True):
            if result.state is CheckState.LIVE:
                going_live.append((binding, result))
                continue
            change = self._keep_waiting(tx, binding, result, now)
            if change.get("state") is BindingState.FAILED:
                giving_up.append((binding, result))
                continue
            waiting.append(change)
            if asked_by is not None:
                self._tell_requester(binding, asked_by, result, tx=tx, at=now)
        tx.bindings.save_checks(waiting)
        notes = _Notes()
        live = self._go_live(tx, going_live, actor, now, notes)
        failed = self._give_up(tx, giving_up, now, notes)
        notes.store(tx)
        return live, failed

    def _keep_waiting(
        self, tx: Transaction, binding: Binding, result: CnameCheck, now: datetime
    ) -> dict[str, Any]:
        assert binding.id is not None
        tries = binding.check_count + 1
        next_at = self._policy.next_check(binding.created_at, now, tries)
        if next_at is None:
            return {"state": BindingState.FAILED}
        problem = result.problem if result.state is CheckState.DNS_ERROR else None
        change: dict[str, Any] = {
            "id": binding.id,
            "check_count": tries,
            "last_checked_at": now,
            "next_check_at": next_at,
            "last_found": result.found,
            "last_problem": problem,
            "problem_notified": binding.problem_notified and problem is not None,
        }
        if problem is not None and not binding.problem_notified:
            change["problem_notified"] = True
            tx.outbox.add(
                OutboxMessage(
                    **self._thread_row(
                        "dns_problem", binding, now, problem=problem, next_check=next_at
                    )
                )
            )
            self._on_notice()
        return change

    def _go_live(
        self,
        tx: Transaction,
        found: Sequence[tuple[Binding, CnameCheck]],
        actor: str,
        now: datetime,
        notes: _Notes,
    ) -> int:
        """Make live the bindings whose CNAME was found; return how many moved.

        One that left ``pending_dns`` meanwhile (released, say) is left as it is.
        """
        moved = tx.bindings.move_many(
            BindingState.PENDING_DNS,
            BindingState.LIVE,
            [
                {
                    "id": binding.id,
                    "live_at": now,
                    "next_check_at": None,
                    "check_count": binding.check_count + 1,
                    "last_checked_at": now,
                    "last_found": result.found,
                    "last_problem": None,
                }
                for binding, result in found
            ],
        )
        for binding, result in found:
            if binding.id in moved:
                self._announce_live(binding, result, actor, now, notes)
        return len(moved)

    def _announce_live(
        self,
        binding: Binding,
        result: CnameCheck,
        actor: str,
        now: datetime,
        notes: _Notes,
    ) -> None:
        binding.state = BindingState.LIVE
        notes.event(
            binding,
            actor,
            "dns_live",
            BindingState.PENDING_DNS,
            now,
            detail=" -> ".join((binding.domain, *result.chain)),
        )
        notes.messages.append(
            self._thread_row("binding_live", binding, now, chain=list(result.chain))
        )
        notes.messages.append(self._root_update_row(binding, now))
        logger.info(
            "binding live domain=%s bucket=%s id=%s",
            binding.domain,
            binding.bucket,
            binding.id,
        )

    def _give_up(
        self,
        tx: Transaction,
        checked: Sequence[tuple[Binding, CnameCheck]],
        now: datetime,
        notes: _Notes,
    ) -> int:
        """Fail the bindings whose time ran out; return how many moved."""
        moved = tx.bindings.move_many(
            BindingState.PENDING_DNS,
            BindingState.FAILED,
            [
                {
                    "id": binding.id,
                    "next_check_at": None,
                    "check_count": binding.check_count + 1,
                    "last_checked_at": now,
                    "last_found": result.found,
                    "last_problem": result.problem,
                }
                for binding, result in checked
            ],
        )
        for binding, result in checked:
            if binding.id in moved:
                self._announce_failure(binding, result, now, notes)
        return len(moved)

    def _announce_failure(
        self, binding: Binding, result: CnameCheck, now: datetime, notes: _Notes
    ) -> None:
        binding.state = BindingState.FAILED
        notes.event(
            binding,
            SYSTEM_ACTOR,
            "dns_gave_up",
            BindingState.PENDING_DNS,
            now,
            detail=result.found,
        )
        notes.messages.append(
            self._thread_row(
                "binding_gave_up",
                binding,
                now,
                found=result.found,
                problem=result.problem,
                tries=binding.check_count + 1,
            )
        )
        notes.messages.append(self._root_update_row(binding, now))
        logger.info(
            "binding failed domain=%s bucket=%s id=%s",
            binding.domain,
            binding.bucket,
            binding.id,
        )

    def _tell_requester(
        self,
        binding: Binding,
        user: str,
        result: CnameCheck | None,
        *,
        tx: Transaction | None = None,
        at: datetime | None = None,
    ) -> None:
        now = at or self._clock.now()
        context = self._facts(binding)
        if result is not None:
            context |= {
                "found": result.found,
                "problem": result.problem,
                "next_check": binding.next_check_at,
            }
        message = notices.to_user(
            "check_result", now, channel=binding.channel, user=user, **context
        )
        if tx is not None:
            tx.outbox.add(message)
            return
        with self._db.transaction() as own:
            own.outbox.add(message)
        self._on_notice()

    def _thread_row(
        self, notice: str, binding: Binding, now: datetime, **context: Any
    ) -> dict[str, Any]:
        """A notice in the binding's thread, as a row of the outbox."""
        assert binding.id is not None
        return notices.channel_row(
            notice,
            now,
            channel=binding.channel,
            user=binding.requested_by,
            thread=notices.binding_thread(binding.id),
            **self._facts(binding),
            **context,
        )

    def _root_update_row(self, binding: Binding, now: datetime) -> dict[str, Any]:
        """The binding's card brought up to date, as a row of the outbox."""
        assert binding.id is not None
        return notices.update_row(
            "binding_card",
            now,
            key=notices.binding_thread(binding.id),
            user=binding.requested_by,
            **self._facts(binding),
        )

    def _facts(self, binding: Binding) -> dict[str, Any]:
        bucket = self._config.bucket(binding.bucket)
        own = bucket.internet_domain if bucket else binding.target
        return notices.binding_facts(binding, own)


@dataclass
class _Notes:
    """The audit events and notices of a batch's changes of state, as rows.

    They are stored together at the end of the batch, one statement for each
    table: built as models and flushed by the session one at a time, they would
    cost more than the checks.
    """

    events: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)

    def event(
        self,
        binding: Binding,
        actor: str,
        action: str,
        before: BindingState,
        now: datetime,
        *,
        detail: str | None,
    ) -> None:
        assert binding.id is not None
        self.events.append(
            {
                "at": now,
                "actor": actor,
                "subject": "binding",
                "subject_id": binding.id,
                "domain": binding.domain,
                "action": action,
                "state_before": before.value,
                "state_after": binding.state.value,
                "detail": None if detail is None else clip_words(detail, 2000),
            }
        )

    def store(self, tx: Transaction) -> None:
        tx.audit.record_many(self.events)
        tx.outbox.add_many(self.messages)
