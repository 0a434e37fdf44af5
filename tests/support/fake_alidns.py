"""A local stand-in for the Alibaba Cloud DNS (Alidns) API, version 2015-01-09.

It answers on ``127.0.0.1`` as the RPC API does, with JSON bodies carrying a
``RequestId``, and checks every request before it acts:

- the method (POST or GET) and the path ``/``;
- the V3 signature (``ACS3-HMAC-SHA256``): the canonical request is rebuilt from
  the method, path, query, the headers named in ``SignedHeaders`` and the hash of
  the body, hashed, and signed with the AccessKey secret the fake was given; a
  difference is refused with ``SignatureDoesNotMatch``. The signed headers must
  include ``host`` and the ``x-acs-*`` headers the API requires, the body hash
  must match ``x-acs-content-sha256``, the date must be within 15 minutes and a
  nonce is accepted once;
- ``x-acs-action`` and ``x-acs-version: 2015-01-09`` (with the V3 signature the
  action and version travel as headers, not as query parameters);
- the parameters each action requires.

Records live in memory. A CNAME may not share a host with any other record
(``DomainRecordConflict``); an identical record is ``DomainRecordDuplicate``; a
zone the account does not hold is ``IncorrectDomainUser``.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

logger = logging.getLogger(__name__)

VERSION = "2015-01-09"
ALGORITHM = "ACS3-HMAC-SHA256"
MAX_CLOCK_SKEW = timedelta(minutes=15)
REQUIRED_SIGNED_HEADERS = frozenset(
    {
        "host",
        "x-acs-action",
        "x-acs-version",
        "x-acs-date",
        "x-acs-signature-nonce",
        "x-acs-content-sha256",
    }
)
REQUIRED_PARAMETERS: dict[str, tuple[str, ...]] = {
    "DescribeSubDomainRecords": ("SubDomain",),
    "AddDomainRecord": ("DomainName", "RR", "Type", "Value"),
    "UpdateDomainRecord": ("RecordId", "RR", "Type", "Value"),
    "DeleteDomainRecord": ("RecordId",),
}
_AUTHORIZATION = re.compile(
    r"^(?P<algorithm>\S+) Credential=(?P<key_id>[^,]+),"
    r"SignedHeaders=(?P<signed>[^,]+),Signature=(?P<signature>[0-9a-f]+)$"
)


@dataclass(frozen=True)
class FakeRecord:
    """One record in the fake's store."""

    record_id: str
    zone: str
    rr: str
    rdtype: str
    value: str
    ttl: int
    line: str = "default"


