"""The authoritative DNS checks, against the real Knot and Unbound of the DNS lab."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.dns_check import AuthoritativeDns, CheckState, CnameCheck, TxtState
from tests.support.dns_lab import DnsLab

pytestmark = pytest.mark.dns

BUCKET_DOMAIN = "test-1-001.oss-cn-hangzhou.aliyuncs.com"
FAULT_TIMEOUT = 0.3


@pytest.fixture
def lab(clean_dns_lab: DnsLab) -> DnsLab:
    return clean_dns_lab


@pytest.fixture
def checker(lab: DnsLab) -> AuthoritativeDns:
    return AuthoritativeDns(resolvers=[lab.resolver_address], timeout=1.0)


@pytest.fixture
def impatient_checker(lab: DnsLab) -> AuthoritativeDns:
    return AuthoritativeDns(resolvers=[lab.resolver_address], timeout=FAULT_TIMEOUT)


def server(lab: DnsLab, host: str) -> str:
    return f"{host} ({lab.authoritative[0]})"


def test_cname_is_found_although_the_resolver_cached_its_absence(
    lab: DnsLab, checker: AuthoritativeDns
) -> None:
    domain = lab.unique_name("img")
    assert lab.query_resolver(domain, "CNAME").rcode == "NXDOMAIN"

    lab.set_record(domain, "CNAME", BUCKET_DOMAIN)

    assert lab.query_resolver(domain, "CNAME").rcode == "NXDOMAIN"
    check = checker.check_cname(domain, BUCKET_DOMAIN)
    assert check.state is CheckState.LIVE
    assert check.found == f"CNAME {BUCKET_DOMAIN}"
    assert check.servers == (server(lab, "ns1.example.test"),)


def test_names_are_compared_without_case_or_final_dot(
    lab: DnsLab, checker: AuthoritativeDns
) -> None:
    domain = lab.unique_name("img")
    lab.set_record(domain, "CNAME", BUCKET_DOMAIN.upper() + ".")

    check = checker.check_cname(domain.upper() + ".", BUCKET_DOMAIN + ".")

    assert check.live
    assert check.domain == domain
    assert check.expected == BUCKET_DOMAIN


def test_cname_to_another_target_is_reported_with_that_target(
    lab: DnsLab, checker: AuthoritativeDns
) -> None:
    domain = lab.unique_name("img")
    elsewhere = lab.unique_name("cdn", lab.other_zone)
    lab.set_record(domain, "CNAME", elsewhere)

    check = checker.check_cname(domain, BUCKET_DOMAIN)

    assert check.state is CheckState.WAITING
    assert check.found == f"CNAME {elsewhere}"
    assert check.problem is None


def test_cname_to_a_target_whose_servers_fail_is_reported_with_that_target(
    lab: DnsLab, impatient_checker: AuthoritativeDns
) -> None:
    domain = lab.unique_name("img")
    elsewhere = lab.unique_name("old-bucket", lab.refused_zone)
    lab.set_record(domain, "CNAME", elsewhere)

    check = impatient_checker.check_cname(domain, BUCKET_DOMAIN)

    assert check.state is CheckState.WAITING
    assert check.found == f"CNAME {elsewhere}"
    assert check.problem is None


def test_chain_through_another_zone_to_the_target_is_live(
    lab: DnsLab, checker: AuthoritativeDns
) -> None:
    domain = lab.unique_name("img")
    middle = lab.unique_name("cdn", lab.other_zone)
    lab.set_record(domain, "CNAME", middle)
    lab.set_record(middle, "CNAME", BUCKET_DOMAIN)

    check = checker.check_cname(domain, BUCKET_DOMAIN)

    assert check.state is CheckState.LIVE
    assert check.found == f"CNAME {middle} → {BUCKET_DOMAIN}"
    assert check.chain == (middle, BUCKET_DOMAIN)
    assert check.servers == (
        server(lab, "ns1.example.test"),
        server(lab, "ns1.example.net.test"),
    )


def test_cname_loop_is_reported(lab: DnsLab, checker: AuthoritativeDns) -> None:
    first = lab.unique_name("loop")
    second = lab.unique_name("loop", lab.other_zone)
    lab.set_record(first, "CNAME", second)
    lab.set_record(second, "CNAME", first)

    check = checker.check_cname(first, BUCKET_DOMAIN)

    assert check.state is CheckState.WAITING
    assert check.found == f"CNAME {second} → {first} (a loop)"


def test_addresses_are_reported_when_there_is_no_cname(
    lab: DnsLab, checker: AuthoritativeDns
) -> None:
    domain = lab.unique_name("img")
    lab.set_record(domain, "A", "192.0.2.10", "192.0.2.9")
    lab.set_record(domain, "AAAA", "2001:db8::1")

    check = checker.check_cname(domain, BUCKET_DOMAIN)

    assert check.state is CheckState.WAITING
    assert check.found == "A 192.0.2.9, A 192.0.2.10, AAAA 2001:db8::1"


def test_name_with_other_records_only_has_no_cname(
    lab: DnsLab, checker: AuthoritativeDns
) -> None:
    domain = lab.unique_name("img")
    lab.set_record(domain, "TXT", '"hello"')

    check = checker.check_cname(domain, BUCKET_DOMAIN)

    assert check.state is CheckState.WAITING
    assert check.found == "no CNAME, A or AAAA record"


def test_missing_name_is_reported_as_nxdomain(
    lab: DnsLab, checker: AuthoritativeDns
) -> None:
    check = checker.check_cname(lab.unique_name("img"), BUCKET_DOMAIN)

    assert check.state is CheckState.WAITING
    assert check.found == "no record (NXDOMAIN)"


def test_zone_of_a_name_with_a_cname_is_its_own_not_the_targets(
    lab: DnsLab, checker: AuthoritativeDns
) -> None:
    # A resolver asked for NS at this name follows the CNAME to another zone's apex
    # and answers with that zone's NS records; they must not be taken for ours.
    domain = lab.unique_name("img")
    lab.set_record(domain, "CNAME", lab.other_zone)

    check = checker.check_cname(domain, lab.other_zone)

    assert check.state is CheckState.LIVE
    assert check.servers == (server(lab, "ns1.example.test"),)


def test_name_that_is_a_zone_apex_is_asked_at_that_zone(
    lab: DnsLab, checker: AuthoritativeDns
) -> None:
    lab.set_record(lab.other_zone, "A", "192.0.2.7")

    check = checker.check_cname(lab.other_zone, BUCKET_DOMAIN)

    assert check.found == "A 192.0.2.7"
    assert check.servers == (server(lab, "ns1.example.net.test"),)


def test_silent_server_is_a_dns_error_naming_it(
    lab: DnsLab, impatient_checker: AuthoritativeDns
) -> None:
    domain = lab.unique_name("img", lab.timeout_zone)

    check = impatient_checker.check_cname(domain, BUCKET_DOMAIN)

    assert check.state is CheckState.DNS_ERROR
    assert check.problem == (
        f"could not look up {domain}: ns.dead.example.test "
        f"({lab.silent_address}) timed out after {FAULT_TIMEOUT:g} s"
    )


def test_servfail_is_a_dns_error_naming_the_server(
    lab: DnsLab, impatient_checker: AuthoritativeDns
) -> None:
    domain = lab.unique_name("img", lab.servfail_zone)

    check = impatient_checker.check_cname(domain, BUCKET_DOMAIN)

    assert check.state is CheckState.DNS_ERROR
    assert check.problem == (
        f"could not look up {domain}: "
        f"{server(lab, 'ns1.example.test')} answered SERVFAIL"
    )


def test_refused_is_a_dns_error_naming_the_server(
    lab: DnsLab, impatient_checker: AuthoritativeDns
) -> None:
    domain = lab.unique_name("img", lab.refused_zone)

    check = impatient_checker.check_cname(domain, BUCKET_DOMAIN)

    assert check.state is CheckState.DNS_ERROR
    assert check.problem == (
        f"could not look up {domain}: "
        f"{server(lab, 'ns1.example.test')} answered REFUSED"
    )


def test_silent_resolver_is_a_dns_error_and_is_remembered_briefly(
    lab: DnsLab,
) -> None:
    silent = AuthoritativeDns(
        resolvers=[(lab.silent_address, 53)], timeout=FAULT_TIMEOUT
    )
    domain = lab.unique_name("img")

    check = silent.check_cname(domain, BUCKET_DOMAIN)
    started = time.monotonic()
    again = silent.check_cname(domain, BUCKET_DOMAIN)

    assert check.state is CheckState.DNS_ERROR
    assert check.problem == (
        f"could not look up {domain}: found no name servers for it or any parent "
        f"(resolver {lab.silent_address}:53 timed out after {FAULT_TIMEOUT:g} s)"
    )
    assert again.problem == check.problem
    assert time.monotonic() - started < FAULT_TIMEOUT


def test_txt_strings_of_one_record_are_joined(
    lab: DnsLab, checker: AuthoritativeDns
) -> None:
    name = lab.unique_name("_dnsauth.img")
    lab.set_record(name, "TXT", '"token-part-one" "Part-Two" " three"')

    lookup = checker.txt_values(name)

    assert lookup.state is TxtState.FOUND
    assert lookup.values == ("token-part-onePart-Two three",)


def test_txt_returns_every_record_at_the_name(
    lab: DnsLab, checker: AuthoritativeDns
) -> None:
    name = lab.unique_name("_dnsauth.img")
    lab.set_record(name, "TXT", '"v=spf1 -all"', '"token-123"', '"other"')

    lookup = checker.txt_values(name)

    assert sorted(lookup.values) == ["other", "token-123", "v=spf1 -all"]


def test_txt_values_keep_case_spaces_quotes_and_utf8(
    lab: DnsLab, checker: AuthoritativeDns
) -> None:
    name = lab.unique_name("_dnsauth.img")
    lab.set_record(
        name, "TXT", '"Token ABC "', '"  lead"', r'"say \"hi\""', r'"caf\195\169"'
    )

    lookup = checker.txt_values(name)

    assert sorted(lookup.values) == sorted(["Token ABC ", "  lead", 'say "hi"', "café"])


def test_txt_answer_too_large_for_udp_comes_over_tcp(
    lab: DnsLab, checker: AuthoritativeDns
) -> None:
    name = lab.unique_name("_dnsauth.img")
    values = [f"token-{n}-" + "x" * 240 for n in range(8)]
    lab.set_record(name, "TXT", *(f'"{value}"' for value in values))

    lookup = checker.txt_values(name)

    assert sorted(lookup.values) == values


def test_txt_behind_a_cname_is_followed(lab: DnsLab, checker: AuthoritativeDns) -> None:
    name = lab.unique_name("_dnsauth.img")
    target = lab.unique_name("proof", lab.other_zone)
    lab.set_record(name, "CNAME", target)
    lab.set_record(target, "TXT", '"token-456"')

    lookup = checker.txt_values(name)

    assert lookup.values == ("token-456",)
    assert lookup.chain == (target,)


def test_missing_txt_is_missing(lab: DnsLab, checker: AuthoritativeDns) -> None:
    lookup = checker.txt_values(lab.unique_name("_dnsauth.img"))

    assert lookup.state is TxtState.MISSING
    assert lookup.values == ()
    assert lookup.problem is None


def test_txt_at_a_refusing_server_is_a_dns_error(
    lab: DnsLab, impatient_checker: AuthoritativeDns
) -> None:
    name = lab.unique_name("_dnsauth.img", lab.refused_zone)

    lookup = impatient_checker.txt_values(name)

    assert lookup.state is TxtState.DNS_ERROR
    assert lookup.problem == (
        f"could not look up {name}: {server(lab, 'ns1.example.test')} answered REFUSED"
    )


def test_checks_in_a_known_zone_send_nothing_to_the_resolver(
    lab: DnsLab, checker: AuthoritativeDns
) -> None:
    live = lab.unique_name("img")
    lab.set_record(live, "CNAME", BUCKET_DOMAIN)
    checker.check_cname(lab.unique_name("warm-up"), BUCKET_DOMAIN)
    before = lab.resolver_queries()
    names = [live] * 300 + [lab.unique_name("new") for _ in range(100)]

    with ThreadPoolExecutor(max_workers=32) as pool:
        checks = list(pool.map(lambda name: _check(checker, name), names))

    assert lab.resolver_queries() == before
    assert {check.found for check in checks[:300]} == {f"CNAME {BUCKET_DOMAIN}"}
    assert {check.found for check in checks[300:]} == {"no record (NXDOMAIN)"}


def test_known_zone_is_asked_for_again_after_its_ttl(lab: DnsLab) -> None:
    now = [0.0]
    checker = AuthoritativeDns(
        resolvers=[lab.resolver_address], timeout=1.0, clock=lambda: now[0]
    )
    checker.check_cname(lab.unique_name("img"), BUCKET_DOMAIN)
    before = lab.resolver_queries()

    now[0] += 29
    checker.check_cname(lab.unique_name("img"), BUCKET_DOMAIN)
    assert lab.resolver_queries() == before

    now[0] += 3600
    checker.check_cname(lab.unique_name("img"), BUCKET_DOMAIN)
    assert lab.resolver_queries() > before


def _check(checker: AuthoritativeDns, name: str) -> CnameCheck:
    return checker.check_cname(name, BUCKET_DOMAIN)
