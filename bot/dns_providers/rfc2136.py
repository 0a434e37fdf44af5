"""Records written by RFC 2136 dynamic updates, signed with a TSIG key.

Every update goes over TCP to the zone's primary server. Writes that must not clobber
anything carry update prerequisites, so the server itself refuses them when the name
changed after the bot looked at it:

- creating a CNAME requires that nothing at all is at the name yet;
- replacing a CNAME requires that the CNAME the bot saw is still exactly there;
- deleting a CNAME requires that it still points where the caller says;
- adding a TXT record requires that no CNAME is at the name, since a server silently
  ignores data added beside a CNAME.

Reads ask the same server directly, over TCP and with recursion off, for every type
at the name. The TSIG secret lives only inside the dnspython key object; it is never
logged and never part of an error or of this module's reprs.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.TXT
import dns.tsig
import dns.update

from bot.dns_providers.base import DnsProvider, ExistingRecord
from bot.errors import ProviderError, RecordConflict

logger = logging.getLogger(__name__)

DEFAULT_PORT = 53
DEFAULT_ALGORITHM = "hmac-sha256"
DEFAULT_TIMEOUT = 10.0
ALGORITHMS: dict[str, dns.name.Name] = {
    "hmac-md5": dns.tsig.HMAC_MD5,
    "hmac-sha1": dns.tsig.HMAC_SHA1,
    "hmac-sha224": dns.tsig.HMAC_SHA224,
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
}
# A write whose prerequisite failed is planned again from a fresh read this often:
# the records changed between the read and the write, usually by another writer.
_ATTEMPTS = 3
# The types :meth:`Rfc2136Provider.records` asks for, CNAME first: a name with a
# CNAME holds nothing else a user would see.
LISTED_TYPES: tuple[dns.rdatatype.RdataType, ...] = (
    dns.rdatatype.CNAME,
    dns.rdatatype.A,
    dns.rdatatype.AAAA,
    dns.rdatatype.TXT,
    dns.rdatatype.MX,
    dns.rdatatype.NS,
    dns.rdatatype.SOA,
    dns.rdatatype.SRV,
    dns.rdatatype.CAA,
    dns.rdatatype.HTTPS,
    dns.rdatatype.SVCB,
    dns.rdatatype.DNAME,
    dns.rdatatype.PTR,
    dns.rdatatype.NAPTR,
    dns.rdatatype.TLSA,
    dns.rdatatype.SSHFP,
    dns.rdatatype.DS,
    dns.rdatatype.LOC,
    dns.rdatatype.URI,
    dns.rdatatype.HINFO,
)
# One character-string of a TXT record holds at most 255 bytes.
_TXT_CHUNK = 255

_IN = dns.rdataclass.IN
_CNAME = dns.rdatatype.CNAME
_TXT = dns.rdatatype.TXT
_KEY_HINT = (
    "check tsig_name and the secret against the key the server knows, and that "
    "the server's update policy lets this key change zone {zone}"
)
_RCODE_HINTS = {
    dns.rcode.REFUSED: _KEY_HINT,
    dns.rcode.NOTAUTH: _KEY_HINT,
    dns.rcode.NOTZONE: "the server is not the primary of zone {zone}; check the "
    "zone and server settings",
    dns.rcode.SERVFAIL: "the server could not apply it; its log says why",
}


class Rfc2136Provider(DnsProvider):
    """Writes one zone's records through dynamic updates to its primary server.

    ``secret`` is the TSIG key's secret as bytes (already decoded from base64).
    Every method raises :class:`~bot.errors.ProviderError` when the server cannot
    be reached or refuses a message, with the response code (``REFUSED``,
    ``NOTAUTH``, ...) as ``code``.
    """

    kind = "rfc2136"

    def __init__(
        self,
        zone: str,
        *,
        server: str,
        key_name: str,
        secret: bytes,
        algorithm: str = DEFAULT_ALGORITHM,
        port: int = DEFAULT_PORT,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(zone)
        self.server = server
        self.port = port
        self.key_name = key_name
        self.algorithm = algorithm
        self.timeout = timeout
        self._origin = dns.name.from_text(zone)
        self._key = dns.tsig.Key(key_name, secret, ALGORITHMS[algorithm])

    def __repr__(self) -> str:
        return (
            f"Rfc2136Provider(zone={self.zone!r}, server={self.server!r}, "
            f"port={self.port}, key_name={self.key_name!r})"
        )

    def records(self, name: str) -> list[ExistingRecord]:
        """Every record at ``name`` of the types in :data:`LISTED_TYPES`.

        Servers answer a question of type ANY with one record set at most (RFC
        8482), so each type is asked for in turn, over one TCP connection; a CNAME
        or NXDOMAIN ends the questions early. Raises
        :class:`~bot.errors.ProviderError` for any answer other than NOERROR or
        NXDOMAIN.
        """
        owner = dns.name.from_text(name)
        found: list[ExistingRecord] = []
        with self._connection("read", name) as sock:
            for rdtype in LISTED_TYPES:
                query = dns.message.make_query(owner, rdtype)
                query.flags &= ~dns.flags.RD
                response = self._exchange(query, "read", name, sock)
                rcode = response.rcode()
                if rcode == dns.rcode.NXDOMAIN:
                    break
                if rcode != dns.rcode.NOERROR:
                    raise self._refused("read", name, rcode)
                found += _records_in(response, owner, rdtype, name)
                if rdtype == _CNAME and found:
                    break
        logger.debug("rfc2136: read name=%s records=%d", name, len(found))
        return found

    def create_cname(self, name: str, target: str, ttl: int = 600) -> bool:
        """Add ``name CNAME target`` only if nothing at all is at ``name``.

        Returns False when exactly that CNAME is there already. Raises
        :class:`~bot.errors.RecordConflict` naming the records in the way.
        """
        owner = dns.name.from_text(name)
        for _ in range(_ATTEMPTS):
            update = self._update()
            update.absent(owner)
            update.add(owner, ttl, _cname(target))
            rcode = self._send(update, "write", name)
            if rcode == dns.rcode.NOERROR:
                logger.info(
                    "rfc2136: created CNAME name=%s target=%s zone=%s",
                    name,
                    target,
                    self.zone,
                )
                return True
            if rcode != dns.rcode.YXDOMAIN:
                raise self._refused("write", name, rcode)
            found = self.records(name)
            if _only_cname_to(found, target):
                return False
            if found:
                raise RecordConflict(self.kind, name, _describe(found))
        raise _unseen(self.kind, name)

    def replace_cname(self, name: str, target: str, ttl: int = 600) -> None:
        """Make ``name CNAME target`` the only CNAME at ``name``.

        Raises :class:`~bot.errors.RecordConflict` when records other than a CNAME
        are at ``name``.
        """
        owner = dns.name.from_text(name)
        for _ in range(_ATTEMPTS):
            found = self.records(name)
            others = [record for record in found if record.rdtype != "CNAME"]
            if others:
                raise RecordConflict(self.kind, name, _describe(others))
            if found and _only_cname_to(found, target) and found[0].ttl == ttl:
                return
            update = self._update()
            if found:
                update.present(owner, *(_cname(record.value) for record in found))
                update.delete(owner, _CNAME)
            else:
                update.absent(owner)
            update.add(owner, ttl, _cname(target))
            rcode = self._send(update, "write", name)
            if rcode == dns.rcode.NOERROR:
                logger.info(
                    "rfc2136: replaced CNAME name=%s target=%s zone=%s",
                    name,
                    target,
                    self.zone,
                )
                return
            if rcode not in (dns.rcode.NXRRSET, dns.rcode.YXDOMAIN):
                raise self._refused("write", name, rcode)
        raise _unseen(self.kind, name)

    def delete_cname(self, name: str, target: str) -> bool:
        """Remove ``name CNAME target``; False when the name has no such CNAME."""
        owner = dns.name.from_text(name)
        update = self._update()
        update.present(owner, _cname(target))
        update.delete(owner, _CNAME)
        rcode = self._send(update, "delete", name)
        if rcode in (dns.rcode.NXRRSET, dns.rcode.NXDOMAIN):
            return False
        if rcode != dns.rcode.NOERROR:
            raise self._refused("delete", name, rcode)
        logger.info(
            "rfc2136: deleted CNAME name=%s target=%s zone=%s", name, target, self.zone
        )
        return True

    def set_txt(self, name: str, value: str, ttl: int = 300) -> None:
        """Add a TXT record with ``value``; other TXT records at ``name`` stay.

        Raises :class:`~bot.errors.RecordConflict` when a CNAME is at ``name``.
        """
        owner = dns.name.from_text(name)
        update = self._update()
        update.absent(owner, _CNAME)
        update.add(owner, ttl, _txt(value))
        rcode = self._send(update, "write", name)
        if rcode == dns.rcode.YXRRSET:
            found = [r for r in self.records(name) if r.rdtype == "CNAME"]
            raise RecordConflict(self.kind, name, _describe(found) or ["a CNAME"])
        if rcode != dns.rcode.NOERROR:
            raise self._refused("write", name, rcode)
        logger.info("rfc2136: added TXT name=%s zone=%s", name, self.zone)

    def delete_txt(self, name: str, value: str) -> bool:
        """Remove the TXT record holding exactly ``value``; False when absent."""
        present = any(
            record.rdtype == "TXT" and record.value == value
            for record in self.records(name)
        )
        if not present:
            return False
        update = self._update()
        update.delete(dns.name.from_text(name), _txt(value))
        rcode = self._send(update, "delete", name)
        if rcode != dns.rcode.NOERROR:
            raise self._refused("delete", name, rcode)
        logger.info("rfc2136: deleted TXT name=%s zone=%s", name, self.zone)
        return True

    def _update(self) -> dns.update.UpdateMessage:
        return dns.update.UpdateMessage(self._origin, keyring=self._key)

    def _send(
        self, update: dns.update.UpdateMessage, operation: str, name: str
    ) -> dns.rcode.Rcode:
        """Send ``update`` on a connection of its own; return the response code."""
        with self._connection(operation, name) as sock:
            return self._exchange(update, operation, name, sock).rcode()

    @contextlib.contextmanager
    def _connection(self, operation: str, name: str) -> Iterator[socket.socket]:
        """A TCP connection to the server, closed on leaving the block."""
        with self._transport_errors(operation, name):
            sock = socket.create_connection((self.server, self.port), self.timeout)
        with sock:
            yield sock

    def _exchange(
        self,
        message: dns.message.Message,
        operation: str,
        name: str,
        sock: socket.socket,
    ) -> dns.message.Message:
        with self._transport_errors(operation, name):
            return dns.query.tcp(
                message, self.server, timeout=self.timeout, port=self.port, sock=sock
            )

    @contextlib.contextmanager
    def _transport_errors(self, operation: str, name: str) -> Iterator[None]:
        """Turn every failure of the transport or of TSIG into a ProviderError."""
        where = f"{self.server} port {self.port}"
        try:
            yield
        except dns.tsig.PeerError as err:
            code = type(err).__name__.removeprefix("Peer")
            raise ProviderError(
                self.kind,
                operation,
                f"{where} did not accept the TSIG signature for {name} ({code}); "
                + _KEY_HINT.format(zone=self.zone),
                code="NOTAUTH",
            ) from err
        except (dns.exception.Timeout, TimeoutError) as err:
            raise ProviderError(
                self.kind,
                operation,
                f"no answer from {where} within {self.timeout:g} s for {name}; "
                "check the server and port settings and that the server is running",
                code="timeout",
            ) from err
        except (dns.exception.DNSException, OSError, EOFError) as err:
            reason = getattr(err, "strerror", None) or type(err).__name__
            raise ProviderError(
                self.kind,
                operation,
                f"cannot talk to {where} about {name}: {reason}; check the server "
                "and port settings and that the server is running",
                code="unreachable",
            ) from err

    def _refused(
        self, operation: str, name: str, rcode: dns.rcode.Rcode
    ) -> ProviderError:
        text = dns.rcode.to_text(rcode)
        hint = _RCODE_HINTS.get(rcode, "").format(zone=self.zone)
        message = f"{self.server} answered {text} for {name}"
        return ProviderError(
            self.kind,
            operation,
            f"{message}; {hint}" if hint else message,
            code=text,
        )


def _records_in(
    response: dns.message.Message, owner: dns.name.Name, rdtype: int, name: str
) -> list[ExistingRecord]:
    """The records of type ``rdtype`` owned by ``owner`` in an answer section."""
    return [
        ExistingRecord(
            name=name,
            rdtype=dns.rdatatype.to_text(rrset.rdtype),
            value=_value(rdata),
            ttl=rrset.ttl,
        )
        for rrset in response.answer
        if rrset.name == owner and rrset.rdtype == rdtype
        for rdata in rrset
    ]


def _value(rdata: dns.rdata.Rdata) -> str:
    """A record's value as the bot compares it: names without the final dot."""
    if isinstance(rdata, dns.rdtypes.ANY.CNAME.CNAME):
        return rdata.target.to_text(omit_final_dot=True).lower()
    if isinstance(rdata, dns.rdtypes.ANY.TXT.TXT):
        return b"".join(rdata.strings).decode("utf-8", "backslashreplace")
    return rdata.to_text()


def _cname(target: str) -> dns.rdata.Rdata:
    return dns.rdata.from_text(_IN, _CNAME, target.removesuffix(".") + ".")


def _txt(value: str) -> dns.rdata.Rdata:
    data = value.encode("utf-8")
    chunks = [data[i : i + _TXT_CHUNK] for i in range(0, len(data), _TXT_CHUNK)]
    return dns.rdtypes.ANY.TXT.TXT(_IN, _TXT, chunks or [b""])


def _only_cname_to(found: list[ExistingRecord], target: str) -> bool:
    wanted = target.removesuffix(".").lower()
    return len(found) == 1 and found[0].rdtype == "CNAME" and found[0].value == wanted


def _describe(found: list[ExistingRecord]) -> list[str]:
    """Records in words for a conflict message: ``CNAME x.example.net``."""
    return [
        f'TXT "{record.value}"'
        if record.rdtype == "TXT"
        else f"{record.rdtype} {record.value}"
        for record in found
    ]


def _unseen(kind: str, name: str) -> RecordConflict:
    """The server says the name is in use, yet no listed type shows a record."""
    return RecordConflict(
        kind,
        name,
        ["records of a type the bot does not list (or records that kept changing)"],
    )
