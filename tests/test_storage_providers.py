"""The contract every storage provider keeps, run against each of them.

A new provider joins by adding a factory to PROVIDERS; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from bot.clock import ManualClock
from bot.config import Bucket
from bot.errors import DomainConflict
from bot.providers import StorageProvider
from bot.providers.local import LocalProvider
from storage import Database

ONE = Bucket(name="bucket-one", endpoint="oss-cn-hongkong.aliyuncs.com")
TWO = Bucket(name="bucket-two", endpoint="oss-cn-hongkong.aliyuncs.com")


def local(db: Database) -> StorageProvider:
    return LocalProvider(db, ManualClock())


PROVIDERS: dict[str, Callable[[Database], StorageProvider]] = {"local": local}


@pytest.fixture(params=sorted(PROVIDERS))
def provider(request: pytest.FixtureRequest, db: Database) -> Iterator[StorageProvider]:
    yield PROVIDERS[request.param](db)


def test_binding_a_free_domain(provider: StorageProvider) -> None:
    assert provider.bind(ONE, "img.example.com") is True
    held = provider.holder("img.example.com")
    assert held is not None and held.bucket == ONE.name


def test_binding_again_to_the_same_bucket_is_harmless(provider: StorageProvider) -> None:
    provider.bind(ONE, "img.example.com")
    assert provider.bind(ONE, "img.example.com") is False
    assert [d.domain for d in provider.domains(ONE)] == ["img.example.com"]


def test_binding_a_domain_another_bucket_holds_is_a_conflict(
    provider: StorageProvider,
) -> None:
    provider.bind(ONE, "img.example.com")
    with pytest.raises(DomainConflict) as conflict:
        provider.bind(TWO, "img.example.com")
    assert conflict.value.holder == ONE.name
    assert provider.domains(TWO) == []


def test_domains_are_listed_per_bucket_in_order(provider: StorageProvider) -> None:
    for name in ("b.example.com", "a.example.com"):
        provider.bind(ONE, name)
    provider.bind(TWO, "c.example.com")
    assert [d.domain for d in provider.domains(ONE)] == ["a.example.com", "b.example.com"]


def test_release_frees_the_domain_once(provider: StorageProvider) -> None:
    provider.bind(ONE, "img.example.com")
    assert provider.release(TWO, "img.example.com") is False
    assert provider.release(ONE, "img.example.com") is True
    assert provider.release(ONE, "img.example.com") is False
    assert provider.holder("img.example.com") is None
    assert provider.bind(TWO, "img.example.com") is True
