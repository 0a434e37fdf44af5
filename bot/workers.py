"""The threads that serve Slack's requests, apart from those that finish them.

Bolt runs each listener on the *listener* pool; the listener checks its input, acks
and hands the real work (database, DNS, providers, Slack calls) to the *after-ack*
pool. Bolt answers Slack only once a listener thread has called ``ack()``, so the
two are kept apart: however much work is queued, a new request finds a listener
thread free, and the few after-ack threads leave the interpreter lock to the acks
most of the time. A count of unfinished work across both lets a shutdown wait for
it and lets tests wait until the bot is quiet.

Both pools share the interpreter, and so the two cores, with the acks: when
requests arrive faster than the bot finishes their work, an ack would queue behind
the work of the requests before it. Work that can wait therefore waits for a gap
between requests (:class:`RequestsInFlight`), for at most :data:`MAX_DEFER_SECONDS`
from when it was handed over, so that a steady stream of requests delays it but
never starves it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

LISTENER_THREADS = 32
AFTER_ACK_THREADS = 4
# How long work handed over after an ack may wait for a gap between requests.
# Slack's users see its result (the card, the reply), so a second at most.
MAX_DEFER_SECONDS = 1.0


class RequestsInFlight:
    """Counts Slack requests not yet answered, so other work can wait for a gap."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._open = 0

    @contextmanager
    def answering(self) -> Iterator[None]:
        """Mark one request in flight for the duration of the block."""
        with self._changed:
            self._open += 1
        try:
            yield
        finally:
            with self._changed:
                self._open -= 1
                if self._open == 0:
                    self._changed.notify_all()

    def wait_for_gap(self, deadline: float) -> bool:
        """Wait until no request is in flight, or until ``deadline`` (monotonic).

        Returns False when the deadline came first.
        """
        with self._changed:
            return self._changed.wait_for(
                lambda: self._open == 0, timeout=max(0.0, deadline - time.monotonic())
            )


class _Counter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self, step: int) -> None:
        with self._lock:
            self.value += step


class _CountingPool(ThreadPoolExecutor):
    """A thread pool that adds its submitted work to a shared count."""

    def __init__(self, workers: int, name: str, counter: _Counter) -> None:
        super().__init__(workers, thread_name_prefix=name)
        self._counter = counter

    def submit(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> Future[T]:
        self._counter.add(1)
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._finished)
        return future

    def _finished(self, _future: Future[Any]) -> None:
        self._counter.add(-1)


class Workers:
    """The listener pool Bolt is given and the pool that finishes acked requests."""

    def __init__(
        self,
        *,
        listener_threads: int = LISTENER_THREADS,
        after_ack_threads: int = AFTER_ACK_THREADS,
    ) -> None:
        self._count = _Counter()
        self.requests = RequestsInFlight()
        self.listeners: ThreadPoolExecutor = _CountingPool(
            listener_threads, "slack-ack", self._count
        )
        self._after_ack = _CountingPool(after_ack_threads, "slack-work", self._count)

    def after_ack(self, work: Callable[[], object]) -> None:
        """Run ``work`` on the after-ack pool; it handles its own errors.

        It starts once no Slack request is in flight, or after
        :data:`MAX_DEFER_SECONDS` whatever the traffic.
        """
        deadline = time.monotonic() + MAX_DEFER_SECONDS

        def when_quiet() -> None:
            self.requests.wait_for_gap(deadline)
            work()

        self._after_ack.submit(when_quiet)

    @property
    def unfinished(self) -> int:
        """Listeners and after-ack work submitted and not yet finished."""
        return self._count.value

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no work is unfinished; False if ``timeout`` ran out first."""
        deadline = time.monotonic() + timeout
        while self.unfinished:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def shutdown(self) -> None:
        """Finish every listener, then the work they handed on."""
        self.listeners.shutdown(wait=True)
        self._after_ack.shutdown(wait=True)
