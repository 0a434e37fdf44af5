"""Managed zones: which zone a domain belongs to, and what an operator sees when a
zone's settings are wrong."""

from __future__ import annotations

import base64
import secrets
import tomllib
from collections.abc import Mapping
from pathlib import Path

import pytest

from bot.config import DnsZone
from bot.dns_providers.alidns import AlidnsProvider
from bot.dns_providers.lexicon import LexiconProvider
from bot.dns_providers.rfc2136 import Rfc2136Provider
from bot.dns_providers.zones import ManagedZones
from bot.errors import ConfigError
from tests.support.dns_lab import DnsLab
from tests.support.powerdns import PowerDns

TSIG_SECRET = base64.b64encode(b"k" * 32).decode()

# The settings of each provider, as the README shows them.
EXAMPLE = """
[[dns_zones]]
zone = "example.com"
provider = "rfc2136"
server = "192.0.2.53"
port = 53
tsig_name = "domainbot."
tsig_algorithm = "hmac-sha256"
tsig_secret_env = "DOMAINBOT_TSIG_SECRET"

[[dns_zones]]
zone = "example.org"
provider = "lexicon"
lexicon_provider = "powerdns"
pdns_server = "https://pdns.example.org:8081"
auth_token_env = "PDNS_API_KEY"

[[dns_zones]]
zone = "example.net"
provider = "alidns"
"""
EXAMPLE_ENV = {
    "DOMAINBOT_TSIG_SECRET": TSIG_SECRET,
    "PDNS_API_KEY": "pdns-key-1",
    "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI5tExample",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "alidns-secret-1",
}


def zones_of(toml: str) -> list[DnsZone]:
    return [DnsZone.model_validate(table) for table in tomllib.loads(toml)["dns_zones"]]


