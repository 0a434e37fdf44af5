"""What a DNS provider must do; ``tests/test_dns_providers.py`` checks each one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True)
class ExistingRecord:
    """A record found at a name: ``rdtype`` such as ``CNAME``, its value in text."""

    name: str
    rdtype: str
    value: str
    ttl: int | None = None


class DnsProvider(ABC):
    """Writes the records of one zone the bot is allowed to manage.

    Names are absolute, lower case, without the trailing dot (``img.example.com``).
    Each implementation reaches its service through one client object, the seam
    tests fake; that service's errors are raised as
    :class:`~bot.errors.ProviderError` (with the service's own code), never as the
    transport's exceptions. No secret ever appears in an error or a log line.
    """

    kind: str

    def __init__(self, zone: str) -> None:
        self.zone = zone

    @abstractmethod
    def records(self, name: str) -> list[ExistingRecord]:
        """Every record at ``name`` (not below it), of any type."""

    @abstractmethod
    def create_cname(self, name: str, target: str, ttl: int = 600) -> bool:
        """Add ``name CNAME target``; False when exactly that record exists already.

        Raises :class:`~bot.errors.RecordConflict` when any other record is at
        ``name`` (a CNAME to another target, an A record, ...): nothing is
        overwritten without a person's confirmation.
        """

    @abstractmethod
    def replace_cname(self, name: str, target: str, ttl: int = 600) -> None:
        """Make ``name CNAME target`` the only CNAME at ``name``, replacing another.

        Only called after a person confirmed the replacement. Raises
        :class:`~bot.errors.RecordConflict` when records other than a CNAME are at
        ``name``, since a CNAME cannot stand beside them.
        """

    @abstractmethod
    def delete_cname(self, name: str, target: str) -> bool:
        """Remove ``name CNAME target``; False when it was not there."""

    @abstractmethod
    def set_txt(self, name: str, value: str, ttl: int = 300) -> None:
        """Add a TXT record with ``value`` at ``name``, leaving other TXT records."""

    @abstractmethod
    def delete_txt(self, name: str, value: str) -> bool:
        """Remove the TXT record with exactly ``value`` at ``name``."""
