"""The ``aliyun`` storage provider: Alibaba Cloud OSS, with Alibaba Cloud CDN.

OSS itself keeps which bucket answers for a user-defined domain (its CNAME
operations: PutCname, ListCname, DeleteCname, CreateCnameToken, GetCnameToken). CDN
acceleration adds the domain to Alibaba Cloud CDN with the bucket as an ``oss``
origin and reads back the CNAME target the CDN assigned. Each service is reached
through one private client class, :class:`_OssClient` and :class:`_CdnClient`: the
seams that ``tests/support/fake_aliyun.py`` fakes.

Credentials: ``ALIBABA_CLOUD_ACCESS_KEY_ID`` and ``ALIBABA_CLOUD_ACCESS_KEY_SECRET``
(with ``ALIBABA_CLOUD_SECURITY_TOKEN`` for STS credentials) when set; otherwise
Alibaba Cloud's default credentials chain (OIDC role, CLI profile,
``~/.alibabacloud/credentials``, ECS RAM role, credentials URI).

What OSS cannot tell, and how this provider copes:

- Which bucket holds a domain. OSS lists the domains of one bucket, so
  :meth:`AliyunProvider.holder` asks the buckets it was given and nothing else.
- Whether a refused PutCname means "another bucket holds it". OSS answers 403
  ``NeedVerifyDomainOwnership`` whenever it wants the TXT proof; the provider then
  looks for the holder among its buckets and otherwise raises
  :class:`~bot.errors.OwnershipProofRequired`, which names no holder.

Every failure leaves as :class:`~bot.errors.ProviderError` (carrying the service's
own code), :class:`~bot.errors.DomainConflict` or, for unusable settings,
:class:`~bot.errors.ConfigError`; no SDK or transport exception escapes.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import alibabacloud_oss_v2 as oss  # type: ignore[import-untyped]
from alibabacloud_cdn20180510 import (  # type: ignore[import-untyped]
    models as cdn_models,
)
from alibabacloud_cdn20180510.client import (  # type: ignore[import-untyped]
    Client as CdnApi,
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
from alibabacloud_tea_openapi import (  # type: ignore[import-untyped]
    utils_models as openapi_models,
)
from alibabacloud_tea_openapi.exceptions import (  # type: ignore[import-untyped]
    AlibabaCloudException,
)
from darabonba.exceptions import RetryError  # type: ignore[import-untyped]

from bot.clock import Clock, SystemClock
from bot.config import Bucket
from bot.errors import (
    ConfigError,
    DomainConflict,
    OwnershipProofRequired,
    ProviderError,
)
from bot.providers.base import BucketDomain, OwnershipToken, StorageProvider

logger = logging.getLogger(__name__)

PROVIDER = "aliyun"


NEED_OWNERSHIP_PROOF = "NeedVerifyDomainOwnership"
TOKEN_NOT_FOUND = "CnameTokenNotFound"
NO_SUCH_CNAME = "NoSuchCname"
CDN_DOMAIN_EXISTS = "DomainAlreadyExist"

DEFAULT_CDN_ENDPOINT = "cdn.aliyuncs.com"

ENV_KEY_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ENV_KEY_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
ENV_SECURITY_TOKEN = "ALIBABA_CLOUD_SECURITY_TOKEN"

# Codes that mean the bot's own credentials or permissions are wrong, not the
# user's request; their messages get a hint for the operator.
_CREDENTIAL_CODES = frozenset(
    {
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "InvalidAccessKeyId.NotFound",
        "InvalidAccessKeyId.Inactive",
        "InvalidSecurityToken.Expired",
        "SecurityTokenExpired",
        "AccessDenied",
        "Forbidden.RAM",
    }
)
_CREDENTIAL_HINT = (
    f" Check the Alibaba Cloud credentials the bot runs with ({ENV_KEY_ID} and "
    f"{ENV_KEY_SECRET}) and that their RAM policy allows this operation."
)

_CREDENTIAL_FAILURES = (oss.exceptions.CredentialsBaseError, CredentialException)
_TRANSPORT_FAILURES = (
    oss.exceptions.RequestError,
    oss.exceptions.ResponseError,
    RetryError,
    OSError,
)

_REGION = re.compile(r"^[a-z]{2,}(-[a-z0-9]+)+$")
_GLOBAL_ENDPOINTS = frozenset({"oss-accelerate", "oss-accelerate-overseas"})

_Result = TypeVar("_Result")


def oss_region(endpoint: str) -> str | None:
    """The OSS region an endpoint serves, or None when it names no region.

    ``oss-cn-hangzhou.aliyuncs.com`` and ``oss-cn-hangzhou-internal.aliyuncs.com``
    give ``cn-hangzhou``; the dual-stack form ``cn-hangzhou.oss.aliyuncs.com``
    does too. The global acceleration endpoints give None.
    """
    labels = endpoint.lower().removesuffix(".").split(".")
    first = labels[0]
    if first in _GLOBAL_ENDPOINTS:
        return None
    if first.startswith("oss-"):
        region = first.removeprefix("oss-").removesuffix("-internal")
    elif len(labels) > 1 and labels[1] == "oss":
        region = first
    else:
        return None
    return region if _REGION.match(region) else None


def credentials_from_environment(
    environ: Mapping[str, str] | None = None,
) -> Any:
    """The Alibaba Cloud credentials the bot signs with.

    The access key pair from the environment when both halves are set (an STS
    pair when ``ALIBABA_CLOUD_SECURITY_TOKEN`` is set too); with neither set, the
    SDK's default credentials chain, which is asked only when a request is signed.

    Raises:
        ConfigError: only one half of the access key pair is set.
    """
    env = os.environ if environ is None else environ
    key_id = env.get(ENV_KEY_ID, "")
    secret = env.get(ENV_KEY_SECRET, "")
    token = env.get(ENV_SECURITY_TOKEN, "")
    if bool(key_id) != bool(secret):
        missing = ENV_KEY_SECRET if key_id else ENV_KEY_ID
        raise ConfigError(
            [
                f"{missing} is not set; set both {ENV_KEY_ID} and {ENV_KEY_SECRET}, "
                "or neither to use the Alibaba Cloud credentials chain"
            ]
        )
    if not key_id:
        return CredentialClient()
    config = CredentialConfig(
        type="sts" if token else "access_key",
        access_key_id=key_id,
        access_key_secret=secret,
        security_token=token or None,
    )
    return CredentialClient(config)


@dataclass(frozen=True)
class _CnameEntry:
    """One domain in a bucket's ListCname answer."""

    domain: str
    since: datetime | None


