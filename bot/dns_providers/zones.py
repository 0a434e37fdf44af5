"""The zones the bot may write records in, each with the provider that writes them.

:meth:`ManagedZones.from_config` reads each ``[[dns_zones]]`` table's provider
settings, fetches secrets from the environment or from files, and builds one
provider per zone. Every problem found, in every table, is collected into one
:class:`~bot.errors.ConfigError`, one line each, naming the setting as
``dns_zones[<zone>].<setting>`` and saying what to do.

Secrets never stand in the TOML file: a setting that holds one is given as
``<name>_env = "VARIABLE"`` (read from the environment) or ``<name>_file =
"/path"`` (the file's content, surrounding white space removed).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dns.exception
import dns.name

from bot.config import DnsZone
from bot.dns_providers.alidns import (
    DEFAULT_ENDPOINT,
    KEY_ID_VARIABLE,
    KEY_SECRET_VARIABLE,
    TOKEN_VARIABLE,
    AccessKey,
    AlidnsClient,
    AlidnsProvider,
)
from bot.dns_providers.base import DnsProvider
from bot.dns_providers.lexicon import LexiconProvider, provider_options
from bot.dns_providers.rfc2136 import (
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    DEFAULT_PORT,
    Rfc2136Provider,
)
from bot.errors import ConfigError

logger = logging.getLogger(__name__)

# Option names that suggest a secret: such an option may not be written literally.
_SECRET_WORDS = ("token", "password", "secret", "key", "passphrase", "credential")


class ManagedZones:
    """The configured zones and their providers; picks the zone of a domain."""

    def __init__(self, providers: Iterable[DnsProvider] = ()) -> None:
        self._providers = {provider.zone: provider for provider in providers}

    def __repr__(self) -> str:
        return f"ManagedZones({sorted(self._providers)!r})"

    def __len__(self) -> int:
        return len(self._providers)

    @property
    def zones(self) -> tuple[str, ...]:
        return tuple(self._providers)

    @classmethod
    def from_config(
        cls, zones: Sequence[DnsZone], environ: Mapping[str, str]
    ) -> ManagedZones:
        """Build a provider for each zone.

        Raises :class:`~bot.errors.ConfigError` listing every problem in every
        zone's table: missing or unknown settings, environment variables that are
        not set, files that cannot be read, secrets written into the file.
        """
        problems: list[str] = []
        providers: list[DnsProvider] = []
        seen: set[str] = set()
        for zone in zones:
            if zone.zone in seen:
                problems.append(
                    f"dns_zones[{zone.zone}]: the zone is listed twice; keep one "
                    "[[dns_zones]] table for it"
                )
                continue
            seen.add(zone.zone)
            provider = _build(zone, environ, problems)
            if provider is not None:
                providers.append(provider)
        if problems:
            raise ConfigError(problems)
        for provider in providers:
            logger.info(
                "DNS zone configured: zone=%s provider=%s", provider.zone, provider.kind
            )
        return cls(providers)

    def zone_for(self, domain: str) -> DnsProvider | None:
        """The provider of the longest configured zone that holds ``domain``.

        ``img.shop.example.com`` with zones ``example.com`` and
        ``shop.example.com`` belongs to ``shop.example.com``; ``notexample.com``
        is not in ``example.com``. None when no configured zone holds it.
        """
        zone = self._zone_of(domain)
        return self._providers[zone] if zone is not None else None

    def is_apex(self, domain: str) -> bool:
        """True when ``domain`` is itself a configured zone, where no CNAME can go."""
        return _normal(domain) in self._providers

    def _zone_of(self, domain: str) -> str | None:
        name = _normal(domain)
        holding = [
            zone
            for zone in self._providers
            if name == zone or name.endswith(f".{zone}")
        ]
        return max(holding, key=len, default=None)


def _normal(domain: str) -> str:
    return domain.strip().lower().removesuffix(".")


class _Table:
    """One zone's provider settings, read with every problem noted.

    Settings read are remembered, so that the rest can be reported as unknown;
    secrets read are kept in :attr:`secrets` so that they can be blanked out.
    """

    def __init__(
        self, zone: DnsZone, environ: Mapping[str, str], problems: list[str]
    ) -> None:
        self.zone = zone.zone
        self.values: dict[str, Any] = dict(zone.model_extra or {})
        self.secrets: list[str] = []
        self.environ = environ
        self._problems = problems
        self._read: set[str] = set()
        self._count = len(problems)

    @property
    def ok(self) -> bool:
        """True while no problem was found in this table."""
        return len(self._problems) == self._count

    def problem(self, key: str | None, text: str) -> None:
        where = f"dns_zones[{self.zone}]" + (f".{key}" if key else "")
        self._problems.append(f"{where}: {text}")

    def add_problems(self, lines: Iterable[str]) -> None:
        self._problems.extend(lines)

    def mark_read(self, key: str) -> None:
        self._read.add(key)

    def text(self, key: str, *, missing: str | None = None) -> str | None:
        """A text setting; ``missing`` is the fix to give when it is required."""
        self._read.add(key)
        value = self.values.get(key)
        if value is None:
            if missing is not None:
                self.problem(key, f"missing; {missing}")
            return None
        if not isinstance(value, str) or not value.strip():
            self.problem(key, 'give a text in quotes, such as key = "value"')
            return None
        return value.strip()

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        self._read.add(key)
        value = self.values.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, f"give a whole number from {low} to {high}")
            return default
        if not low <= value <= high:
            self.problem(key, f"{value} is out of range; give {low} to {high}")
            return default
        return value

    def secret(self, key: str, *, what: str) -> str | None:
        """The secret given by ``<key>_env`` or ``<key>_file``, exactly one of them.

        ``<key>`` itself, a secret written into the file, is refused.
        """
        env_key, file_key = f"{key}_env", f"{key}_file"
        self._read.update((key, env_key, file_key))
        fix = f'{env_key} = "VARIABLE" or {file_key} = "/path/to/file"'
        if key in self.values:
            self.problem(key, _literal_secret(fix))
            return None
        given = [name for name in (env_key, file_key) if name in self.values]
        if not given:
            self.problem(env_key, f"missing; give {what} with {fix}")
            return None
        if len(given) > 1:
            self.problem(key, f"give only one of {env_key} and {file_key}")
            return None
        return self.secret_from(given[0], what=what)

    def secret_from(self, key: str, *, what: str) -> str | None:
        """Read the secret that setting ``key`` (``*_env`` or ``*_file``) points at."""
        self._read.add(key)
        source = self.values.get(key)
        if not isinstance(source, str) or not source.strip():
            self.problem(key, 'give a text in quotes, such as key = "value"')
            return None
        source = source.strip()
        if key.endswith("_env"):
            secret = self.environ.get(source, "").strip()
            if not secret:
                self.problem(
                    key,
                    f"the environment variable {source} is not set (or empty); set "
                    f"it to {what} in the bot's environment",
                )
                return None
        else:
            try:
                secret = Path(source).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as err:
                reason = getattr(err, "strerror", None) or "not UTF-8 text"
                self.problem(
                    key,
                    f"cannot read {source}: {reason}; check the path and that the "
                    "bot's user may read the file",
                )
                return None
            if not secret:
                self.problem(key, f"{source} is empty; put {what} in it")
                return None
        self.secrets.append(secret)
        return secret

    def report_unknown(self, hint: str) -> None:
        for key in sorted(set(self.values) - self._read):
            self.problem(key, f"unknown setting; {hint}")


def _build(
    zone: DnsZone, environ: Mapping[str, str], problems: list[str]
) -> DnsProvider | None:
    table = _Table(zone, environ, problems)
    if zone.provider == "rfc2136":
        return _rfc2136(table)
    if zone.provider == "lexicon":
        return _lexicon(table)
    return _alidns(table)


def _rfc2136(table: _Table) -> Rfc2136Provider | None:
    server = table.text(
        "server",
        missing="give the IP address of the zone's primary server, such as "
        '"192.0.2.53"',
    )
    if server is not None and not _is_address(server):
        table.problem(
            "server",
            f"{server!r} is not an IP address; give the primary server's address, "
            'such as "192.0.2.53" (host names are not looked up)',
        )
    port = table.integer("port", DEFAULT_PORT, 1, 65535)
    key_name = table.text(
        "tsig_name", missing='give the TSIG key\'s name, such as "domainbot."'
    )
    if key_name is not None and not _is_dns_name(key_name):
        table.problem("tsig_name", f"{key_name!r} is not a valid key name")
    algorithm = (table.text("tsig_algorithm") or DEFAULT_ALGORITHM).lower()
    if algorithm not in ALGORITHMS:
        table.problem(
            "tsig_algorithm",
            f"{algorithm!r} is not a TSIG algorithm; use one of "
            f"{', '.join(ALGORITHMS)}",
        )
    secret_text = table.secret("tsig_secret", what="the TSIG key's base64 secret")
    secret = _base64(secret_text) if secret_text is not None else None
    if secret_text is not None and secret is None:
        env = "tsig_secret_env" in table.values
        table.problem(
            "tsig_secret_env" if env else "tsig_secret_file",
            "the secret is not base64 text; copy the key's secret exactly as the "
            "server's key file shows it",
        )
    table.report_unknown(
        "rfc2136 zones take server, port, tsig_name, tsig_algorithm and "
        "tsig_secret_env or tsig_secret_file"
    )
    if not table.ok or server is None or key_name is None or secret is None:
        return None
    return Rfc2136Provider(
        table.zone,
        server=server,
        port=port,
        key_name=key_name,
        secret=secret,
        algorithm=algorithm,
    )


def _lexicon(table: _Table) -> LexiconProvider | None:
    provider_name = table.text(
        "lexicon_provider",
        missing='name the lexicon provider, such as lexicon_provider = "powerdns"',
    )
    if provider_name is None:
        return None
    try:
        known = provider_options(provider_name)
    except ConfigError as err:
        for line in err.problems:
            table.problem("lexicon_provider", line)
        return None
    options: dict[str, Any] = {}
    for key, value in sorted(table.values.items()):
        if key == "lexicon_provider":
            continue
        option = _lexicon_option(key, known)
        if option is None:
            table.mark_read(key)
            table.problem(
                key,
                f"lexicon's {provider_name} provider has no option {key}; it takes "
                f"{', '.join(sorted(known)) or 'none'}, and any of them as "
                "<option>_env or <option>_file",
            )
        elif option in options:
            table.problem(key, f"{option} is given twice; keep one setting for it")
        elif option != key:
            secret = table.secret_from(key, what=f"the value of {option}")
            if secret is not None:
                options[option] = secret
        elif _looks_secret(key):
            table.problem(key, _literal_secret(f'{key}_env = "VARIABLE"'))
        elif isinstance(value, str | int | float | bool):
            options[option] = value
        else:
            table.problem(key, "give a text, a number or true/false")
    if not table.ok:
        return None
    try:
        return LexiconProvider(
            table.zone,
            provider_name=provider_name,
            options=options,
            secrets=table.secrets,
        )
    except ConfigError as err:
        table.add_problems(err.problems)
        return None


def _lexicon_option(key: str, known: frozenset[str]) -> str | None:
    """The lexicon option a setting gives: itself, or the one its secret is for."""
    if key in known:
        return key
    for suffix in ("_env", "_file"):
        option = key.removesuffix(suffix)
        if option != key and option in known:
            return option
    return None


def _looks_secret(key: str) -> bool:
    # A path to a key file is not itself a secret.
    return not key.endswith("_file") and any(w in key for w in _SECRET_WORDS)


def _alidns(table: _Table) -> AlidnsProvider | None:
    endpoint = table.text("endpoint") or DEFAULT_ENDPOINT
    if not _is_endpoint(endpoint):
        table.problem(
            "endpoint",
            f"{endpoint!r} is not an endpoint; give a host name such as "
            f'"{DEFAULT_ENDPOINT}" or a URL such as "http://127.0.0.1:8080"',
        )
    for key in sorted(table.values):
        if key != "endpoint" and _looks_secret(key):
            table.mark_read(key)
            table.problem(
                key,
                "the AccessKey never goes into the configuration file; remove it "
                f"and set {KEY_ID_VARIABLE} and {KEY_SECRET_VARIABLE} in the bot's "
                "environment",
            )
    table.report_unknown("alidns zones take endpoint only")
    access_key = _access_key(table)
    if not table.ok:
        return None
    client = AlidnsClient(endpoint=endpoint, access_key=access_key)
    return AlidnsProvider(table.zone, client=client)


def _access_key(table: _Table) -> AccessKey | None:
    """The AccessKey from the standard variables; None to use the SDK's chain."""
    environ = table.environ
    key_id = environ.get(KEY_ID_VARIABLE, "").strip()
    secret = environ.get(KEY_SECRET_VARIABLE, "").strip()
    token = environ.get(TOKEN_VARIABLE, "").strip() or None
    if bool(key_id) != bool(secret):
        unset = KEY_SECRET_VARIABLE if key_id else KEY_ID_VARIABLE
        table.problem(
            None,
            f"{unset} is not set while its partner is; set both "
            f"{KEY_ID_VARIABLE} and {KEY_SECRET_VARIABLE}, or neither to use the "
            "Alibaba Cloud SDK's credentials file or RAM role",
        )
        return None
    if not key_id:
        logger.info(
            "alidns zone=%s: %s is not set; the SDK's default credentials chain "
            "will be used",
            table.zone,
            KEY_ID_VARIABLE,
        )
        return None
    table.secrets += [value for value in (secret, token) if value]
    return AccessKey(key_id=key_id, secret=secret, security_token=token)


def _literal_secret(fix: str) -> str:
    return (
        "a secret may not be written into the configuration file; remove this "
        f"setting and give the secret with {fix}"
    )


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_dns_name(text: str) -> bool:
    try:
        dns.name.from_text(text)
    except dns.exception.DNSException:
        return False
    return " " not in text


def _is_endpoint(text: str) -> bool:
    if "://" not in text:
        return "/" not in text and " " not in text and "." in text
    parts = urlsplit(text)
    return (
        parts.scheme in ("http", "https")
        and bool(parts.netloc)
        and parts.path in ("", "/")
    )


def _base64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
