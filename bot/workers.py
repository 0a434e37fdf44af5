"""The threads that serve Slack's requests, apart from those that finish them.

Bolt runs each listener on the *listener* pool; the listener checks its input, acks
and hands the real work (database, DNS, providers, Slack calls) to the *after-ack*
pool. Bolt answers Slack only once a listener thread has called ``ack()``, so the
two are kept apart: however much work is queued, a new request finds a listener
thread free, and the few after-ack threads leave the interpreter lock to the acks
most of the time. A count of unfinished work across both lets a shutdown wait for
it and lets tests wait until the bot is quiet.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

LISTENER_THREADS = 32
AFTER_ACK_THREADS = 4


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
        self.listeners: ThreadPoolExecutor = _CountingPool(
            listener_threads, "slack-ack", self._count
        )
        self._after_ack = _CountingPool(after_ack_threads, "slack-work", self._count)

    def after_ack(self, work: Callable[[], object]) -> None:
        """Run ``work`` on the after-ack pool; it handles its own errors."""
        self._after_ack.submit(work)

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
