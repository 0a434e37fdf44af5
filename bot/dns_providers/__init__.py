"""DNS providers: writing records in the zones listed under ``[[dns_zones]]``."""

from bot.dns_providers.base import DnsProvider, ExistingRecord

__all__ = ["DnsProvider", "ExistingRecord"]
