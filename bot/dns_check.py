"""Checking a domain's records at its authoritative name servers.

A caching resolver may hold "no such record" for as long as the zone's negative TTL,
so a record a user has just added can stay invisible there for an hour. The checks
here therefore ask the servers that hold the zone itself:

1. The zone cut of a name is found by asking the configured recursive resolvers for
   NS records, from the name itself up towards the root; the name servers' addresses
   come from glue or from the same resolvers. The result is kept in memory for the
   records' TTL (bounded by :data:`MIN_CACHE_SECONDS` and :data:`MAX_CACHE_SECONDS`),
   and a failed search is kept for :data:`NEGATIVE_CACHE_SECONDS`.
2. The question goes to the zone's servers directly, recursion off, one server after
   another until one answers with authority; a referral to a zone further down is
   followed and that zone is remembered too.

Once a zone is known, a check costs one UDP query (TCP when the answer is truncated)
and no resolver traffic. :meth:`AuthoritativeDns.check_cnames` checks a batch at once:
its questions go out together over one socket per server, many in flight at a time,
which spares the thousands of sockets and waits that checks one by one would cost.

Queries are written and answers read here, with dnspython's name and wire parsers,
rather than through :mod:`dns.message`: building and reading full message objects
cost several times more than the exchange itself, and checks run by the thousand.
:class:`AuthoritativeDns` is safe to share between threads.

Faults of the servers are returned as results in state ``dns_error`` (the caller
tries again later) rather than raised.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import logging
import secrets
import selectors
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

import dns.exception
import dns.flags
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.wire

from bot.errors import ConfigError, DnsError, DomainbotError, InvalidDomain

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 2.0
DNS_PORT = 53
MAX_CNAME_HOPS = 8
# Delegations followed below a remembered zone before giving up on one question.
MAX_REFERRALS = 4
MIN_CACHE_SECONDS = 30.0
MAX_CACHE_SECONDS = 3600.0
NEGATIVE_CACHE_SECONDS = 15.0
# Past this many remembered entries the expired ones are swept out.
_CACHE_SWEEP_SIZE = 4096
# Parsed names are kept: rechecks ask about the same names again and again.
_NAME_CACHE_SIZE = 8192
# Large enough for a typical CNAME or TXT answer, small enough to avoid fragments.
_EDNS_PAYLOAD = 1232
# What a check found and why it failed are stored with the binding or challenge
# (in columns of 1,000 characters) and shown in Slack: longer words are cut.
WORDS_LIMIT = 900
# Questions of a batch in flight to one server at a time: enough to keep a distant
# server busy, few enough that a burst of answers fits a socket's receive buffer.
_WINDOW = 64

_IN = dns.rdataclass.IN
_A = dns.rdatatype.A
_AAAA = dns.rdatatype.AAAA
_CNAME = dns.rdatatype.CNAME
_NS = dns.rdatatype.NS
_SOA = dns.rdatatype.SOA
_TXT = dns.rdatatype.TXT
_ANSWERED = (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
_HEADER = struct.Struct("!HHHHHH")
_RECORD_HEAD = struct.Struct("!HHIH")
_QUESTION_TAIL = struct.Struct("!HH")
# An EDNS(0) OPT record: root owner, type 41, our UDP payload size, no options.
_OPT_RECORD = b"\x00" + _RECORD_HEAD.pack(dns.rdatatype.OPT, _EDNS_PAYLOAD, 0, 0)

_Entry = TypeVar("_Entry")


class CheckState(StrEnum):
    """Where a domain's CNAME stands."""

    LIVE = "live"
    """The CNAME, directly or through a chain, reaches the expected target."""
    WAITING = "waiting"
    """The servers answered, and the CNAME to the expected target is not there."""
    DNS_ERROR = "dns_error"
    """The servers could not be asked or did not answer; try again later."""


class TxtState(StrEnum):
    """What a TXT lookup found."""

    FOUND = "found"
    MISSING = "missing"
    DNS_ERROR = "dns_error"


@dataclass(frozen=True)
class CnameCheck:
    """The outcome of :meth:`AuthoritativeDns.check_cname`, in words for a person.

    ``found`` says what the domain holds, for example ``CNAME other.example.net``,
    ``A 192.0.2.1, A 192.0.2.2`` or ``no record (NXDOMAIN)``. ``problem`` says why
    the servers could not be asked, and is set in state ``dns_error`` only.
    ``servers`` lists the authoritative servers asked, as ``host (address)``.
    """

    domain: str
    expected: str
    state: CheckState
    chain: tuple[str, ...]
    found: str
    problem: str | None
    servers: tuple[str, ...]

    @property
    def live(self) -> bool:
        return self.state is CheckState.LIVE


@dataclass(frozen=True)
class TxtLookup:
    """The TXT records at a name, as its authoritative servers hold them.

    Each value is one record with its strings joined, exactly as stored. ``chain``
    lists the CNAME targets followed to reach the records, if any.
    """

    name: str
    state: TxtState
    values: tuple[str, ...]
    chain: tuple[str, ...]
    problem: str | None
    servers: tuple[str, ...]


@dataclass(frozen=True)
class _Server:
    host: str
    address: str

    def __str__(self) -> str:
        return f"{self.host} ({self.address})"


@dataclass(frozen=True)
class _Zone:
    name: dns.name.Name
    servers: tuple[_Server, ...]
    expires: float


