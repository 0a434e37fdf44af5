"""The bot's settings: the environment, and the TOML file that lists buckets and zones.

Both are read once at start-up. Every problem found is collected into one
:class:`~bot.errors.ConfigError`, one line per problem, each naming the setting and
what to do, so that an operator can fix them all in one go.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite:///domainbot.db"
DEFAULT_CONFIG_PATH = "domainbot.toml"
DEFAULT_PORT = 3000

# Regions of mainland China need an ICP filing; Hong Kong is the one oss-cn-* that
# does not.
_ICP_EXEMPT_REGIONS = frozenset({"oss-cn-hongkong"})
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_SLACK_USERGROUP_ID = re.compile(r"^S[A-Z0-9]{2,}$")


class Bucket(BaseModel):
    """A bucket the bot may bind domains to, as configured under ``[[buckets]]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    endpoint: str
    max_domains: int = Field(default=20, ge=1, le=1000)
    provider: Literal["local", "aliyun"] = "local"
    cdn_domain: str | None = None

    @field_validator("name")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if not _BUCKET_NAME.match(value):
            raise ValueError(
                "a bucket name has 3 to 63 lower-case letters, digits and hyphens, "
                "and starts and ends with a letter or digit"
            )
        return value

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        endpoint = value.strip().lower().removesuffix(".")
        if "://" in endpoint or "/" in endpoint or "." not in endpoint:
            raise ValueError(
                "give the endpoint's host name only, such as "
                "oss-cn-hangzhou.aliyuncs.com"
            )
        return endpoint

    @field_validator("cdn_domain")
    @classmethod
    def _cdn_domain(cls, value: str | None) -> str | None:
        if value is None:
            return None
        template = value.strip().lower().removesuffix(".")
        sample = template.replace("{domain}", "img.example.com")
        if "{" in sample or "}" in sample or "/" in sample or "." not in sample:
            raise ValueError(
                "give the CDN's host name for a domain, with {domain} standing for "
                "the bound domain, such as {domain}.w.kunlunsl.com"
            )
        return template

    def cdn_target(self, domain: str) -> str | None:
        """The CDN host name assigned to ``domain``, when a CDN is configured."""
        if self.cdn_domain is None:
            return None
        return self.cdn_domain.replace("{domain}", domain)

    @property
    def internet_domain(self) -> str:
        """The bucket's own address, ``<bucket>.<endpoint>``: the CNAME target."""
        return f"{self.name}.{self.endpoint}"

    @property
    def region(self) -> str:
        return self.endpoint.split(".", 1)[0].removesuffix("-internal")

    @property
    def needs_icp(self) -> bool:
        """True for mainland-China regions, where a domain needs an ICP filing."""
        return self.region.startswith("oss-cn-") and (
            self.region not in _ICP_EXEMPT_REGIONS
        )

    @property
    def reserved_suffix(self) -> str:
        """The provider's own domain (``aliyuncs.com``): never bindable."""
        labels = self.endpoint.split(".")
        return ".".join(labels[-2:])


class Approvers(BaseModel):
    """Who may approve a forced rebind: Slack user IDs and user-group IDs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    users: tuple[str, ...] = ()
    usergroups: tuple[str, ...] = ()
    expire_hours: float = Field(default=72, gt=0, le=24 * 30)

    @field_validator("users")
    @classmethod
    def _user_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for user in value:
            if not _SLACK_USER_ID.match(user):
                raise ValueError(
                    f"{user!r} is not a Slack user ID; use IDs such as U0123ABC "
                    "(a member's profile, 'Copy member ID'), never display names"
                )
        return value

    @field_validator("usergroups")
    @classmethod
    def _group_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for group in value:
            if not _SLACK_USERGROUP_ID.match(group):
                raise ValueError(
                    f"{group!r} is not a Slack user-group ID; use IDs such as S0456DEF"
                )
        return value


class DnsZone(BaseModel):
    """A zone whose records the bot may write, under ``[[dns_zones]]``.

    Only the zone and the provider's name are checked here; the rest of the table
    belongs to the provider, which checks it when the zones are built
    (:meth:`bot.dns_providers.zones.ManagedZones.from_config`).
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    zone: str
    provider: Literal["rfc2136", "lexicon", "alidns"]

    @field_validator("zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return value.strip().lower().removesuffix(".")


class FileConfig(BaseModel):
    """The TOML file named by ``DOMAINBOT_CONFIG``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    buckets: tuple[Bucket, ...]
    approvers: Approvers = Approvers()
    dns_zones: tuple[DnsZone, ...] = ()

    @model_validator(mode="after")
    def _unique_buckets(self) -> FileConfig:
        if not self.buckets:
            raise ValueError(
                "no buckets: add at least one [[buckets]] table with name and endpoint"
            )
        names = [bucket.name for bucket in self.buckets]
        doubles = sorted({name for name in names if names.count(name) > 1})
        if doubles:
            raise ValueError(f"bucket names must be unique: {', '.join(doubles)}")
        return self

    def bucket(self, name: str) -> Bucket | None:
        return self._by_name.get(name)

    @functools.cached_property
    def _by_name(self) -> dict[str, Bucket]:
        return {bucket.name: bucket for bucket in self.buckets}


class Settings(BaseSettings):
    """Settings read from the environment."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    slack_bot_token: SecretStr
    # Needed in HTTP mode only; Socket Mode's requests are not signed.
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str | None = None
    database_url: str = DEFAULT_DATABASE_URL
    domainbot_config: Path = Path(DEFAULT_CONFIG_PATH)
    domainbot_resolvers: str | None = None
    domainbot_recheck_seconds: float = Field(default=60.0, gt=0)
    port: int | None = Field(default=None, ge=1, le=65535)
    # Where the aliyun provider reaches OSS and CDN, for staging and tests; by
    # default each bucket's own endpoint and Alibaba Cloud CDN's public one.
    domainbot_oss_endpoint: str | None = None
    domainbot_cdn_endpoint: str | None = None

    @field_validator("slack_api_url")
    @classmethod
    def _api_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("give a URL such as https://slack.com/api/")
        return value if value.endswith("/") else value + "/"

    @property
    def resolvers(self) -> tuple[tuple[str, int], ...]:
        """The configured recursive resolvers; empty means the system's."""
        return parse_resolvers(self.domainbot_resolvers or "")


class Config(BaseModel):
    """Everything the bot was configured with."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    settings: Settings
    file: FileConfig


def parse_resolvers(text: str) -> tuple[tuple[str, int], ...]:
    """Parse ``ip``, ``ip:port`` or ``[ipv6]:port`` items separated by commas."""
    resolvers = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        host, port = item, 53
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port = int(rest[1:]) if rest.startswith(":") else 53
        elif item.count(":") == 1:
            host, port_text = item.split(":")
            port = int(port_text) if port_text.isdigit() else -1
        try:
            ipaddress.ip_address(host)
        except ValueError:
            port = -1
        if not 0 < port < 65536:
            raise ValueError(
                f"{item!r} is not an address; use ip or ip:port, such as 192.0.2.53 "
                "or 192.0.2.53:5353"
            )
        resolvers.append((host, port))
    return tuple(resolvers)


def load_config(environ: Mapping[str, str] | None = None) -> Config:
    """Read the environment and the TOML file; raise ConfigError listing problems."""
    env = dict(os.environ if environ is None else environ)
    settings = _load_settings(env)
    return Config(settings=settings, file=load_file_config(settings.domainbot_config))


def load_file_config(path: Path) -> FileConfig:
    """Read and check the TOML file at ``path``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            [
                f"DOMAINBOT_CONFIG: no file at {path}; create it (the README has an "
                "example) or point DOMAINBOT_CONFIG at yours"
            ]
        ) from None
    except OSError as err:
        raise ConfigError(
            [f"DOMAINBOT_CONFIG: cannot read {path}: {err.strerror}"]
        ) from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError([f"{path}: not valid TOML: {err}"]) from err
    try:
        return FileConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(
            [f"{path}: {line}" for line in _describe(err.errors(), data)]
        ) from err


