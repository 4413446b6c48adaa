"""AWS Signature V4 on the wire: payload hashes, aws-chunked streaming signatures, presigned
URLs, Expect: 100-continue, Transfer-Encoding: chunked and keep-alive.

The signer below is written from the SigV4 specification (not botocore's) so the server is
checked against the spec; boto3 is used only to look at the result.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import re
import socket
import time
import urllib.error
import urllib.request
from urllib.parse import quote, urlsplit

import pytest
from botocore.exceptions import ClientError

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED = "UNSIGNED-PAYLOAD"
STREAMING = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"


# --- a small SigV4 client --------------------------------------------------------------------

def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


class Signer:
    """Signs requests for one credential; keeps the last scope and seed for chunk signing."""

    def __init__(self, access_key: str, secret_key: str, region: str, now: dt.datetime | None = None):
        self.access_key, self.secret_key, self.region = access_key, secret_key, region
        self.now = now or dt.datetime.now(dt.timezone.utc)
        self.amz_date = self.now.strftime("%Y%m%dT%H%M%SZ")
        self.scope = f"{self.now:%Y%m%d}/{region}/s3/aws4_request"
        k = _hmac(("AWS4" + secret_key).encode(), f"{self.now:%Y%m%d}")
        k = _hmac(k, region)
        k = _hmac(k, "s3")
        self.key = _hmac(k, "aws4_request")

    def sign(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
             payload_hash: str) -> tuple[dict[str, str], str]:
        """Returns headers with x-amz-date, x-amz-content-sha256 and Authorization, and the signature."""
        h = {k.lower(): str(v).strip() for k, v in headers.items()}
        h["x-amz-date"] = self.amz_date
        h["x-amz-content-sha256"] = payload_hash
        names = sorted(h)
        canonical = "\n".join([
            method,
            quote(path, safe="/~"),
            "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in sorted(query.items())),
            "".join(f"{n}:{h[n]}\n" for n in names),
            ";".join(names),
            payload_hash,
        ])
        to_sign = "\n".join(["AWS4-HMAC-SHA256", self.amz_date, self.scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        sig = hmac.new(self.key, to_sign.encode(), hashlib.sha256).hexdigest()
        h["authorization"] = (f"AWS4-HMAC-SHA256 Credential={self.access_key}/{self.scope}, "
                              f"SignedHeaders={';'.join(names)}, Signature={sig}")
        return h, sig

    def chunk_signature(self, previous: str, chunk: bytes) -> str:
        to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", self.amz_date, self.scope, previous,
                             EMPTY_SHA256, hashlib.sha256(chunk).hexdigest()])
        return hmac.new(self.key, to_sign.encode(), hashlib.sha256).hexdigest()


def aws_chunked_signed(signer: Signer, seed: str, body: bytes, chunk_size: int,
                       corrupt_chunk: int | None = None) -> bytes:
    """Encode body as signed aws-chunked; optionally spoil one chunk's signature (index, -1 = final)."""
    pieces = [body[i:i + chunk_size] for i in range(0, len(body), chunk_size)] + [b""]
    out, prev = bytearray(), seed
    for i, piece in enumerate(pieces):
        sig = signer.chunk_signature(prev, piece)
        prev = sig
        if corrupt_chunk is not None and (i == corrupt_chunk or (corrupt_chunk == -1 and not piece)):
            sig = ("0" if sig[0] != "0" else "1") + sig[1:]
        out += f"{len(piece):x};chunk-signature={sig}\r\n".encode() + piece + b"\r\n"
    return bytes(out)


def code_of(body: bytes) -> str | None:
    m = re.search(rb"<Code>([^<]+)</Code>", body)
    return m.group(1).decode() if m else None


class Raw:
    """Raw HTTP requests against the server under test (one connection per request)."""

    def __init__(self, server):
        self.server = server
        u = urlsplit(server.endpoint)
        self.host, self.port = u.hostname, u.port

    def signer(self, secret: str | None = None, access: str | None = None) -> Signer:
        return Signer(access or self.server.access_key, secret or self.server.secret_key,
                      self.server.region)

    def request(self, method: str, path: str, body=b"", headers: dict | None = None,
                query: dict[str, str] | None = None, **kw) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            target = path + ("?" + "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}"
                                            for k, v in sorted((query or {}).items())) if query else "")
            conn.request(method, target, body=body, headers=headers or {}, **kw)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def signed(self, method: str, path: str, body: bytes = b"", payload_hash: str | None = None,
               headers: dict | None = None, query: dict[str, str] | None = None,
               signer: Signer | None = None) -> tuple[int, dict, bytes]:
        hdrs = {"host": f"{self.host}:{self.port}", **(headers or {})}
        if payload_hash is None:
            payload_hash = hashlib.sha256(body).hexdigest()
        h, _ = (signer or self.signer()).sign(method, path, query or {}, hdrs, payload_hash)
        return self.request(method, path, body, h, query)


