"""Records written through Alibaba Cloud DNS (Alidns), with Alibaba Cloud's own SDK.

All traffic to the service goes through :class:`AlidnsClient`, the one seam tests
replace (they point it at a local fake of the API). It uses the AccessKey from
``ALIBABA_CLOUD_ACCESS_KEY_ID`` and ``ALIBABA_CLOUD_ACCESS_KEY_SECRET`` (with
``ALIBABA_CLOUD_SECURITY_TOKEN`` for an STS key) when they are set, and otherwise the
SDK's default credentials chain (its credentials file, an ECS RAM role, ...).

Alidns itself refuses a CNAME beside other records at the same host
(``DomainRecordConflict``) and a record identical to an existing one
(``DomainRecordDuplicate``); both become :class:`~bot.errors.RecordConflict` or the
answer "already there", after a fresh look at the records.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from alibabacloud_alidns20150109 import (  # type: ignore[import-untyped]
    models as alidns_models,
)
from alibabacloud_alidns20150109.client import (  # type: ignore[import-untyped]
    Client as SdkClient,
)
from alibabacloud_credentials.client import (  # type: ignore[import-untyped]
    Client as CredentialClient,
)
from alibabacloud_credentials.exceptions import (  # type: ignore[import-untyped]
    CredentialException,
)
from alibabacloud_credentials.models import (  # type: ignore[import-untyped]
    Config as CredentialConfig,
)
from alibabacloud_tea_openapi.utils_models import (  # type: ignore[import-untyped]
    Config as SdkConfig,
)
from darabonba.exceptions import ResponseException  # type: ignore[import-untyped]
from darabonba.runtime import RuntimeOptions  # type: ignore[import-untyped]

from bot.dns_providers.base import DnsProvider, ExistingRecord
from bot.errors import ProviderError, RecordConflict

logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "alidns.aliyuncs.com"
DEFAULT_TIMEOUT = 10.0
KEY_ID_VARIABLE = "ALIBABA_CLOUD_ACCESS_KEY_ID"
KEY_SECRET_VARIABLE = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
TOKEN_VARIABLE = "ALIBABA_CLOUD_SECURITY_TOKEN"
# DescribeSubDomainRecords returns at most this many records a page.
_PAGE_SIZE = 500
_DETAIL_LIMIT = 300
_REDACTED = "[secret]"

_FOREIGN_ZONE = frozenset(
    {"IncorrectDomainUser", "InvalidDomainName.NoExist", "DomainNotExists"}
)
_BAD_KEY = frozenset(
    {
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId.NotFound",
        "InvalidAccessKeyId.Inactive",
        "InvalidAccessKeyId",
        "IncompleteSignature",
        "InvalidSecurityToken.Expired",
        "InvalidSecurityToken.Malformed",
    }
)
_NO_PERMISSION = frozenset({"Forbidden.RAM", "Forbidden", "NoPermission"})


@dataclass(frozen=True)
class AccessKey:
    """An Alibaba Cloud AccessKey; its secret and token never appear in a repr."""

    key_id: str
    secret: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class AlidnsRecord:
    """A record as Alidns lists it: its id, host (``RR``), type, value and TTL."""

    record_id: str
    rr: str
    rdtype: str
    value: str
    ttl: int | None


class AlidnsClient:
    """The Alidns API operations the provider uses, through the official SDK.

    ``endpoint`` is a host name (HTTPS) or a URL such as ``http://127.0.0.1:8080``.
    ``access_key`` None means the SDK's default credentials chain. Every method
    raises :class:`~bot.errors.ProviderError` with Alidns's error code as ``code``
    (``unreachable`` when no answer came, ``NoCredentials`` when there is no key).
    """

    def __init__(
        self,
        *,
        endpoint: str = DEFAULT_ENDPOINT,
        access_key: AccessKey | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.endpoint = endpoint
        self.key_id = access_key.key_id if access_key else None
        self._secrets = tuple(
            secret
            for secret in (
                access_key.secret if access_key else None,
                access_key.security_token if access_key else None,
            )
            if secret
        )
        milliseconds = int(timeout * 1000)
        self._runtime = RuntimeOptions(
            autoretry=False, read_timeout=milliseconds, connect_timeout=milliseconds
        )
        protocol, host = _split_endpoint(endpoint)
        self._sdk = SdkClient(
            SdkConfig(
                credential=_credentials(access_key),
                endpoint=host,
                protocol=protocol,
                read_timeout=milliseconds,
                connect_timeout=milliseconds,
            )
        )

    def __repr__(self) -> str:
        return f"AlidnsClient(endpoint={self.endpoint!r}, key_id={self.key_id!r})"

    def sub_domain_records(self, zone: str, name: str) -> list[AlidnsRecord]:
        """Every record at ``name`` in ``zone`` (DescribeSubDomainRecords)."""
        records: list[AlidnsRecord] = []
        page = 1
        while True:
            request = alidns_models.DescribeSubDomainRecordsRequest(
                domain_name=zone,
                sub_domain=name,
                page_number=page,
                page_size=_PAGE_SIZE,
            )
            body = self._call(
                "DescribeSubDomainRecords",
                zone,
                self._sdk.describe_sub_domain_records_with_options,
                request,
            )
            listed = body.domain_records.record if body.domain_records else None
            records += [_record(item) for item in listed or []]
            if not listed or len(records) >= int(body.total_count or 0):
                return records
            page += 1

    def add_record(self, zone: str, rr: str, rdtype: str, value: str, ttl: int) -> str:
        """Add a record (AddDomainRecord); return its id."""
        request = alidns_models.AddDomainRecordRequest(
            domain_name=zone, rr=rr, type=rdtype, value=value, ttl=ttl
        )
        body = self._call(
            "AddDomainRecord", zone, self._sdk.add_domain_record_with_options, request
        )
        return str(body.record_id)

    def update_record(
        self, zone: str, record_id: str, rr: str, rdtype: str, value: str, ttl: int
    ) -> None:
        """Change a record's host, type, value and TTL (UpdateDomainRecord)."""
        request = alidns_models.UpdateDomainRecordRequest(
            record_id=record_id, rr=rr, type=rdtype, value=value, ttl=ttl
        )
        self._call(
            "UpdateDomainRecord",
            zone,
            self._sdk.update_domain_record_with_options,
            request,
        )

    def delete_record(self, zone: str, record_id: str) -> None:
        """Delete a record by its id (DeleteDomainRecord)."""
        request = alidns_models.DeleteDomainRecordRequest(record_id=record_id)
        self._call(
            "DeleteDomainRecord",
            zone,
            self._sdk.delete_domain_record_with_options,
            request,
        )

    def _call(
        self, action: str, zone: str, method: Callable[..., Any], request: Any
    ) -> Any:
        """Run one API call and return its response's body.

        Every failure comes out as ProviderError.
        """
        operation = "read" if action.startswith("Describe") else "write"
        try:
            return method(request, self._runtime).body
        except ResponseException as err:
            raise self._api_error(action, operation, zone, err) from err
        except CredentialException as err:
            raise ProviderError(
                AlidnsProvider.kind,
                operation,
                f"no Alibaba Cloud credentials for zone {zone}: set "
                f"{KEY_ID_VARIABLE} and {KEY_SECRET_VARIABLE} in the bot's "
                "environment, or set up the SDK's credentials file or RAM role",
                code="NoCredentials",
            ) from err
        except Exception as err:
            # The SDK wraps a failed connection in exception types of its own, whose
            # text holds a whole urllib3 traceback summary: log it, keep it out of
            # the message.
            text = str(err)
            reason = "timed out" if "timed out" in text.lower() else "no connection"
            logger.warning(
                "alidns: %s for zone=%s failed: %s", action, zone, self._detail(text)
            )
            raise ProviderError(
                AlidnsProvider.kind,
                operation,
                f"cannot reach Alibaba Cloud DNS at {self.endpoint} ({action} for "
                f"zone {zone}: {reason}); check the endpoint setting and the "
                "network",
                code="unreachable",
            ) from err

    def _api_error(
        self, action: str, operation: str, zone: str, err: Any
    ) -> ProviderError:
        code = str(err.code or "")
        data = err.data if isinstance(err.data, dict) else {}
        detail = self._detail(str(data.get("Message") or err.message or ""))
        request_id = data.get("RequestId") or getattr(err, "request_id", None)
        logger.warning(
            "alidns: %s refused code=%s zone=%s request_id=%s",
            action,
            code,
            zone,
            request_id,
        )
        if code in _FOREIGN_ZONE:
            message = (
                f"zone {zone} is not in the Alibaba Cloud account of AccessKey "
                f"{self.key_id or '(default credentials)'}. Add the zone to that "
                "account in Alibaba Cloud DNS, give the bot an AccessKey of the "
                "account that holds it, or remove the zone from [[dns_zones]] so "
                "that users add the record by hand"
            )
        elif code in _BAD_KEY:
            message = (
                f"Alibaba Cloud did not accept the AccessKey ({detail}); check "
                f"{KEY_ID_VARIABLE} and {KEY_SECRET_VARIABLE}: the secret must "
                "belong to that key id, and the key must be enabled"
            )
        elif code in _NO_PERMISSION:
            message = (
                f"the AccessKey may not call {action} ({detail}); grant its RAM "
                "user the AliyunDNSFullAccess policy, or one that allows "
                f"alidns:{action} on zone {zone}"
            )
        else:
            message = f"{action} for zone {zone}: {detail}"
        return ProviderError(AlidnsProvider.kind, operation, message, code=code)

    def _detail(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, _REDACTED)
        return text[:_DETAIL_LIMIT]


