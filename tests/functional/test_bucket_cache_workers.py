"""Bucket records are cached per gateway process: a change made through one worker of
`vallum serve --workers 2` must be what every worker answers as soon as it is acknowledged.

Each request opens a new connection, so the kernel spreads them over both workers."""

from __future__ import annotations

import hashlib
import os
import time
import urllib.error
import urllib.request
import uuid
import xml.etree.ElementTree as ET

import pytest

from tests.support.server import start_server, stop_server
from vallum.s3.sigv4 import sign_headers

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                                reason="starts its own multi-worker server")

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@pytest.fixture(scope="module")
def workers2(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("bcw") / "data", "--workers", "2")
    yield srv
    stop_server(srv)


def _call(server, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    """One signed request on a fresh connection: (status, body)."""
    url = server.endpoint + path
    extra = {"content-md5": __import__("base64").b64encode(hashlib.md5(body).digest()).decode()} if body else {}
    headers = sign_headers(method, url, extra, hashlib.sha256(body).hexdigest(), server.access_key,
                           server.secret_key, server.region, time.time())
    req = urllib.request.Request(url, data=body or None, method=method,
                                 headers={**headers, "connection": "close"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback test server
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _versioning(status: str) -> bytes:
    return (f'<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Status>{status}</Status></VersioningConfiguration>").encode()


def test_a_bucket_change_is_seen_by_every_worker_once_acknowledged(workers2):
    bucket = "bc-" + uuid.uuid4().hex[:12]
    assert _call(workers2, "PUT", f"/{bucket}")[0] == 200
    for _ in range(3):                     # warm both workers' caches with the bucket
        assert _call(workers2, "GET", f"/{bucket}?versioning")[0] == 200
    for i in range(12):
        state = "Enabled" if i % 2 == 0 else "Suspended"
        status, body = _call(workers2, "PUT", f"/{bucket}?versioning", _versioning(state))
        assert status == 200, body
        for _ in range(4):                 # whichever worker answers sees the new state
            status, body = _call(workers2, "GET", f"/{bucket}?versioning")
            assert status == 200 and ET.fromstring(body).findtext(f"{NS}Status") == state, body
        # and acts on it: a PUT in an Enabled bucket gets a version id, in Suspended "null"
        url_key = f"/{bucket}/k{i}"
        status, _ = _call(workers2, "PUT", url_key, b"x")
        assert status == 200
        status, body = _call(workers2, "GET", f"/{bucket}?versions&prefix=k{i}")
        vid = ET.fromstring(body).find(f"{NS}Version").findtext(f"{NS}VersionId")
        assert (vid == "null") == (state == "Suspended"), (state, vid)


def test_a_deleted_bucket_is_gone_for_every_worker(workers2):
    bucket = "bd-" + uuid.uuid4().hex[:12]
    assert _call(workers2, "PUT", f"/{bucket}")[0] == 200
    for _ in range(3):
        assert _call(workers2, "HEAD", f"/{bucket}")[0] == 200
    assert _call(workers2, "DELETE", f"/{bucket}")[0] == 204
    assert [_call(workers2, "HEAD", f"/{bucket}")[0] for _ in range(6)] == [404] * 6
