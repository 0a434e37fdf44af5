"""Pytest fixtures that start the real DNS lab (Knot and Unbound) for a session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.dns_lab import DnsLab


@pytest.fixture(scope="session")
def dns_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsLab]:
    """Knot and Unbound on loopback, shared by the whole session; stopped at its end.

    Tests share it, so each should use names from ``dns_lab.unique_name()``.
    """
    with DnsLab(tmp_path_factory.mktemp("dns-lab")) as lab:
        yield lab


@pytest.fixture
def clean_dns_lab(dns_lab: DnsLab) -> Iterator[DnsLab]:
    """The session's DNS lab, with its zones and Unbound's caches reset afterwards."""
    yield dns_lab
    dns_lab.reset()
