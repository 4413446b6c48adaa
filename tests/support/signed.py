"""SigV4-signed raw requests for what boto3 cannot send: a header it refuses, a query
form it never builds, or a body sent in pieces with the test acting in between."""

from __future__ import annotations

import http.client
import urllib.parse

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


class _Unsigned(S3SigV4Auth):
    """SigV4 with UNSIGNED-PAYLOAD even over plain HTTP (botocore hashes the body there)."""

    def _should_sha256_sign_payload(self, request) -> bool:
        return False


def signed_headers(server, method: str, path: str, query: str = "",
                   headers: dict[str, str] | None = None) -> dict[str, str]:
    """The headers of a signed request with an unsigned payload (so it may be streamed)."""
    url = server.endpoint + path + ("?" + query if query else "")
    h = {"host": urllib.parse.urlsplit(server.endpoint).netloc, **(headers or {})}
    req = AWSRequest(method=method, url=url, headers=h)
    _Unsigned(Credentials(server.access_key, server.secret_key), "s3", server.region).add_auth(req)
    return dict(req.headers.items())


def request(server, method: str, path: str, query: str = "",
            headers: dict[str, str] | None = None, body: bytes = b"") -> tuple[int, dict, bytes]:
    """One signed request: (status, lower-cased headers, body)."""
    h = dict(headers or {})
    if body or method in ("PUT", "POST"):
        h["content-length"] = str(len(body))
    conn = open_request(server, method, path, query, h)
    try:
        conn.send(body)
        return finish(conn)
    finally:
        conn.close()


def open_request(server, method: str, path: str, query: str,
                 headers: dict[str, str]) -> http.client.HTTPConnection:
    """Send the request line and signed headers; the caller sends the body and finishes."""
    parts = urllib.parse.urlsplit(server.endpoint)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.putrequest(method, path + ("?" + query if query else ""), skip_host=True,
                    skip_accept_encoding=True)
    for name, value in signed_headers(server, method, path, query, headers).items():
        conn.putheader(name, value)
    conn.endheaders()
    return conn


def await_continue(conn: http.client.HTTPConnection) -> bytes:
    """After headers sent with ``Expect: 100-continue``: wait for the interim answer,
    which the server gives when the handler first reads the body (all checks made
    before the upload are done by then). Returns the status line received."""
    assert conn.sock is not None
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0]


def finish(conn: http.client.HTTPConnection) -> tuple[int, dict, bytes]:
    resp = conn.getresponse()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
