"""vallum.client signs with the code the gateway verifies with: its requests verify, and a
changed byte anywhere signed (path, query, a vallum header, the secret) does not."""

from __future__ import annotations

import hashlib
import time
from urllib.parse import urlsplit

import pytest

from vallum.client import Client, _target
from vallum.s3 import errors
from vallum.s3.sigv4 import authenticate

AK, SK = "AKIAEXAMPLECLIENT001", "s3cr3t/with+odd=chars"
BODY = hashlib.sha256(b"{}").hexdigest()

CASES = {
    "plain": ("GET", "/b/key", {}),
    "odd-key": ("PUT", "/b/dir/a b+c%d~é", {}),
    "query": ("GET", "/b", {"list-type": "2", "prefix": "a/b c", "uploads": ""}),
    "jobs-api": ("POST", "/-/jobs/v1/jobs", {}),
}


def _verify(method: str, path: str, query: dict[str, str], headers: dict[str, str],
            secret: str = SK):
    target = urlsplit(_target(path, query))
    return authenticate(method, target.path, target.query, list(headers.items()),
                        lookup_secret={AK: secret}.get, region="us-east-1", now=time.time())


@pytest.mark.parametrize("case", sorted(CASES))
def test_client_requests_verify(case):
    method, path, query = CASES[case]
    client = Client("http://127.0.0.1:9000", AK, SK, session_token="tok",
                    session_level="SECRET")
    headers = client.sign(method, path, query, {"Content-Type": "application/json"}, BODY)
    result = _verify(method, path, query, headers)
    assert result is not None and result.access_key == AK and result.session_token == "tok"
    assert "x-vallum-session-level" in headers["authorization"]


def test_endpoint_path_is_not_signed():
    client = Client("http://127.0.0.1:9000/ignored/", AK, SK)
    headers = client.sign("GET", "/b/k", {}, {}, BODY)
    assert _verify("GET", "/b/k", {}, headers) is not None


@pytest.mark.parametrize("tamper", ["path", "query", "level", "secret"])
def test_changed_signed_bytes_fail(tamper):
    client = Client("http://127.0.0.1:9000", AK, SK, session_level="SECRET")
    headers = client.sign("GET", "/b/k", {"prefix": "a"}, {}, BODY)
    path, query, secret = "/b/k", {"prefix": "a"}, SK
    if tamper == "path":
        path = "/b/K"
    elif tamper == "query":
        query = {"prefix": "b"}
    elif tamper == "level":
        headers["x-vallum-session-level"] = "TOP SECRET"
    else:
        secret = SK + "x"
    with pytest.raises(errors.S3Error):
        _verify("GET", path, query, headers, secret)
