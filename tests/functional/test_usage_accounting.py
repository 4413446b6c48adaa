"""Usage accounting against the real server and boto3: requests by class and bytes in and out
per account and bucket, exact after a known workload (ranged GETs count their range, HEAD
sends nothing); invisible to other tenants and, for buckets above its clearance, to a
lower-cleared admin; the daily report and the Prometheus text of the signed admin API."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError

from tests.support.iam import Tenant, admin_cli, s3_for, uid
from tests.support.labels import Cleared, S
from tests.support.server import start_server, stop_server, wait_all_workers
from vallum.cli.admin import AdminClient, AdminError
from vallum.client import Client
from vallum.s3.sigv4 import sign_headers

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                                reason="needs Vallum's admin API")


def metered(client) -> dict[str, int]:
    """The response body bytes the client received (HEAD: none; a streamed GET: its length)."""
    seen = {"bytes_out": 0}

    def received(http_response, model, **_):
        if model.name == "HeadObject":
            return
        if model.has_streaming_output and http_response.status_code < 300:
            seen["bytes_out"] += int(http_response.headers["content-length"])
        else:
            seen["bytes_out"] += len(http_response.content)

    client.meta.events.register("after-call.s3", received)
    return seen


def requests_of(admin: AdminClient, account: str, **args) -> dict:
    return admin.call("GetUsage", account=account, **args)["accounts"][account]


def test_counters_are_exact_after_a_known_workload(server, root):
    tenant = Tenant(server, root)
    s3 = s3_for(server, *tenant.admin_key)
    seen = metered(s3)
    b = uid("use")
    s3.create_bucket(Bucket=b)                                            # write
    bodies = {"a": os.urandom(1000), "b": os.urandom(2000), "c": os.urandom(3000)}
    for key, body in bodies.items():
        s3.put_object(Bucket=b, Key=key, Body=body)                       # 3 writes, 6000 in
    assert s3.get_object(Bucket=b, Key="a")["Body"].read() == bodies["a"]
    ranged = s3.get_object(Bucket=b, Key="c", Range="bytes=100-199")["Body"].read()
    assert ranged == bodies["c"][100:200]
    assert s3.head_object(Bucket=b, Key="b")["ContentLength"] == 2000     # read, no egress
    with pytest.raises(ClientError):
        s3.get_object(Bucket=b, Key="missing")                            # read: the error body
    s3.list_objects_v2(Bucket=b)                                          # list
    s3.delete_object(Bucket=b, Key="a")                                   # write
    got = requests_of(tenant.admin, tenant.id)["buckets"][b]["requests"]
    assert got == {"reads": 4, "writes": 5, "lists": 1, "others": 0, "cpu_ms": 0,
                   "bytes_in": 6000, "bytes_out": seen["bytes_out"]}, (got, seen)
    # The egress is at least the bytes served (1000 + the 100-byte range) plus the XML bodies.
    assert seen["bytes_out"] > 1100
    # The account's totals hold the bucket's and the calls that name no bucket (GetUsage).
    total = requests_of(tenant.admin, tenant.id)["requests"]
    assert (total["reads"], total["writes"], total["lists"]) == (4, 5, 1)
    assert total["others"] == 1                   # the first GetUsage (this one is counted after)
    # The root sees the same.
    assert requests_of(root, tenant.id)["buckets"][b]["requests"] == got


def test_another_tenant_cannot_read_usage(server, root):
    owner, other = Tenant(server, root), Tenant(server, root)
    b = uid("use")
    owner.s3.create_bucket(Bucket=b)
    owner.s3.put_object(Bucket=b, Key="k", Body=b"x" * 500)
    for action in ("GetUsage", "GetUsageMetrics"):
        with pytest.raises(AdminError) as err:
            other.admin.call(action, account=owner.id)
        assert (err.value.status, err.value.code) == (403, "AccessDenied")
    mine = other.admin.call("GetUsage")
    assert list(mine["accounts"]) == [other.id]
    assert b not in mine["accounts"][other.id]["buckets"]
    # A user of the account without vallum:GetUsage is refused too.
    plain = AdminClient(server.endpoint, *owner.user(uid("u"), {"Effect": "Allow", "Action": "s3:*",
                                                                "Resource": "*"}), server.region)
    with pytest.raises(AdminError) as err:
        plain.call("GetUsage")
    assert err.value.code == "AccessDenied"


def test_a_lower_cleared_admin_does_not_see_a_secret_buckets_requests(server):
    world = Cleared(server)
    secret_bucket = world.bucket(S, S)
    open_bucket = world.bucket("UNCLASSIFIED", S)
    agent = world.user(uid("agent"), S)
    cleared = world.s3(world.key(agent, S))
    for _ in range(3):
        cleared.put_object(Bucket=secret_bucket, Key="s", Body=b"s" * 100)
    world.s3(world.admin_key).put_object(Bucket=open_bucket, Key="o", Body=b"o" * 10)
    # The root's view, then the admin's (uncleared): they differ by the secret bucket exactly.
    full = requests_of(world.root, world.account)
    seen = requests_of(world.admin, world.account)
    # (its name the admin knows, it made it; its stored and request figures are left out)
    assert set(seen["buckets"][secret_bucket]["requests"].values()) == {0}
    assert seen["buckets"][open_bucket]["requests"]["writes"] == 2  # CreateBucket, PutObject
    assert seen["buckets"][open_bucket]["requests"]["bytes_in"] == 10
    secret = full["buckets"][secret_bucket]["requests"]
    assert (secret["writes"], secret["bytes_in"]) == (4, 300)        # CreateBucket + 3 PUTs
    assert {k: full["requests"][k] - seen["requests"][k] for k in secret} == secret
    root_text = urllib_metrics(server, (server.access_key, server.secret_key), account=world.account)
    admin_text = urllib_metrics(server, world.admin_key)
    assert metric(root_text, "vallum_account_bytes_in_total", world.account) - \
        metric(admin_text, "vallum_account_bytes_in_total", world.account) == 300


def metric(text: str, name: str, account: str) -> int:
    prefix = f'{name}{{account="{account}"}} '
    (line,) = [x for x in text.splitlines() if x.startswith(prefix)]
    return int(line[len(prefix):])


def urllib_metrics(server, key: tuple[str, str], **args) -> str:
    """GetUsageMetrics raw (Prometheus text, not JSON), signed like every admin call."""
    body = json.dumps(args).encode()
    url = f"{server.endpoint}/-/admin/v1/GetUsageMetrics"
    headers = sign_headers("POST", url, {"content-type": "application/json"},
                           hashlib.sha256(body).hexdigest(), *key, server.region, time.time())
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback
        assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
        return resp.read().decode()


def test_prometheus_totals_are_on_the_signed_admin_api_only(server, root):
    tenant = Tenant(server, root)
    b = uid("use")
    tenant.s3.create_bucket(Bucket=b)
    tenant.s3.put_object(Bucket=b, Key="k", Body=b"z" * 1234)
    text = urllib_metrics(server, tenant.admin_key)
    assert f'vallum_account_bytes_in_total{{account="{tenant.id}"}} 1234' in text
    assert f'vallum_account_requests_total{{account="{tenant.id}",class="writes"}} 2' in text
    assert f'vallum_account_stored_bytes{{account="{tenant.id}"}} 1234' in text
    assert b not in text                                           # totals only, no bucket names
    assert text.count("vallum_account_stored_objects{") == 1       # its own account only
    with urllib.request.urlopen(f"{server.endpoint}/-/metrics", timeout=30) as resp:  # noqa: S310
        public = resp.read().decode()
    assert "vallum_account_" not in public and tenant.id not in public and b not in public


def test_daily_report_json_and_csv(server, root):
    tenant = Tenant(server, root)
    b = uid("use")
    tenant.s3.create_bucket(Bucket=b)
    tenant.s3.put_object(Bucket=b, Key="k", Body=b"r" * 77)
    tenant.s3.get_object(Bucket=b, Key="k")["Body"].read()
    today = time.strftime("%Y-%m-%d", time.gmtime())
    out = admin_cli(server, "usage", "--account", tenant.id, "--report", "day", "--date", today,
                    "--format", "csv")
    assert out.returncode == 0, out.stderr
    rows = {r["bucket"]: r for r in csv.DictReader(io.StringIO(out.stdout))}
    assert rows[b]["day"] == today and rows[b]["account"] == tenant.id
    assert (rows[b]["reads"], rows[b]["writes"], rows[b]["bytes_in"]) == ("1", "2", "77")
    assert int(rows[b]["bytes_out"]) >= 77
    # Yesterday's report (the default day) holds nothing of this new account.
    out = admin_cli(server, "usage", "--account", tenant.id, "--report", "day")
    assert out.returncode == 0, out.stderr
    assert '"bucket": "' + b not in out.stdout and '"reads": 0' in out.stdout
    for bad in (["--report", "week"], ["--report", "day", "--date", "2026-02-30"],
                ["--date", today], ["--format", "csv"]):
        out = admin_cli(server, "usage", *bad)
        assert out.returncode == 2, (bad, out.stdout, out.stderr)


@pytest.mark.parametrize("day", ["2026-13-01", "yesterday", 20261201, "2026-1-1"])
def test_malformed_day_is_refused(server, root, day):
    with pytest.raises(AdminError) as err:
        root.call("GetUsage", day=day)
    assert (err.value.status, err.value.code) == (400, "ValidationError")


BURN = "import time\nend = time.process_time() + 0.8\nwhile time.process_time() < end:\n    pass\n"


@pytest.mark.parametrize("how", [{"runtime": "python", "code": BURN},
                                 {"runtime": "command", "command": ["python3", "-c", BURN]}],
                         ids=["warm-worker", "one-sandbox"])
def test_compute_cpu_time_is_charged_to_the_jobs_account(server, root, how):
    tenant = Tenant(server, root)
    b = uid("use")
    tenant.s3.create_bucket(Bucket=b)
    api = Client(server.endpoint, *tenant.admin_key, region=server.region)
    job = api.submit({**how, "output": f"s3://{b}/o/"})
    done = api.wait(job["id"], timeout=60)
    assert done["state"] == "SUCCEEDED", api.logs(job["id"])
    deadline = time.monotonic() + 10          # the task's end is recorded just after its state
    while True:
        cpu = requests_of(tenant.admin, tenant.id)["requests"]["cpu_ms"]
        if cpu or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert 800 <= cpu < 5000, cpu
    other = Tenant(server, root)
    assert requests_of(other.admin, other.id)["requests"]["cpu_ms"] == 0


def test_anonymous_requests_are_listed_for_the_root_only(server, root):
    tenant = Tenant(server, root)
    b = uid("pub")
    tenant.s3.create_bucket(Bucket=b)
    tenant.s3.put_object(Bucket=b, Key="k", Body=b"p" * 321)
    tenant.s3.put_bucket_policy(Bucket=b, Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",
                                                "Action": "s3:GetObject",
                                                "Resource": f"arn:aws:s3:::{b}/*"}]}))
    with urllib.request.urlopen(f"{server.endpoint}/{b}/k", timeout=30) as resp:  # noqa: S310
        assert resp.read() == b"p" * 321
    anonymous = root.call("GetUsage")["accounts"][""]["buckets"][b]["requests"]
    assert (anonymous["reads"], anonymous["bytes_out"]) == (1, 321)
    for args in ({}, {"account": ""}):          # (an empty account is no account: its own)
        assert list(tenant.admin.call("GetUsage", **args)["accounts"]) == [tenant.id]


def test_every_workers_counts_are_kept_at_shutdown(tmp_path):
    """`--workers 2`, requests on fresh connections (both processes answer), no GetUsage
    (which would flush) before a clean stop: after a restart the counts are all there."""
    srv = start_server(tmp_path / "data", "--workers", "2")
    try:
        root = AdminClient(srv.endpoint, srv.access_key, srv.secret_key, srv.region)
        tenant = Tenant(srv, root)
        b = uid("use")
        tenant.s3.create_bucket(Bucket=b)

        def head(_: int) -> str:
            url = f"{srv.endpoint}/{b}"
            headers = sign_headers("HEAD", url, {}, hashlib.sha256(b"").hexdigest(),
                                   *tenant.admin_key, srv.region, time.time())
            req = urllib.request.Request(url, method="HEAD", headers={**headers, "connection": "close"})
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback
                return resp.headers["x-amz-request-id"][:8]

        wait_all_workers(srv, 2)
        answered_by: Counter[str] = Counter()    # request-id prefix (process) -> HEADs
        with ThreadPoolExecutor(4) as pool:       # until both have counted a few
            while len(answered_by) < 2 or min(answered_by.values()) < 3:
                answered_by.update(pool.map(head, range(8)))
                assert answered_by.total() <= 400, "one process answered every request"
    finally:
        stop_server(srv)
    srv = start_server(tmp_path / "data")
    try:
        root = AdminClient(srv.endpoint, srv.access_key, srv.secret_key, srv.region)
        got = requests_of(root, tenant.id)["buckets"][b]["requests"]
        assert (got["reads"], got["writes"], got["bytes_out"]) == (answered_by.total(), 1, 0)
    finally:
        stop_server(srv)


def test_the_capacity_forecast_samples_the_kept_usage(tmp_path):
    """`vallum operator forecast --sample` records what buckets take on disk (every version
    and in-flight parts, as the usage table keeps them), not a walk of current objects."""
    srv = start_server(tmp_path / "data")
    try:
        s3 = srv.client()
        b = uid("fc")
        s3.create_bucket(Bucket=b)
        s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
        s3.put_object(Bucket=b, Key="k", Body=b"1" * 1000)
        s3.put_object(Bucket=b, Key="k", Body=b"2" * 3000)                 # both versions count
        up = s3.create_multipart_upload(Bucket=b, Key="m")["UploadId"]
        s3.upload_part(Bucket=b, Key="m", UploadId=up, PartNumber=1, Body=b"p" * 500)
        out = subprocess.run([sys.executable, "-m", "vallum", "operator", "forecast", "--data-dir",
                              str(srv.data_dir), "--sample", "--json"],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        sample = [json.loads(x) for x in
                  (srv.data_dir / "operator" / "usage.jsonl").read_text().splitlines()][-1]
        assert sample["buckets"][b] == 4500 and sample["total"] == 4500
    finally:
        stop_server(srv)