class _ChainedCredentials(oss.types.CredentialsProvider):  # type: ignore[misc]
    """Hands the OSS signer whatever the Alibaba Cloud credentials client holds."""

    def __init__(self, credentials: Any) -> None:
        self._credentials = credentials

    def get_credentials(self) -> Any:
        model = self._credentials.get_credential()
        return oss.credentials.Credentials(
            access_key_id=model.access_key_id,
            access_key_secret=model.access_key_secret,
            security_token=model.security_token or None,
        )


class _OssClient:
    """All traffic to OSS: the CNAME operations, one bucket at a time.

    One SDK client is kept per region and endpoint. With ``endpoint_override`` every
    request goes there in path style (``<override>/<bucket>/?cname``), still signed
    for the bucket's own region; plain HTTP is accepted only for such an override.
    """

    def __init__(self, credentials: Any, endpoint_override: str | None) -> None:
        self._credentials = _ChainedCredentials(credentials)
        self._override = endpoint_override
        self._clients: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the HTTP sessions of every SDK client made so far."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for _client, transport in clients:
            transport.close()

    def list_cnames(self, bucket: Bucket) -> list[_CnameEntry]:
        """The domains bound to ``bucket``; raises ProviderError when OSS refuses."""
        request = oss.models.ListCnameRequest(bucket=bucket.name)
        result = self._call("ListCname", bucket, lambda c: c.list_cname(request))
        entries = []
        for item in result.cnames or []:
            domain = str(item.domain or "").lower()
            if not domain:
                continue
            if item.is_wild_card:
                domain = f"*.{domain}"
            entries.append(_CnameEntry(domain, _iso_time(item.last_modified)))
        return entries

    def put_cname(self, bucket: Bucket, domain: str) -> None:
        """Bind ``domain`` to ``bucket``; raises ProviderError when OSS refuses."""
        request = oss.models.PutCnameRequest(
            bucket=bucket.name,
            bucket_cname_configuration=_cname_configuration(domain),
        )
        self._call("PutCname", bucket, lambda c: c.put_cname(request))

    def delete_cname(self, bucket: Bucket, domain: str) -> None:
        """Unbind ``domain`` from ``bucket``; raises ProviderError when OSS refuses."""
        request = oss.models.DeleteCnameRequest(
            bucket=bucket.name,
            bucket_cname_configuration=_cname_configuration(domain),
        )
        self._call("DeleteCname", bucket, lambda c: c.delete_cname(request))

    def get_token(self, bucket: Bucket, domain: str) -> OwnershipToken | None:
        """The valid token OSS holds for ``domain`` on ``bucket``, or None.

        Raises ProviderError when OSS refuses for any reason but "no token".
        """
        request = oss.models.GetCnameTokenRequest(bucket=bucket.name, cname=domain)
        try:
            result = self._call(
                "GetCnameToken", bucket, lambda c: c.get_cname_token(request)
            )
        except ProviderError as err:
            if err.code == TOKEN_NOT_FOUND:
                return None
            raise
        return _ownership_token(result.cname_token, "GetCnameToken")

    def create_token(self, bucket: Bucket, domain: str) -> OwnershipToken:
        """Ask OSS for a token (the valid one if there is one); ProviderError if not."""
        request = oss.models.CreateCnameTokenRequest(
            bucket=bucket.name,
            bucket_cname_configuration=_cname_configuration(domain),
        )
        result = self._call(
            "CreateCnameToken", bucket, lambda c: c.create_cname_token(request)
        )
        return _ownership_token(result.cname_token, "CreateCnameToken")

    def _call(
        self, operation: str, bucket: Bucket, send: Callable[[Any], _Result]
    ) -> _Result:
        client = self._client(bucket)
        logger.debug("oss request operation=%s bucket=%s", operation, bucket.name)
        try:
            return send(client)
        except Exception as err:
            # The SDK wraps service, transport and credential failures alike;
            # none of them may leave this seam.
            raise _oss_error(operation, bucket, err) from err

    def _client(self, bucket: Bucket) -> Any:
        region = oss_region(bucket.endpoint)
        if region is None:
            raise ConfigError([_region_problem(bucket)])
        endpoint = self._override or bucket.endpoint
        with self._lock:
            known = self._clients.get((region, endpoint))
            if known is not None:
                return known[0]
            transport = oss.transport.RequestsHttpClient()
            config = oss.config.load_default()
            config.region = region
            config.endpoint = endpoint
            config.credentials_provider = self._credentials
            config.http_client = transport
            config.use_path_style = self._override is not None
            client = oss.Client(config)
            self._clients[(region, endpoint)] = (client, transport)
        return client