@pytest.fixture(scope="module")
def raw(server) -> Raw:
    return Raw(server)


def assert_absent(s3, bucket: str, key: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key=key)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


# --- header auth, single-chunk payloads -----------------------------------------------------

def test_signed_payload_put_and_get(raw, s3, bucket):
    body = b"signed payload " * 1000
    status, _, text = raw.signed("PUT", f"/{bucket}/k", body,
                                 headers={"x-amz-meta-who": "raw", "content-type": "text/plain"})
    assert status == 200, text
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == body
    assert got["Metadata"] == {"who": "raw"}
    status, _, text = raw.signed("GET", f"/{bucket}/k")
    assert status == 200 and text == body
    status, _, text = raw.signed("GET", f"/{bucket}", query={"list-type": "2", "prefix": "k"})
    assert status == 200 and b"<Key>k</Key>" in text


def test_tampered_body_is_content_sha256_mismatch(raw, s3, bucket):
    sent = b"A" * 5000
    claimed = hashlib.sha256(b"B" * 5000).hexdigest()
    status, _, text = raw.signed("PUT", f"/{bucket}/tampered", sent, payload_hash=claimed)
    assert (status, code_of(text)) == (400, "XAmzContentSHA256Mismatch")
    assert_absent(s3, bucket, "tampered")


def test_malformed_content_sha256(raw, s3, bucket):
    status, _, text = raw.signed("PUT", f"/{bucket}/bad-hash", b"x", payload_hash="not-a-hash")
    assert status == 400, text
    assert code_of(text) in ("InvalidArgument", "XAmzContentSHA256Mismatch")
    assert_absent(s3, bucket, "bad-hash")


def test_unsigned_payload(raw, s3, bucket):
    body = b"unsigned " * 500
    status, _, text = raw.signed("PUT", f"/{bucket}/u", body, payload_hash=UNSIGNED)
    assert status == 200, text
    assert s3.get_object(Bucket=bucket, Key="u")["Body"].read() == body


def test_wrong_secret_and_unknown_key(raw, s3, bucket):
    status, _, text = raw.signed("PUT", f"/{bucket}/w", b"x", signer=raw.signer(secret="wrong" * 8))
    assert (status, code_of(text)) == (403, "SignatureDoesNotMatch")
    status, _, text = raw.signed("PUT", f"/{bucket}/w", b"x", signer=raw.signer(access="AKIDNOTKNOWN00000000"))
    assert (status, code_of(text)) == (403, "InvalidAccessKeyId")
    assert_absent(s3, bucket, "w")


def test_signed_header_changed_after_signing(raw, s3, bucket):
    hdrs = {"host": f"{raw.host}:{raw.port}", "x-amz-meta-a": "1"}
    h, _ = raw.signer().sign("PUT", f"/{bucket}/hdr", {}, hdrs, hashlib.sha256(b"x").hexdigest())
    h["x-amz-meta-a"] = "2"
    status, _, text = raw.request("PUT", f"/{bucket}/hdr", b"x", h)
    assert (status, code_of(text)) == (403, "SignatureDoesNotMatch")
    assert_absent(s3, bucket, "hdr")


def test_request_time_too_skewed(raw, bucket):
    old = Signer(raw.server.access_key, raw.server.secret_key, raw.server.region,
                 now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))
    status, _, text = raw.signed("GET", f"/{bucket}", signer=old)
    assert (status, code_of(text)) == (403, "RequestTimeTooSkewed")


def test_anonymous_request_denied(raw, bucket):
    status, _, text = raw.request("GET", f"/{bucket}/anything")
    assert (status, code_of(text)) == (403, "AccessDenied")
    status, _, text = raw.request("PUT", f"/{bucket}/anon", b"x")
    assert (status, code_of(text)) == (403, "AccessDenied")


# --- streaming (aws-chunked) signatures -----------------------------------------------------

