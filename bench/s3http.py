"""A lean SigV4-signed S3 client: one keep-alive http.client connection per instance.

Why not boto3 for the hot loops: on a 2-core box boto3 spends about a millisecond
of Python per call (endpoint resolution, model validation, event hooks, XML
parsing), which caps the *client* before the server. This client keeps only what
a request needs: botocore's own S3 SigV4 signer and a raw HTTP/1.1 connection.
It is not thread-safe: give every thread its own instance.
"""

from __future__ import annotations

import http.client
import select
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

CHUNK = 1024 * 1024
_UNSIGNED = Config(s3={"payload_signing_enabled": False})


def _q(value: str) -> str:
    """RFC 3986 encoding, the same form SigV4 canonicalises, so what we sign is what we send."""
    return quote(value, safe="-_.~")


@dataclass
class Response:
    """Status, headers and (for small replies) the body; big bodies are streamed and counted."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes
    nbytes: int


class S3Http:
    """Signed S3 requests over one persistent connection to `endpoint` (http://host:port)."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
        timeout: float = 600.0,
    ) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"endpoint must be http://host:port, got {endpoint!r}")
        self.endpoint = endpoint.rstrip("/")
        self._host = parts.hostname
        self._port = parts.port
        self._timeout = timeout
        self._auth = S3SigV4Auth(Credentials(access_key, secret_key), "s3", region)
        self._conn: http.client.HTTPConnection | None = None

    def connect(self) -> None:
        """Open the TCP connection now, so timed loops do not pay for the handshake.

        An idle keep-alive connection the server has since closed is replaced
        before use (as urllib3 does); that is not a retry, nothing was sent on it.
        """
        if self._conn is not None and _dropped(self._conn):
            self.close()
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            self._conn.connect()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        stream: Iterable[bytes] | None = None,
        length: int | None = None,
        keep_body: bool = True,
    ) -> Response:
        """Send one request; `stream` + `length` upload without buffering (UNSIGNED-PAYLOAD).

        With keep_body=False the reply is read in 1 MiB chunks and discarded, so a
        1 GiB GET costs no memory. Any transport error closes the connection so
        the next call starts clean (retries are deliberately not attempted).
        """
        target = quote(path, safe="/~-_.")
        if query:
            target += "?" + "&".join(
                _q(k) if v == "" else f"{_q(k)}={_q(v)}" for k, v in sorted(query.items())
            )
        send_headers = dict(headers or {})
        if stream is not None:
            if length is None:
                raise ValueError("a streamed body needs its length")
            send_headers["Content-Length"] = str(length)
            aws = AWSRequest(method=method, url=self.endpoint + target, headers=send_headers)
            aws.context["client_config"] = _UNSIGNED
        else:
            send_headers["Content-Length"] = str(len(body))
            aws = AWSRequest(
                method=method, url=self.endpoint + target, data=body, headers=send_headers
            )
        self._auth.add_auth(aws)
        self.connect()
        conn = self._conn
        assert conn is not None
        try:
            conn.putrequest(method, target, skip_accept_encoding=True)
            for name, value in aws.headers.items():
                conn.putheader(name, value)
            try:
                if stream is not None:
                    conn.endheaders()
                    for chunk in stream:
                        conn.send(chunk)
                else:
                    conn.endheaders(body if body else None)
            except (BrokenPipeError, ConnectionResetError) as exc:
                raise _early_answer(conn, exc) from exc
            resp = conn.getresponse()
            if keep_body or method == "HEAD":
                data = resp.read()
                return Response(resp.status, resp.headers, data, len(data))
            return Response(resp.status, resp.headers, b"", _drain(resp))
        except BaseException:
            self.close()
            raise


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """An idle connection with something to read has been closed (or broken) by the peer."""
    sock = conn.sock
    if sock is None:
        return True
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


def _early_answer(conn: http.client.HTTPConnection, exc: OSError) -> OSError:
    """A server that refuses a body mid-upload often answers first: report what it said."""
    try:
        resp = conn.getresponse()
        said = resp.read(500)
    except Exception:  # nothing readable: the broken pipe is all we know
        return exc
    return OSError(f"{exc.strerror or exc}; the server had answered {resp.status}: {said!r}")


def _drain(resp: http.client.HTTPResponse) -> int:
    """Read and discard a body, returning its size (used for big GETs)."""
    buf = memoryview(bytearray(CHUNK))
    total = 0
    while True:
        n = resp.readinto(buf)
        if not n:
            return total
        total += n


def pattern_stream(size: int, block: bytes) -> Iterable[bytes]:
    """Yield `size` bytes by repeating `block`: a 1 GiB body without 1 GiB of RAM."""
    view = memoryview(block)
    sent = 0
    while sent < size:
        n = min(len(view), size - sent)
        yield view[:n]
        sent += n
