"""CORS: configuration calls, then what a browser does: preflight (OPTIONS, no
credentials) and the actual upload with an Origin header, over plain HTTP."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError

from tests.support.server import code

RULES = {"CORSRules": [
    {"ID": "app", "AllowedOrigins": ["https://app.example.com"], "AllowedMethods": ["PUT", "GET"],
     "AllowedHeaders": ["content-type", "x-amz-*"], "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 600},
    {"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]},
]}


def call(url: str, method: str, path: str, headers: dict[str, str], body: bytes = b""):
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_cors_configuration(s3, bucket):
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_cors(Bucket=bucket)
    assert code(exc) == "NoSuchCORSConfiguration"
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=RULES)
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == RULES["CORSRules"]
    for bad, want in [({"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}]}, "InvalidRequest"),
                      ({"CORSRules": [{"AllowedOrigins": ["*://*"], "AllowedMethods": ["GET"]}]}, "InvalidRequest")]:
        with pytest.raises(ClientError) as exc:
            s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=bad)
        assert code(exc) == want
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == RULES["CORSRules"]
    s3.delete_bucket_cors(Bucket=bucket)
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_cors(Bucket=bucket)
    assert code(exc) == "NoSuchCORSConfiguration"


def test_browser_preflight_then_upload(s3, server, bucket):
    origin = "https://app.example.com"
    status, _, _ = call(server.endpoint, "OPTIONS", f"/{bucket}/up.txt",
                        {"Origin": origin, "Access-Control-Request-Method": "PUT"})
    assert status == 403                                  # no CORS configuration yet
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=RULES)
    status, h, _ = call(server.endpoint, "OPTIONS", f"/{bucket}/up.txt",
                        {"Origin": origin, "Access-Control-Request-Method": "PUT",
                         "Access-Control-Request-Headers": "Content-Type, X-Amz-Meta-Note"})
    assert status == 200
    assert h["access-control-allow-origin"] == origin
    assert h["access-control-allow-methods"] == "PUT, GET"
    assert h["access-control-allow-headers"] == "content-type, x-amz-meta-note"
    assert h["access-control-max-age"] == "600"
    # A header no rule allows, a method no rule allows, an unknown origin: refused.
    for extra in ({"Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "authorization"},
                  {"Access-Control-Request-Method": "DELETE"}):
        status, _, body = call(server.endpoint, "OPTIONS", f"/{bucket}/up.txt", {"Origin": origin, **extra})
        assert status == 403 and b"AccessForbidden" in body
    status, _, body = call(server.endpoint, "OPTIONS", f"/{bucket}/up.txt", {"Access-Control-Request-Method": "PUT"})
    assert status == 400 and b"BadRequest" in body
    # The wildcard rule answers '*' for GET from anywhere.
    status, h, _ = call(server.endpoint, "OPTIONS", f"/{bucket}", {"Origin": "https://other.example",
                                                                  "Access-Control-Request-Method": "GET"})
    assert status == 200 and h["access-control-allow-origin"] == "*"

    # The actual upload, as a page would do it with a presigned URL.
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "up.txt"}, ExpiresIn=300)
    parts = urlsplit(url)
    status, h, _ = call(server.endpoint, "PUT", f"{parts.path}?{parts.query}", {"Origin": origin}, b"hello")
    assert status == 200
    assert h["access-control-allow-origin"] == origin
    assert h["access-control-expose-headers"] == "ETag"
    assert s3.get_object(Bucket=bucket, Key="up.txt")["Body"].read() == b"hello"
    # An origin no rule names gets no Access-Control-* headers (the browser then blocks it).
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "up.txt"}, ExpiresIn=300)
    parts = urlsplit(url)
    status, h, _ = call(server.endpoint, "PUT", f"{parts.path}?{parts.query}", {"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in h