class AlidnsRefusal(Exception):
    """An error answer: HTTP status, Alidns error code and message."""

    def __init__(self, status: HTTPStatus, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class FakeAlidns:
    """The fake API server; a context manager that starts and stops it.

    ``zones`` are the zones the fake account holds. ``calls`` lists the actions
    served, in order, refused ones included.
    """

    def __init__(
        self,
        *,
        access_key_id: str,
        access_key_secret: str,
        zones: Iterable[str] = ("example.com",),
    ) -> None:
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.zones = frozenset(zones)
        self.calls: list[str] = []
        self._records: dict[str, FakeRecord] = {}
        self._ids = itertools.count(100_001)
        self._nonces: set[str] = set()
        self._after: dict[str, list[Callable[[], None]]] = {}
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> FakeAlidns:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """The URL to give the provider as its ``endpoint`` setting."""
        if self._server is None:
            raise RuntimeError("the fake Alidns server is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-alidns", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    def add(self, zone: str, rr: str, rdtype: str, value: str, ttl: int = 600) -> str:
        """Put a record in the store directly, as another user of the account would."""
        with self._lock:
            record = FakeRecord(str(next(self._ids)), zone, rr, rdtype, value, ttl)
            self._records[record.record_id] = record
            return record.record_id

    def records(self, zone: str, rr: str | None = None) -> list[FakeRecord]:
        """The records of ``zone`` (at host ``rr`` when given), oldest first."""
        with self._lock:
            return [
                record
                for record in self._records.values()
                if record.zone == zone and (rr is None or record.rr == rr)
            ]

    def after_next(self, action: str, callback: Callable[[], None]) -> None:
        """Run ``callback`` once, right after the next ``action`` is answered."""
        with self._lock:
            self._after.setdefault(action, []).append(callback)

    def handle(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> dict[str, Any]:
        """Check and serve one request; raise AlidnsRefusal to refuse it."""
        if method not in ("GET", "POST"):
            raise AlidnsRefusal(
                HTTPStatus.METHOD_NOT_ALLOWED,
                "UnsupportedHTTPMethod",
                f"The HTTP method {method} is not supported; use GET or POST.",
            )
        url = urlsplit(target)
        if url.path not in ("", "/"):
            raise AlidnsRefusal(
                HTTPStatus.NOT_FOUND,
                "InvalidPath",
                f"The RPC API serves the path / only, not {url.path}.",
            )
        query = parse_qsl(url.query, keep_blank_values=True)
        action = headers.get("x-acs-action", "")
        with self._lock:
            self.calls.append(action or "(none)")
        self._check_signature(method, url.path or "/", query, headers, body)
        self._check_action(action, headers.get("x-acs-version", ""))
        parameters = dict(query)
        if body and "x-www-form-urlencoded" in headers.get("content-type", ""):
            parameters.update(parse_qsl(body.decode(), keep_blank_values=True))
        for name in REQUIRED_PARAMETERS[action]:
            if not parameters.get(name):
                raise AlidnsRefusal(
                    HTTPStatus.BAD_REQUEST,
                    "MissingParameter",
                    f"The input parameter {name} that is mandatory for processing "
                    "this request is not supplied.",
                )
        with self._lock:
            answer = getattr(self, f"_{action}")(parameters)
            callbacks = self._after.pop(action, [])
        for callback in callbacks:
            callback()
        return answer

    def _check_signature(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes,
    ) -> None:
        match = _AUTHORIZATION.match(headers.get("authorization", ""))
        if match is None or match["algorithm"] != ALGORITHM:
            raise AlidnsRefusal(
                HTTPStatus.BAD_REQUEST,
                "IncompleteSignature",
                f"The Authorization header is missing or is not {ALGORITHM}.",
            )
        if match["key_id"] != self.access_key_id:
            raise AlidnsRefusal(
                HTTPStatus.NOT_FOUND,
                "InvalidAccessKeyId.NotFound",
                "Specified access key is not found.",
            )
        signed = match["signed"].split(";")
        missing = sorted(REQUIRED_SIGNED_HEADERS - set(signed))
        absent = [name for name in signed if name not in headers]
        if missing or absent or signed != sorted(signed):
            raise AlidnsRefusal(
                HTTPStatus.BAD_REQUEST,
                "IncompleteSignature",
                "SignedHeaders must list, sorted, headers that are present, among "
                f"them {', '.join(sorted(REQUIRED_SIGNED_HEADERS))}; missing: "
                f"{', '.join(missing + absent) or 'none'}.",
            )
        payload_hash = hashlib.sha256(body).hexdigest()
        if headers["x-acs-content-sha256"] != payload_hash:
            raise AlidnsRefusal(
                HTTPStatus.BAD_REQUEST,
                "InvalidContentSha256",
                "x-acs-content-sha256 does not match the body.",
            )
        expected = sign(
            self.access_key_secret,
            canonical_request(method, path, query, headers, signed, payload_hash),
        )
        if not hmac.compare_digest(expected, match["signature"]):
            raise AlidnsRefusal(
                HTTPStatus.BAD_REQUEST,
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation.",
            )
        self._check_freshness(headers)

    def _check_freshness(self, headers: Mapping[str, str]) -> None:
        try:
            sent = datetime.strptime(headers["x-acs-date"], "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            raise AlidnsRefusal(
                HTTPStatus.BAD_REQUEST,
                "InvalidTimeStamp.Format",
                "x-acs-date must look like 2024-01-31T12:00:00Z.",
            ) from None
        if abs(datetime.now(UTC) - sent.replace(tzinfo=UTC)) > MAX_CLOCK_SKEW:
            raise AlidnsRefusal(
                HTTPStatus.BAD_REQUEST,
                "InvalidTimeStamp.Expired",
                "The request is more than 15 minutes old or in the future.",
            )
        nonce = headers["x-acs-signature-nonce"]
        with self._lock:
            if nonce in self._nonces:
                raise AlidnsRefusal(
                    HTTPStatus.BAD_REQUEST,
                    "SignatureNonceUsed",
                    "The x-acs-signature-nonce has been used already.",
                )
            self._nonces.add(nonce)

    def _check_action(self, action: str, version: str) -> None:
        if version != VERSION:
            raise AlidnsRefusal(
                HTTPStatus.BAD_REQUEST,
                "InvalidVersion",
                f"Version {version!r} is not served here; use {VERSION}.",
            )
        if action not in REQUIRED_PARAMETERS:
            raise AlidnsRefusal(
                HTTPStatus.NOT_FOUND,
                "InvalidAction.NotFound",
                f"Specified api {action!r} is not found.",
            )

    def _DescribeSubDomainRecords(self, parameters: dict[str, str]) -> dict[str, Any]:
        sub_domain = parameters["SubDomain"].lower().rstrip(".")
        zone = parameters.get("DomainName") or self._zone_of(sub_domain)
        self._check_zone(zone)
        rr = "@" if sub_domain == zone else sub_domain.removesuffix(f".{zone}")
        matches = [
            record
            for record in self.records(zone, rr)
            if parameters.get("Type") in (None, record.rdtype)
        ]
        size = min(int(parameters.get("PageSize", "20")), 500)
        page = int(parameters.get("PageNumber", "1"))
        shown = matches[(page - 1) * size : page * size]
        return {
            "TotalCount": len(matches),
            "PageNumber": page,
            "PageSize": size,
            "DomainRecords": {"Record": [_listed(record) for record in shown]},
        }

    def _AddDomainRecord(self, parameters: dict[str, str]) -> dict[str, Any]:
        zone = parameters["DomainName"].lower()
        self._check_zone(zone)
        record = FakeRecord(
            record_id=str(next(self._ids)),
            zone=zone,
            rr=parameters["RR"].lower(),
            rdtype=parameters["Type"].upper(),
            value=parameters["Value"],
            ttl=int(parameters.get("TTL", "600")),
            line=parameters.get("Line", "default"),
        )
        self._check_fits(record)
        self._records[record.record_id] = record
        return {"RecordId": record.record_id}

    def _UpdateDomainRecord(self, parameters: dict[str, str]) -> dict[str, Any]:
        old = self._record(parameters["RecordId"])
        new = replace(
            old,
            rr=parameters["RR"].lower(),
            rdtype=parameters["Type"].upper(),
            value=parameters["Value"],
            ttl=int(parameters.get("TTL", str(old.ttl))),
        )
        if new == old:
            raise AlidnsRefusal(
                HTTPStatus.BAD_REQUEST,
                "DomainRecordDuplicate",
                "The DNS record already exists.",
            )
        self._check_fits(new)
        self._records[new.record_id] = new
        return {"RecordId": new.record_id}

    def _DeleteDomainRecord(self, parameters: dict[str, str]) -> dict[str, Any]:
        record = self._record(parameters["RecordId"])
        del self._records[record.record_id]
        return {"RecordId": record.record_id}

    def _zone_of(self, name: str) -> str:
        held = [z for z in self.zones if name == z or name.endswith(f".{z}")]
        return max(held, key=len) if held else ".".join(name.split(".")[-2:])

    def _check_zone(self, zone: str) -> None:
        if zone not in self.zones:
            raise AlidnsRefusal(
                HTTPStatus.FORBIDDEN,
                "IncorrectDomainUser",
                "The domain name does not belong to the current user.",
            )

    def _record(self, record_id: str) -> FakeRecord:
        record = self._records.get(record_id)
        if record is None:
            raise AlidnsRefusal(
                HTTPStatus.BAD_REQUEST,
                "DomainRecordNotBelongToUser",
                "The DNS record does not exist or does not belong to the user.",
            )
        return record

    def _check_fits(self, new: FakeRecord) -> None:
        """Refuse a duplicate, and a CNAME sharing a host with anything else."""
        for record in self.records(new.zone, new.rr):
            if record.record_id == new.record_id or record.line != new.line:
                continue
            if (record.rdtype, record.value) == (new.rdtype, new.value):
                raise AlidnsRefusal(
                    HTTPStatus.BAD_REQUEST,
                    "DomainRecordDuplicate",
                    "The DNS record already exists.",
                )
            if "CNAME" in (record.rdtype, new.rdtype):
                raise AlidnsRefusal(
                    HTTPStatus.BAD_REQUEST,
                    "DomainRecordConflict",
                    "The DNS record conflicts with other records.",
                )


def canonical_request(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    signed: list[str],
    payload_hash: str,
) -> str:
    """The V3 canonical request, as Alibaba Cloud's signature documentation says.

    Query names and values are percent-encoded per RFC 3986 (space as ``%20``) and
    sorted; each signed header is ``name:value`` with the value trimmed.
    """
    pairs = sorted((_encode(name), _encode(value)) for name, value in query)
    canonical_query = "&".join(f"{name}={value}" for name, value in pairs)
    canonical_headers = "".join(f"{name}:{headers[name].strip()}\n" for name in signed)
    return "\n".join(
        [
            method,
            path,
            canonical_query,
            canonical_headers,
            ";".join(signed),
            payload_hash,
        ]
    )


def sign(secret: str, canonical: str) -> str:
    """The signature of a canonical request: HMAC-SHA256 over the string to sign."""
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    string_to_sign = f"{ALGORITHM}\n{digest}"
    return hmac.new(
        secret.encode(), string_to_sign.encode(), hashlib.sha256
    ).hexdigest()


def _encode(text: str) -> str:
    return quote(text, safe="")


def _listed(record: FakeRecord) -> dict[str, Any]:
    return {
        "RecordId": record.record_id,
        "DomainName": record.zone,
        "RR": record.rr,
        "Type": record.rdtype,
        "Value": record.value,
        "TTL": record.ttl,
        "Line": record.line,
        "Status": "ENABLE",
        "Locked": False,
        "Weight": 1,
    }


class _Handler(BaseHTTPRequestHandler):
    fake: FakeAlidns
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fake alidns: %s", format % args)

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        request_id = str(uuid.uuid4()).upper()
        try:
            answer = self.fake.handle(self.command, self.path, headers, body)
            status = HTTPStatus.OK
        except AlidnsRefusal as refusal:
            status = refusal.status
            answer = {
                "Code": refusal.code,
                "Message": refusal.message,
                "HostId": "alidns.aliyuncs.com",
            }
        answer = {"RequestId": request_id, **answer}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-acs-request-id", request_id)
        # The SDK keeps connections in a pool shared by the whole process; closing
        # each one here keeps no socket open past the server's life.
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True
