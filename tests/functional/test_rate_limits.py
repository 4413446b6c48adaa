"""Per-account request-rate limits against the real server and boto3: account A gets
503 SlowDown with Retry-After (audited), account B does not; only the platform root sets or
lifts a limit, and it is never limited itself; malformed limits change nothing; two worker
processes share one limit."""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.support.iam import Tenant, admin_cli, uid
from tests.support.server import start_server, stop_server, wait_all_workers
from vallum.cli.admin import AdminClient, AdminError
from vallum.s3.sigv4 import sign_headers

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                                reason="needs Vallum's admin API")
SYNC = 0.3          # a little over rate_limits.SYNC: every process has seen a new limit


def outcomes(s3, n: int) -> list[str]:
    out = []
    for _ in range(n):
        try:
            s3.list_buckets()
            out.append("ok")
        except ClientError as exc:
            meta = exc.response["ResponseMetadata"]
            assert meta["HTTPStatusCode"] == 503
            assert int(meta["HTTPHeaders"]["retry-after"]) >= 1
            out.append(exc.response["Error"]["Code"])
    return out


def audit_records(data_dir: Path) -> list[dict]:
    log = Path(data_dir) / "audit" / "audit.log"
    return [json.loads(x) for x in log.read_bytes().rstrip(b"\0").splitlines()]


def test_limit_slows_account_a_but_not_b_and_the_root_lifts_it(server, root):
    a, b = Tenant(server, root), Tenant(server, root)
    out = root.call("SetAccountRateLimit", account=a.id, rps=0.1, burst=3)
    assert out == {"account": a.id, "rate_limit": {"rps": 0.1, "burst": 3.0}}
    time.sleep(SYNC)
    got = outcomes(a.s3, 8)
    assert got[:3] == ["ok"] * 3 and got.count("SlowDown") == 5, got
    assert outcomes(b.s3, 8) == ["ok"] * 8
    # The account's admin API calls are its requests too; the root's never are.
    with pytest.raises(AdminError) as err:
        a.admin.call("ListUsers")
    assert (err.value.status, err.value.code) == (503, "SlowDown")
    for _ in range(5):
        root.call("GetUsage", account=a.id)
    assert root.call("GetUsage", account=a.id)["accounts"][a.id]["rate_limit"] == \
        {"rps": 0.1, "burst": 3.0}
    # Audited: the refusal names the rule.
    refused = [r for r in audit_records(server.data_dir)
               if r.get("account") == a.id and r.get("error") == "SlowDown"]
    assert refused and all(r["decision"] == "deny" and r["rule"] == f"rate-limit: account {a.id}"
                           and r["status"] == 503 for r in refused), refused
    root.call("SetAccountRateLimit", account=a.id, rps=None)
    time.sleep(SYNC)
    assert outcomes(a.s3, 6) == ["ok"] * 6


def test_only_the_root_sets_limits(server, root):
    a, b = Tenant(server, root), Tenant(server, root)
    for caller, target in ((a.admin, a.id), (a.admin, b.id), (b.admin, a.id)):
        with pytest.raises(AdminError) as err:
            caller.call("SetAccountRateLimit", account=target, rps=1000)
        assert (err.value.status, err.value.code) == (403, "AccessDenied")
    user = AdminClient(server.endpoint, *a.user(uid("u"), {"Effect": "Allow", "Action": "*",
                                                           "Resource": "*"}), server.region)
    with pytest.raises(AdminError) as err:
        user.call("SetAccountRateLimit", account=a.id, rps=1000)
    assert err.value.code == "AccessDenied"
    # The root's key id with a guessed secret: refused by the signature check.
    forged = AdminClient(server.endpoint, server.access_key, "not-the-root-secret", server.region)
    with pytest.raises(AdminError) as err:
        forged.call("SetAccountRateLimit", account=a.id, rps=0.001)
    assert (err.value.status, err.value.code) == (403, "SignatureDoesNotMatch")
    assert root.call("GetUsage", account=a.id)["accounts"][a.id]["rate_limit"] is None


@pytest.mark.parametrize("bad", [
    {"rps": -1}, {"rps": 0}, {"rps": "10"}, {"rps": True}, {"rps": 1e7}, {"rps": 5, "burst": 0.5},
    {"rps": 5, "burst": "9"}, {"burst": 4}, {"rps": [1]}],
    ids=["negative", "zero", "string", "bool", "huge", "small-burst", "string-burst",
         "burst-alone", "list"])
