"""A fake Alibaba Cloud OSS (bucket CNAME operations) and CDN API on 127.0.0.1.

The ``aliyun`` provider reaches OSS through ``alibabacloud_oss_v2`` and CDN through
``alibabacloud_cdn20180510``; pointing them at :attr:`FakeAliyun.oss_url` and
:attr:`FakeAliyun.cdn_url` lets a test run the real SDKs, real HTTP and real
signatures against two servers in the same process.

What the OSS side checks on every request, answering with OSS's XML error
document (``Error`` with ``Code``, ``Message``, ``RequestId``, ``HostId``) when a
check fails:

- the operation: method plus sub-resources (``POST /?cname&comp=add`` is PutCname,
  ``POST /?cname&comp=token`` CreateCnameToken, ``GET /?comp=token&cname=<domain>``
  GetCnameToken, ``GET /?cname`` ListCname, ``POST /?cname&comp=delete``
  DeleteCname); anything else is ``InvalidArgument``;
- the bucket, taken from the path (path style, ``/<bucket>/``) or else from the
  first label of the Host header (virtual-host style); an unknown one is
  ``NoSuchBucket``;
- the V4 signature (``OSS4-HMAC-SHA256``), recomputed here from the canonical
  request with the secret of the access key named in the credential scope:
  ``InvalidAccessKeyId``, ``SignatureDoesNotMatch``, ``RequestTimeTooSkewed``, or
  ``InvalidArgument`` for a scope whose region is not the bucket's;
- ``Content-MD5`` against the body, when sent (``InvalidDigest``);
- the body of PutCname, CreateCnameToken and DeleteCname:
  ``BucketCnameConfiguration/Cname/Domain`` (``MalformedXML`` otherwise).

The OSS model: a domain is bound to at most one bucket. PutCname answers 403
``NeedVerifyDomainOwnership`` unless the domain is under a zone the test
:meth:`FakeAliyun.trust`-ed (as OSS trusts zones hosted in the same account) and
no other bucket holds it, or a TXT record published with
:meth:`FakeAliyun.publish_txt` carries a valid token that the requesting bucket got
for the domain. A proven PutCname moves the domain, releasing the old binding.
Tokens last 72 hours on the fake's clock; asking again meanwhile returns the same
token, and GetCnameToken answers 404 ``CnameTokenNotFound`` without one.
DeleteCname of a domain the bucket does not hold succeeds, as OSS documents today.
Reserved suffixes and host names of three characters or fewer are refused with
``InvalidArgument``: OSS refuses them, but its code for that is not documented.

The CDN side answers the RPC API as the V3 signature (``ACS3-HMAC-SHA256``) and
the JSON error shape (``RequestId``, ``HostId``, ``Code``, ``Message``) describe: it
checks the signature, that every ``x-acs-*`` header, ``host`` and
``content-type`` is signed, the payload hash, the signature nonce and the date,
then serves AddCdnDomain (``DomainAlreadyExist`` for a known domain,
``InvalidSources.Malformed``, ``MissingParameter``) and DescribeCdnDomainDetail
(``InvalidDomain.NotFound``). A new CDN domain gets the CNAME
``<domain>.<cname_suffix>``.

Faults a test injects: :meth:`FakeAliyun.fail` answers the next calls of one
operation with a given status and code. Nothing here is reachable from outside
127.0.0.1, and the servers speak HTTP/1.0 so that no connection outlives a request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from bot.clock import Clock, SystemClock
from bot.config import Bucket
from bot.providers.aliyun import AliyunProvider

logger = logging.getLogger(__name__)

ACCESS_KEY_ID = "LTAI5tFAKEdomainbot0001"
"""The access key id the fake accepts unless told otherwise."""

ACCESS_KEY_SECRET = "fAkE-secret-do-not-log-7c1e93d0b2"
"""Its secret; distinctive, so that a test can look for it in logs and errors."""

TOKEN_LIFETIME = timedelta(hours=72)
CDN_VERSION = "2018-05-10"
MAX_CLOCK_SKEW = timedelta(minutes=15)

_OSS_HOST_ID = "oss-fake.aliyuncs.test"
_CDN_HOST_ID = "cdn.aliyuncs.com"
_RESERVED_SUFFIXES = ("aliyuncs.com", "taobao.com")
_SOURCE_TYPES = frozenset({"ipaddr", "domain", "oss", "fc_domain"})
_CDN_TYPES = frozenset({"web", "download", "video"})
_SCOPES = frozenset({"domestic", "overseas", "global"})


class _Refusal(Exception):
    """An error answer: the HTTP status and the service's code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass
