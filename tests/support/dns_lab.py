"""A real DNS lab for tests: Knot serves the zones, Unbound caches in front of it.

Both servers run on loopback addresses, from configuration files in a directory of
their own, and never reach beyond this machine. Knot listens on port 53 of a
dedicated loopback address (``127.53.0.1`` unless another lab holds it), since NS
records carry no port; Unbound listens on a free port of ``127.0.0.1``.

Zones served by Knot, each with SOA, ``NS ns1.<zone>`` and glue for it:

- :data:`ZONE` (``example.test``) and :data:`OTHER_ZONE` (``example.net.test``).

Faults, one zone each, so that a test picks a fault by choosing a name under it:

- :data:`TIMEOUT_ZONE`: delegated from ``example.test`` to ``ns.dead.example.test``
  at :attr:`DnsLab.silent_address`, where the lab holds a UDP socket it never reads
  and a TCP socket it never accepts on, so every question there times out.
- :data:`SERVFAIL_ZONE`: delegated from ``example.test`` to Knot, which is
  configured for the zone but has no zone file for it, and so answers SERVFAIL.
- :data:`REFUSED_ZONE`: Unbound's local data says Knot (``ns1.example.test``) serves
  it, but Knot does not, and answers REFUSED.

Negative answers are cached by Unbound for an hour: the zones' SOA TTL and minimum
are 3600 s, and so is Unbound's ``cache-max-negative-ttl`` (Unbound 1.17 has no
option to raise a smaller negative TTL). Records are changed by RFC 2136 updates
signed with the TSIG key in :attr:`DnsLab.tsig`.
"""

from __future__ import annotations

import base64
import ctypes
import functools
import itertools
import logging
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update

logger = logging.getLogger(__name__)

ZONE = "example.test"
OTHER_ZONE = "example.net.test"
TIMEOUT_ZONE = "dead.example.test"
SERVFAIL_ZONE = "broken.example.test"
REFUSED_ZONE = "refused.test"
SERVED_ZONES = (ZONE, OTHER_ZONE)

# Knot takes the first of these that is free, so that two labs can run side by side.
AUTHORITATIVE_ADDRESSES = tuple(f"127.53.0.{n}" for n in range(1, 9))
DNS_PORT = 53
NEGATIVE_TTL = 3600
STARTUP_SECONDS = 10.0
STOP_SECONDS = 5.0

_PR_SET_PDEATHSIG = 1
# Loaded before any fork: a child must not load libraries between fork and exec.
_LIBC = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class TsigKey:
    """The key that signs dynamic updates to the lab's Knot."""

    name: str
    secret: str
    algorithm: str
    server: str
    port: int

    def keyring(self) -> dict[dns.name.Name, dns.tsig.Key]:
        keyring: dict[dns.name.Name, dns.tsig.Key] = dns.tsigkeyring.from_text(
            {self.name: (self.algorithm, self.secret)}
        )
        return keyring


@dataclass(frozen=True)
class ResolverAnswer:
    """What Unbound answered: the response code and the answer records as text."""

    rcode: str
    records: tuple[str, ...]


