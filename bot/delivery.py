"""Delivering the outbox to Slack: in order, at least once, across 429s and restarts.

Notices are stored with the change they report (see :mod:`bot.notices`), so a crash
or an unreachable Slack loses none of them: this worker posts what is due, keeps the
first message of each thread so replies can follow it, honours ``Retry-After`` per
channel, and retries passing faults with a growing wait. A message that can never be
posted where it was meant to go (the bot is not in the channel) goes to the
requester's direct messages instead, saying why.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from bot.clock import Clock
from bot.errors import SlackError
from bot.messages import Renderer
from bot.slack_gateway import Message, SlackGateway
from bot.workers import MAX_DEFER_SECONDS, RequestsInFlight
from storage import Database
from storage.models import OutboxMessage, PostedMessage

logger = logging.getLogger(__name__)

# Errors after which posting to the requester's DM is the sensible next step.
_CHANNEL_UNUSABLE = frozenset(
    {"channel_not_found", "not_in_channel", "is_archived", "user_not_in_channel"}
)


class Delivery:
    """Posts due outbox messages; :meth:`wake` makes it look at once."""

    def __init__(
        self,
        *,
        db: Database,
        slack: SlackGateway,
        renderer: Renderer,
        clock: Clock,
        max_age: timedelta = timedelta(days=3),
        idle_seconds: float = 2.0,
        requests: RequestsInFlight | None = None,
    ) -> None:
        self._db = db
        self._slack = slack
        self._renderer = renderer
        self._clock = clock
        self._max_age = max_age
        self._idle_seconds = idle_seconds
        self._requests = requests
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._held_until: dict[str, float] = {}

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="delivery", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    def run_once(self, limit: int = 100) -> int:
        """Try every due message once; return how many were delivered.

        Each post waits for a gap between Slack's requests (see
        :mod:`bot.workers`), for at most a second from the start of the pass.
        """
        deadline = time.monotonic() + MAX_DEFER_SECONDS
        with self._db.transaction() as tx:
            due = tx.outbox.due(self._clock.now(), limit)
        delivered = 0
        for message in due:
            if self._requests is not None:
                self._requests.wait_for_gap(deadline)
            delivered += self._try(message)
        return delivered

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                delivered = self.run_once()
            except Exception:
                logger.exception("outbox delivery pass failed; retrying shortly")
                delivered = 0
            if delivered == 0:
                self._wake.wait(self._idle_seconds)

    def _try(self, message: OutboxMessage) -> bool:
        assert message.id is not None
        with self._db.transaction() as tx:
            if tx.outbox.waits_for_earlier(message):
                return False
            root = tx.outbox.posted(message.thread) if message.thread else None
            target = tx.outbox.posted(message.updates) if message.updates else None
            for key, found in ((message.thread, root), (message.updates, target)):
                if key and found is None and tx.outbox.will_remember(key):
                    return False
        if message.updates and target is None:
            self._abandon(message, f"{message.updates} was never posted")
            return False
        channel = self._destination(message, root, target)
        if self._held(channel):
            return False
        try:
            posted = self._send(message, channel, root, target)
        except SlackError as err:
            self._failed(message, channel, err)
            return False
        self._sent(message, channel, posted)
        return True

    def _destination(
        self,
        message: OutboxMessage,
        root: PostedMessage | None,
        target: PostedMessage | None,
    ) -> str:
        if target is not None:
            return target.channel
        if root is not None:
            return root.channel
        return message.channel or message.user or ""

    def _send(
        self,
        message: OutboxMessage,
        channel: str,
        root: PostedMessage | None,
        target: PostedMessage | None,
    ) -> PostedMessage | None:
        rendered = self._renderer.message(message.notice, message.context)
        if message.note:
            rendered = _with_note(rendered, message.note)
        if target is not None:
            self._slack.update(target.channel, target.ts, rendered)
            return None
        if message.ephemeral and message.user and channel != message.user:
            self._slack.post_ephemeral(channel, message.user, rendered)
            return None
        # A reply whose thread's first message could never be posted goes top-level.
        thread_ts = root.thread_ts if root is not None else None
        posted = self._slack.post(
            channel, rendered, thread_ts=thread_ts, broadcast=message.broadcast
        )
        if message.remember_as is None:
            return None
        return PostedMessage(
            key=message.remember_as,
            channel=posted.channel,
            ts=posted.ts,
            thread_ts=thread_ts or posted.ts,
        )

    def _sent(
        self, message: OutboxMessage, channel: str, posted: PostedMessage | None
    ) -> None:
        with self._db.transaction() as tx:
            stored = tx.outbox.get(message.id or 0)
            if stored is None:
                return
            stored.sent_at = self._clock.now()
            stored.attempts += 1
            if posted is not None:
                tx.outbox.remember(posted)
        logger.info(
            "notice delivered id=%s notice=%s channel=%s",
            message.id,
            message.notice,
            posted.channel if posted else channel,
        )

    def _failed(self, message: OutboxMessage, channel: str, err: SlackError) -> None:
        if err.code == "ratelimited":
            wait = err.retry_after or 1.0
            self._held_until[channel] = time.monotonic() + wait
            self._retry(message, timedelta(seconds=wait), err.code, count=False)
        elif err.code in _CHANNEL_UNUSABLE and message.user and channel != message.user:
            self._move_to_dm(message, channel, err.code)
        elif err.permanent:
            self._abandon(message, err.code)
        else:
            backoff = timedelta(seconds=min(2 ** (message.attempts + 1), 600))
            self._retry(message, backoff, err.code, count=True)

    def _retry(
        self, message: OutboxMessage, wait: timedelta, error: str, *, count: bool
    ) -> None:
        now = self._clock.now()
        if now - message.created_at > self._max_age:
            self._abandon(message, f"still failing after {self._max_age}: {error}")
            return
        with self._db.transaction() as tx:
            stored = tx.outbox.get(message.id or 0)
            if stored is None:
                return
            stored.next_attempt_at = now + wait
            stored.attempts += 1 if count else 0
            stored.last_error = error
        logger.warning(
            "notice delayed id=%s error=%s retry_in=%ss",
            message.id,
            error,
            wait.seconds,
        )

    def _move_to_dm(self, message: OutboxMessage, channel: str, error: str) -> None:
        note = (
            f"This was meant for <#{channel}>, but the bot could not post there "
            f"({error}). Invite it with /invite @domainbot to get these in the channel."
        )
        with self._db.transaction() as tx:
            stored = tx.outbox.get(message.id or 0)
            if stored is None:
                return
            stored.channel = stored.user
            stored.ephemeral = False
            stored.note = note
            stored.last_error = error
        logger.warning(
            "notice moved to requester's DM id=%s channel=%s error=%s",
            message.id,
            channel,
            error,
        )

    def _abandon(self, message: OutboxMessage, reason: str) -> None:
        with self._db.transaction() as tx:
            stored = tx.outbox.get(message.id or 0)
            if stored is not None:
                stored.abandoned = True
                stored.last_error = reason
        logger.error(
            "notice abandoned id=%s notice=%s: %s", message.id, message.notice, reason
        )

    def _held(self, channel: str) -> bool:
        until = self._held_until.get(channel)
        if until is None:
            return False
        if time.monotonic() >= until:
            del self._held_until[channel]
            return False
        return True


def _with_note(message: Message, note: str) -> Message:
    block = {"type": "context", "elements": [{"type": "mrkdwn", "text": note}]}
    return Message(text=message.text, blocks=[*message.blocks, block])
