"""A real PowerDNS authoritative server for tests, from Debian's ``pdns-server``.

It runs from a configuration directory of its own with a gsqlite3 database in the
same directory, answers DNS on a free port of ``127.0.0.1`` and serves its HTTP API
(with an API key) on another. Security polling, which would send a DNS question to
the outside world, is switched off, and so are the caches, so that an answer always
shows the database as it is.

:data:`ZONE` is created through the HTTP API when the server starts, with SOA and
``NS ns1.<zone>``; every other record is added by a test.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

logger = logging.getLogger(__name__)

ZONE = "example.org.test"
SCHEMA = Path("/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql")
ADDRESS = "127.0.0.1"
STARTUP_SECONDS = 15.0
STOP_SECONDS = 5.0
HTTP_SECONDS = 5.0

_CONFIG = """\
launch=gsqlite3
gsqlite3-database={database}
gsqlite3-pragma-synchronous=0
local-address={address}
local-port={dns_port}
socket-dir={directory}
daemon=no
guardian=no
disable-syslog=yes
log-timestamp=no
loglevel=4
api=yes
api-key={api_key}
webserver=yes
webserver-address={address}
webserver-port={http_port}
webserver-allow-from=127.0.0.0/8
security-poll-suffix=
cache-ttl=0
negquery-cache-ttl=0
query-cache-ttl=0
zone-cache-refresh-interval=0
consistent-backends=yes
distributor-threads=1
receiver-threads=1
"""


class PowerDns:
    """``pdns_server`` started by :meth:`start` and stopped by :meth:`stop`.

    Use it as a context manager. A failure to start raises RuntimeError with the
    reason and the end of the server's output.
    """

    def __init__(
        self,
        directory: Path,
        *,
        zone: str = ZONE,
        address: str = ADDRESS,
        dns_port: int = 0,
    ) -> None:
        """``dns_port`` 0 takes a free port; name servers found through a
        delegation need 53, on an ``address`` of their own."""
        self.directory = directory
        self.zone = zone
        self.address = address
        self.api_key = secrets.token_urlsafe(24)
        self.dns_port = dns_port
        self.http_port = 0
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PowerDns:
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
    def api_url(self) -> str:
        """The server's base URL, the form lexicon's ``pdns_server`` takes."""
        return f"http://{self.address}:{self.http_port}"

    @property
    def dns_address(self) -> tuple[str, int]:
        return (self.address, self.dns_port)

    def start(self) -> None:
        """Start the server and create its zone; RuntimeError if it fails."""
        program = _program()
        if not SCHEMA.exists():
            raise RuntimeError(
                f"{SCHEMA} is missing; scripts/test installs the Debian package "
                "pdns-backend-sqlite3 that ships it"
            )
        try:
            self._write_files()
            with self._path("pdns.out").open("wb") as output:
                self._process = subprocess.Popen(
                    [program, f"--config-dir={self.directory}"],
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            self._wait_until_ready()
            self._create_zone()
        except BaseException:
            self.stop()
            raise
        logger.info(
            "PowerDNS started: dns=%s:%d api=%s directory=%s",
            self.address,
            self.dns_port,
            self.api_url,
            self.directory,
        )

    def stop(self) -> None:
        """Stop the server; safe to call twice."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_SECONDS)

    def query(self, name: str, rdtype: str) -> tuple[str, set[str]]:
        """Ask the server directly, recursion off: the rcode and the answer's rdata.

        Only records owned by ``name`` and of type ``rdtype`` are returned, as
        zone-file text (names with their final dot).
        """
        query = dns.message.make_query(name, rdtype)
        query.flags &= ~dns.flags.RD
        response = dns.query.tcp(
            query, self.address, timeout=HTTP_SECONDS, port=self.dns_port
        )
        wanted = dns.rdatatype.from_text(rdtype)
        values = {
            rdata.to_text()
            for rrset in response.answer
            if rrset.rdtype == wanted and rrset.name.to_text() == f"{name}."
            for rdata in rrset
        }
        return dns.rcode.to_text(response.rcode()), values

    def set_records(
        self, name: str, rdtype: str, *contents: str, ttl: int = 60
    ) -> None:
        """Replace the ``rdtype`` records at ``name`` through the HTTP API.

        ``contents`` are in PowerDNS's form: absolute names end with a dot, TXT
        values are quoted.
        """
        rrset = {
            "name": f"{name}.",
            "type": rdtype,
            "ttl": ttl,
            "changetype": "REPLACE",
            "records": [
                {"content": content, "disabled": False} for content in contents
            ],
        }
        self.api("PATCH", f"zones/{self.zone}.", {"rrsets": [rrset]})

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """One call to the HTTP API; RuntimeError with the server's words if refused."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.api_url}/api/v1/servers/localhost/{path}",
            data=data,
            method=method,
            headers={"X-API-Key": self.api_key, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=HTTP_SECONDS) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as err:
            with err:
                detail = err.read().decode(errors="replace")
            raise RuntimeError(
                f"PowerDNS API {method} {path}: HTTP {err.code} {detail}"
            ) from err
        return json.loads(text) if text else None

    def _path(self, name: str) -> Path:
        return self.directory / name

    def _write_files(self) -> None:
        database = self._path("pdns.sqlite3")
        with sqlite3.connect(database) as connection:
            connection.executescript(SCHEMA.read_text())
        connection.close()
        self.dns_port = self.dns_port or _free_port(self.address)
        self.http_port = _free_port(self.address)
        self._path("pdns.conf").write_text(
            _CONFIG.format(
                database=database,
                address=self.address,
                dns_port=self.dns_port,
                http_port=self.http_port,
                directory=self.directory,
                api_key=self.api_key,
            )
        )

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise RuntimeError(
                    "pdns_server stopped while starting; the end of its output:\n"
                    + self._tail()
                )
            try:
                self.api("GET", "zones")
            except (OSError, RuntimeError):
                time.sleep(0.05)
                continue
            return
        raise RuntimeError(
            f"pdns_server did not answer within {STARTUP_SECONDS:g} s; the end of "
            "its output:\n" + self._tail()
        )

    def _create_zone(self) -> None:
        self.api(
            "POST",
            "zones",
            {
                "name": f"{self.zone}.",
                "kind": "Native",
                "nameservers": [f"ns1.{self.zone}."],
                "rrsets": [
                    {
                        "name": f"ns1.{self.zone}.",
                        "type": "A",
                        "ttl": 3600,
                        "records": [{"content": self.address, "disabled": False}],
                    }
                ],
            },
        )

    def _tail(self) -> str:
        path = self._path("pdns.out")
        if not path.exists():
            return "(empty)"
        lines = path.read_text(errors="replace").splitlines()[-15:]
        return "\n".join(lines) or "(empty)"


def _program() -> str:
    path = shutil.which("pdns_server") or shutil.which(
        "pdns_server", path="/usr/sbin:/usr/bin"
    )
    if path is None:
        raise RuntimeError(
            "pdns_server is not installed; scripts/test installs the Debian packages "
            "pdns-server and pdns-backend-sqlite3"
        )
    return path


def _free_port(address: str) -> int:
    """A port of ``address`` that is free for both TCP and UDP right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((address, 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((address, port))
                except OSError:
                    continue
        return port
    raise RuntimeError("found no port of 127.0.0.1 free for both TCP and UDP")
