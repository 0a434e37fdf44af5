"""What a storage provider must do; ``tests/test_storage_providers.py`` checks it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime

from bot.config import Bucket
from bot.errors import CdnNotConfigured


@dataclass(frozen=True)
class OwnershipToken:
    """A provider's own token for proving control of a domain with a TXT record."""

    token: str
    expires_at: datetime


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

    def ownership_token(self, bucket: Bucket, domain: str) -> OwnershipToken | None:
        """The provider's TXT token for taking ``domain`` over to ``bucket``.

        None (the default) means the provider has no such token and the bot makes
        its own. A provider that has one returns the same token while it is valid.
        """
        return None

    def take_over(self, bucket: Bucket, domain: str) -> bool:
        """Bind ``domain`` to ``bucket`` once ownership was proven, whoever held it.

        The default releases nothing itself: the caller releases the old binding
        first. Raises :class:`~bot.errors.ProviderError` when the service refuses.
        """
        return self.bind(bucket, domain)

    def offers_cdn(self, bucket: Bucket) -> bool:
        """Whether CDN acceleration can be had for ``bucket``'s domains."""
        return bucket.cdn_domain is not None

    def cdn_target(self, bucket: Bucket, domain: str) -> str:
        """The CDN host name a CNAME for ``domain`` must point at.

        The default reads it from the bucket's ``cdn_domain`` template. Raises
        :class:`~bot.errors.CdnNotConfigured` when there is none, and
        :class:`~bot.errors.ProviderError` when a CDN service refuses.
        """
        target = bucket.cdn_target(domain)
        if target is None:
            raise CdnNotConfigured(bucket.name)
        return target

    def close(self) -> None:  # noqa: B027 - most providers hold no connection
        """Let go of connections; the default has none."""