@dataclass(frozen=True)
class _Record:
    """One resource record of an answer, with the parts the checks read."""

    name: dns.name.Name
    rdtype: int
    ttl: int
    target: dns.name.Name | None = None
    address: str | None = None
    strings: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class _Reply:
    rcode: dns.rcode.Rcode
    authoritative: bool
    answer: tuple[_Record, ...] = ()
    authority: tuple[_Record, ...] = ()
    additional: tuple[_Record, ...] = ()


@dataclass
class _Trail:
    """What one check has seen so far: the CNAME chain and the servers asked."""

    chain: list[dns.name.Name] = field(default_factory=list)
    servers: list[str] = field(default_factory=list)
    seen: set[dns.name.Name] = field(default_factory=set)
    looped: bool = False
    too_long: bool = False

    def follows(self, target: dns.name.Name, stop_at: dns.name.Name | None) -> bool:
        """Add a CNAME's ``target`` to the chain; True if the chain goes on to it.

        The chain ends at ``stop_at``, at a name seen before (a loop) and after
        :data:`MAX_CNAME_HOPS` records.
        """
        self.chain.append(target)
        if target == stop_at:
            return False
        if target in self.seen:
            self.looped = True
            return False
        if len(self.chain) >= MAX_CNAME_HOPS:
            self.too_long = True
            return False
        self.seen.add(target)
        return True

    def chain_text(self) -> tuple[str, ...]:
        return tuple(_text(name) for name in self.chain)

    def servers_text(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.servers))


@dataclass
class _Check:
    """One pair of a batch given to :meth:`AuthoritativeDns.check_cnames`."""

    domain: str
    expected_target: str
    name: dns.name.Name
    expected: dns.name.Name
    trail: _Trail = field(default_factory=_Trail)
    # The hop being asked about: the name, then each CNAME target in turn.
    current: dns.name.Name = field(init=False)
    zone: _Zone | None = None
    problems: list[str] = field(default_factory=list)
    reply: _Reply | None = None
    result: CnameCheck | None = None

    def __post_init__(self) -> None:
        self.current = self.name
        self.trail.seen.add(self.name)