def streaming_put(raw: Raw, path: str, body: bytes, chunk_size: int = 64 * 1024,
                  corrupt_chunk: int | None = None, tamper_data: bool = False):
    signer = raw.signer()
    # Content-Length of the encoded body must be signed, so compute it before signing.
    encoded_len = len(aws_chunked_signed(signer, "0" * 64, body, chunk_size))
    hdrs = {"host": f"{raw.host}:{raw.port}", "content-encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(len(body)), "content-length": str(encoded_len)}
    h, seed = signer.sign("PUT", path, {}, hdrs, STREAMING)
    payload = aws_chunked_signed(signer, seed, body, chunk_size, corrupt_chunk)
    assert len(payload) == encoded_len
    if tamper_data:
        i = payload.index(b"\r\n") + 2 + 10          # a byte inside the first chunk's data
        payload = payload[:i] + bytes([payload[i] ^ 0xFF]) + payload[i + 1:]
    return raw.request("PUT", path, payload, h)


def test_streaming_signed_upload(raw, s3, bucket):
    body = bytes(range(256)) * 700                    # 179,200 bytes: 64 KiB, 64 KiB, rest
    status, _, text = streaming_put(raw, f"/{bucket}/stream", body)
    assert status == 200, text
    got = s3.get_object(Bucket=bucket, Key="stream")
    assert got["ContentLength"] == len(body)
    assert got["Body"].read() == body
    assert got["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'


def test_streaming_empty_body(raw, s3, bucket):
    status, _, text = streaming_put(raw, f"/{bucket}/empty", b"")
    assert status == 200, text
    assert s3.get_object(Bucket=bucket, Key="empty")["Body"].read() == b""


@pytest.mark.parametrize("corrupt", [0, 1, -1], ids=["first", "middle", "final"])
def test_streaming_bad_chunk_signature_stores_nothing(raw, s3, bucket, corrupt):
    body = b"z" * (150 * 1024)
    status, _, text = streaming_put(raw, f"/{bucket}/bad", body, corrupt_chunk=corrupt)
    assert (status, code_of(text)) == (403, "SignatureDoesNotMatch")
    assert_absent(s3, bucket, "bad")


def test_streaming_tampered_chunk_data_stores_nothing(raw, s3, bucket):
    status, _, text = streaming_put(raw, f"/{bucket}/bad", b"q" * (100 * 1024), tamper_data=True)
    assert (status, code_of(text)) == (403, "SignatureDoesNotMatch")
    assert_absent(s3, bucket, "bad")


def test_streaming_overwrite_failure_keeps_old_version(raw, s3, bucket):
    s3.put_object(Bucket=bucket, Key="keep", Body=b"old")
    status, _, _ = streaming_put(raw, f"/{bucket}/keep", b"n" * 70000, corrupt_chunk=1)
    assert status == 403
    assert s3.get_object(Bucket=bucket, Key="keep")["Body"].read() == b"old"


# --- presigned URLs -------------------------------------------------------------------------

def _urlopen(req) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture(scope="module")
def presigner(server):
    # boto3 presigns S3 URLs with SigV2 unless told otherwise; these tests are about SigV4.
    return server.client(signature_version="s3v4")


def test_presigned_get_and_put(presigner, bucket):
    s3 = presigner
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "pre"},
                                        ExpiresIn=300)
    body = b"presigned body" * 100
    status, text = _urlopen(urllib.request.Request(
        put_url, data=body, method="PUT", headers={"Content-Type": "application/octet-stream"}))
    assert status == 200, text
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "pre"},
                                        ExpiresIn=300)
    assert _urlopen(get_url) == (200, body)
    # The signature covers the key: pointing the same query at another key fails.
    assert "X-Amz-Signature=" in get_url
    other = get_url.replace("/pre?", "/pre2?")
    status, text = _urlopen(other)
    assert (status, code_of(text)) == (403, "SignatureDoesNotMatch")


def test_presigned_get_missing_key(presigner, bucket):
    url = presigner.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "nope"})
    status, text = _urlopen(url)
    assert (status, code_of(text)) == (404, "NoSuchKey")


def test_presigned_url_expires(presigner, s3, bucket):
    s3.put_object(Bucket=bucket, Key="exp", Body=b"soon gone")
    url = presigner.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "exp"},
                                    ExpiresIn=1)
    time.sleep(2.1)
    status, text = _urlopen(url)
    assert (status, code_of(text)) == (403, "AccessDenied")


# --- HTTP transport details -----------------------------------------------------------------

class HeadReader:
    """Reads HTTP/1.1 response heads one at a time from a raw socket (for 1xx handling)."""

    def __init__(self, sock: socket.socket):
        self.sock, self.buf = sock, b""

    def next(self) -> tuple[int, bytes]:
        while b"\r\n\r\n" not in self.buf:
            piece = self.sock.recv(65536)
            if not piece:
                break
            self.buf += piece
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return (int(head.split(b" ", 2)[1]) if head else 0), head

    def final_after_body(self, head: bytes) -> tuple[int, bytes]:
        """Skip the body of the response whose head was just read, then read the next head."""
        m = re.search(rb"content-length:\s*(\d+)", head, re.I)
        n = int(m.group(1)) if m else 0
        while len(self.buf) < n:
            piece = self.sock.recv(65536)
            if not piece:
                break
            self.buf += piece
        self.buf = self.buf[n:]
        return self.final()

    def final(self) -> tuple[int, bytes]:
        """The next non-1xx response head."""
        while True:
            status, head = self.next()
            if not 100 <= status < 200:
                return status, head


