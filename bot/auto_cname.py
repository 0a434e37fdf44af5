"""Adding a binding's CNAME record in a zone the bot manages.

Only zones listed under ``[[dns_zones]]`` are written; the zone of a domain is the
longest listed suffix. Nothing is overwritten without a person's confirmation, and
a zone apex is never given a CNAME (it cannot stand beside the zone's SOA and NS
records). Every outcome is described for the binding's card.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from bot.dns_providers.zones import ManagedZones
from bot.errors import ProviderError, RecordConflict

logger = logging.getLogger(__name__)


class CnameStatus(StrEnum):
    ADDED = "added"
    PRESENT = "present"
    REPLACED = "replaced"
    UNMANAGED = "unmanaged"
    APEX = "apex"
    CONFLICT = "conflict"
    FAILED = "failed"


@dataclass(frozen=True)
class CnameWrite:
    """What became of the automatic record: ``detail`` says what stood in the way
    (``CNAME old.example.net``) or what the DNS provider answered."""

    status: CnameStatus
    zone: str | None = None
    detail: str | None = None
    replaceable: bool = False


class CnameWriter:
    """Writes CNAME records through the DNS provider of each managed zone."""

    def __init__(self, zones: ManagedZones) -> None:
        self._zones = zones

    def write(self, domain: str, target: str) -> CnameWrite:
        """Add ``domain CNAME target`` unless something is in the way."""
        provider = self._zones.zone_for(domain)
        if provider is None:
            return CnameWrite(CnameStatus.UNMANAGED)
        if self._zones.is_apex(domain):
            return CnameWrite(CnameStatus.APEX, provider.zone)
        try:
            added = provider.create_cname(domain, target)
        except RecordConflict as conflict:
            only_cnames = all(item.startswith("CNAME ") for item in conflict.found)
            logger.info(
                "cname not written domain=%s zone=%s: records in the way",
                domain,
                provider.zone,
            )
            return CnameWrite(
                CnameStatus.CONFLICT,
                provider.zone,
                ", ".join(conflict.found),
                replaceable=only_cnames,
            )
        except ProviderError as err:
            logger.warning(
                "cname write failed domain=%s zone=%s: %s", domain, provider.zone, err
            )
            return CnameWrite(CnameStatus.FAILED, provider.zone, str(err))
        if added:
            logger.info("cname written domain=%s zone=%s", domain, provider.zone)
        status = CnameStatus.ADDED if added else CnameStatus.PRESENT
        return CnameWrite(status, provider.zone)

    def replace(self, domain: str, target: str) -> CnameWrite:
        """Replace another CNAME at ``domain``, as a person confirmed."""
        provider = self._zones.zone_for(domain)
        if provider is None or self._zones.is_apex(domain):
            return self.write(domain, target)
        try:
            provider.replace_cname(domain, target)
        except RecordConflict as conflict:
            return CnameWrite(
                CnameStatus.CONFLICT, provider.zone, ", ".join(conflict.found)
            )
        except ProviderError as err:
            return CnameWrite(CnameStatus.FAILED, provider.zone, str(err))
        logger.info("cname replaced domain=%s zone=%s", domain, provider.zone)
        return CnameWrite(CnameStatus.REPLACED, provider.zone)

    def remove(self, domain: str, target: str) -> bool:
        """Delete the record the bot added; False when it was gone or unmanaged.

        Raises :class:`~bot.errors.ProviderError` when the provider refuses.
        """
        provider = self._zones.zone_for(domain)
        if provider is None:
            return False
        removed = provider.delete_cname(domain, target)
        if removed:
            logger.info("cname removed domain=%s zone=%s", domain, provider.zone)
        return removed
