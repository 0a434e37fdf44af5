"""The DnsProvider contract, checked against every provider.

- rfc2136 against the lab's Knot server, with TSIG-signed updates;
- lexicon (its PowerDNS provider) against a real PowerDNS server and its HTTP API;
- alidns against the local fake of the Alidns API, which checks each request's
  signature.

Each provider is built the way the bot builds it, by ``ManagedZones.from_config``
with its secret in the environment. What a provider wrote is checked at the
source as well: with a direct DNS question to the authoritative server for the
real servers, in the fake's record store for Alidns.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import logging
import secrets
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import dns.flags
import dns.message
import dns.query
import dns.rdatatype
import pytest

from bot.config import DnsZone
from bot.dns_providers.base import DnsProvider, ExistingRecord
from bot.dns_providers.zones import ManagedZones
from bot.errors import ProviderError, RecordConflict
from tests.support.dns_lab import DnsLab
from tests.support.fake_alidns import FakeAlidns, canonical_request, sign
from tests.support.powerdns import PowerDns

pytestmark = pytest.mark.dns

ALIDNS_ZONE = "example.com"
ALIDNS_KEY_ID = "LTAI5tTestKeyId"
OUTSIDE_TARGET = "photos.oss-cn-hangzhou.example.net"
_serial = itertools.count(1)


@dataclass
class Harness:
    """One provider under test and ways to look at, and change, its backend."""

    kind: str
    provider: DnsProvider
    secret: str
    # (name, rdtype) -> the values the backend itself holds, as the bot writes them.
    at_source: Callable[[str, str], set[str]]
    # (name, rdtype, value): write a record behind the provider's back.
    plant: Callable[[str, str, str], None]
    # A provider of the same zone whose secret is wrong, and that secret.
    broken: Callable[[], tuple[DnsProvider, str]]
    # Run a callback right after the provider's next look at the records.
    after_next_read: Callable[[Callable[[], None]], None]
    # Targets of the CNAMEs written by the contract tests.
    target_zone: str

    def name(self, label: str = "img") -> str:
        return f"{label}-{next(_serial)}{secrets.token_hex(3)}.{self.provider.zone}"

    def target(self, label: str = "bucket") -> str:
        return f"{label}-{next(_serial)}.{self.target_zone}"


@pytest.fixture(params=["rfc2136", "lexicon", "alidns"])
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    builders = {"rfc2136": _rfc2136, "lexicon": _lexicon, "alidns": _alidns}
    yield builders[request.param](request)


@pytest.fixture(scope="module")
def fake_alidns() -> Iterator[FakeAlidns]:
    secret = secrets.token_urlsafe(24)
    with FakeAlidns(
        access_key_id=ALIDNS_KEY_ID, access_key_secret=secret, zones=[ALIDNS_ZONE]
    ) as fake:
        yield fake


def _rfc2136(request: pytest.FixtureRequest) -> Harness:
    lab: DnsLab = request.getfixturevalue("dns_lab")
    key = lab.tsig

    def build(secret: str) -> DnsProvider:
        zone = DnsZone(
            zone=lab.zone,
            provider="rfc2136",
            server=key.server,
            port=key.port,
            tsig_name=key.name,
            tsig_algorithm=key.algorithm,
            tsig_secret_env="LAB_TSIG_SECRET",
        )
        return _only(ManagedZones.from_config([zone], {"LAB_TSIG_SECRET": secret}))

    def plant(name: str, rdtype: str, value: str) -> None:
        lab.set_record(name, rdtype, f'"{value}"' if rdtype == "TXT" else value)

    wrong = base64.b64encode(secrets.token_bytes(32)).decode()
    return Harness(
        kind="rfc2136",
        provider=build(key.secret),
        secret=key.secret,
        at_source=lambda name, rdtype: _ask(lab.authoritative, name, rdtype),
        plant=plant,
        broken=lambda: (build(wrong), wrong),
        after_next_read=lambda callback: callback(),
        target_zone="oss-cn-hangzhou.example.net",
    )


def _lexicon(request: pytest.FixtureRequest) -> Harness:
    server: PowerDns = request.getfixturevalue("powerdns")

    def build(secret: str) -> DnsProvider:
        zone = DnsZone(
            zone=server.zone,
            provider="lexicon",
            lexicon_provider="powerdns",
            pdns_server=server.api_url,
            auth_token_env="PDNS_API_KEY",
        )
        return _only(ManagedZones.from_config([zone], {"PDNS_API_KEY": secret}))

    def plant(name: str, rdtype: str, value: str) -> None:
        content = {"TXT": f'"{value}"', "CNAME": f"{value}."}.get(rdtype, value)
        server.set_records(name, rdtype, content)

    provider = build(server.api_key)
    wrong = "wrong-" + secrets.token_urlsafe(12)

    def after_next_read(callback: Callable[[], None]) -> None:
        read = provider._records  # type: ignore[attr-defined]

        def read_then_call(name: str) -> list[ExistingRecord]:
            found: list[ExistingRecord] = read(name)
            del provider._records  # type: ignore[attr-defined]
            callback()
            return found

        provider._records = read_then_call  # type: ignore[attr-defined]

    return Harness(
        kind="lexicon",
        provider=provider,
        secret=server.api_key,
        at_source=lambda name, rdtype: _ask(server.dns_address, name, rdtype),
        plant=plant,
        broken=lambda: (build(wrong), wrong),
        after_next_read=after_next_read,
        target_zone=f"cdn.{server.zone}",
    )


def _alidns(request: pytest.FixtureRequest) -> Harness:
    fake: FakeAlidns = request.getfixturevalue("fake_alidns")
    secret = fake.access_key_secret
    wrong = "wrong-" + secrets.token_urlsafe(12)

    def build(access_secret: str) -> DnsProvider:
        zone = DnsZone(zone=ALIDNS_ZONE, provider="alidns", endpoint=fake.endpoint)
        environ = {
            "ALIBABA_CLOUD_ACCESS_KEY_ID": ALIDNS_KEY_ID,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": access_secret,
        }
        return _only(ManagedZones.from_config([zone], environ))

    def at_source(name: str, rdtype: str) -> set[str]:
        rr = name.removesuffix(f".{ALIDNS_ZONE}")
        return {
            record.value.rstrip(".").lower() if rdtype == "CNAME" else record.value
            for record in fake.records(ALIDNS_ZONE, rr)
            if record.rdtype == rdtype
        }

    def plant(name: str, rdtype: str, value: str) -> None:
        fake.add(ALIDNS_ZONE, name.removesuffix(f".{ALIDNS_ZONE}"), rdtype, value)

    return Harness(
        kind="alidns",
        provider=build(secret),
        secret=secret,
        at_source=at_source,
        plant=plant,
        broken=lambda: (build(wrong), wrong),
        after_next_read=lambda cb: fake.after_next("DescribeSubDomainRecords", cb),
        target_zone="oss-cn-hangzhou.example.net",
    )


def _only(zones: ManagedZones) -> DnsProvider:
    (zone,) = zones.zones
    provider = zones.zone_for(zone)
    assert provider is not None
    return provider


def _ask(server: tuple[str, int], name: str, rdtype: str) -> set[str]:
    """The ``rdtype`` values at ``name``, asked of the server with recursion off."""
    query = dns.message.make_query(name, rdtype)
    query.flags &= ~dns.flags.RD
    response = dns.query.tcp(query, server[0], port=server[1], timeout=5)
    wanted = dns.rdatatype.from_text(rdtype)
    values: set[str] = set()
    for rrset in response.answer:
        if rrset.rdtype != wanted or rrset.name.to_text(omit_final_dot=True) != name:
            continue
        for rdata in rrset:
            text = rdata.to_text()
            if rdtype == "CNAME":
                text = text.rstrip(".").lower()
            elif rdtype == "TXT":
                text = text.strip('"')
            values.add(text)
    return values


def _kinds(records: list[ExistingRecord]) -> set[tuple[str, str]]:
    return {(record.rdtype, record.value) for record in records}


def test_records_of_an_unused_name_are_empty(harness: Harness) -> None:
    assert harness.provider.records(harness.name()) == []


def test_created_cname_is_listed_and_served(harness: Harness) -> None:
    name, target = harness.name(), harness.target()

    assert harness.provider.create_cname(name, target, ttl=600) is True

    assert harness.provider.records(name) == [
        ExistingRecord(name=name, rdtype="CNAME", value=target, ttl=600)
    ]
    assert harness.at_source(name, "CNAME") == {target}


def test_creating_the_same_cname_again_returns_false(harness: Harness) -> None:
    name, target = harness.name(), harness.target()
    harness.provider.create_cname(name, target)

    assert harness.provider.create_cname(name, target) is False
    assert harness.at_source(name, "CNAME") == {target}


def test_another_cname_is_a_conflict_and_stays(harness: Harness) -> None:
    name, old, new = harness.name(), harness.target("old"), harness.target("new")
    harness.plant(name, "CNAME", old)

    with pytest.raises(RecordConflict) as raised:
        harness.provider.create_cname(name, new)

    assert raised.value.found == [f"CNAME {old}"]
    assert f"CNAME {old}" in str(raised.value)
    assert harness.at_source(name, "CNAME") == {old}


def test_an_a_record_is_a_conflict_and_stays(harness: Harness) -> None:
    name = harness.name()
    harness.plant(name, "A", "192.0.2.10")

    with pytest.raises(RecordConflict) as raised:
        harness.provider.create_cname(name, harness.target())

    assert raised.value.found == ["A 192.0.2.10"]
    assert harness.at_source(name, "A") == {"192.0.2.10"}
    assert harness.at_source(name, "CNAME") == set()


def test_a_record_written_meanwhile_is_not_overwritten(harness: Harness) -> None:
    """Someone writes at the name after the provider looked and before it writes.

    The RFC 2136 update's prerequisite and Alidns's own CNAME check refuse the
    write; lexicon has no conditional write, and here PowerDNS's API refusing a
    CNAME beside other data is what stops it.
    """
    name = harness.name()
    harness.after_next_read(lambda: harness.plant(name, "A", "192.0.2.20"))

    with pytest.raises(RecordConflict) as raised:
        harness.provider.create_cname(name, harness.target())

    assert raised.value.found == ["A 192.0.2.20"]
    assert harness.at_source(name, "CNAME") == set()


def test_replace_cname_swaps_the_target(harness: Harness) -> None:
    name, old, new = harness.name(), harness.target("old"), harness.target("new")
    harness.provider.create_cname(name, old)

    harness.provider.replace_cname(name, new, ttl=600)

    assert _kinds(harness.provider.records(name)) == {("CNAME", new)}
    assert harness.at_source(name, "CNAME") == {new}


def test_replace_cname_on_an_unused_name_creates_it(harness: Harness) -> None:
    name, target = harness.name(), harness.target()

    harness.provider.replace_cname(name, target)

    assert harness.at_source(name, "CNAME") == {target}


def test_replace_cname_beside_an_a_record_is_a_conflict(harness: Harness) -> None:
    name = harness.name()
    harness.plant(name, "A", "192.0.2.30")

    with pytest.raises(RecordConflict) as raised:
        harness.provider.replace_cname(name, harness.target())

    assert raised.value.found == ["A 192.0.2.30"]
    assert harness.at_source(name, "A") == {"192.0.2.30"}


def test_delete_cname_removes_it_once(harness: Harness) -> None:
    name, target = harness.name(), harness.target()
    harness.provider.create_cname(name, target)

    assert harness.provider.delete_cname(name, harness.target("other")) is False
    assert harness.at_source(name, "CNAME") == {target}
    assert harness.provider.delete_cname(name, target) is True
    assert harness.provider.delete_cname(name, target) is False
    assert harness.provider.records(name) == []
    assert harness.at_source(name, "CNAME") == set()


def test_txt_records_of_others_are_left_alone(harness: Harness) -> None:
    name = harness.name("_dnsauth.img")
    harness.plant(name, "TXT", "someone-else")

    harness.provider.set_txt(name, "token-1")
    harness.provider.set_txt(name, "token-1")

    assert harness.at_source(name, "TXT") == {"someone-else", "token-1"}
    assert _kinds(harness.provider.records(name)) == {
        ("TXT", "someone-else"),
        ("TXT", "token-1"),
    }
    assert harness.provider.delete_txt(name, "token-1") is True
    assert harness.provider.delete_txt(name, "token-1") is False
    assert harness.at_source(name, "TXT") == {"someone-else"}


def test_txt_beside_a_cname_is_a_conflict(harness: Harness) -> None:
    name, target = harness.name(), harness.target()
    harness.provider.create_cname(name, target)

    with pytest.raises(RecordConflict):
        harness.provider.set_txt(name, "token-2")

    assert harness.at_source(name, "TXT") == set()


def test_cname_to_a_target_outside_the_zone(harness: Harness) -> None:
    name = harness.name()

    assert harness.provider.create_cname(name, OUTSIDE_TARGET) is True
    assert harness.at_source(name, "CNAME") == {OUTSIDE_TARGET}


def test_secrets_stay_out_of_errors_reprs_and_logs(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    name = harness.name("_dnsauth.img")
    harness.provider.set_txt(name, "token-3")
    broken, wrong = harness.broken()

    with pytest.raises(ProviderError) as raised:
        broken.set_txt(name, "token-4")

    shown = f"{raised.value} {raised.value.detail} {broken!r} {harness.provider!r}"
    for secret in (harness.secret, wrong):
        assert secret not in shown
        assert secret not in caplog.text
    assert raised.value.code
    assert any(word in str(raised.value) for word in ("key", "AccessKey", "credential"))
    assert harness.at_source(name, "TXT") == {"token-3"}


def _signed_call(
    fake: FakeAlidns, headers: dict[str, str], query: str, *, tamper: str = ""
) -> tuple[int, dict[str, str]]:
    """Send a request signed as the SDK signs it; ``tamper`` is added after signing."""
    host = fake.endpoint.removeprefix("http://")
    headers = {
        "host": host,
        "x-acs-date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "x-acs-signature-nonce": secrets.token_hex(16),
        "x-acs-content-sha256": hashlib.sha256(b"").hexdigest(),
        **headers,
    }
    signed = sorted(headers)
    canonical = canonical_request(
        "POST", "/", parse_qsl(query), headers, signed, headers["x-acs-content-sha256"]
    )
    signature = sign(fake.access_key_secret, canonical)
    headers["authorization"] = (
        f"ACS3-HMAC-SHA256 Credential={ALIDNS_KEY_ID},"
        f"SignedHeaders={';'.join(signed)},Signature={signature}"
    )
    request = urllib.request.Request(
        f"{fake.endpoint}/?{query}{tamper}", data=b"", method="POST", headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.load(err)


def test_the_fake_alidns_checks_what_it_is_sent(fake_alidns: FakeAlidns) -> None:
    good = {"x-acs-action": "DescribeSubDomainRecords", "x-acs-version": "2015-01-09"}
    query = f"SubDomain=www.{ALIDNS_ZONE}&DomainName={ALIDNS_ZONE}"

    status, body = _signed_call(fake_alidns, good, query)
    assert (status, body["TotalCount"]) == (200, 0)
    assert body["RequestId"]

    refusals = [
        _signed_call(fake_alidns, good, query, tamper="&Type=A"),
        _signed_call(fake_alidns, {**good, "x-acs-version": "2018-01-01"}, query),
        _signed_call(fake_alidns, {**good, "x-acs-action": "AddDomainRecord"}, query),
        _signed_call(fake_alidns, good, f"SubDomain=www.{ALIDNS_ZONE}.org"),
    ]
    assert [(status, body["Code"]) for status, body in refusals] == [
        (400, "SignatureDoesNotMatch"),
        (400, "InvalidVersion"),
        (400, "MissingParameter"),
        (403, "IncorrectDomainUser"),
    ]


def test_usable_from_a_thread_other_than_the_one_that_made_it(
    harness: Harness,
) -> None:
    # The bot builds providers at start-up and writes from its worker threads.
    name = harness.name()
    with ThreadPoolExecutor(max_workers=1) as pool:
        added = pool.submit(harness.provider.create_cname, name, OUTSIDE_TARGET)
        assert added.result() is True
    assert harness.at_source(name, "CNAME") == {OUTSIDE_TARGET}