def test_expect_100_continue(raw, s3, bucket):
    body = b"c" * 200_000
    path = f"/{bucket}/expect"
    h, _ = raw.signer().sign("PUT", path, {}, {"host": f"{raw.host}:{raw.port}"},
                             hashlib.sha256(body).hexdigest())
    h["content-length"] = str(len(body))
    h["expect"] = "100-continue"
    head = f"PUT {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    with socket.create_connection((raw.host, raw.port), timeout=10) as sock:
        sock.sendall(head.encode())
        reader = HeadReader(sock)
        status, buf = reader.next()
        assert status == 100, buf        # the server asks for the body before reading it
        sock.sendall(body)
        sock.settimeout(30)
        final, buf = reader.final()
        assert final == 200, buf
    assert s3.get_object(Bucket=bucket, Key="expect")["Body"].read() == body


def test_expect_100_continue_refused_without_reading_body(raw, bucket):
    """A request that will be denied gets its final answer instead of 100 Continue; the client
    then never sends the body, so the connection must not wait for it (close it, or be ready
    for the next request)."""
    path = f"/{bucket}/denied"
    host = f"{raw.host}:{raw.port}"
    h, _ = raw.signer(secret="x" * 40).sign("PUT", path, {}, {"host": host}, UNSIGNED)
    h["content-length"] = str(50 * 1024 * 1024)
    h["expect"] = "100-continue"
    head = f"PUT {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    with socket.create_connection((raw.host, raw.port), timeout=10) as sock:
        sock.sendall(head.encode())
        reader = HeadReader(sock)
        status, buf = reader.next()
        assert status == 403, buf
        if b"connection: close" in buf.lower():
            return
        # Kept open: the next request on it must be parsed as a request, not as the body.
        g, _ = raw.signer().sign("GET", f"/{bucket}", {}, {"host": host}, EMPTY_SHA256)
        sock.sendall((f"GET /{bucket} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in g.items())
                      + "\r\n").encode())
        sock.settimeout(3)
        try:
            status, buf = reader.final_after_body(buf)
        except TimeoutError:
            pytest.fail("connection kept open after a 403 to Expect: 100-continue, but the next "
                        "request got no answer (the server is reading it as the unsent body)")
        assert status == 200, buf


def test_transfer_encoding_chunked_unsigned(raw, s3, bucket):
    pieces = [bytes([i]) * (10_000 + i) for i in range(20)]
    path = f"/{bucket}/te"
    h, _ = raw.signer().sign("PUT", path, {}, {"host": f"{raw.host}:{raw.port}"}, UNSIGNED)
    status, _, text = raw.request("PUT", path, iter(pieces), h, encode_chunked=True)
    assert status == 200, text
    assert s3.get_object(Bucket=bucket, Key="te")["Body"].read() == b"".join(pieces)


def test_keep_alive_many_requests_one_connection(raw, bucket):
    conn = http.client.HTTPConnection(raw.host, raw.port, timeout=30)
    try:
        conn.connect()
        first_sock = conn.sock
        signer = raw.signer()
        for i in range(30):
            body = f"body {i}".encode() * (i + 1)
            path = f"/{bucket}/ka/{i}"
            h, _ = signer.sign("PUT", path, {}, {"host": f"{raw.host}:{raw.port}"},
                               hashlib.sha256(body).hexdigest())
            conn.request("PUT", path, body=body, headers=h)
            r = conn.getresponse()
            assert r.status == 200, r.read()
            r.read()
            h, _ = signer.sign("GET", path, {}, {"host": f"{raw.host}:{raw.port}"}, EMPTY_SHA256)
            conn.request("GET", path, headers=h)
            r = conn.getresponse()
            assert (r.status, r.read()) == (200, body)
            # Errors must not close the connection either.
            h, _ = signer.sign("GET", path + "-missing", {}, {"host": f"{raw.host}:{raw.port}"},
                               EMPTY_SHA256)
            conn.request("GET", path + "-missing", headers=h)
            r = conn.getresponse()
            assert (r.status, code_of(r.read())) == (404, "NoSuchKey")
            assert conn.sock is first_sock, f"connection was closed after request {i}"
    finally:
        conn.close()
