"""Pytest plugin with the fake Slack Web API fixture.

Registered from ``tests/conftest.py`` through ``pytest_plugins``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fake_slack import FakeSlack


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """A fresh fake Slack on a free loopback port, stopped after the test.

    Starting one takes a few milliseconds, so no state leaks between tests.
    """
    with FakeSlack() as fake:
        yield fake