class DnsLab:
    """Knot and Unbound, started by :meth:`start` and stopped by :meth:`stop`.

    Use it as a context manager. Every failure to start raises RuntimeError with
    the reason and the end of the server's log.
    """

    zone = ZONE
    other_zone = OTHER_ZONE
    zones = SERVED_ZONES
    timeout_zone = TIMEOUT_ZONE
    servfail_zone = SERVFAIL_ZONE
    refused_zone = REFUSED_ZONE

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._names = itertools.count(1)
        self._knot: subprocess.Popen[bytes] | None = None
        self._unbound: subprocess.Popen[bytes] | None = None
        self._silent: list[socket.socket] = []
        self._address = ""
        self._silent_address = ""
        self._resolver_port = 0
        self._tsig: TsigKey | None = None

    def __enter__(self) -> DnsLab:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def authoritative(self) -> tuple[str, int]:
        """Knot's address and port."""
        return (self._address, DNS_PORT)

    @property
    def silent_address(self) -> str:
        """The address of the name server of :data:`TIMEOUT_ZONE`: it never answers."""
        return self._silent_address

    @property
    def resolver_address(self) -> tuple[str, int]:
        """Unbound's address and port."""
        return ("127.0.0.1", self._resolver_port)

    @property
    def resolver(self) -> str:
        """Unbound as ``ip:port``, the form ``DOMAINBOT_RESOLVERS`` takes."""
        return f"127.0.0.1:{self._resolver_port}"

    @property
    def tsig(self) -> TsigKey:
        if self._tsig is None:
            raise RuntimeError("the DNS lab is not started")
        return self._tsig

    def start(self) -> None:
        """Start Knot and Unbound; raise RuntimeError saying why if either fails."""
        knotd = _program("knotd")
        unbound = _program("unbound")
        try:
            self._address, self._silent_address = self._claim_addresses()
            self._resolver_port = _free_port()
            secret = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
            self._tsig = TsigKey(
                name="domainbot-lab.",
                secret=secret,
                algorithm="hmac-sha256",
                server=self._address,
                port=DNS_PORT,
            )
            self._write_knot_files()
            self._write_unbound_config()
            self._knot = _spawn(
                [knotd, "-c", str(self._path("knot.conf"))], self._path("knot.out")
            )
            self._wait_for_knot()
            self._unbound = _spawn(
                [unbound, "-d", "-p", "-c", str(self._path("unbound.conf"))],
                self._path("unbound.out"),
            )
            self._wait_for_unbound()
        except BaseException:
            self.stop()
            raise
        logger.info(
            "DNS lab started: knot=%s resolver=%s directory=%s",
            self._address,
            self.resolver,
            self.directory,
        )

    def stop(self) -> None:
        """Stop both servers and release the silent address; safe to call twice."""
        for process in (self._unbound, self._knot):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(STOP_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(STOP_SECONDS)
        self._unbound = self._knot = None
        for sock in self._silent:
            sock.close()
        self._silent.clear()

    def unique_name(self, label: str = "host", zone: str | None = None) -> str:
        """A name under ``zone`` (default :data:`ZONE`) that no other test uses."""
        return f"{label}-{next(self._names)}{secrets.token_hex(3)}.{zone or self.zone}"

    def set_record(self, name: str, rdtype: str, *values: str, ttl: int = 60) -> None:
        """Replace the ``rdtype`` records at ``name`` with ``values`` (zone-file text).

        Names in values are taken as absolute, with or without the final dot.
        Raises RuntimeError when Knot refuses the update.
        """
        update = self._update(name)
        rdatas = [
            dns.rdata.from_text(
                dns.rdataclass.IN, rdtype, value, origin=dns.name.root, relativize=False
            )
            for value in values
        ]
        update.replace(dns.name.from_text(name), ttl, *rdatas)
        self._send_update(update, f"set {name} {rdtype}")

    def delete_record(self, name: str, rdtype: str | None = None) -> None:
        """Delete the ``rdtype`` records at ``name``, or all of them when None."""
        update = self._update(name)
        if rdtype is None:
            update.delete(dns.name.from_text(name))
        else:
            update.delete(dns.name.from_text(name), rdtype)
        self._send_update(update, f"delete {name} {rdtype or 'all'}")

    def query_resolver(self, name: str, rdtype: str) -> ResolverAnswer:
        """Ask Unbound, as any client would, with recursion desired."""
        query = dns.message.make_query(name, rdtype)
        response = dns.query.udp(
            query, "127.0.0.1", timeout=STARTUP_SECONDS, port=self._resolver_port
        )
        records = tuple(
            f"{dns.rdatatype.to_text(rrset.rdtype)} {rdata.to_text()}"
            for rrset in response.answer
            for rdata in rrset
        )
        return ResolverAnswer(dns.rcode.to_text(response.rcode()), records)

    def resolver_queries(self) -> int:
        """How many queries Unbound has received since it started."""
        stats = self._unbound_control("stats_noreset")
        for line in stats.splitlines():
            key, _, value = line.partition("=")
            if key == "total.num.queries":
                return int(value)
        raise RuntimeError("unbound-control stats_noreset gave no total.num.queries")

    def reset(self) -> None:
        """Reload the served zones from their files and empty Unbound's caches."""
        knotc = _program("knotc")
        for zone in SERVED_ZONES:
            _run([knotc, "-c", str(self._path("knot.conf")), "-b", "zone-reload", zone])
        self._unbound_control("flush_zone", ".")
        self._unbound_control("flush_infra", "all")
        self._unbound_control("flush_requestlist")

    def _path(self, name: str) -> Path:
        return self.directory / name

    def _tail(self, log_name: str) -> str:
        """The last lines of a server's log and of its own output."""
        lines: list[str] = []
        for name in (log_name, log_name.replace(".log", ".out")):
            path = self._path(name)
            if path.exists():
                lines += path.read_text(errors="replace").splitlines()[-10:]
        return "\n".join(lines) or "(empty)"

    def _update(self, name: str) -> dns.update.UpdateMessage:
        zone = _zone_of(name)
        return dns.update.UpdateMessage(
            zone,
            keyring=self.tsig.keyring(),
            keyname=dns.name.from_text(self.tsig.name),
        )

    def _send_update(self, update: dns.update.UpdateMessage, what: str) -> None:
        response = dns.query.tcp(
            update, self._address, timeout=STARTUP_SECONDS, port=DNS_PORT
        )
        if response.rcode() != dns.rcode.NOERROR:
            raise RuntimeError(
                f"Knot refused the update ({what}): "
                f"{dns.rcode.to_text(response.rcode())}"
            )

    def _unbound_control(self, *command: str) -> str:
        control = _program("unbound-control")
        return _run([control, "-c", str(self._path("unbound.conf")), *command])

    def _claim_addresses(self) -> tuple[str, str]:
        """Pick a free loopback address for Knot and hold a silent one beside it."""
        for address in AUTHORITATIVE_ADDRESSES:
            silent = address.replace("127.53.0.", "127.53.1.")
            if _port_is_free(address, DNS_PORT) and _port_is_free(silent, DNS_PORT):
                self._silent = _silent_sockets(silent)
                return address, silent
        raise RuntimeError(
            f"port {DNS_PORT} is busy on every address the DNS lab may use "
            f"({', '.join(AUTHORITATIVE_ADDRESSES)} and their 127.53.1.x twins): "
            "another DNS server or a lab left over from a killed test run holds "
            "them; `ss -lunp sport = :53` shows which process"
        )

    def _write_knot_files(self) -> None:
        database = self._path("knot-db")
        database.mkdir(exist_ok=True)
        zones = "\n".join(
            f"  - domain: {zone}" for zone in (*SERVED_ZONES, SERVFAIL_ZONE)
        )
        self._path("knot.conf").write_text(
            _KNOT_CONFIG.format(
                directory=self.directory,
                address=self._address,
                port=DNS_PORT,
                key=self.tsig.name,
                secret=self.tsig.secret,
                algorithm=self.tsig.algorithm,
                zones=zones,
            )
        )
        for zone in SERVED_ZONES:
            self._path(f"{zone}.zone").write_text(self._zone_text(zone))

    def _zone_text(self, zone: str) -> str:
        text = _ZONE_HEAD.format(zone=zone, ttl=NEGATIVE_TTL, address=self._address)
        if zone == ZONE:
            text += _FAULT_DELEGATIONS.format(silent=self._silent_address)
        return text

    def _write_unbound_config(self) -> None:
        stubs = "".join(
            _UNBOUND_STUB.format(zone=zone, address=self._address)
            for zone in (*SERVED_ZONES, ".")
        )
        self._path("unbound.conf").write_text(
            _UNBOUND_CONFIG.format(
                directory=self.directory,
                port=self._resolver_port,
                negative_ttl=NEGATIVE_TTL,
                refused_zone=REFUSED_ZONE,
                zone=ZONE,
            )
            + stubs
        )

    def _wait_for_knot(self) -> None:
        for zone in SERVED_ZONES:
            ready = functools.partial(_answers, self._address, DNS_PORT, zone, rd=False)
            self._wait(self._knot, "knotd", "knot.log", ready)

    def _wait_for_unbound(self) -> None:
        ready = functools.partial(
            _answers, "127.0.0.1", self._resolver_port, ZONE, rd=True
        )
        self._wait(self._unbound, "unbound", "unbound.log", ready)

    def _wait(
        self,
        process: subprocess.Popen[bytes] | None,
        program: str,
        log_name: str,
        ready: Callable[[], bool],
    ) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if process is None or process.poll() is not None:
                raise RuntimeError(
                    f"{program} stopped while starting; the end of its log:\n"
                    + self._tail(log_name)
                )
            if ready():
                return
            time.sleep(0.05)
        raise RuntimeError(
            f"{program} did not answer within {STARTUP_SECONDS:g} s; the end of its "
            "log:\n" + self._tail(log_name)
        )


def _program(name: str) -> str:
    """The path of a server program; raise RuntimeError naming its package if absent."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if path is None:
        package = "knot" if name.startswith("knot") else "unbound"
        raise RuntimeError(
            f"{name} is not installed; scripts/test installs the Debian package "
            f"{package} (apt-get install {package})"
        )
    return path


def _spawn(command: list[str], output: Path) -> subprocess.Popen[bytes]:
    """Start a server in the foreground, its own output going to ``output``."""
    with output.open("wb") as sink:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )


def _die_with_parent() -> None:
    # A server left behind by a killed test run would hold its port until rebooted.
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _run(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({result.returncode}): "
            f"{result.stderr.strip() or result.stdout.strip()}"
        )
    return result.stdout


def _answers(address: str, port: int, zone: str, *, rd: bool) -> bool:
    query = dns.message.make_query(zone, "SOA")
    if not rd:
        query.flags &= ~dns.flags.RD
    try:
        response = dns.query.udp(query, address, timeout=0.2, port=port)
    except (dns.exception.DNSException, OSError):
        return False
    return response.rcode() == dns.rcode.NOERROR and bool(response.answer)


def _port_is_free(address: str, port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            if kind == socket.SOCK_STREAM:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((address, port))
            except OSError:
                return False
    return True


def _silent_sockets(address: str) -> list[socket.socket]:
    """Bind ``address`` port 53 without ever answering: questions there time out."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        udp.bind((address, DNS_PORT))
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((address, DNS_PORT))
        tcp.listen(64)
    except OSError:
        udp.close()
        tcp.close()
        raise
    return [udp, tcp]


def _free_port() -> int:
    """A port of 127.0.0.1 that is free for both UDP and TCP."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if _port_is_free("127.0.0.1", port):
            return port
    raise RuntimeError("found no free port on 127.0.0.1 for Unbound")


def _zone_of(name: str) -> str:
    owner = dns.name.from_text(name)
    for zone in sorted(SERVED_ZONES, key=len, reverse=True):
        if owner.is_subdomain(dns.name.from_text(zone)):
            return zone
    raise RuntimeError(f"{name} is in none of the lab's zones {SERVED_ZONES}")


_KNOT_CONFIG = """\
server:
    rundir: "{directory}"
    listen: {address}@{port}
    udp-workers: 2
    tcp-workers: 2
    background-workers: 1
log:
  - target: "{directory}/knot.log"
    any: info
database:
    storage: "{directory}/knot-db"
control:
    listen: "{directory}/knot.sock"
key:
  - id: {key}
    algorithm: {algorithm}
    secret: {secret}
acl:
  - id: lab-updates
    key: {key}
    action: update
template:
  - id: default
    storage: "{directory}"
    file: "%s.zone"
    # The zone files stay as written, so that reset() can reload them.
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    acl: lab-updates
zone:
{zones}
"""

_ZONE_HEAD = """\
$ORIGIN {zone}.
$TTL {ttl}
@        SOA   ns1 hostmaster 1 3600 600 86400 {ttl}
@        NS    ns1
ns1      A     {address}
"""

_FAULT_DELEGATIONS = """\
dead     NS    ns.dead
ns.dead  A     {silent}
broken   NS    ns1
"""

_UNBOUND_CONFIG = """\
server:
    interface: 127.0.0.1
    port: {port}
    do-ip4: yes
    do-ip6: no
    so-reuseport: no
    username: ""
    chroot: ""
    directory: "{directory}"
    logfile: "{directory}/unbound.log"
    use-syslog: no
    verbosity: 1
    num-threads: 1
    module-config: "iterator"
    do-not-query-localhost: no
    qname-minimisation: no
    cache-max-negative-ttl: {negative_ttl}
    local-zone: "test." nodefault
    local-zone: "{refused_zone}." transparent
    local-data: "{refused_zone}. 3600 IN NS ns1.{zone}."
remote-control:
    control-enable: yes
    control-interface: "{directory}/unbound.ctl"
    control-use-cert: no
"""

# The stub for "." keeps Unbound away from the real root servers.
_UNBOUND_STUB = """\
stub-zone:
    name: "{zone}"
    stub-addr: {address}@53
"""
