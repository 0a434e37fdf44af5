"""Pytest fixtures for PowerDNS (the server lexicon's provider is tested against).

dns-lexicon guesses zones with tldextract, which downloads the public suffix list
on first use. The session-wide fixture :func:`_offline_suffix_list` keeps it from
trying: the list comes from the copy tldextract ships, and its cache goes to a
temporary directory instead of the home directory.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.powerdns import PowerDns


@pytest.fixture(scope="session", autouse=True)
def _offline_suffix_list(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        # An empty list of URLs tells tldextract to use its bundled snapshot.
        patch.setenv("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
        patch.setenv(
            "TLDEXTRACT_CACHE_PATH", str(tmp_path_factory.mktemp("tldextract"))
        )
        yield


@pytest.fixture(scope="session")
def powerdns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PowerDns]:
    """PowerDNS on loopback with zone ``example.org.test``, for the whole session.

    Tests share it, so each should write under names of its own.
    """
    with PowerDns(tmp_path_factory.mktemp("powerdns")) as server:
        yield server
