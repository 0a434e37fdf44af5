"""The embedded storage provider: the bot's own database is the registry."""

from __future__ import annotations

import logging

from sqlalchemy.exc import IntegrityError

from bot.clock import Clock
from bot.config import Bucket
from bot.errors import DomainConflict
from bot.providers.base import BucketDomain, StorageProvider
from storage import Database
from storage.models import RegistryEntry

logger = logging.getLogger(__name__)


class LocalProvider(StorageProvider):
    """Keeps which bucket serves which domain in the ``registry_entries`` table."""

    name = "local"

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def bind(self, bucket: Bucket, domain: str) -> bool:
        try:
            return self._bind(bucket, domain)
        except IntegrityError:
            # Another request added the domain between our read and our write;
            # read again to tell whether it is ours or another bucket's.
            return self._bind(bucket, domain)

    def _bind(self, bucket: Bucket, domain: str) -> bool:
        with self._db.transaction() as tx:
            entry = tx.registry.holder(domain)
            if entry is not None and entry.bucket != bucket.name:
                raise DomainConflict(domain, entry.bucket, entry.bound_at)
            if entry is not None:
                return False
            now = self._clock.now()
            tx.registry.add(
                RegistryEntry(domain=domain, bucket=bucket.name, bound_at=now)
            )
        logger.info("registry bound domain=%s bucket=%s", domain, bucket.name)
        return True

    def release(self, bucket: Bucket, domain: str) -> bool:
        with self._db.transaction() as tx:
            released = tx.registry.remove(domain, bucket.name)
        if released:
            logger.info("registry released domain=%s bucket=%s", domain, bucket.name)
        return released

    def holder(self, domain: str) -> BucketDomain | None:
        with self._db.transaction() as tx:
            entry = tx.registry.holder(domain)
        if entry is None:
            return None
        return BucketDomain(entry.domain, entry.bucket, entry.bound_at)

    def domains(self, bucket: Bucket) -> list[BucketDomain]:
        with self._db.transaction() as tx:
            entries = tx.registry.list(bucket.name)
        return [BucketDomain(e.domain, e.bucket, e.bound_at) for e in entries]
