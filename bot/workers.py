"""The threads that finish Slack requests after their ack, with a count of work left.

Bolt hands each listener to this pool; the listener acks and then does the work. The
count of unfinished work lets a shutdown wait for it and lets tests wait until the
bot is quiet.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class WorkerPool(ThreadPoolExecutor):
    """A thread pool that knows how much submitted work is unfinished."""

    def __init__(self, max_workers: int = 16) -> None:
        super().__init__(max_workers, thread_name_prefix="slack-work")
        self._lock = threading.Lock()
        self._unfinished = 0

    def submit(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> Future[T]:
        with self._lock:
            self._unfinished += 1
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._finished)
        return future

    def _finished(self, _future: Future[Any]) -> None:
        with self._lock:
            self._unfinished -= 1

    @property
    def unfinished(self) -> int:
        with self._lock:
            return self._unfinished

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no work is unfinished; False if ``timeout`` ran out first."""
        deadline = time.monotonic() + timeout
        while self.unfinished:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True
