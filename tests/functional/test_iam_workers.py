"""IAM state shared by the gateway processes of `vallum serve --workers 2`.

Every request here opens a new connection, so the kernel spreads them over both workers:
failed-authentication counts must add up across them (one budget, not one per worker),
and a disabled key must be refused at once by whichever worker answers.
"""

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
from vallum.cli.admin import AdminClient
from vallum.s3.sigv4 import sign_headers

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                                reason="starts its own multi-worker server")

EMPTY = hashlib.sha256(b"").hexdigest()
MAX_PER_KEY = 20                    # iam/auth_failures.py defaults


@pytest.fixture(scope="module")
def workers2(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("iamw") / "data", "--workers", "2")
    yield srv
    stop_server(srv)


def _call(server, key: str, secret: str, path: str = "/") -> tuple[int, str]:
    """One signed GET on a fresh connection: (status, S3 error code or "")."""
    url = server.endpoint + path
    headers = sign_headers("GET", url, {}, EMPTY, key, secret, server.region, time.time())
    req = urllib.request.Request(url, headers={**headers, "connection": "close"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback test server
            resp.read()
            return resp.status, ""
    except urllib.error.HTTPError as exc:
        body = exc.read()
        code = ET.fromstring(body).findtext("Code") if body else ""
        return exc.code, code or ""


def test_failed_authentication_budget_is_shared_by_the_workers(workers2):
    akid = "AKIA" + uuid.uuid4().hex[:16].upper()        # a key nobody has: every call fails
    codes = [_call(workers2, akid, "x" * 40)[1] for _ in range(MAX_PER_KEY + 10)]
    # One shared count: exactly MAX_PER_KEY failures, then every worker refuses the key.
    # (Counted per worker, the 21st call would reach a worker that has seen about half.)
    assert codes[:MAX_PER_KEY] == ["InvalidAccessKeyId"] * MAX_PER_KEY, codes
    assert codes[MAX_PER_KEY:] == ["SlowDown"] * 10, codes


def test_a_disabled_key_is_refused_at_once_by_every_worker(workers2):
    root = AdminClient(workers2.endpoint, workers2.access_key, workers2.secret_key,
                       workers2.region)
    acct = root.call("CreateAccount", name=f"w-{uuid.uuid4().hex[:8]}")["account"]["id"]
    root.call("CreateUser", account=acct, user="u")
    root.call("PutInlinePolicy", account=acct, kind="user", target="u", name="all",
              document={"Version": "2012-10-17", "Statement": [
                  {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
    key = root.call("CreateAccessKey", account=acct, user="u")
    creds = (key["access_key_id"], key["secret_access_key"])
    for _ in range(8):                         # warm both workers' caches with the key
        assert _call(workers2, *creds) == (200, "")
    root.call("UpdateAccessKey", account=acct, access_key_id=creds[0], status="Inactive")
    started = time.monotonic()
    answers = [_call(workers2, *creds) for _ in range(12)]
    assert answers == [(403, "InvalidAccessKeyId")] * 12, answers
    assert time.monotonic() - started < 10
    root.call("UpdateAccessKey", account=acct, access_key_id=creds[0], status="Active")
    assert [_call(workers2, *creds) for _ in range(6)] == [(200, "")] * 6
    root.call("DeleteAccessKey", account=acct, access_key_id=creds[0])
    assert [_call(workers2, *creds)[0] for _ in range(6)] == [403] * 6
