"""What a storage provider must do; ``tests/test_storage_providers.py`` checks it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime

from bot.config import Bucket


@dataclass(frozen=True)
class BucketDomain:
    """A domain as the provider sees it: bound to ``bucket`` since ``since``."""

    domain: str
    bucket: str
    since: datetime | None


class StorageProvider(ABC):
    """The bucket side of a binding: which bucket answers for which domain.

    Implementations reach their service through one client object, the seam that
    tests fake. Errors from that service are raised as
    :class:`~bot.errors.ProviderError`, never as the transport's own exceptions.
    """

    name: str

    @abstractmethod
    def bind(self, bucket: Bucket, domain: str) -> bool:
        """Bind ``domain`` to ``bucket``; False when it was bound there already.

        Raises :class:`~bot.errors.DomainConflict` when another bucket holds the
        domain, and :class:`~bot.errors.ProviderError` when the service refuses.
        """

    @abstractmethod
    def release(self, bucket: Bucket, domain: str) -> bool:
        """Unbind ``domain`` from ``bucket``; False when it was not bound there.

        Raises :class:`~bot.errors.ProviderError` when the service refuses.
        """

    @abstractmethod
    def holder(self, domain: str) -> BucketDomain | None:
        """The bucket that holds ``domain`` as far as this provider can tell."""

    @abstractmethod
    def domains(self, bucket: Bucket) -> list[BucketDomain]:
        """Every domain bound to ``bucket``, sorted by name."""
