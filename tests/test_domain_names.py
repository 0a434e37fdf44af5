"""What a user typed as a domain, and what the bot makes of it or says about it."""

from __future__ import annotations

import pytest

from bot.domain_names import normalise_domain
from bot.errors import InvalidDomain

RESERVED = ("aliyuncs.com",)


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("img.example.com", "img.example.com"),
        ("  IMG.Example.COM.  ", "img.example.com"),
        ("bücher.example.com", "xn--bcher-kva.example.com"),
        ("画像.例え.jp", "xn--o1qu10g.xn--r8jz45g.jp"),
        ("xn--bcher-kva.example.com", "xn--bcher-kva.example.com"),
        ("a-b.example.test", "a-b.example.test"),
    ],
)
def test_accepted_names_are_normalised(typed: str, stored: str) -> None:
    assert normalise_domain(typed, reserved_suffixes=RESERVED) == stored


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("", "Enter a domain name"),
        ("   ", "Enter a domain name"),
        ("192.0.2.10", "is an IP address"),
        ("2001:db8::1", "is an IP address"),
        ("localhost", "single label"),
        ("*.example.com", "Wildcard domains cannot be bound"),
        ("img..example.com", "not a valid host name"),
        ("img_1.example.com", "not a valid host name"),
        ("-img.example.com", "not a valid host name"),
        ("img example.com", "A domain name has no spaces"),
        ("not a domain", "A domain name has no spaces"),
        ("https://img.example.com/a.jpg", "without scheme or path: img.example.com"),
        ("img.example.com:8080", "without a port"),
        ("a" * 64 + ".example.com", "at most 63"),
        (".".join(["abcdefghi"] * 26), "at most 253"),
        ("a.b", "too short"),
        ("test-1-001.oss-cn-hangzhou.aliyuncs.com", "belongs to the storage provider"),
        ("aliyuncs.com", "belongs to the storage provider"),
    ],
)
def test_refused_names_say_what_is_wrong(typed: str, says: str) -> None:
    with pytest.raises(InvalidDomain) as refused:
        normalise_domain(typed, reserved_suffixes=RESERVED)
    assert says in str(refused.value)


def test_a_name_that_only_ends_like_a_reserved_suffix_is_fine() -> None:
    assert normalise_domain("cdn.notaliyuncs.com", reserved_suffixes=RESERVED) == (
        "cdn.notaliyuncs.com"
    )