class _CdnClient:
    """All traffic to Alibaba Cloud CDN: adding a domain and reading its CNAME."""

    def __init__(self, credentials: Any, endpoint: str) -> None:
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        config = openapi_models.Config(
            credential=credentials,
            endpoint=parts.netloc,
            protocol=parts.scheme,
            connect_timeout=10_000,
            read_timeout=20_000,
        )
        self._api = CdnApi(config)
        self._endpoint = parts.netloc

    def target(self, bucket: Bucket, domain: str) -> str:
        """Add ``domain`` with ``bucket`` as its origin if needed; the CDN's CNAME.

        Raises ProviderError when the CDN refuses or has assigned no CNAME yet.
        """
        try:
            self._add(bucket, domain)
            logger.info("cdn domain added domain=%s bucket=%s", domain, bucket.name)
        except ProviderError as err:
            if err.code != CDN_DOMAIN_EXISTS:
                raise
            logger.debug("cdn domain exists domain=%s", domain)
        cname = self._describe(domain)
        if not cname:
            raise ProviderError(
                PROVIDER,
                "DescribeCdnDomainDetail",
                f"Alibaba Cloud CDN has not assigned a CNAME to {domain} yet; try "
                "again in a few minutes",
            )
        return cname

    def _add(self, bucket: Bucket, domain: str) -> None:
        origin = {
            "content": bucket.internet_domain,
            "type": "oss",
            "port": 80,
            "priority": "20",
            "weight": "10",
        }
        request = cdn_models.AddCdnDomainRequest(
            cdn_type="web",
            domain_name=domain,
            sources=json.dumps([origin], separators=(",", ":")),
        )
        self._call("AddCdnDomain", domain, lambda: self._api.add_cdn_domain(request))

    def _describe(self, domain: str) -> str:
        request = cdn_models.DescribeCdnDomainDetailRequest(domain_name=domain)
        response = self._call(
            "DescribeCdnDomainDetail",
            domain,
            lambda: self._api.describe_cdn_domain_detail(request),
        )
        detail = response.body.get_domain_detail_model if response.body else None
        return str(detail.cname or "").lower().removesuffix(".") if detail else ""

    def _call(self, operation: str, domain: str, send: Callable[[], Any]) -> Any:
        logger.debug("cdn request operation=%s domain=%s", operation, domain)
        try:
            return send()
        except AlibabaCloudException as err:
            raise _cdn_error(operation, err) from err
        except Exception as err:
            # Transport and credential failures come wrapped in the SDK's own
            # classes; none of them may leave this seam.
            raise _failure(operation, "Alibaba Cloud CDN", self._endpoint, err) from err