class AlidnsProvider(DnsProvider):
    """Writes one zone's records in Alibaba Cloud DNS through ``client``.

    Every method raises :class:`~bot.errors.ProviderError` when Alidns refuses
    (its error code as ``code``) or cannot be reached.
    """

    kind = "alidns"

    def __init__(self, zone: str, *, client: AlidnsClient) -> None:
        super().__init__(zone)
        self.client = client

    def __repr__(self) -> str:
        return f"AlidnsProvider(zone={self.zone!r}, client={self.client!r})"

    def records(self, name: str) -> list[ExistingRecord]:
        """Every record at ``name`` (DescribeSubDomainRecords)."""
        return [_existing(name, record) for record in self._listing(name)]

    def create_cname(self, name: str, target: str, ttl: int = 600) -> bool:
        """Add ``name CNAME target`` when nothing is at ``name``.

        Returns False when exactly that CNAME is there already. Raises
        :class:`~bot.errors.RecordConflict` naming the records in the way.
        """
        listing = self._listing(name)
        if _only_cname_to(listing, target):
            return False
        if listing:
            raise RecordConflict(self.kind, name, _describe(listing))
        try:
            self.client.add_record(self.zone, self._rr(name), "CNAME", target, ttl)
        except ProviderError as err:
            if err.code not in ("DomainRecordDuplicate", "DomainRecordConflict"):
                raise
            # Someone wrote at the name after the first look; look again.
            listing = self._listing(name)
            if _only_cname_to(listing, target):
                return False
            raise RecordConflict(
                self.kind, name, _describe(listing) or [_unseen(err)]
            ) from err
        logger.info(
            "alidns: created CNAME name=%s target=%s zone=%s", name, target, self.zone
        )
        return True

    def replace_cname(self, name: str, target: str, ttl: int = 600) -> None:
        """Make ``name CNAME target`` the only CNAME at ``name``.

        Raises :class:`~bot.errors.RecordConflict` when records other than a CNAME
        are at ``name``.
        """
        listing = self._listing(name)
        others = [record for record in listing if record.rdtype != "CNAME"]
        if others:
            raise RecordConflict(self.kind, name, _describe(others))
        if _only_cname_to(listing, target) and listing[0].ttl == ttl:
            return
        rr = self._rr(name)
        try:
            if listing:
                first, *rest = listing
                for extra in rest:
                    self.client.delete_record(self.zone, extra.record_id)
                self.client.update_record(
                    self.zone, first.record_id, rr, "CNAME", target, ttl
                )
            else:
                self.client.add_record(self.zone, rr, "CNAME", target, ttl)
        except ProviderError as err:
            if err.code == "DomainRecordConflict":
                found = self._listing(name)
                raise RecordConflict(
                    self.kind, name, _describe(found) or [_unseen(err)]
                ) from err
            if err.code != "DomainRecordDuplicate":
                raise
        logger.info(
            "alidns: replaced CNAME name=%s target=%s zone=%s", name, target, self.zone
        )

    def delete_cname(self, name: str, target: str) -> bool:
        """Remove ``name CNAME target``; False when the name has no such CNAME."""
        return self._delete(name, "CNAME", target)

    def set_txt(self, name: str, value: str, ttl: int = 300) -> None:
        """Add a TXT record with ``value``; other TXT records at ``name`` stay.

        Raises :class:`~bot.errors.RecordConflict` when a CNAME is at ``name``.
        """
        listing = self._listing(name)
        cnames = [record for record in listing if record.rdtype == "CNAME"]
        if cnames:
            raise RecordConflict(self.kind, name, _describe(cnames))
        if any(r.rdtype == "TXT" and r.value == value for r in listing):
            return
        try:
            self.client.add_record(self.zone, self._rr(name), "TXT", value, ttl)
        except ProviderError as err:
            if err.code == "DomainRecordConflict":
                found = [r for r in self._listing(name) if r.rdtype == "CNAME"]
                raise RecordConflict(
                    self.kind, name, _describe(found) or [_unseen(err)]
                ) from err
            if err.code != "DomainRecordDuplicate":
                raise
            return
        logger.info("alidns: added TXT name=%s zone=%s", name, self.zone)

    def delete_txt(self, name: str, value: str) -> bool:
        """Remove the TXT record holding exactly ``value``; False when absent."""
        return self._delete(name, "TXT", value)

    def _listing(self, name: str) -> list[AlidnsRecord]:
        rr = self._rr(name)
        listing = [
            record
            for record in self.client.sub_domain_records(self.zone, name)
            if record.rr.lower() == rr
        ]
        logger.debug("alidns: read name=%s records=%d", name, len(listing))
        return listing

    def _delete(self, name: str, rdtype: str, value: str) -> bool:
        wanted = _value(rdtype, value)
        matches = [
            record
            for record in self._listing(name)
            if record.rdtype == rdtype and record.value == wanted
        ]
        if not matches:
            return False
        for record in matches:
            try:
                self.client.delete_record(self.zone, record.record_id)
            except ProviderError as err:
                # Already deleted by someone else: the outcome asked for.
                if err.code != "DomainRecordNotBelongToUser":
                    raise
        logger.info("alidns: deleted %s name=%s zone=%s", rdtype, name, self.zone)
        return True

    def _rr(self, name: str) -> str:
        """The host field Alidns wants: ``@`` for the apex, else the part before."""
        name = name.lower().removesuffix(".")
        if name == self.zone:
            return "@"
        if not name.endswith(f".{self.zone}"):
            raise ProviderError(
                self.kind,
                "write",
                f"{name} is not in zone {self.zone}",
                code="OutsideZone",
            )
        return name.removesuffix(f".{self.zone}")


