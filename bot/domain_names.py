"""Turning what a user typed into a domain name the bot can bind.

A domain is normalised (surrounding space trimmed, lower case, trailing dot dropped,
internationalised names converted to their IDNA 2008 ``xn--`` form) and then refused
with a sentence that says what is wrong when it cannot be bound.
"""

from __future__ import annotations

import ipaddress

import idna

from bot.errors import InvalidDomain

MAX_NAME_LENGTH = 253
MAX_LABEL_LENGTH = 63
# Host names this short are refused by OSS; a real domain is never this short.
MIN_NAME_LENGTH = 4


def normalise_domain(text: str, *, reserved_suffixes: tuple[str, ...] = ()) -> str:
    """Return the ``xn--`` form of ``text`` in lower case, without a trailing dot.

    Raises :class:`InvalidDomain` saying what is wrong when ``text`` is empty, not a
    host name, a bare IP address, a single label, a wildcard, too long, or equal to
    or under one of ``reserved_suffixes`` (the storage provider's own domains).
    """
    raw = text.strip()
    if not raw:
        raise InvalidDomain(text, "Enter a domain name, for example img.example.com.")
    _refuse_urls(raw)
    if any(character.isspace() for character in raw):
        raise InvalidDomain(
            text,
            "A domain name has no spaces. Give one host name, such as img.example.com.",
        )
    name = raw.lower().removesuffix(".")
    if "*" in name:
        raise InvalidDomain(
            text,
            "Wildcard domains cannot be bound. Bind each host name on its own, "
            "for example img.example.com.",
        )
    _refuse_ip_address(text, name)
    if "." not in name:
        raise InvalidDomain(
            text,
            f"{name} is a single label. Give the full host name, "
            f"for example {name}.example.com.",
        )
    ascii_name = _to_ascii(text, name)
    _check_lengths(text, ascii_name)
    for suffix in reserved_suffixes:
        if ascii_name == suffix or ascii_name.endswith("." + suffix):
            raise InvalidDomain(
                text,
                f"{ascii_name} is under {suffix}, which belongs to the storage "
                "provider. Bind a domain your team owns instead.",
            )
    return ascii_name


def is_under(name: str, suffix: str) -> bool:
    """True when ``name`` equals ``suffix`` or is a subdomain of it."""
    return name == suffix or name.endswith("." + suffix)


def _refuse_urls(raw: str) -> None:
    if "://" in raw or "/" in raw:
        host = raw.split("://", 1)[-1].split("/", 1)[0]
        raise InvalidDomain(
            raw,
            f"Give only the host name, without scheme or path: {host or 'the host'}.",
        )
    if ":" in raw and not _looks_like_ipv6(raw):
        raise InvalidDomain(raw, "Give only the host name, without a port number.")


def _looks_like_ipv6(raw: str) -> bool:
    try:
        ipaddress.IPv6Address(raw.strip("[]"))
    except ValueError:
        return False
    return True


def _refuse_ip_address(text: str, name: str) -> None:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return
    raise InvalidDomain(
        text,
        f"{name} is an IP address. A domain name is needed, because the binding "
        "works through a CNAME record.",
    )


def _to_ascii(text: str, name: str) -> str:
    try:
        mapped = idna.uts46_remap(name, std3_rules=True, transitional=False)
    except idna.IDNAError as err:
        raise _not_a_host_name(text, name, err) from err
    labels = [_label_to_ascii(text, name, label) for label in mapped.split(".")]
    return ".".join(labels)


def _label_to_ascii(text: str, name: str, label: str) -> str:
    if label.isascii() and len(label) > MAX_LABEL_LENGTH:
        raise _label_too_long(text, label)
    try:
        encoded = idna.alabel(label).decode("ascii")
    except idna.IDNAError as err:
        if "too long" in str(err).lower():
            raise _label_too_long(text, label) from err
        raise _not_a_host_name(text, name, err) from err
    except UnicodeError as err:
        raise _label_too_long(text, label) from err
    return encoded


def _not_a_host_name(text: str, name: str, err: Exception) -> InvalidDomain:
    return InvalidDomain(
        text,
        f"{name} is not a valid host name ({err}). Use letters, digits and "
        "hyphens, with dots between the labels.",
    )


def _label_too_long(text: str, label: str) -> InvalidDomain:
    return InvalidDomain(
        text,
        f"The label {label[:20]}... is too long; each part between dots may have at "
        f"most {MAX_LABEL_LENGTH} characters.",
    )


def _check_lengths(text: str, ascii_name: str) -> None:
    if len(ascii_name) > MAX_NAME_LENGTH:
        raise InvalidDomain(
            text,
            f"The name is {len(ascii_name)} characters long; a domain name may have "
            f"at most {MAX_NAME_LENGTH}.",
        )
    for label in ascii_name.split("."):
        if len(label) > MAX_LABEL_LENGTH:
            raise _label_too_long(text, label)
    if len(ascii_name) < MIN_NAME_LENGTH:
        raise InvalidDomain(
            text,
            f"{ascii_name} is too short to be bound; OSS refuses host names of "
            f"{MIN_NAME_LENGTH - 1} characters or fewer.",
        )