class AliyunProvider(StorageProvider):
    """Binds domains to buckets in Alibaba Cloud OSS; CDN from Alibaba Cloud CDN.

    Args:
        buckets: the buckets this provider answers for; :meth:`holder` and the
            conflict check look only at these.
        environ: where to read the credentials variables (default ``os.environ``).
        oss_endpoint_override: send every OSS request to this URL instead of the
            bucket's endpoint (tests; ``http://`` is allowed here only).
        cdn_endpoint: the CDN API's endpoint, ``cdn.aliyuncs.com`` by default
            (tests may give ``http://127.0.0.1:<port>``).
        clock: decides whether a token OSS returned is still valid.

    Raises:
        ConfigError: a bucket's endpoint names no OSS region, an override is not
            an http(s) URL, or only half of the access key pair is set. The
            methods raise it too for such a bucket when it was not given here.
    """

    name = PROVIDER

    def __init__(
        self,
        *,
        buckets: Iterable[Bucket] = (),
        environ: Mapping[str, str] | None = None,
        oss_endpoint_override: str | None = None,
        cdn_endpoint: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._buckets = tuple(buckets)
        problems = [
            _region_problem(b) for b in self._buckets if not oss_region(b.endpoint)
        ]
        problems += _override_problems(oss_endpoint_override, cdn_endpoint)
        if problems:
            raise ConfigError(problems)
        credentials = credentials_from_environment(environ)
        self._oss = _OssClient(credentials, oss_endpoint_override)
        self._cdn = _CdnClient(credentials, cdn_endpoint or DEFAULT_CDN_ENDPOINT)
        self._clock = clock or SystemClock()

    def close(self) -> None:
        """Close the HTTP sessions to OSS; the provider stays usable."""
        self._oss.close()

    def bind(self, bucket: Bucket, domain: str) -> bool:
        """Bind with PutCname; False when ListCname shows it bound there already.

        Raises :class:`DomainConflict` when OSS answers ``NeedVerifyDomainOwnership``
        (the TXT proof is wanted): the holder is the first of this provider's
        buckets that lists the domain, else OwnershipProofRequired. Raises
        :class:`ProviderError` with OSS's code and message for any other refusal.
        """
        if self._entry(bucket, domain) is not None:
            return False
        try:
            self._oss.put_cname(bucket, domain)
        except ProviderError as err:
            if err.code != NEED_OWNERSHIP_PROOF:
                raise
            held = self._holder_besides(bucket, domain)
            if held is None:
                raise OwnershipProofRequired(domain) from err
            raise DomainConflict(domain, held.bucket, held.since) from err
        logger.info("oss bound domain=%s bucket=%s", domain, bucket.name)
        return True

    def release(self, bucket: Bucket, domain: str) -> bool:
        """Unbind with DeleteCname; False when ListCname does not show it there.

        Raises :class:`ProviderError` when OSS refuses.
        """
        if self._entry(bucket, domain) is None:
            return False
        try:
            self._oss.delete_cname(bucket, domain)
        except ProviderError as err:
            if err.code != NO_SUCH_CNAME:
                raise
            logger.debug("oss had already released domain=%s", domain)
            return False
        logger.info("oss released domain=%s bucket=%s", domain, bucket.name)
        return True

    def holder(self, domain: str) -> BucketDomain | None:
        """The first of this provider's buckets whose ListCname shows ``domain``.

        Best effort: OSS cannot say which bucket of another account, or of this
        account but not given to the provider, holds a domain. Raises
        :class:`ProviderError` when OSS refuses to list a bucket.
        """
        for bucket in self._buckets:
            entry = self._entry(bucket, domain)
            if entry is not None:
                return BucketDomain(entry.domain, bucket.name, entry.since)
        return None

    def domains(self, bucket: Bucket) -> list[BucketDomain]:
        """ListCname for ``bucket``, sorted by name; ProviderError when refused."""
        entries = self._oss.list_cnames(bucket)
        found = [BucketDomain(e.domain, bucket.name, e.since) for e in entries]
        return sorted(found, key=lambda found_domain: found_domain.domain)

    def ownership_token(self, bucket: Bucket, domain: str) -> OwnershipToken:
        """OSS's token for ``_dnsauth.<domain>``: the valid one, else a new one.

        OSS keeps a token 72 hours and hands out the same one meanwhile. Raises
        :class:`ProviderError` when OSS refuses.
        """
        token = self._oss.get_token(bucket, domain)
        if token is not None and token.expires_at > self._clock.now():
            return token
        token = self._oss.create_token(bucket, domain)
        logger.info(
            "oss ownership token issued domain=%s bucket=%s expires_at=%s",
            domain,
            bucket.name,
            token.expires_at.isoformat(),
        )
        return token

    def take_over(self, bucket: Bucket, domain: str) -> bool:
        """PutCname once the TXT record is in place; OSS drops the old binding.

        False when ``bucket`` holds the domain already. Raises
        :class:`ProviderError` (code ``NeedVerifyDomainOwnership``) while OSS does
        not see the record yet, and with OSS's code for any other refusal.
        """
        if self._entry(bucket, domain) is not None:
            return False
        try:
            self._oss.put_cname(bucket, domain)
        except ProviderError as err:
            if err.code != NEED_OWNERSHIP_PROOF:
                raise
            raise ProviderError(
                PROVIDER,
                f"PutCname for bucket {bucket.name}",
                f"OSS does not see the TXT record _dnsauth.{domain} with this "
                "bucket's token yet; check the record and try again in a few minutes",
                code=NEED_OWNERSHIP_PROOF,
            ) from err
        logger.info("oss took over domain=%s bucket=%s", domain, bucket.name)
        return True

    def offers_cdn(self, bucket: Bucket) -> bool:
        """Always: Alibaba Cloud CDN can front any bucket (or its cdn_domain)."""
        return True

    def cdn_target(self, bucket: Bucket, domain: str) -> str:
        """The bucket's ``cdn_domain`` template if set, else Alibaba Cloud CDN's name.

        Without a template the domain is added to CDN with the bucket's Internet
        domain as an ``oss`` origin (an existing CDN domain is only described) and
        the CNAME the CDN assigned is returned. Raises :class:`ProviderError` with
        the CDN's code when it refuses.
        """
        template = bucket.cdn_target(domain)
        if template is not None:
            return template
        return self._cdn.target(bucket, domain)

    def _entry(self, bucket: Bucket, domain: str) -> _CnameEntry | None:
        entries = self._oss.list_cnames(bucket)
        return next((e for e in entries if e.domain == domain), None)

    def _holder_besides(self, bucket: Bucket, domain: str) -> BucketDomain | None:
        for other in self._buckets:
            if other.name == bucket.name:
                continue
            try:
                entry = self._entry(other, domain)
            except ProviderError as err:
                logger.warning(
                    "oss could not list bucket=%s while looking for domain=%s: %s",
                    other.name,
                    domain,
                    err,
                )
                continue
            if entry is not None:
                return BucketDomain(domain, other.name, entry.since)
        return None


def _cname_configuration(domain: str) -> Any:
    return oss.models.BucketCnameConfiguration(cname=oss.models.Cname(domain=domain))


def _ownership_token(found: Any, operation: str) -> OwnershipToken:
    token = str(getattr(found, "token", None) or "")
    expires_at = _http_time(getattr(found, "expire_time", None))
    if not token or expires_at is None:
        raise ProviderError(
            PROVIDER,
            operation,
            "OSS answered without a token or a readable expiry time",
            code="BadCnameToken",
        )
    return OwnershipToken(token=token, expires_at=expires_at)


def _http_time(text: Any) -> datetime | None:
    """``Wed, 23 Feb 2022 21:16:37 GMT`` as an aware datetime, else None."""
    if not text:
        return None
    try:
        moment = parsedate_to_datetime(str(text))
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso_time(text: Any) -> datetime | None:
    """``2021-09-15T02:35:07.000Z`` as an aware datetime, else None."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _oss_error(operation: str, bucket: Bucket, err: Exception) -> ProviderError:
    where = f"{operation} for bucket {bucket.name}"
    service = next(
        (e for e in _chain(err) if isinstance(e, oss.exceptions.ServiceError)), None
    )
    if service is None:
        return _failure(where, "OSS", bucket.endpoint, err)
    code = str(service.code or "") or None
    message = str(service.message or "").strip() or f"HTTP {service.status_code}"
    if code in _CREDENTIAL_CODES:
        message += _CREDENTIAL_HINT
    return ProviderError(PROVIDER, where, message, code=code)


def _cdn_error(operation: str, err: Any) -> ProviderError:
    data = err.data if isinstance(err.data, dict) else {}
    code = str(data.get("Code") or err.code or "") or None
    message = str(data.get("Message") or "").strip()
    if not message:
        message = f"HTTP {getattr(err, 'status_code', '?')}"
    if code in _CREDENTIAL_CODES:
        message += _CREDENTIAL_HINT
    return ProviderError(PROVIDER, operation, message, code=code)


def _failure(
    operation: str, service: str, endpoint: str, err: BaseException
) -> ProviderError:
    """A failure with no answer from the service: credentials, network, or a bug."""
    chain = list(_chain(err))
    cause = type(chain[-1]).__name__
    if any(isinstance(e, _CREDENTIAL_FAILURES) for e in chain):
        return ProviderError(
            PROVIDER,
            operation,
            "no Alibaba Cloud credentials could be found; set "
            f"{ENV_KEY_ID} and {ENV_KEY_SECRET}, or configure the credentials chain",
            code="CredentialsMissing",
        )
    if any(isinstance(e, _TRANSPORT_FAILURES) for e in chain):
        return ProviderError(
            PROVIDER,
            operation,
            f"could not reach {service} at {endpoint} ({cause}); check the network "
            "and the endpoint",
        )
    return ProviderError(
        PROVIDER, operation, f"{service} gave an answer the bot cannot use ({cause})"
    )


def _chain(err: BaseException) -> Iterator[BaseException]:
    """``err`` and what it wraps, through the SDKs' own links and Python's."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        yield current
        seen.add(id(current))
        unwrap = getattr(current, "unwrap", None)
        inner = unwrap() if callable(unwrap) else None
        inner = inner or getattr(current, "inner_exception", None)
        inner = inner or current.__cause__ or current.__context__
        current = inner if isinstance(inner, BaseException) else None


def _region_problem(bucket: Bucket) -> str:
    return (
        f"buckets[{bucket.name}].endpoint: {bucket.endpoint} names no OSS region; "
        "use the bucket's regional endpoint, such as oss-cn-hangzhou.aliyuncs.com"
    )


def _override_problems(oss_override: str | None, cdn_endpoint: str | None) -> list[str]:
    problems = []
    if oss_override is not None and not _is_http_url(oss_override):
        problems.append(
            f"OSS endpoint override {oss_override!r}: give a URL such as "
            "http://127.0.0.1:9000"
        )
    if cdn_endpoint and "://" in cdn_endpoint and not _is_http_url(cdn_endpoint):
        problems.append(
            f"CDN endpoint {cdn_endpoint!r}: give a host name or an http(s) URL"
        )
    return problems


def _is_http_url(text: str) -> bool:
    return text.startswith(("http://", "https://")) and bool(urlsplit(text).netloc)