def _split_endpoint(endpoint: str) -> tuple[str, str]:
    """``(protocol, host[:port])`` of an endpoint given as a host or a URL."""
    if "://" not in endpoint:
        return "https", endpoint
    parts = urlsplit(endpoint)
    return parts.scheme, parts.netloc


def _credentials(access_key: AccessKey | None) -> Any:
    if access_key is None:
        return CredentialClient()
    if access_key.security_token:
        config = CredentialConfig(
            type="sts",
            access_key_id=access_key.key_id,
            access_key_secret=access_key.secret,
            security_token=access_key.security_token,
        )
    else:
        config = CredentialConfig(
            type="access_key",
            access_key_id=access_key.key_id,
            access_key_secret=access_key.secret,
        )
    return CredentialClient(config)


def _record(item: Any) -> AlidnsRecord:
    rdtype = str(item.type or "").upper()
    return AlidnsRecord(
        record_id=str(item.record_id),
        rr=str(item.rr or ""),
        rdtype=rdtype,
        value=_value(rdtype, str(item.value or "")),
        ttl=int(item.ttl) if item.ttl is not None else None,
    )


def _value(rdtype: str, value: str) -> str:
    if rdtype == "CNAME":
        return value.rstrip(".").lower()
    return value


def _existing(name: str, record: AlidnsRecord) -> ExistingRecord:
    return ExistingRecord(
        name=name, rdtype=record.rdtype, value=record.value, ttl=record.ttl
    )


def _only_cname_to(listing: list[AlidnsRecord], target: str) -> bool:
    wanted = _value("CNAME", target)
    return (
        len(listing) == 1
        and listing[0].rdtype == "CNAME"
        and listing[0].value == wanted
    )


def _describe(listing: list[AlidnsRecord]) -> list[str]:
    """Records in words for a conflict message: ``CNAME x.example.net``."""
    return [
        f'TXT "{record.value}"'
        if record.rdtype == "TXT"
        else f"{record.rdtype} {record.value}"
        for record in listing
    ]


def _unseen(err: ProviderError) -> str:
    return f"a record Alidns reports as in the way ({err.code}) but does not list"