class AuthoritativeDns:
    """Asks the authoritative servers of a name, found through recursive resolvers.

    ``resolvers`` are ``(address, port)`` pairs; when empty the system's resolvers
    from ``/etc/resolv.conf`` are used. ``timeout`` is the wait for one answer from
    one server, in seconds. ``clock`` gives monotonic seconds and decides when a
    remembered zone expires.

    Raises :class:`~bot.errors.ConfigError` when no resolvers are given and the
    system names none.
    """

    def __init__(
        self,
        *,
        resolvers: Sequence[tuple[str, int]] = (),
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._resolvers = tuple(resolvers) or _system_resolvers()
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._zones: dict[dns.name.Name, _Zone] = {}
        # name -> (expiry, name and reason of the DnsError the search ended with)
        self._failures: dict[dns.name.Name, tuple[float, str, str]] = {}

    def check_cname(self, domain: str, expected_target: str) -> CnameCheck:
        """Tell whether ``domain`` has a CNAME, or a chain of them, to the target.

        Names are compared without regard to case or a trailing dot. The expected
        target itself is never looked up. When the domain's own servers cannot be
        asked the state is ``dns_error``; when a later hop of a CNAME chain cannot
        be, the chain seen so far is reported as ``waiting``, since the domain
        already points elsewhere. Raises :class:`~bot.errors.InvalidDomain` only
        when either argument is not a domain name at all.
        """
        name = _name(domain)
        expected = _name(expected_target)
        logger.debug("checking CNAME: domain=%s expected=%s", name, expected)
        trail = _Trail()
        try:
            reply = self._follow(name, _A, trail, stop_at=expected)
        except DnsError as err:
            return self._cut_short(name, expected, trail, err)
        return self._conclude(name, expected, trail, reply)

    def check_cnames(
        self,
        pairs: Sequence[tuple[str, str]],
        *,
        executor: Executor | None = None,
    ) -> list[CnameCheck]:
        """Check many ``(domain, expected_target)`` pairs; the results come in order.

        Each result is the one :meth:`check_cname` gives for its pair, but the
        questions of a batch go out together, hop by hop along the CNAME chains.
        What takes more than a plain answer (a referral to follow, an answer too
        large for UDP, a name without a CNAME whose addresses are to be described)
        goes through :meth:`check_cname`, on ``executor`` when given so that slow
        ones overlap. Raises :class:`~bot.errors.InvalidDomain` as
        :meth:`check_cname` does.
        """
        checks = [
            _Check(domain, target, _name(domain), _name(target))
            for domain, target in pairs
        ]
        one_by_one: list[_Check] = []
        hop = checks
        while hop:
            hop = self._next_hop(hop, one_by_one)

        results = self._check_each(one_by_one, executor)
        for check, result in zip(one_by_one, results, strict=True):
            check.result = result
        logger.debug(
            "CNAMEs checked: pairs=%d one_by_one=%d", len(checks), len(one_by_one)
        )
        return [_finished(check) for check in checks]

    def zone_of(self, name: str) -> str | None:
        """The zone ``name`` is in, as found through the resolvers; None if unknown.

        Used to show the host field as DNS consoles that append the zone want it.
        """
        try:
            zone = self._zone_for(_name(name))
        except DomainbotError as err:
            logger.debug("zone unknown: name=%s problem=%s", name, err)
            return None
        return _text(zone.name)

    def txt_values(self, name: str) -> TxtLookup:
        """Return the TXT records at ``name``, following a CNAME there if any.

        The strings of one record are joined without a separator and decoded as
        UTF-8 (undecodable bytes replaced), with case and spaces kept. Server faults
        come back in state ``dns_error``; raises :class:`~bot.errors.InvalidDomain`
        only when ``name`` is not a domain name at all.
        """
        owner = _name(name)
        logger.debug("looking up TXT: name=%s", owner)
        trail = _Trail()

        try:
            reply = self._follow(owner, _TXT, trail, stop_at=None)
        except DnsError as err:
            return TxtLookup(
                name=_text(owner),
                state=TxtState.DNS_ERROR,
                values=(),
                chain=trail.chain_text(),
                problem=clip_words(str(err)),
                servers=trail.servers_text(),
            )

        values: tuple[str, ...] = ()
        if reply is not None:
            last = trail.chain[-1] if trail.chain else owner
            records = _matching(reply.answer, last, _TXT)
            values = tuple(
                b"".join(r.strings).decode("utf-8", errors="replace") for r in records
            )
        logger.debug("TXT looked up: name=%s records=%d", owner, len(values))
        return TxtLookup(
            name=_text(owner),
            state=TxtState.FOUND if values else TxtState.MISSING,
            values=values,
            chain=trail.chain_text(),
            problem=None,
            servers=trail.servers_text(),
        )

    def _cut_short(
        self,
        name: dns.name.Name,
        expected: dns.name.Name,
        trail: _Trail,
        err: DnsError,
    ) -> CnameCheck:
        """The result when a hop could not be asked: a DNS error at the domain
        itself, or the chain seen so far when the domain already points elsewhere.
        """
        if trail.chain:
            logger.debug("CNAME chain cut short: domain=%s problem=%s", name, err)
            return self._cname_result(
                name, expected, trail, CheckState.WAITING, _chain_words(trail), None
            )
        found = "unknown: no name server answered"
        return self._cname_result(
            name, expected, trail, CheckState.DNS_ERROR, found, str(err)
        )

    def _conclude(
        self,
        name: dns.name.Name,
        expected: dns.name.Name,
        trail: _Trail,
        reply: _Reply | None,
    ) -> CnameCheck:
        """The result once the chain has ended; ``reply`` is the last hop's answer,
        None when the chain ended at the target, in a loop or too long.

        A name without a CNAME has its AAAA records asked for, to describe it.
        """
        if trail.chain and trail.chain[-1] == expected:
            state, found = CheckState.LIVE, _chain_words(trail)
        elif trail.chain or reply is None:
            state, found = CheckState.WAITING, _chain_words(trail)
        else:
            state, found = CheckState.WAITING, self._records_words(name, reply, trail)
        return self._cname_result(name, expected, trail, state, found, None)

    def _cname_result(
        self,
        name: dns.name.Name,
        expected: dns.name.Name,
        trail: _Trail,
        state: CheckState,
        found: str,
        problem: str | None,
    ) -> CnameCheck:
        logger.debug("CNAME checked: domain=%s state=%s", name, state)
        return CnameCheck(
            domain=_text(name),
            expected=_text(expected),
            state=state,
            chain=trail.chain_text(),
            found=clip_words(found),
            problem=None if problem is None else clip_words(problem),
            servers=trail.servers_text(),
        )

    def _next_hop(self, checks: list[_Check], one_by_one: list[_Check]) -> list[_Check]:
        """Ask about each check's current name at once; return the checks whose
        chain goes on. Checks that only :meth:`check_cname` can finish go to
        ``one_by_one``; the others end with their result.
        """
        asking = []
        for check in checks:
            try:
                check.zone = self._zone_for(check.current)
            except DnsError as err:
                check.result = self._cut_short(
                    check.name, check.expected, check.trail, err
                )
            else:
                asking.append(check)
        self._ask_in_rounds(asking)

        going_on = []
        for check in asking:
            if check.result is not None:
                continue
            if check.reply is None:
                one_by_one.append(check)
            elif self._goes_on(check, check.reply):
                going_on.append(check)
            elif not check.trail.chain and check.reply.rcode != dns.rcode.NXDOMAIN:
                # A name with records other than a CNAME: its A and AAAA records
                # are described, which takes another question.
                one_by_one.append(check)
            else:
                check.result = self._conclude(
                    check.name, check.expected, check.trail, check.reply
                )
        return going_on

    @staticmethod
    def _goes_on(check: _Check, reply: _Reply) -> bool:
        """Move the check to the next hop of its chain, if there is one to ask."""
        targets = _targets(reply.answer, check.current, _CNAME)
        if not targets or not check.trail.follows(targets[0], check.expected):
            return False
        check.current = targets[0]
        return True

    def _ask_in_rounds(self, checks: list[_Check]) -> None:
        """Ask the checks' zone servers in turn, one server of every zone per round.

        As :meth:`_ask_zone` does for one name, a check moves on to its zone's next
        server only when the last one failed to answer with authority; the questions
        of a round go out together. A check ends with its reply, with its result
        when every server failed, or with neither when only :meth:`check_cname` can
        read the answer (a referral or a truncated answer).
        """
        for check in checks:
            check.problems.clear()
            check.reply = None
        waiting = checks
        position = 0
        while waiting:
            asking = []
            for check in waiting:
                if position < len(_zone_of(check).servers):
                    asking.append(check)
                else:
                    err = DnsError(_text(check.current), "; ".join(check.problems))
                    check.result = self._cut_short(
                        check.name, check.expected, check.trail, err
                    )
            waiting = self._ask_round(asking, position)
            position += 1

    def _ask_round(self, checks: list[_Check], position: int) -> list[_Check]:
        """Ask each check's server at ``position`` at once; return the unanswered."""
        logger.debug("asking together: questions=%d round=%d", len(checks), position)
        servers = [_zone_of(check).servers[position] for check in checks]
        queries = [_query_wire(check.current, _A, recursion=False) for check in checks]
        questions = [
            (server.address, query)
            for server, query in zip(servers, queries, strict=True)
        ]
        outcomes = _Pipeline(self._timeout).ask(questions)
        unanswered = []
        for check, server, query, outcome in zip(
            checks, servers, queries, outcomes, strict=True
        ):
            if not self._take(check, server, query, outcome):
                unanswered.append(check)
        return unanswered

    def _take(
        self, check: _Check, server: _Server, query: bytes, outcome: bytes | str
    ) -> bool:
        """Keep ``server``'s answer for ``check``; False if the next must be asked.

        ``outcome`` is the answer, or what went wrong in asking.
        """
        zone = _zone_of(check)
        check.trail.servers.append(str(server))
        if isinstance(outcome, bytes) and _truncated(outcome):
            return True
        reply, problem = (
            _read_reply(outcome, query, check.current)
            if isinstance(outcome, bytes)
            else (None, outcome)
        )
        if reply is not None:
            referral, refusal = _judge(reply, zone.name, check.current)
            if refusal is None:
                # A referral leaves the reply unset: check_cname follows it.
                check.reply = None if referral else reply
                return True
            problem = refusal
        logger.warning(
            "name server failed: server=%s zone=%s name=%s problem=%s",
            server,
            zone.name,
            check.current,
            problem,
        )
        check.problems.append(f"{server} {problem}")
        return False

    def _check_each(
        self, checks: Sequence[_Check], executor: Executor | None
    ) -> list[CnameCheck]:
        def check_one(check: _Check) -> CnameCheck:
            return self.check_cname(check.domain, check.expected_target)

        if executor is None or len(checks) < 2:
            return [check_one(check) for check in checks]
        return list(executor.map(check_one, checks))

    def _follow(
        self,
        name: dns.name.Name,
        rdtype: dns.rdatatype.RdataType,
        trail: _Trail,
        stop_at: dns.name.Name | None,
    ) -> _Reply | None:
        """Ask for ``rdtype`` at ``name`` and along its CNAME chain, hop by hop.

        Each hop is asked at its own zone's servers. Returns the answer for the last
        name of the chain, or None when the chain reached ``stop_at``, looped or grew
        too long (``trail`` says which). Raises DnsError when a hop cannot be asked.
        """
        current = name
        trail.seen.add(name)
        while True:
            reply = self._query(current, rdtype, trail)
            targets = _targets(reply.answer, current, _CNAME)
            if not targets:
                return reply
            logger.debug("CNAME found: name=%s target=%s", current, targets[0])
            if not trail.follows(targets[0], stop_at):
                return None
            current = targets[0]

    def _records_words(self, name: dns.name.Name, reply: _Reply, trail: _Trail) -> str:
        """Describe, for a person, what a name without a CNAME holds."""
        if reply.rcode == dns.rcode.NXDOMAIN:
            return "no record (NXDOMAIN)"
        words = _address_words(reply, name, _A)
        try:
            more = self._query(name, _AAAA, trail)
        except DnsError as err:
            logger.warning("AAAA lookup failed: domain=%s problem=%s", name, err.reason)
        else:
            words += _address_words(more, name, _AAAA)
        return ", ".join(words) or "no CNAME, A or AAAA record"

    def _query(
        self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType, trail: _Trail
    ) -> _Reply:
        """Ask the authoritative servers of ``name``; raise DnsError if none answer."""
        zone = self._zone_for(name)
        for _ in range(MAX_REFERRALS + 1):
            reply, referral = self._ask_zone(zone, name, rdtype, trail)
            if not referral:
                return reply
            child = referral[0].name
            logger.debug("following referral: name=%s zone=%s", name, child)
            zone = self._remember(child, referral, reply.additional)
        raise DnsError(
            _text(name), f"more than {MAX_REFERRALS} delegations in a row below it"
        )

    def _ask_zone(
        self,
        zone: _Zone,
        name: dns.name.Name,
        rdtype: dns.rdatatype.RdataType,
        trail: _Trail,
    ) -> tuple[_Reply, list[_Record]]:
        """Ask each server of ``zone`` in turn until one answers with authority.

        Returns the answer and, when it is a referral, the NS records it points to.
        Raises DnsError naming every server and what went wrong with it.
        """
        problems = []
        for server in zone.servers:
            trail.servers.append(str(server))
            logger.debug(
                "asking: server=%s name=%s type=%s",
                server.address,
                name,
                rdtype.name,
            )
            reply, problem = self._ask(
                server.address, DNS_PORT, name, rdtype, recursion=False
            )
            if reply is not None:
                referral, refusal = _judge(reply, zone.name, name)
                if refusal is None:
                    return reply, referral
                problem = refusal
            logger.warning(
                "name server failed: server=%s zone=%s name=%s problem=%s",
                server,
                zone.name,
                name,
                problem,
            )
            problems.append(f"{server} {problem}")
        raise DnsError(_text(name), "; ".join(problems))

    def _ask(
        self,
        address: str,
        port: int,
        name: dns.name.Name,
        rdtype: dns.rdatatype.RdataType,
        *,
        recursion: bool,
    ) -> tuple[_Reply | None, str]:
        """Send one question; return the reply, or None and what went wrong."""
        query = _query_wire(name, rdtype, recursion=recursion)
        try:
            wire = self._exchange(query, address, port)
        except DnsError as err:
            return None, f"sent an answer that could not be used ({err.reason})"
        except (OSError, EOFError) as err:
            return None, _exchange_problem(err, self._timeout)
        return _read_reply(wire, query, name)

    def _exchange(self, query: bytes, address: str, port: int) -> bytes:
        """Send a query over UDP, and over TCP when the answer comes truncated.

        Raises TimeoutError, OSError or EOFError as the sockets do, and DnsError for
        a TCP answer to another query.
        """
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        deadline = time.monotonic() + self._timeout
        # A connected socket hears only from the server, and hears of a closed port.
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((address, port))
            sock.send(query)
            reply = b""
            while reply[:2] != query[:2]:
                sock.settimeout(_remaining(deadline))
                reply = sock.recv(65535)
        if len(reply) < _HEADER.size or not _flags(reply) & dns.flags.TC:
            return reply

        logger.debug("answer truncated, asking over TCP: server=%s", address)
        deadline = time.monotonic() + self._timeout
        with socket.create_connection((address, port), self._timeout) as sock:
            sock.sendall(struct.pack("!H", len(query)) + query)
            (length,) = struct.unpack("!H", _receive(sock, 2, deadline))
            reply = _receive(sock, length, deadline)
        if reply[:2] != query[:2]:
            raise DnsError(address, "the answer over TCP carries another query's id")
        return reply

    def _zone_for(self, name: dns.name.Name) -> _Zone:
        """Return the remembered zone closest above ``name``, or discover it.

        Raises DnsError when the zone's servers cannot be found.
        """
        now = self._clock()
        with self._lock:
            for candidate in _ancestors(name):
                zone = self._zones.get(candidate)
                if zone is not None and zone.expires > now:
                    return zone
            failure = self._failures.get(name)
        if failure is not None and failure[0] > now:
            logger.debug("zone search failed recently: name=%s", name)
            raise DnsError(failure[1], failure[2])

        try:
            return self._discover(name)
        except DnsError as err:
            with self._lock:
                _sweep(self._failures, now, lambda entry: entry[0])
                expiry = now + NEGATIVE_CACHE_SECONDS
                self._failures[name] = (expiry, err.name, err.reason)
            raise

    def _discover(self, name: dns.name.Name) -> _Zone:
        """Find the zone of ``name`` through the resolvers and remember it.

        Only NS records owned by the name asked for count: for a name with a CNAME
        a resolver answers with the NS records of the target. Raises DnsError when
        neither the name nor any parent has NS records.
        """
        logger.debug("finding zone: name=%s", name)
        problems: list[str] = []
        candidate = name
        while True:
            reply = self._ask_resolvers(candidate, _NS, problems)
            jump = None
            if reply is not None:
                records = _matching(reply.answer, candidate, _NS)
                if records:
                    return self._remember(candidate, records, reply.additional)
                jump = _apex_above(reply, candidate)
            if candidate == dns.name.root:
                break
            candidate = jump or candidate.parent()

        reasons = "; ".join(dict.fromkeys(problems)) or "the resolvers know none"
        raise DnsError(
            _text(name), f"found no name servers for it or any parent ({reasons})"
        )

    def _remember(
        self,
        zone_name: dns.name.Name,
        ns_records: Sequence[_Record],
        additional: Sequence[_Record],
    ) -> _Zone:
        """Resolve the name servers of a zone and keep them for their TTL.

        Glue in ``additional`` is used where present. Raises DnsError when none
        of the name servers has an address.
        """
        hosts = sorted({r.target for r in ns_records if r.target is not None})
        ttl = min(r.ttl for r in ns_records)
        problems: list[str] = []
        found: list[tuple[int, _Server]] = []
        for host in hosts:
            glue = [r for r in additional if r.name == host and r.address]
            for record in glue or self._resolve_host(host, problems):
                ttl = min(ttl, record.ttl)
                version = 4 if record.rdtype == _A else 6
                found.append((version, _Server(_text(host), str(record.address))))
        if not found:
            names = ", ".join(_text(host) for host in hosts)
            reasons = "; ".join(dict.fromkeys(problems)) or "no A or AAAA records"
            raise DnsError(
                _text(zone_name), f"no address for its name servers {names} ({reasons})"
            )

        # IPv4 first: on a host without IPv6 every check would wait on it otherwise.
        ordered = sorted(found, key=lambda pair: pair[0])
        servers = tuple(dict.fromkeys(server for _, server in ordered))
        seconds = max(MIN_CACHE_SECONDS, min(MAX_CACHE_SECONDS, float(ttl)))
        now = self._clock()
        zone = _Zone(zone_name, servers, now + seconds)
        logger.debug(
            "zone found: zone=%s servers=%s seconds=%g",
            zone_name,
            ", ".join(str(server) for server in servers),
            seconds,
        )
        with self._lock:
            _sweep(self._zones, now, lambda entry: entry.expires)
            self._zones[zone_name] = zone
        return zone

    def _resolve_host(self, host: dns.name.Name, problems: list[str]) -> list[_Record]:
        records = []
        for rdtype in (_A, _AAAA):
            reply = self._ask_resolvers(host, rdtype, problems)
            if reply is not None:
                records += [r for r in reply.answer if r.rdtype == rdtype]
        return records

    def _ask_resolvers(
        self,
        name: dns.name.Name,
        rdtype: dns.rdatatype.RdataType,
        problems: list[str],
    ) -> _Reply | None:
        """Ask the recursive resolvers in turn; None when none gave an answer.

        NXDOMAIN counts as an answer. What went wrong is added to ``problems``.
        """
        for address, port in self._resolvers:
            label = _resolver_label(address, port)
            logger.debug(
                "asking resolver: resolver=%s name=%s type=%s",
                label,
                name,
                rdtype.name,
            )
            reply, problem = self._ask(address, port, name, rdtype, recursion=True)
            if reply is not None:
                if reply.rcode in _ANSWERED:
                    return reply
                problem = f"answered {dns.rcode.to_text(reply.rcode)}"
            logger.warning(
                "resolver failed: resolver=%s name=%s problem=%s", label, name, problem
            )
            problems.append(f"resolver {label} {problem}")
        return None


def _judge(
    reply: _Reply, zone: dns.name.Name, name: dns.name.Name
) -> tuple[list[_Record], str | None]:
    """Classify an authoritative server's reply.

    Returns ``([], None)`` for an answer with authority, ``(ns_records, None)`` for
    a referral to a zone below ``zone`` that holds ``name``, and ``([], problem)``
    for anything else.
    """
    if reply.rcode not in _ANSWERED:
        return [], f"answered {dns.rcode.to_text(reply.rcode)}"
    if reply.authoritative:
        return [], None
    if reply.rcode == dns.rcode.NOERROR and not reply.answer:
        for record in reply.authority:
            child = record.name
            below = child != zone and child.is_subdomain(zone)
            if record.rdtype == _NS and below and name.is_subdomain(child):
                return _matching(reply.authority, child, _NS), None
    return [], f"does not hold {_text(zone)} (no authoritative answer)"


def _apex_above(reply: _Reply, name: dns.name.Name) -> dns.name.Name | None:
    """The zone apex that a negative answer names in its SOA record, if above.

    A resolver's "no such record" answer carries the SOA of the zone it came from,
    which saves asking for NS at each label in between. Ignored when the answer went
    through a CNAME, since that SOA belongs to the target's zone.
    """
    if any(record.rdtype == _CNAME for record in reply.answer):
        return None
    for record in reply.authority:
        apex = record.name
        if record.rdtype == _SOA and apex != name and name.is_subdomain(apex):
            return apex
    return None


def _matching(
    records: Iterable[_Record], name: dns.name.Name, rdtype: int
) -> list[_Record]:
    return [r for r in records if r.rdtype == rdtype and r.name == name]


def _targets(
    records: Iterable[_Record], name: dns.name.Name, rdtype: int
) -> list[dns.name.Name]:
    found = _matching(records, name, rdtype)
    return [r.target for r in found if r.target is not None]


def clip_words(text: str, limit: int = WORDS_LIMIT) -> str:
    """``text``, cut to ``limit`` characters (an ellipsis included) when longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _chain_words(trail: _Trail) -> str:
    if not trail.chain:
        return ""
    words = "CNAME " + " → ".join(trail.chain_text())
    if trail.looped:
        words += " (a loop)"
    elif trail.too_long:
        words += f" (stopped after {MAX_CNAME_HOPS} CNAME records in a row)"
    return words


def _address_words(
    reply: _Reply, name: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> list[str]:
    addresses = [r.address for r in _matching(reply.answer, name, rdtype) if r.address]
    type_text = dns.rdatatype.to_text(rdtype)
    return [f"{type_text} {a}" for a in sorted(addresses, key=ipaddress.ip_address)]


def _query_wire(
    name: dns.name.Name, rdtype: dns.rdatatype.RdataType, *, recursion: bool
) -> bytes:
    """A query for ``rdtype`` at ``name`` with a random id and EDNS(0)."""
    flags = dns.flags.RD if recursion else 0
    header = _HEADER.pack(secrets.randbits(16), flags, 1, 0, 0, 1)
    question = name.to_digestable() + _QUESTION_TAIL.pack(rdtype, _IN)
    return header + question + _OPT_RECORD


def _parse_reply(wire: bytes, query: bytes, name: dns.name.Name) -> _Reply:
    """Read the parts of an answer the checks need.

    Raises DnsError when the answer is for another question, and dnspython's
    FormError when it is malformed.
    """
    parser = dns.wire.Parser(wire)
    _, flags, questions, answers, authorities, additionals = parser.get_struct(
        _HEADER.format
    )
    rcode = dns.rcode.Rcode(flags & 0x000F)
    authoritative = bool(flags & dns.flags.AA)
    if not flags & dns.flags.QR:
        raise DnsError(_text(name), "the answer is not marked as an answer")
    if rcode not in _ANSWERED:
        # Error replies may omit the question; their code is all that matters.
        return _Reply(rcode, authoritative)
    if questions != 1:
        raise DnsError(_text(name), f"the answer has {questions} questions")
    # The question comes back as sent, but for the case of its letters.
    question = query[_HEADER.size : -len(_OPT_RECORD)]
    echoed = wire[_HEADER.size : _HEADER.size + len(question)]
    if echoed.lower() != question.lower():
        raise DnsError(_text(name), "the answer is for another question")
    parser.seek(_HEADER.size + len(question))
    return _Reply(
        rcode,
        authoritative,
        answer=_read_records(parser, answers),
        authority=_read_records(parser, authorities),
        additional=_read_records(parser, additionals),
    )


def _read_reply(
    wire: bytes, query: bytes, name: dns.name.Name
) -> tuple[_Reply | None, str]:
    """Parse an answer; return it, or None and why it could not be used."""
    try:
        return _parse_reply(wire, query, name), ""
    except DnsError as err:
        return None, f"sent an answer that could not be used ({err.reason})"
    except dns.exception.DNSException as err:
        return None, f"sent an answer that could not be read ({err})"


def _exchange_problem(err: OSError | EOFError, timeout: float) -> str:
    """Why a question got no answer, in words for a person."""
    if isinstance(err, TimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(err, EOFError):
        return "closed the connection before answering"
    return f"could not be reached ({err.strerror or err})"


def _truncated(wire: bytes) -> bool:
    return len(wire) >= _HEADER.size and bool(_flags(wire) & dns.flags.TC)


def _zone_of(check: _Check) -> _Zone:
    assert check.zone is not None, "only checks in a known zone are asked together"
    return check.zone


def _finished(check: _Check) -> CnameCheck:
    assert check.result is not None, "every check of a batch ends with a result"
    return check.result


def _read_records(parser: dns.wire.Parser, count: int) -> tuple[_Record, ...]:
    return tuple(_read_record(parser) for _ in range(count))


def _read_record(parser: dns.wire.Parser) -> _Record:
    owner = dns.name.from_wire_parser(parser)
    rdtype, rdclass, ttl, length = parser.get_struct(_RECORD_HEAD.format)
    with parser.restrict_to(length):
        if rdclass != _IN:
            parser.get_bytes(length)
        elif rdtype in (_CNAME, _NS):
            return _Record(owner, rdtype, ttl, target=dns.name.from_wire_parser(parser))
        elif rdtype in (_A, _AAAA):
            raw = parser.get_bytes(4 if rdtype == _A else 16)
            return _Record(owner, rdtype, ttl, address=str(ipaddress.ip_address(raw)))
        elif rdtype == _TXT:
            strings = []
            while parser.remaining():
                strings.append(parser.get_counted_bytes())
            return _Record(owner, rdtype, ttl, strings=tuple(strings))
        else:
            parser.get_bytes(length)
    return _Record(owner, rdtype, ttl)


@dataclass
class _InFlight:
    """A question sent and not yet answered; ``number`` is its place in the batch."""

    number: int
    query: bytes
    sent_at: float
    resent: bool = False


class _Pipeline:
    """Sends many questions over UDP at once and collects their answers.

    Each server gets one connected socket, which hears only from that server and
    hears of a closed port, and up to :data:`_WINDOW` questions in flight: each
    answer lets the next question go. A question still unanswered after half the
    timeout is sent once more, with the same id, so that an answer to either copy
    counts; one still unanswered after the whole timeout has timed out, as it
    would have alone.
    """

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout

    def ask(self, questions: Sequence[tuple[str, bytes]]) -> list[bytes | str]:
        """Send each ``(server address, query)`` to port 53.

        Returns, in order, each answer, or what went wrong as the words
        :meth:`AuthoritativeDns._ask` would use. Answers are not checked beyond
        their id: that is for the caller, which knows the question.
        """
        outcomes: list[bytes | str] = [""] * len(questions)
        lines: dict[str, _Line] = {}
        for number, (address, query) in enumerate(questions):
            if address not in lines:
                lines[address] = _Line(address, self._timeout, outcomes)
            lines[address].queue.append((number, query))

        with selectors.DefaultSelector() as selector:
            try:
                for line in lines.values():
                    line.open(selector)
                self._run(selector, list(lines.values()))
            finally:
                for line in lines.values():
                    line.close()
        return outcomes

    def _run(self, selector: selectors.BaseSelector, lines: list[_Line]) -> None:
        while True:
            now = time.monotonic()
            for line in lines:
                line.expire(now)
                line.fill(now)
            busy = [line for line in lines if line.in_flight]
            if not busy:
                return
            wake = min(line.next_timer() for line in busy)
            for key, _ in selector.select(max(0.0, wake - time.monotonic())):
                key.data.read()


class _Line:
    """One server's part of a :class:`_Pipeline`: its socket and its questions.

    What becomes of each question is written to ``outcomes`` at its number.
    """

    def __init__(self, address: str, timeout: float, outcomes: list[bytes | str]):
        self.address = address
        self.queue: deque[tuple[int, bytes]] = deque()
        # By query id, in the order first sent.
        self.in_flight: dict[bytes, _InFlight] = {}
        self._timeout = timeout
        self._outcomes = outcomes
        self._socket: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None

    def open(self, selector: selectors.BaseSelector) -> None:
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.connect((self.address, DNS_PORT))
        except OSError as err:
            sock.close()
            self._fail_all(err)
            return
        selector.register(sock, selectors.EVENT_READ, self)
        self._socket, self._selector = sock, selector

    def close(self) -> None:
        if self._socket is None:
            return
        if self._selector is not None:
            self._selector.unregister(self._socket)
        self._socket.close()
        self._socket = None

    def fill(self, now: float) -> None:
        """Send queued questions until the window is full."""
        while self.queue and self._socket and len(self.in_flight) < _WINDOW:
            number, query = self.queue.popleft()
            while query[:2] in self.in_flight:
                query = secrets.token_bytes(2) + query[2:]
            try:
                self._socket.send(query)
            except OSError as err:
                self._outcomes[number] = _exchange_problem(err, self._timeout)
                continue
            self.in_flight[query[:2]] = _InFlight(number, query, now)

    def read(self) -> None:
        """Take every answer waiting at the socket."""
        while self._socket is not None and self.in_flight:
            try:
                wire = self._socket.recv(65535)
            except BlockingIOError:
                return
            except OSError as err:
                # An ICMP error, such as a closed port: no answer is coming.
                self._fail_all(err)
                return
            flight = self.in_flight.pop(wire[:2], None)
            if flight is not None:
                self._outcomes[flight.number] = wire

    def next_timer(self) -> float:
        """No question's resend or time-out is due before this moment."""
        oldest = next(iter(self.in_flight.values()))
        return oldest.sent_at + self._timeout / 2

    def expire(self, now: float) -> None:
        """Send again what is half-way to its time-out; give up on what is past it."""
        if not self.in_flight or now < self.next_timer():
            return
        for key, flight in list(self.in_flight.items()):
            age = now - flight.sent_at
            if age >= self._timeout:
                del self.in_flight[key]
                self._outcomes[flight.number] = _exchange_problem(
                    TimeoutError(), self._timeout
                )
            elif age >= self._timeout / 2 and not flight.resent and self._socket:
                flight.resent = True
                with contextlib.suppress(OSError):
                    self._socket.send(flight.query)

    def _fail_all(self, err: OSError) -> None:
        problem = _exchange_problem(err, self._timeout)
        for flight in self.in_flight.values():
            self._outcomes[flight.number] = problem
        for number, _ in self.queue:
            self._outcomes[number] = problem
        self.in_flight.clear()
        self.queue.clear()
        self.close()


def _flags(wire: bytes) -> int:
    flags: int = struct.unpack_from("!H", wire, 2)[0]
    return flags


def _remaining(deadline: float) -> float:
    """Seconds left until ``deadline``; raise TimeoutError when none are."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def _receive(sock: socket.socket, count: int, deadline: float) -> bytes:
    """Read exactly ``count`` bytes; raise EOFError if the peer closes first."""
    data = b""
    while len(data) < count:
        sock.settimeout(_remaining(deadline))
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _ancestors(name: dns.name.Name) -> Iterator[dns.name.Name]:
    while True:
        yield name
        if name == dns.name.root:
            return
        name = name.parent()


def _sweep(
    entries: dict[dns.name.Name, _Entry],
    now: float,
    expiry: Callable[[_Entry], float],
) -> None:
    """Drop expired entries once a cache has grown large; call with the lock held."""
    if len(entries) < _CACHE_SWEEP_SIZE:
        return
    for key in [key for key, entry in entries.items() if expiry(entry) <= now]:
        del entries[key]
    if len(entries) >= _CACHE_SWEEP_SIZE:
        # Only a flood of distinct zones or failing names gets here; start afresh.
        entries.clear()


@functools.lru_cache(maxsize=_NAME_CACHE_SIZE)
def _name(text: str) -> dns.name.Name:
    """Parse a domain name; raise InvalidDomain when ``text`` is not one."""
    stripped = text.strip()
    if not stripped or stripped == ".":
        raise InvalidDomain(text, "Enter a domain name, for example img.example.com.")
    try:
        return dns.name.from_text(stripped)
    except dns.exception.DNSException as err:
        raise InvalidDomain(text, f"{stripped} is not a domain name: {err}") from err


@functools.lru_cache(maxsize=_NAME_CACHE_SIZE)
def _text(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True).lower()


def _resolver_label(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _system_resolvers() -> tuple[tuple[str, int], ...]:
    """The resolvers named in /etc/resolv.conf; raise ConfigError if there are none."""
    try:
        system = dns.resolver.Resolver(configure=True)
    except dns.resolver.NoResolverConfiguration as err:
        raise ConfigError(
            [
                "DOMAINBOT_RESOLVERS is not set and /etc/resolv.conf names no "
                "resolver; set it to a resolver the bot may use, such as 192.0.2.53"
            ]
        ) from err
    resolvers = tuple(
        (server, system.port)
        for server in system.nameservers
        if isinstance(server, str)
    )
    if not resolvers:
        raise ConfigError(
            [
                "DOMAINBOT_RESOLVERS is not set and /etc/resolv.conf names no plain "
                "resolver address; set it to one, such as 192.0.2.53"
            ]
        )
    return resolvers