class IssuedToken:
    """A CNAME token the fake handed to ``bucket`` for ``domain``."""

    bucket: str
    domain: str
    token: str
    expires_at: datetime


@dataclass
class Binding:
    bucket: str
    since: datetime


@dataclass
class CdnDomain:
    """A domain added to the fake CDN."""

    domain: str
    cdn_type: str
    sources: list[dict[str, Any]]
    scope: str
    cname: str
    status: str = "configuring"


@dataclass(frozen=True)
class Call:
    """A request the fake accepted (after its signature checked out)."""

    service: str
    operation: str
    bucket: str | None
    params: dict[str, str]
    style: str | None = None
    security_token: str | None = None


@dataclass
class _Fault:
    status: int
    code: str
    message: str
    times: int


@dataclass
class _Bucket:
    name: str
    region: str


@dataclass
class _Request:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)


class FakeAliyun:
    """OSS CNAME operations and the CDN RPC API, in memory, over loopback HTTP.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. All methods
    are safe to call from any thread while the servers run.

    Args:
        access_keys: access key id → secret pairs accepted by both services.
        clock: the time tokens are issued and expire by (the signature date check
            always uses the real time, as the SDKs sign with it).
        cname_suffix: what the fake CDN appends to a domain to make its CNAME.
    """

    def __init__(
        self,
        *,
        access_keys: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        cname_suffix: str = "w.kunlunsl.com",
    ) -> None:
        self.access_keys = dict(access_keys or {ACCESS_KEY_ID: ACCESS_KEY_SECRET})
        self.clock = clock or SystemClock()
        self.cname_suffix = cname_suffix
        self.calls: list[Call] = []
        self._lock = threading.RLock()
        self._buckets: dict[str, _Bucket] = {}
        self._bindings: dict[str, Binding] = {}
        self._tokens: dict[tuple[str, str], IssuedToken] = {}
        self._txt: dict[str, str] = {}
        self._trusted: set[str] = set()
        self._faults: dict[str, _Fault] = {}
        self._nonces: set[str] = set()
        self._cdn: dict[str, CdnDomain] = {}
        self._servers: list[_Server] = []
        self._providers: list[AliyunProvider] = []
        self._threads: list[threading.Thread] = []

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> Self:
        """Serve OSS and CDN on two free ports of 127.0.0.1 from background threads.

        Raises:
            RuntimeError: the servers are already running.
        """
        if self._servers:
            raise RuntimeError("the fake Alibaba Cloud is already running")
        for handler in (self._serve_oss, self._serve_cdn):
            server = _Server(handler)
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.01},
                name=f"fake-aliyun-{server.server_address[1]}",
                daemon=True,
            )
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        logger.debug("fake aliyun listening oss=%s cdn=%s", self.oss_url, self.cdn_url)
        return self

    def stop(self) -> None:
        """Stop serving, close the listening sockets and the providers it made.

        A no-op when stopped.
        """
        for provider in self._providers:
            provider.close()
        self._providers = []
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join()
        self._servers, self._threads = [], []

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def oss_url(self) -> str:
        """The OSS endpoint override, ``http://127.0.0.1:<port>``."""
        return self._url(0)

    @property
    def cdn_url(self) -> str:
        """The CDN endpoint, ``http://127.0.0.1:<port>``."""
        return self._url(1)

    def _url(self, index: int) -> str:
        if not self._servers:
            raise RuntimeError("the fake Alibaba Cloud is not running: call start()")
        return f"http://127.0.0.1:{self._servers[index].server_address[1]}"

    def environ(self, secret: str | None = None) -> dict[str, str]:
        """The credentials variables for the fake's first access key.

        ``secret`` replaces its secret, to sign the way a misconfigured bot would.
        """
        key_id, real_secret = next(iter(self.access_keys.items()))
        return {
            "ALIBABA_CLOUD_ACCESS_KEY_ID": key_id,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": real_secret
            if secret is None
            else secret,
        }

    def provider(self, buckets: Iterable[Bucket], **kwargs: Any) -> AliyunProvider:
        """An :class:`AliyunProvider` aimed at this fake, on the fake's clock.

        It signs with :meth:`environ` unless ``environ`` is passed, and is closed
        when the fake stops.
        """
        kwargs.setdefault("environ", self.environ())
        kwargs.setdefault("clock", self.clock)
        provider = AliyunProvider(
            buckets=buckets,
            oss_endpoint_override=self.oss_url,
            cdn_endpoint=self.cdn_url,
            **kwargs,
        )
        self._providers.append(provider)
        return provider

    # -- what a test sets up and reads -------------------------------------------

    def add_bucket(self, name: str, region: str) -> None:
        """Create bucket ``name`` in ``region`` (such as ``cn-hongkong``)."""
        with self._lock:
            self._buckets[name] = _Bucket(name, region)

    def trust(self, zone: str) -> None:
        """Let domains at or under ``zone`` bind without a TXT proof while free."""
        with self._lock:
            self._trusted.add(zone.lower())

    def publish_txt(self, domain: str, value: str) -> None:
        """Make ``_dnsauth.<domain>`` TXT ``value`` visible to the fake OSS."""
        with self._lock:
            self._txt[domain.lower()] = value

    def withdraw_txt(self, domain: str) -> None:
        """Remove the TXT record of ``domain``."""
        with self._lock:
            self._txt.pop(domain.lower(), None)

    def bind(self, bucket: str, domain: str) -> None:
        """Bind ``domain`` to ``bucket`` directly, as if done outside the bot."""
        with self._lock:
            self._bindings[domain.lower()] = Binding(bucket, self.clock.now())

    def holder_of(self, domain: str) -> str | None:
        """The bucket the fake OSS binds ``domain`` to, or None."""
        with self._lock:
            binding = self._bindings.get(domain.lower())
            return binding.bucket if binding else None

    def token_for(self, bucket: str, domain: str) -> IssuedToken | None:
        """The last token issued to ``bucket`` for ``domain``, expired or not."""
        with self._lock:
            return self._tokens.get((bucket, domain.lower()))

    def cdn_domain(self, domain: str) -> CdnDomain | None:
        """What the fake CDN holds for ``domain``."""
        with self._lock:
            return self._cdn.get(domain.lower())

    def operations(self, service: str | None = None) -> list[str]:
        """The operations accepted so far, oldest first."""
        with self._lock:
            return [c.operation for c in self.calls if service in (None, c.service)]

    def fail(
        self,
        operation: str,
        code: str,
        message: str,
        *,
        status: int = 400,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` calls of ``operation`` with this error."""
        with self._lock:
            self._faults[operation] = _Fault(status, code, message, times)

    def _fault(self, operation: str) -> None:
        with self._lock:
            fault = self._faults.get(operation)
            if fault is None:
                return
            fault.times -= 1
            if fault.times <= 0:
                del self._faults[operation]
        raise _Refusal(fault.status, fault.code, fault.message)

    # -- OSS ---------------------------------------------------------------------

    def _serve_oss(self, request: _Request) -> tuple[int, dict[str, str], bytes]:
        request_id = secrets.token_hex(12).upper()
        headers = {"x-oss-request-id": request_id, "Server": "AliyunOSS"}
        try:
            status, body = self._oss_answer(request)
        except _Refusal as refusal:
            status, body = refusal.status, _oss_error(refusal, request_id)
        if body:
            headers["Content-Type"] = "application/xml"
        return status, headers, body

    def _oss_answer(self, request: _Request) -> tuple[int, bytes]:
        bucket_name, style, key = _oss_target(request)
        operation = _oss_operation(request.method, dict(request.query), key)
        self._check_oss_signature(request, bucket_name)
        _check_content_md5(request)
        with self._lock:
            bucket = self._buckets.get(bucket_name)
        if bucket is None:
            raise _Refusal(404, "NoSuchBucket", "The bucket does not exist.")
        self._fault(operation)
        params = dict(request.query)
        with self._lock:
            self.calls.append(
                Call(
                    "oss",
                    operation,
                    bucket.name,
                    params,
                    style,
                    request.headers.get("x-oss-security-token"),
                )
            )
        serve = {
            "PutCname": self._put_cname,
            "ListCname": self._list_cname,
            "DeleteCname": self._delete_cname,
            "CreateCnameToken": self._create_token,
            "GetCnameToken": self._get_token,
        }[operation]
        return serve(bucket, request)

    def _check_oss_signature(self, request: _Request, bucket: str) -> None:
        auth = request.headers.get("authorization", "")
        algorithm, _, fields_text = auth.partition(" ")
        if algorithm != "OSS4-HMAC-SHA256":
            raise _Refusal(403, "AccessDenied", "The request carries no V4 signature.")
        fields = _auth_fields(fields_text)
        scope = fields.get("Credential", "").split("/")
        if len(scope) != 5 or scope[3:] != ["oss", "aliyun_v4_request"]:
            raise _Refusal(400, "InvalidArgument", "The credential scope is malformed.")
        key_id, day, region = scope[0], scope[1], scope[2]
        secret = self.access_keys.get(key_id)
        if secret is None:
            raise _Refusal(403, "InvalidAccessKeyId", "The access key id is unknown.")
        stamp = request.headers.get("x-oss-date", "")
        _check_clock(stamp, "%Y%m%dT%H%M%SZ", 403, "RequestTimeTooSkewed")
        if not stamp.startswith(day):
            raise _Refusal(400, "InvalidArgument", "The scope date is not x-oss-date.")
        with self._lock:
            known = self._buckets.get(bucket)
        if known is not None and known.region != region:
            raise _Refusal(
                400, "InvalidArgument", f"The scope names region {region!r}."
            )
        payload = request.headers.get("x-oss-content-sha256")
        if payload is None:
            raise _Refusal(400, "InvalidArgument", "x-oss-content-sha256 is missing.")
        if payload != "UNSIGNED-PAYLOAD" and payload != _sha256(request.body):
            raise _Refusal(400, "InvalidArgument", "x-oss-content-sha256 is wrong.")
        additional = [h for h in fields.get("AdditionalHeaders", "").split(";") if h]
        canonical = _oss_canonical_request(request, bucket, additional)
        to_sign = "\n".join(
            [
                "OSS4-HMAC-SHA256",
                stamp,
                "/".join(scope[1:]),
                _sha256(canonical.encode()),
            ]
        )
        key = _hmac(f"aliyun_v4{secret}".encode(), day)
        for part in (region, "oss", "aliyun_v4_request"):
            key = _hmac(key, part)
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, fields.get("Signature", "")):
            raise _Refusal(
                403,
                "SignatureDoesNotMatch",
                "The signature the fake calculated differs from the one sent.",
            )

    def _put_cname(self, bucket: _Bucket, request: _Request) -> tuple[int, bytes]:
        domain = _cname_domain(request.body)
        _check_domain(domain)
        now = self.clock.now()
        with self._lock:
            current = self._bindings.get(domain)
            if current is not None and current.bucket == bucket.name:
                return 200, b""
            free_and_trusted = current is None and self._is_trusted(domain)
            if not free_and_trusted and not self._proven(bucket.name, domain, now):
                raise _Refusal(
                    403,
                    "NeedVerifyDomainOwnership",
                    "Prove control of the domain with a CNAME token, then retry.",
                )
            self._bindings[domain] = Binding(bucket.name, now)
        return 200, b""

    def _list_cname(self, bucket: _Bucket, request: _Request) -> tuple[int, bytes]:
        root = ET.Element("ListCnameResult")
        ET.SubElement(root, "Bucket").text = bucket.name
        ET.SubElement(root, "Owner").text = "1234567890123456"
        with self._lock:
            held = sorted(
                (domain, binding)
                for domain, binding in self._bindings.items()
                if binding.bucket == bucket.name
            )
        for domain, binding in held:
            entry = ET.SubElement(root, "Cname")
            ET.SubElement(entry, "Domain").text = domain
            ET.SubElement(entry, "LastModified").text = binding.since.strftime(
                "%Y-%m-%dT%H:%M:%S.000Z"
            )
            ET.SubElement(entry, "Status").text = "Enabled"
        return 200, _xml(root)

    def _delete_cname(self, bucket: _Bucket, request: _Request) -> tuple[int, bytes]:
        domain = _cname_domain(request.body)
        with self._lock:
            current = self._bindings.get(domain)
            if current is not None and current.bucket == bucket.name:
                del self._bindings[domain]
        return 200, b""

    def _create_token(self, bucket: _Bucket, request: _Request) -> tuple[int, bytes]:
        domain = _cname_domain(request.body)
        _check_domain(domain)
        now = self.clock.now()
        with self._lock:
            issued = self._tokens.get((bucket.name, domain))
            if issued is None or issued.expires_at <= now:
                issued = IssuedToken(
                    bucket.name, domain, secrets.token_hex(16), now + TOKEN_LIFETIME
                )
                self._tokens[(bucket.name, domain)] = issued
        return 200, _token_xml(issued)

    def _get_token(self, bucket: _Bucket, request: _Request) -> tuple[int, bytes]:
        domain = dict(request.query).get("cname", "").lower()
        with self._lock:
            issued = self._tokens.get((bucket.name, domain))
        if issued is None or issued.expires_at <= self.clock.now():
            raise _Refusal(404, "CnameTokenNotFound", "No valid token for this name.")
        return 200, _token_xml(issued)

    def _is_trusted(self, domain: str) -> bool:
        return any(domain == z or domain.endswith(f".{z}") for z in self._trusted)

    def _proven(self, bucket: str, domain: str, now: datetime) -> bool:
        issued = self._tokens.get((bucket, domain))
        published = self._txt.get(domain)
        return (
            issued is not None
            and issued.expires_at > now
            and published is not None
            and hmac.compare_digest(published, issued.token)
        )

    # -- CDN ---------------------------------------------------------------------

    def _serve_cdn(self, request: _Request) -> tuple[int, dict[str, str], bytes]:
        request_id = secrets.token_hex(16).upper()
        try:
            status, answer = self._cdn_answer(request)
        except _Refusal as refusal:
            status = refusal.status
            answer = {
                "Code": refusal.code,
                "Message": refusal.message,
                "HostId": _CDN_HOST_ID,
            }
        answer["RequestId"] = request_id
        headers = {"Content-Type": "application/json;charset=utf-8"}
        return status, headers, json.dumps(answer).encode()

    def _cdn_answer(self, request: _Request) -> tuple[int, dict[str, Any]]:
        if request.method != "POST" or urlsplit(request.path).path != "/":
            raise _Refusal(404, "InvalidAction.NotFound", "Unknown path or method.")
        self._check_cdn_signature(request)
        action = request.headers.get("x-acs-action", "")
        if request.headers.get("x-acs-version") != CDN_VERSION:
            raise _Refusal(400, "InvalidVersion", "Unknown API version.")
        params = dict(request.query)
        if request.body:
            params.update(parse_qsl(request.body.decode(), keep_blank_values=True))
        serve: Callable[[dict[str, str]], dict[str, Any]] | None = {
            "AddCdnDomain": self._add_cdn_domain,
            "DescribeCdnDomainDetail": self._describe_cdn_domain,
        }.get(action)
        if serve is None:
            raise _Refusal(404, "InvalidAction.NotFound", f"No action {action!r}.")
        self._fault(action)
        with self._lock:
            self.calls.append(
                Call(
                    "cdn",
                    action,
                    None,
                    params,
                    security_token=request.headers.get("x-acs-security-token"),
                )
            )
        return 200, serve(params)

    def _check_cdn_signature(self, request: _Request) -> None:
        auth = request.headers.get("authorization", "")
        algorithm, _, fields_text = auth.partition(" ")
        fields = _auth_fields(fields_text)
        if algorithm != "ACS3-HMAC-SHA256" or not fields.get("Signature"):
            raise _Refusal(400, "IncompleteSignature", "No V3 signature was sent.")
        secret = self.access_keys.get(fields.get("Credential", ""))
        if secret is None:
            raise _Refusal(
                404, "InvalidAccessKeyId.NotFound", "The access key id is unknown."
            )
        signed = fields.get("SignedHeaders", "").split(";")
        must_sign = {"host", "content-type"} & set(request.headers)
        must_sign |= {h for h in request.headers if h.startswith("x-acs-")}
        if not must_sign <= set(signed) or not set(signed) <= set(request.headers):
            raise _Refusal(400, "IncompleteSignature", "A common header is not signed.")
        _check_clock(
            request.headers.get("x-acs-date", ""),
            "%Y-%m-%dT%H:%M:%SZ",
            400,
            "InvalidTimeStamp.Expired",
        )
        nonce = request.headers.get("x-acs-signature-nonce", "")
        with self._lock:
            if not nonce or nonce in self._nonces:
                raise _Refusal(400, "SignatureNonceUsed", "The nonce was used before.")
            self._nonces.add(nonce)
        payload = _sha256(request.body)
        if request.headers.get("x-acs-content-sha256") != payload:
            raise _Refusal(
                400, "SignatureDoesNotMatch", "x-acs-content-sha256 is not the body's."
            )
        canonical = "\n".join(
            [
                request.method,
                urlsplit(request.path).path or "/",
                _canonical_query(request.query),
                "".join(f"{h}:{request.headers[h].strip()}\n" for h in sorted(signed)),
                ";".join(sorted(signed)),
                payload,
            ]
        )
        to_sign = f"ACS3-HMAC-SHA256\n{_sha256(canonical.encode())}"
        expected = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256)
        if not hmac.compare_digest(expected.hexdigest(), fields["Signature"]):
            raise _Refusal(
                400,
                "SignatureDoesNotMatch",
                "The signature the fake calculated differs from the one sent.",
            )

    def _add_cdn_domain(self, params: dict[str, str]) -> dict[str, Any]:
        domain = _required(params, "DomainName").lower()
        cdn_type = _required(params, "CdnType")
        if cdn_type not in _CDN_TYPES:
            raise _Refusal(400, "InvalidCdnType.Malformed", f"CdnType {cdn_type!r}.")
        scope = params.get("Scope", "domestic")
        if scope not in _SCOPES:
            raise _Refusal(400, "InvalidScope.Malformed", f"Scope {scope!r}.")
        sources = _sources(_required(params, "Sources"))
        with self._lock:
            if domain in self._cdn:
                raise _Refusal(
                    400, "DomainAlreadyExist", "The domain was added before."
                )
            self._cdn[domain] = CdnDomain(
                domain=domain,
                cdn_type=cdn_type,
                sources=sources,
                scope=scope,
                cname=f"{domain}.{self.cname_suffix}",
            )
        return {}

    def _describe_cdn_domain(self, params: dict[str, str]) -> dict[str, Any]:
        domain = _required(params, "DomainName").lower()
        with self._lock:
            known = self._cdn.get(domain)
        if known is None:
            raise _Refusal(
                404, "InvalidDomain.NotFound", "The domain is not in this account."
            )
        models = [
            {
                "Content": source["content"],
                "Type": source["type"],
                "Port": int(source.get("port", 80)),
                "Priority": str(source.get("priority", "20")),
                "Weight": str(source.get("weight", "10")),
                "Enabled": "online",
            }
            for source in known.sources
        ]
        return {
            "GetDomainDetailModel": {
                "DomainName": known.domain,
                "Cname": known.cname,
                "CdnType": known.cdn_type,
                "DomainStatus": known.status,
                "Scope": known.scope,
                "SourceModels": {"SourceModel": models},
            }
        }


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, handler: Callable[[_Request], tuple[int, dict[str, str], bytes]]
    ) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answer = handler


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fake aliyun http %s", format % args)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        target = urlsplit(self.path)
        request = _Request(
            method=self.command,
            path=self.path,
            query=parse_qsl(target.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        try:
            status, headers, answer = self.server.answer(request)
        except Exception:
            # A bug in the fake: answer as a failing service would, and say why.
            logger.exception("fake aliyun failed on %s %s", self.command, self.path)
            status, headers, answer = 500, {}, b""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Date", format_datetime(datetime.now(UTC), usegmt=True))
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


def _oss_target(request: _Request) -> tuple[str, str, str]:
    """The bucket, the addressing style and the object key of an OSS request."""
    path = unquote(urlsplit(request.path).path)
    first, _, key = path.lstrip("/").partition("/")
    if first:
        return first, "path", key
    host = request.headers.get("host", "").split(":")[0]
    return host.split(".")[0], "virtual", path.lstrip("/")


def _oss_operation(method: str, query: dict[str, str], key: str) -> str:
    comp = query.get("comp")
    if key:
        raise _Refusal(400, "InvalidArgument", "CNAME operations take no object.")
    if method == "POST" and "cname" in query and comp in ("add", "delete", "token"):
        return {"add": "PutCname", "delete": "DeleteCname"}.get(
            comp, "CreateCnameToken"
        )
    if method == "GET" and comp == "token" and query.get("cname"):
        return "GetCnameToken"
    if method == "GET" and query.get("cname") == "" and comp is None:
        return "ListCname"
    raise _Refusal(400, "InvalidArgument", "Not a CNAME operation of this fake.")


def _oss_canonical_request(
    request: _Request, bucket: str, additional: list[str]
) -> str:
    signed = sorted(
        (name, value.strip())
        for name, value in request.headers.items()
        if name.startswith("x-oss-")
        or name in ("content-type", "content-md5")
        or name in additional
    )
    return "\n".join(
        [
            request.method,
            quote(f"/{bucket}/", safe="/"),
            _canonical_query(request.query),
            "".join(f"{name}:{value}\n" for name, value in signed),
            ";".join(additional),
            request.headers.get("x-oss-content-sha256", ""),
        ]
    )


def _canonical_query(query: list[tuple[str, str]]) -> str:
    pairs = sorted((_encode(k), _encode(v)) for k, v in query)
    return "&".join(f"{k}={v}" if v else k for k, v in pairs)


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def _auth_fields(text: str) -> dict[str, str]:
    fields = {}
    for part in text.split(","):
        name, _, value = part.strip().partition("=")
        fields[name] = value
    return fields


def _check_clock(stamp: str, pattern: str, status: int, code: str) -> None:
    try:
        moment = datetime.strptime(stamp, pattern).replace(tzinfo=UTC)
    except ValueError:
        raise _Refusal(status, code, "The date is missing or malformed.") from None
    if abs(datetime.fromtimestamp(time.time(), UTC) - moment) > MAX_CLOCK_SKEW:
        raise _Refusal(status, code, "The request date is too far from now.")


def _check_content_md5(request: _Request) -> None:
    sent = request.headers.get("content-md5")
    if sent is None:
        return
    actual = base64.b64encode(hashlib.md5(request.body).digest()).decode()
    if sent != actual:
        raise _Refusal(400, "InvalidDigest", "Content-MD5 does not match the body.")


def _cname_domain(body: bytes) -> str:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        root = None
    domain = root.findtext("Cname/Domain") if root is not None else None
    if root is None or root.tag != "BucketCnameConfiguration" or not domain:
        raise _Refusal(400, "MalformedXML", "Expected BucketCnameConfiguration.")
    return domain.strip().lower()


def _check_domain(domain: str) -> None:
    if len(domain) <= 3 or domain.endswith(_RESERVED_SUFFIXES):
        raise _Refusal(400, "InvalidArgument", f"{domain} cannot be bound.")


def _token_xml(issued: IssuedToken) -> bytes:
    root = ET.Element("CnameToken")
    ET.SubElement(root, "Bucket").text = issued.bucket
    ET.SubElement(root, "Cname").text = issued.domain
    ET.SubElement(root, "Token").text = issued.token
    ET.SubElement(root, "ExpireTime").text = format_datetime(
        issued.expires_at.astimezone(UTC), usegmt=True
    )
    return _xml(root)


def _oss_error(refusal: _Refusal, request_id: str) -> bytes:
    root = ET.Element("Error")
    ET.SubElement(root, "Code").text = refusal.code
    ET.SubElement(root, "Message").text = refusal.message
    ET.SubElement(root, "RequestId").text = request_id
    ET.SubElement(root, "HostId").text = _OSS_HOST_ID
    return _xml(root)


def _xml(root: ET.Element) -> bytes:
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name, "")
    if not value:
        raise _Refusal(400, "MissingParameter", f"{name} is required.")
    return value


def _sources(text: str) -> list[dict[str, Any]]:
    try:
        sources = json.loads(text)
    except ValueError:
        sources = None
    if not isinstance(sources, list) or not sources:
        raise _Refusal(400, "InvalidSources.Malformed", "Sources is not a list.")
    for source in sources:
        if not isinstance(source, dict) or source.get("type") not in _SOURCE_TYPES:
            raise _Refusal(400, "InvalidSources.Malformed", "A source has no type.")
        content = str(source.get("content") or "")
        if source["type"] == "oss" and not content.endswith(".aliyuncs.com"):
            raise _Refusal(
                400, "InvalidSources.Malformed", "An oss source names no bucket."
            )
    return sources


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()