def _load_settings(env: dict[str, str]) -> Settings:
    fields = _settings_fields(env)
    problems: list[str] = []
    settings = None
    try:
        settings = Settings(**fields)
    except ValidationError as err:
        problems = _describe_settings(err)
    if not fields.get("slack_signing_secret") and not fields.get("slack_app_token"):
        problems.insert(1, _MISSING_SIGNING_SECRET)
    if problems or settings is None:
        raise ConfigError(problems)
    try:
        settings.resolvers  # noqa: B018 - parsed here to report a bad value early
    except ValueError as err:
        raise ConfigError([f"DOMAINBOT_RESOLVERS: {err}"]) from err
    return settings


def _settings_fields(env: dict[str, str]) -> dict[str, Any]:
    names = Settings.model_fields
    return {key.lower(): value for key, value in env.items() if key.lower() in names}


def _describe_settings(err: ValidationError) -> list[str]:
    lines = []
    for problem in err.errors():
        if not problem["loc"]:
            lines.append(_plain(problem["msg"]))
            continue
        name = str(problem["loc"][0]).upper()
        if problem["type"] == "missing":
            lines.append(f"{name} is not set; {_MISSING_HINTS.get(name, 'set it')}")
        else:
            lines.append(f"{name}: {_plain(problem['msg'])}")
    return lines


_MISSING_SIGNING_SECRET = (
    "SLACK_SIGNING_SECRET is not set; copy the Signing Secret from the Slack app's "
    "Basic Information page (Socket Mode, with SLACK_APP_TOKEN, needs none)"
)

_MISSING_HINTS = {
    "SLACK_BOT_TOKEN": "copy the Bot User OAuth Token (xoxb-...) from the Slack app's "
    "OAuth & Permissions page",
    "SLACK_SIGNING_SECRET": "copy the Signing Secret from the Slack app's Basic "
    "Information page",
}


def _describe(problems: list[Any], data: Any) -> list[str]:
    lines = []
    for problem in problems:
        where = _location(problem["loc"], data)
        message = _plain(problem["msg"])
        if problem["type"] == "extra_forbidden":
            message = "unknown setting; remove it or check its spelling"
        elif problem["type"] == "missing":
            message = "missing; add it"
        lines.append(f"{where}: {message}" if where else message)
    return lines


def _location(loc: tuple[Any, ...], data: Any) -> str:
    """Name a setting as an operator would: ``buckets[2].endpoint`` → bucket name."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            name = node[item].get("name") if _is_table_list(node, item) else None
            parts[-1] = f"{parts[-1]}[{name or item + 1}]"
        else:
            parts.append(str(item))
        node = node[item] if _has(node, item) else None
    return ".".join(parts)


def _is_table_list(node: Any, index: int) -> bool:
    return (
        isinstance(node, list) and index < len(node) and isinstance(node[index], dict)
    )


def _has(node: Any, key: Any) -> bool:
    if isinstance(node, dict):
        return key in node
    return isinstance(node, list) and isinstance(key, int) and key < len(node)


def _plain(message: str) -> str:
    return message.removeprefix("Value error, ")
