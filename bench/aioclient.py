"""A light asyncio S3 client for the small-object loops: its own HTTP/1.1 and SigV4.

Why: the threaded client (botocore's signer, http.client, one thread per connection)
spends more CPU per request than the fastest servers spend answering it, and on a
2-core machine the client and the server share the cores, so a heavy client compresses
every ratio towards 1. This one signs with a cached signing key (one SHA-256 and one
HMAC per request), writes each request as one buffer, and parses only the status line,
Content-Length / chunked framing and the headers it is asked for. The bench prints its
CPU per request next to the server's, so a reader can check it stays well below.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from dataclasses import dataclass
from urllib.parse import quote

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_SAFE = "-_.~"


class ProtocolError(Exception):
    """The server's reply could not be framed (it is counted as a failed request)."""


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    nbytes: int


class Signer:
    """AWS SigV4 for path-style S3 requests with a host, date and payload-hash header."""

    def __init__(self, access_key: str, secret_key: str, region: str = "us-east-1",
                 service: str = "s3") -> None:
        self._ak = access_key
        self._sk = secret_key.encode()
        self._region = region
        self._service = service
        self._day = ""
        self._key = b""

    def _signing_key(self, day: str) -> bytes:
        if day != self._day:
            k = hmac.new(b"AWS4" + self._sk, day.encode(), hashlib.sha256).digest()
            for part in (self._region, self._service, "aws4_request"):
                k = hmac.new(k, part.encode(), hashlib.sha256).digest()
            self._day, self._key = day, k
        return self._key

    def headers(self, method: str, path: str, query: str, host: str, payload_hash: str,
                now: float | None = None) -> str:
        """The signed headers as raw ``Name: value\\r\\n`` lines; ``path`` and ``query``
        must already be in canonical (RFC 3986, sorted) form."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        day = stamp[:8]
        canonical = (f"{method}\n{path}\n{query}\nhost:{host}\nx-amz-content-sha256:{payload_hash}\n"
                     f"x-amz-date:{stamp}\n\nhost;x-amz-content-sha256;x-amz-date\n{payload_hash}")
        scope = f"{day}/{self._region}/{self._service}/aws4_request"
        to_sign = (f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n"
                   f"{hashlib.sha256(canonical.encode()).hexdigest()}")
        sig = hmac.new(self._signing_key(day), to_sign.encode(), hashlib.sha256).hexdigest()
        return (f"Host: {host}\r\nX-Amz-Content-Sha256: {payload_hash}\r\nX-Amz-Date: {stamp}\r\n"
                f"Authorization: AWS4-HMAC-SHA256 Credential={self._ak}/{scope}, "
                f"SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={sig}\r\n")


def canonical_path(path: str) -> str:
    return quote(path, safe="/" + _SAFE)


def canonical_query(query: dict[str, str] | None) -> str:
    if not query:
        return ""
    return "&".join(f"{quote(k, safe=_SAFE)}={quote(v, safe=_SAFE)}"
                    for k, v in sorted(query.items()))


class Connection:
    """One keep-alive HTTP/1.1 connection; requests on it are sequential."""

    def __init__(self, host: str, port: int, signer: Signer) -> None:
        self.host, self.port = host, port
        self._hostport = f"{host}:{port}"
        self._signer = signer
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(
                self.host, self.port, limit=1 << 20)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def request(self, method: str, path: str, query: dict[str, str] | None = None,
                      body: bytes = b"", payload_hash: str | None = None) -> Reply:
        """Send one signed request and read the whole reply. Any error closes the
        connection (the next request reconnects); nothing is retried."""
        cpath, cquery = canonical_path(path), canonical_query(query)
        digest = payload_hash or (hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256)
        head = (f"{method} {cpath}{'?' + cquery if cquery else ''} HTTP/1.1\r\n"
                + self._signer.headers(method, cpath, cquery, self._hostport, digest)
                + f"Content-Length: {len(body)}\r\n\r\n").encode()
        try:
            await self.connect()
            assert self._reader is not None and self._writer is not None
            self._writer.write(head + body if len(body) < 65536 else head)
            if len(body) >= 65536:
                self._writer.write(body)
            return await _read_reply(self._reader, method == "HEAD")
        except BaseException:
            self.close()
            raise


async def _read_reply(reader: asyncio.StreamReader, head_only: bool) -> Reply:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError("connection closed before a reply") from exc
    lines = raw.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise ProtocolError(f"bad status line {lines[0][:80]!r}")
    status = int(parts[1])
    length, chunked, close = -1, False, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        lname = name.strip().lower()
        if lname == b"content-length":
            length = int(value)
        elif lname == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif lname == b"connection" and b"close" in value.lower():
            close = True
    if head_only or status in (204, 304) or 100 <= status < 200:
        body = b""
    elif chunked:
        body = await _read_chunked(reader)
    elif length >= 0:
        body = await reader.readexactly(length)
    else:
        body = await reader.read()
        close = True
    if close:
        raise _Close(Reply(status, body, len(body)))
    return Reply(status, body, len(body))


class _Close(Exception):
    """The server asked to close: the reply is good, the connection is not."""

    def __init__(self, reply: Reply) -> None:
        super().__init__("connection: close")
        self.reply = reply


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    out = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0], 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return bytes(out)
        out += await reader.readexactly(size)
        await reader.readexactly(2)


async def send(conn: Connection, method: str, path: str, query: dict[str, str] | None = None,
               body: bytes = b"", payload_hash: str | None = None) -> Reply:
    """``conn.request`` that turns a server-requested close into a normal reply."""
    try:
        return await conn.request(method, path, query, body, payload_hash)
    except _Close as done:
        return done.reply
