"""The contract every storage provider keeps, run against each of them.

A new provider joins by adding a factory to PROVIDERS; nothing else changes. A
factory is a context manager given the test's database, so that it can also start
and stop the fakes it talks to (a cloud API). Providers that keep their registry in
the database run against each kind in DATABASES; the others run once, beside a
SQLite database they do not use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest

from bot.clock import ManualClock
from bot.config import Bucket
from bot.errors import DomainConflict
from bot.providers import StorageProvider
from bot.providers.aliyun import oss_region
from bot.providers.local import LocalProvider
from storage import Database
from tests.support.fake_aliyun import FakeAliyun

ONE = Bucket(name="bucket-one", endpoint="oss-cn-hongkong.aliyuncs.com")
TWO = Bucket(name="bucket-two", endpoint="oss-cn-hongkong.aliyuncs.com")


@contextmanager
def local(db: Database) -> Iterator[StorageProvider]:
    yield LocalProvider(db, ManualClock())


@contextmanager
def aliyun(db: Database) -> Iterator[StorageProvider]:
    """The real OSS SDK against the fake OSS, where example.com is the account's zone.

    A free domain under a trusted zone binds without a TXT proof, so the only
    NeedVerifyDomainOwnership answers come from domains another bucket holds.
    """
    with FakeAliyun() as fake:
        for bucket in (ONE, TWO):
            fake.add_bucket(bucket.name, oss_region(bucket.endpoint) or "")
        fake.trust("example.com")
        yield fake.provider((ONE, TWO))


ProviderFactory = Callable[[Database], AbstractContextManager[StorageProvider]]
PROVIDERS: dict[str, ProviderFactory] = {"local": local, "aliyun": aliyun}
DATABASES: dict[str, tuple[str, ...]] = {"local": ("sqlite", "postgresql")}


CASES = [
    pytest.param(name, kind, id=f"{name}-{kind}" if name in DATABASES else name)
    for name in sorted(PROVIDERS)
    for kind in DATABASES.get(name, ("sqlite",))
]
pytestmark = pytest.mark.parametrize(
    ("provider_name", "database_url"), CASES, indirect=["database_url"]
)


@pytest.fixture
def provider(provider_name: str, db: Database) -> Iterator[StorageProvider]:
    with PROVIDERS[provider_name](db) as made:
        yield made


def test_binding_a_free_domain(provider: StorageProvider) -> None:
    assert provider.bind(ONE, "img.example.com") is True
    held = provider.holder("img.example.com")
    assert held is not None and held.bucket == ONE.name


def test_binding_again_to_the_same_bucket_is_harmless(
    provider: StorageProvider,
) -> None:
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
    assert [d.domain for d in provider.domains(ONE)] == [
        "a.example.com",
        "b.example.com",
    ]


def test_release_frees_the_domain_once(provider: StorageProvider) -> None:
    provider.bind(ONE, "img.example.com")
    assert provider.release(TWO, "img.example.com") is False
    assert provider.release(ONE, "img.example.com") is True
    assert provider.release(ONE, "img.example.com") is False
    assert provider.holder("img.example.com") is None
    assert provider.bind(TWO, "img.example.com") is True
