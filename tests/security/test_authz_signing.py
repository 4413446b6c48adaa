"""Adversarial tests of what a signature binds (issue 13, Medium findings):

- a SigV2 signature made for one virtual-host bucket must not verify on another;
- x-vallum-* headers (labels, session levels) must be signed, or the request refused;
- bad signatures sent for a key never lock out its owner's valid signatures;
- ``--require-signed-payload`` refuses SigV2 and unsigned SigV4 payloads (presigned
  GET/HEAD URLs excepted).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import time
import uuid
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config

from tests.support.server import ACCESS_KEY, REGION, SECRET_KEY, start_server, stop_server
from vallum.s3.sigv4 import sign_headers

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                                reason="starts servers with their own flags")

DOMAIN = "vallum.test"


def _send(server, method: str, url: str, headers: dict[str, str] | None = None,
          body: bytes = b"", source: str | None = None) -> tuple[int, bytes]:
    """Send to the test server whatever host the URL names (its Host header is kept),
    from loopback address ``source`` if given."""
    parts = urlsplit(url)
    port = urlsplit(server.endpoint).port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                      source_address=(source, 0) if source else None)
    try:
        target = parts.path + ("?" + parts.query if parts.query else "")
        all_headers = {"Host": parts.netloc, **(headers or {})}
        conn.request(method, target, body=body or None, headers=all_headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _client(server, *, endpoint: str | None = None, **s3_config):
    return boto3.client("s3", endpoint_url=endpoint or server.endpoint,
                        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                        region_name=REGION, config=Config(retries={"max_attempts": 1},
                                                          **s3_config))


@pytest.fixture(scope="module")
def vhost(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("vhost") / "data", "--domain", DOMAIN)
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("strict") / "data", "--require-signed-payload")
    yield server
    stop_server(server)


def _buckets(server, n: int) -> list[str]:
    s3 = _client(server, s3={"addressing_style": "path"})
    names = [f"sig-{uuid.uuid4().hex[:10]}" for _ in range(n)]
    for name in names:
        s3.create_bucket(Bucket=name)
    return names


# ---------------------------------------------------------------- SigV2 binds the vhost bucket

def test_sigv2_presigned_put_does_not_replay_into_another_virtual_host_bucket(vhost):
    mine, other = _buckets(vhost, 2)
    port = urlsplit(vhost.endpoint).port
    signer = _client(vhost, endpoint=f"http://{DOMAIN}:{port}", signature_version="s3",
                     s3={"addressing_style": "virtual"})
    url = signer.generate_presigned_url("put_object", Params={"Bucket": mine, "Key": "k"},
                                        ExpiresIn=300)
    assert urlsplit(url).netloc == f"{mine}.{DOMAIN}:{port}" and "Signature=" in url
    replay = url.replace(f"//{mine}.{DOMAIN}", f"//{other}.{DOMAIN}", 1)
    status, body = _send(vhost, "PUT", replay, body=b"planted")
    assert status == 403 and b"SignatureDoesNotMatch" in body, body[:300]
    path_style = _client(vhost, s3={"addressing_style": "path"})
    assert path_style.list_objects_v2(Bucket=other).get("KeyCount") == 0
    status, _ = _send(vhost, "PUT", url, body=b"mine")          # the URL still works where signed
    assert status == 200
    assert path_style.get_object(Bucket=mine, Key="k")["Body"].read() == b"mine"


# ---------------------------------------------------------------- x-vallum-* must be signed

def test_sigv4_refuses_an_unsigned_session_level_header(vhost):
    (bucket,) = _buckets(vhost, 1)
    s3 = _client(vhost, s3={"addressing_style": "path"})
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
    assert _send(vhost, "GET", url)[0] == 200
    for header in ("x-vallum-session-level", "x-vallum-classification"):
        status, body = _send(vhost, "GET", url, {header: "UNCLASSIFIED"})
        assert status == 403 and b"HeadersNotSigned" in body, body[:300]


def test_sigv4_header_signing_covers_vallum_headers(vhost):
    """Added after signing: refused. Signed: accepted."""
    (bucket,) = _buckets(vhost, 1)
    url = f"{vhost.endpoint}/{bucket}/k"
    body = b"labelled"
    sha = hashlib.sha256(body).hexdigest()
    signed = sign_headers("PUT", url, {}, sha, ACCESS_KEY, SECRET_KEY, REGION, time.time())
    status, out = _send(vhost, "PUT", url, {**signed, "x-vallum-classification": "UNCLASSIFIED"},
                        body)
    assert status == 403 and b"HeadersNotSigned" in out, out[:300]
    signed = sign_headers("PUT", url, {"x-vallum-classification": "UNCLASSIFIED"}, sha,
                          ACCESS_KEY, SECRET_KEY, REGION, time.time())
    assert _send(vhost, "PUT", url, signed, body)[0] == 200


def test_sigv2_refuses_vallum_headers(vhost):
    (bucket,) = _buckets(vhost, 1)
    s3 = _client(vhost, s3={"addressing_style": "path"})
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    v2 = _client(vhost, signature_version="s3", s3={"addressing_style": "path"})
    url = v2.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
    assert "Signature=" in url and _send(vhost, "GET", url)[0] == 200
    status, body = _send(vhost, "GET", url, {"x-vallum-session-level": "UNCLASSIFIED"})
    assert status == 403 and b"x-vallum" in body, body[:300]


# ---------------------------------------------------------------- failed-auth lockouts

def test_bad_signatures_never_lock_out_a_valid_signature(vhost):
    """25 forged requests for the platform root's key (over the limit of 20): the root's
    own signed requests still succeed, from the attacker's address too; further forgeries
    from there get SlowDown; from another address they are counted apart."""
    url = f"{vhost.endpoint}/"

    def signed(secret: str) -> dict[str, str]:
        return sign_headers("GET", url, {}, hashlib.sha256(b"").hexdigest(), ACCESS_KEY,
                            secret, REGION, time.time())
    codes = [_send(vhost, "GET", url, signed("x" * 40), source="127.0.0.3")[0] for _ in range(25)]
    assert codes[:20] == [403] * 20 and codes[20:] == [503] * 5, codes
    assert _send(vhost, "GET", url, signed(SECRET_KEY), source="127.0.0.3")[0] == 200
    assert _send(vhost, "GET", url, signed(SECRET_KEY), source="127.0.0.4")[0] == 200
    status, body = _send(vhost, "GET", url, signed("y" * 40), source="127.0.0.4")
    assert status == 403 and b"SignatureDoesNotMatch" in body, body[:300]
    status, body = _send(vhost, "GET", url, signed("y" * 40), source="127.0.0.3")
    assert status == 503 and b"SlowDown" in body, body[:300]


# ---------------------------------------------------------------- --require-signed-payload

def test_strict_mode_refuses_sigv2(strict):
    v2 = _client(strict, signature_version="s3", s3={"addressing_style": "path"})
    url = v2.generate_presigned_url("list_buckets")
    status, body = _send(strict, "GET", url)
    assert status == 403 and b"Signature Version 2 is refused" in body, body[:300]


def test_strict_mode_refuses_unsigned_payloads_but_not_signed_ones(strict):
    (bucket,) = _buckets(strict, 1)
    url = f"{strict.endpoint}/{bucket}/k"
    body = b"payload"
    unsigned = sign_headers("PUT", url, {}, "UNSIGNED-PAYLOAD", ACCESS_KEY, SECRET_KEY, REGION,
                            time.time())
    status, out = _send(strict, "PUT", url, unsigned, body)
    assert status == 403 and b"UNSIGNED-PAYLOAD is refused" in out, out[:300]
    signed = sign_headers("PUT", url, {}, hashlib.sha256(body).hexdigest(), ACCESS_KEY,
                          SECRET_KEY, REGION, time.time())
    assert _send(strict, "PUT", url, signed, body)[0] == 200


def test_strict_mode_allows_presigned_get_but_not_presigned_put(strict):
    (bucket,) = _buckets(strict, 1)
    s3 = _client(strict, signature_version="s3v4",       # boto3 presigns with V2 otherwise
                 s3={"addressing_style": "path", "payload_signing_enabled": True})
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    get = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
    assert "X-Amz-Signature=" in get
    assert _send(strict, "GET", get) == (200, b"x")
    put = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "k2"})
    status, out = _send(strict, "PUT", put, body=b"y")
    assert status == 403 and b"UNSIGNED-PAYLOAD is refused" in out, out[:300]