def test_malformed_limit_is_refused_and_changes_nothing(server, root, bad):
    a = Tenant(server, root)
    root.call("SetAccountRateLimit", account=a.id, rps=100, burst=200)
    with pytest.raises(AdminError) as err:
        root.call("SetAccountRateLimit", account=a.id, **bad)
    assert (err.value.status, err.value.code) == (400, "ValidationError"), err.value.message
    assert root.call("GetUsage", account=a.id)["accounts"][a.id]["rate_limit"] == \
        {"rps": 100.0, "burst": 200.0}


def test_unknown_or_missing_account_is_named(server, root):
    with pytest.raises(AdminError) as err:
        root.call("SetAccountRateLimit", rps=5)
    assert (err.value.status, err.value.code, err.value.message) == \
        (400, "ValidationError", "missing required field: account")
    with pytest.raises(AdminError) as err:
        root.call("SetAccountRateLimit", account="no-such-account", rps=5)
    assert (err.value.status, err.value.code) == (404, "NoSuchEntity")


def test_cli_sets_and_removes_a_limit(server, root):
    a = Tenant(server, root)
    out = admin_cli(server, "quota", "rate", a.id, "--rps", "20", "--burst", "40", "-o", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["rate_limit"] == {"rps": 20.0, "burst": 40.0}
    out = admin_cli(server, "quota", "rate", a.id, "--rps", "fast")
    assert out.returncode == 2 and "not a rate" in out.stderr
    out = admin_cli(server, "quota", "rate", a.id, "--rps", "-3")
    assert out.returncode == 1 and "ValidationError" in out.stderr
    assert root.call("GetUsage", account=a.id)["accounts"][a.id]["rate_limit"]["rps"] == 20.0
    out = admin_cli(server, "quota", "rate", a.id, "--rps", "none", "-o", "json")
    assert out.returncode == 0, out.stderr
    assert root.call("GetUsage", account=a.id)["accounts"][a.id]["rate_limit"] is None


def test_two_workers_share_one_limit(tmp_path):
    """`--workers 2`: fresh connections spread over both processes (their request ids' prefixes
    say which answered); together they let through the account's rate, not twice it."""
    srv = start_server(tmp_path / "data", "--workers", "2")
    try:
        root = AdminClient(srv.endpoint, srv.access_key, srv.secret_key, srv.region)
        a = Tenant(srv, root)
        rps, seconds = 4.0, 4.0
        root.call("SetAccountRateLimit", account=a.id, rps=rps, burst=1)
        wait_all_workers(srv, 2)
        time.sleep(SYNC)

        def call(_: int) -> tuple[int, str]:
            url = srv.endpoint + "/"
            headers = sign_headers("GET", url, {}, hashlib.sha256(b"").hexdigest(),
                                   *a.admin_key, srv.region, time.time())
            req = urllib.request.Request(url, headers={**headers, "connection": "close"})
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback
                    return resp.status, resp.headers["x-amz-request-id"]
            except urllib.error.HTTPError as exc:
                return exc.code, exc.headers["x-amz-request-id"]

        answers: list[tuple[int, str]] = []
        end = time.monotonic() + seconds
        with ThreadPoolExecutor(4) as pool:
            while time.monotonic() < end:
                answers += pool.map(call, range(8))
        ok = sum(1 for status, _ in answers if status == 200)
        assert {status for status, _ in answers} == {200, 503}
        assert len({rid[:8] for _, rid in answers}) == 2      # both processes answered
        # One bucket: rps x seconds, a burst per process, a sync period's lag per process;
        # two separate buckets would let through about twice rps x seconds.
        assert ok <= rps * seconds + 2 + 2 * rps * 0.25 + 1, (ok, len(answers))
        assert ok >= rps * seconds / 2, (ok, len(answers))
    finally:
        stop_server(srv)


def test_anonymous_requests_count_against_the_bucket_owners_limit(server, root):
    a = Tenant(server, root)
    b = uid("pub")
    a.s3.create_bucket(Bucket=b)
    a.s3.put_object(Bucket=b, Key="k", Body=b"open")
    a.s3.put_bucket_policy(Bucket=b, Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",
                                                "Action": "s3:GetObject",
                                                "Resource": f"arn:aws:s3:::{b}/*"}]}))
    root.call("SetAccountRateLimit", account=a.id, rps=0.1, burst=2)
    time.sleep(SYNC)
    statuses = []
    for _ in range(5):
        try:
            with urllib.request.urlopen(f"{server.endpoint}/{b}/k", timeout=30) as resp:  # noqa: S310
                statuses.append(resp.status)
        except urllib.error.HTTPError as exc:
            statuses.append(exc.code)
            assert b"<Code>SlowDown</Code>" in exc.read() and int(exc.headers["retry-after"]) >= 1
    assert statuses == [200, 200, 503, 503, 503]
    root.call("SetAccountRateLimit", account=a.id, rps=None)