def problems(toml: str, environ: Mapping[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as refused:
        ManagedZones.from_config(zones_of(toml), environ or {})
    return refused.value.problems


def rfc2136_zone(zone: str) -> DnsZone:
    return DnsZone(
        zone=zone,
        provider="rfc2136",
        server="192.0.2.53",
        tsig_name="domainbot.",
        tsig_secret_env="TSIG",
    )


@pytest.fixture
def nested() -> ManagedZones:
    zones = [rfc2136_zone("example.com"), rfc2136_zone("shop.example.com")]
    return ManagedZones.from_config(zones, {"TSIG": TSIG_SECRET})


def test_the_readme_example_builds_one_provider_per_zone() -> None:
    zones = ManagedZones.from_config(zones_of(EXAMPLE), EXAMPLE_ENV)

    assert zones.zones == ("example.com", "example.org", "example.net")
    assert isinstance(zones.zone_for("img.example.com"), Rfc2136Provider)
    assert isinstance(zones.zone_for("img.example.org"), LexiconProvider)
    assert isinstance(zones.zone_for("img.example.net"), AlidnsProvider)
    reprs = repr(zones) + "".join(repr(zones.zone_for(z)) for z in zones.zones)
    for variable, secret in EXAMPLE_ENV.items():
        if variable != "ALIBABA_CLOUD_ACCESS_KEY_ID":  # an id, not a secret
            assert secret not in reprs


@pytest.mark.parametrize(
    ("domain", "zone"),
    [
        ("img.shop.example.com", "shop.example.com"),
        ("shop.example.com", "shop.example.com"),
        ("img.example.com", "example.com"),
        ("a.b.c.example.com", "example.com"),
        ("IMG.Shop.Example.COM.", "shop.example.com"),
        ("notexample.com", None),
        ("img.notexample.com", None),
        ("example.org", None),
        ("com", None),
    ],
)
def test_a_domain_belongs_to_the_longest_configured_zone(
    nested: ManagedZones, domain: str, zone: str | None
) -> None:
    provider = nested.zone_for(domain)

    assert (provider.zone if provider else None) == zone


def test_the_apex_is_the_zone_itself(nested: ManagedZones) -> None:
    assert nested.is_apex("example.com")
    assert nested.is_apex("Shop.Example.com.")
    assert not nested.is_apex("img.example.com")
    assert not nested.is_apex("example.org")


def test_every_problem_in_every_zone_is_reported_together(tmp_path: Path) -> None:
    literal = "bGl0ZXJhbC1zZWNyZXQ="
    lines = problems(
        f"""
        [[dns_zones]]
        zone = "a.example"
        provider = "rfc2136"
        port = 70000
        tsig_name = "domainbot."
        tsig_algorithm = "hmac-sha999"
        tsig_secret = "{literal}"
        sever = "192.0.2.53"

        [[dns_zones]]
        zone = "b.example"
        provider = "rfc2136"
        server = "ns1.b.example"
        tsig_name = "domainbot."
        tsig_secret_file = "{tmp_path / "missing.key"}"

        [[dns_zones]]
        zone = "c.example"
        provider = "rfc2136"
        server = "192.0.2.53"
        tsig_name = "domainbot."
        tsig_secret_env = "UNSET_TSIG_SECRET"

        [[dns_zones]]
        zone = "d.example"
        provider = "lexicon"
        pdns_server = "http://192.0.2.1:8081"

        [[dns_zones]]
        zone = "e.example"
        provider = "lexicon"
        lexicon_provider = "no-such-dns-host"

        [[dns_zones]]
        zone = "f.example"
        provider = "lexicon"
        lexicon_provider = "powerdns"
        pdns_server = "http://192.0.2.1:8081"
        auth_token = "{literal}"
        pdns_servre = "typo"

        [[dns_zones]]
        zone = "g.example"
        provider = "alidns"
        endpoint = "ftp://alidns.example"
        access_key_secret = "{literal}"

        [[dns_zones]]
        zone = "g.example"
        provider = "alidns"
        """
    )

    expected = [
        "dns_zones[a.example].server: missing; give the IP address",
        "dns_zones[a.example].port: 70000 is out of range",
        "dns_zones[a.example].tsig_algorithm: 'hmac-sha999' is not a TSIG algorithm",
        "dns_zones[a.example].tsig_secret: a secret may not be written",
        "dns_zones[a.example].sever: unknown setting",
        "dns_zones[b.example].server: 'ns1.b.example' is not an IP address",
        f"dns_zones[b.example].tsig_secret_file: cannot read {tmp_path}/missing.key",
        "dns_zones[c.example].tsig_secret_env: the environment variable "
        "UNSET_TSIG_SECRET is not set",
        "dns_zones[d.example].lexicon_provider: missing; name the lexicon provider",
        "dns_zones[e.example].lexicon_provider: lexicon has no provider called "
        "'no-such-dns-host'",
        "dns_zones[f.example].auth_token: a secret may not be written",
        "dns_zones[f.example].pdns_servre: lexicon's powerdns provider has no option",
        "dns_zones[g.example].endpoint: 'ftp://alidns.example' is not an endpoint",
        "dns_zones[g.example].access_key_secret: the AccessKey never goes into",
        "dns_zones[g.example]: the zone is listed twice",
    ]
    assert len(lines) == len(expected), "\n".join(lines)
    for line, start in zip(lines, expected, strict=True):
        assert line.startswith(start), f"{line!r} should start with {start!r}"
    assert literal not in " ".join(lines)


def test_a_literal_tsig_secret_is_refused_with_the_two_ways_to_give_it() -> None:
    (line,) = problems(
        f"""
        [[dns_zones]]
        zone = "example.com"
        provider = "rfc2136"
        server = "192.0.2.53"
        tsig_name = "domainbot."
        tsig_secret = "{TSIG_SECRET}"
        """
    )

    assert line.startswith("dns_zones[example.com].tsig_secret: ")
    assert 'tsig_secret_env = "VARIABLE"' in line
    assert 'tsig_secret_file = "/path/to/file"' in line
    assert TSIG_SECRET not in line


def test_a_secret_is_given_one_way_only(tmp_path: Path) -> None:
    key_file = tmp_path / "tsig.key"
    key_file.write_text(TSIG_SECRET)

    (line,) = problems(
        f"""
        [[dns_zones]]
        zone = "example.com"
        provider = "rfc2136"
        server = "192.0.2.53"
        tsig_name = "domainbot."
        tsig_secret_env = "TSIG"
        tsig_secret_file = "{key_file}"
        """,
        {"TSIG": TSIG_SECRET},
    )

    assert line == (
        "dns_zones[example.com].tsig_secret: give only one of tsig_secret_env and "
        "tsig_secret_file"
    )


def test_a_secret_that_is_not_base64_is_refused_without_showing_it() -> None:
    secret = "not base64 at all!"

    (line,) = problems(
        """
        [[dns_zones]]
        zone = "example.com"
        provider = "rfc2136"
        server = "192.0.2.53"
        tsig_name = "domainbot."
        tsig_secret_env = "TSIG"
        """,
        {"TSIG": secret},
    )

    assert line.startswith("dns_zones[example.com].tsig_secret_env: ")
    assert "not base64" in line
    assert secret not in line


def test_an_empty_secret_file_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "empty.key"
    key_file.write_text("\n")

    (line,) = problems(
        f"""
        [[dns_zones]]
        zone = "example.org"
        provider = "lexicon"
        lexicon_provider = "powerdns"
        pdns_server = "http://192.0.2.1:8081"
        auth_token_file = "{key_file}"
        """
    )

    assert line == (
        f"dns_zones[example.org].auth_token_file: {key_file} is empty; put the value "
        "of auth_token in it"
    )


def test_half_an_alibaba_cloud_access_key_is_refused() -> None:
    (line,) = problems(
        """
        [[dns_zones]]
        zone = "example.net"
        provider = "alidns"
        """,
        {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI5tExample"},
    )

    assert line.startswith(
        "dns_zones[example.net]: ALIBABA_CLOUD_ACCESS_KEY_SECRET is not set"
    )


def test_without_an_access_key_alidns_uses_the_sdk_credentials_chain() -> None:
    zones = ManagedZones.from_config(
        [DnsZone(zone="example.net", provider="alidns")], {}
    )

    provider = zones.zone_for("img.example.net")
    assert isinstance(provider, AlidnsProvider)
    assert provider.client.key_id is None


@pytest.mark.dns
def test_a_tsig_secret_from_a_file_signs_updates(
    dns_lab: DnsLab, tmp_path: Path
) -> None:
    key_file = tmp_path / "tsig.key"
    key_file.write_text(dns_lab.tsig.secret + "\n")
    zone = DnsZone(
        zone=dns_lab.zone,
        provider="rfc2136",
        server=dns_lab.tsig.server,
        tsig_name=dns_lab.tsig.name,
        tsig_secret_file=str(key_file),
    )
    provider = ManagedZones.from_config([zone], {}).zone_for(dns_lab.zone)
    assert provider is not None
    name = dns_lab.unique_name("_dnsauth")

    provider.set_txt(name, "from-a-file")

    assert ("TXT", "from-a-file") in {
        (r.rdtype, r.value) for r in provider.records(name)
    }


@pytest.mark.dns
def test_an_api_key_from_a_file_reaches_powerdns(
    powerdns: PowerDns, tmp_path: Path
) -> None:
    key_file = tmp_path / "pdns.key"
    key_file.write_text(powerdns.api_key + "\n")
    zone = DnsZone(
        zone=powerdns.zone,
        provider="lexicon",
        lexicon_provider="powerdns",
        pdns_server=powerdns.api_url,
        auth_token_file=str(key_file),
    )
    provider = ManagedZones.from_config([zone], {}).zone_for(powerdns.zone)
    assert provider is not None
    name = f"_dnsauth.file-{secrets.token_hex(3)}.{powerdns.zone}"

    provider.set_txt(name, "from-a-file")

    assert [(r.rdtype, r.value) for r in provider.records(name)] == [
        ("TXT", "from-a-file")
    ]
