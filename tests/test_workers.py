"""Work handed over after an ack gives way to the requests still being answered."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from bot import workers as workers_module
from bot.workers import RequestsInFlight, Workers


@pytest.fixture
def workers() -> Iterator[Workers]:
    pool = Workers(listener_threads=2, after_ack_threads=2)
    yield pool
    pool.shutdown()


def started_at(workers: Workers) -> tuple[threading.Event, list[float]]:
    done = threading.Event()
    times: list[float] = []

    def work() -> None:
        times.append(time.monotonic())
        done.set()

    workers.after_ack(work)
    return done, times


def test_work_starts_once_the_request_in_flight_is_answered(
    workers: Workers,
) -> None:
    with workers.requests.answering():
        done, times = started_at(workers)
        assert not done.wait(0.3)
        answered = time.monotonic()
    assert done.wait(2)
    assert times[0] >= answered


def test_work_runs_at_once_when_no_request_is_in_flight(workers: Workers) -> None:
    handed_over = time.monotonic()
    done, times = started_at(workers)
    assert done.wait(2)
    assert times[0] - handed_over < 0.2


def test_a_steady_stream_of_requests_delays_work_but_never_starves_it(
    workers: Workers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workers_module, "MAX_DEFER_SECONDS", 0.5)
    stop = threading.Event()

    def stream() -> None:
        # Overlapping requests, so that the count never drops to zero.
        while not stop.is_set():
            with workers.requests.answering():
                time.sleep(0.02)

    senders = [threading.Thread(target=stream) for _ in range(2)]
    for sender in senders:
        sender.start()
    try:
        handed_over = time.monotonic()
        done, times = started_at(workers)
        assert done.wait(3)
        waited = times[0] - handed_over
        assert 0.45 <= waited < 1.5
    finally:
        stop.set()
        for sender in senders:
            sender.join()


def test_a_gap_is_reported_and_a_missed_deadline_too() -> None:
    requests = RequestsInFlight()
    assert requests.wait_for_gap(time.monotonic() + 1)
    with requests.answering():
        assert not requests.wait_for_gap(time.monotonic() + 0.1)
        with requests.answering():
            pass
        assert not requests.wait_for_gap(time.monotonic() + 0.05)
    assert requests.wait_for_gap(time.monotonic())
