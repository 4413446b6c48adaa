"""Two `vallum serve --workers 2` on one PostgreSQL and one shared data directory (blobs,
keyring, key table, root credentials, master key): boto3 requests alternate between them and
every answer is the one a single gateway would give. What the gateways share through
PostgreSQL (object metadata, IAM, lockouts) is what a gateway on another host would share;
the data directory stands for the shared filesystem (docs/scale-out.md)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time

import boto3
import psycopg
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.iam import Tenant, code_of, doc, s3_for, uid
from tests.support.labels import Cleared
from tests.support.postgres import fresh_url, postgres  # noqa: F401 - fixture
from tests.support.server import server_log, start_server, stop_server
from vallum.cli.admin import AdminClient
from vallum.operator.pg_state import journal_action

READ_ALL = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}


@pytest.fixture(scope="module")
def url(postgres):  # noqa: F811 - the fixture imported above
    return fresh_url()


@pytest.fixture(scope="module")
def gateways(url, tmp_path_factory):
    data = tmp_path_factory.mktemp("two") / "data"
    # observe: the gateways decide nothing themselves here, but apply every journalled action.
    env = {"VALLUM_META_URL": url, "VALLUM_OPERATOR": "observe"}
    g1 = start_server(data, "--workers", "2", env=env)   # four processes, four IAM followers
    try:
        g2 = start_server(data, "--workers", "2", env=env)
    except BaseException:
        stop_server(g1)
        raise
    yield g1, g2
    stop_server(g2)
    stop_server(g1)


@pytest.fixture(scope="module")
def tenant(gateways):
    g1, _ = gateways
    return Tenant(g1, AdminClient(g1.endpoint, g1.access_key, g1.secret_key, g1.region))


def _refused_within(call, codes: set[str], bound: float) -> float:
    """Seconds from now until ``call()`` is refused with one of ``codes``; any request that
    starts ``bound`` seconds after now must be refused (the documented guarantee)."""
    start = time.monotonic()
    while True:
        began = time.monotonic() - start
        try:
            call()
        except ClientError as exc:
            assert exc.response["Error"]["Code"] in codes, exc
            return began
        assert began < bound, f"still allowed {began:.3f}s after the change was acknowledged"


def test_second_gateway_did_not_sweep_the_first_ones_blobs(gateways):
    g1, _ = gateways
    log = server_log(g1.data_dir).read_text()
    assert "start-up sweep skipped: another gateway is serving on this database" in log


def test_objects_listing_versioning_and_multipart_alternate(gateways):
    g1, g2 = gateways
    a, b = g1.client(), g2.client()
    a.create_bucket(Bucket="alt")
    for i in range(6):                                  # written on one, read on the other
        writer, reader = (a, b) if i % 2 == 0 else (b, a)
        body = os.urandom(1000 + i)
        writer.put_object(Bucket="alt", Key=f"k/{i}", Body=body)
        assert reader.get_object(Bucket="alt", Key=f"k/{i}")["Body"].read() == body
    for c in (a, b):
        listed = c.list_objects_v2(Bucket="alt", Prefix="k/")
        assert [o["Key"] for o in listed["Contents"]] == [f"k/{i}" for i in range(6)]
    b.delete_object(Bucket="alt", Key="k/0")
    with pytest.raises(ClientError) as err:
        a.head_object(Bucket="alt", Key="k/0")
    assert err.value.response["Error"]["Code"] == "404"

    a.put_bucket_versioning(Bucket="alt", VersioningConfiguration={"Status": "Enabled"})
    v1 = b.put_object(Bucket="alt", Key="v", Body=b"one")["VersionId"]      # enabled on a, seen by b
    v2 = a.put_object(Bucket="alt", Key="v", Body=b"two")["VersionId"]
    assert v1 != v2
    assert b.get_object(Bucket="alt", Key="v")["Body"].read() == b"two"
    assert a.get_object(Bucket="alt", Key="v", VersionId=v1)["Body"].read() == b"one"
    assert [v["VersionId"] for v in b.list_object_versions(Bucket="alt", Prefix="v")["Versions"]] == [v2, v1]

    up = a.create_multipart_upload(Bucket="alt", Key="mp")["UploadId"]
    first, last = os.urandom(5 * 1024 * 1024), b"tail"
    e1 = b.upload_part(Bucket="alt", Key="mp", UploadId=up, PartNumber=1, Body=first)["ETag"]
    e2 = a.upload_part(Bucket="alt", Key="mp", UploadId=up, PartNumber=2, Body=last)["ETag"]
    assert [p["PartNumber"] for p in b.list_parts(Bucket="alt", Key="mp", UploadId=up)["Parts"]] == [1, 2]
    b.complete_multipart_upload(Bucket="alt", Key="mp", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert a.get_object(Bucket="alt", Key="mp")["Body"].read() == first + last


def test_a_bucket_policy_revoked_on_one_gateway_is_refused_by_the_other_at_once(gateways, tenant):
    """Bucket records are read from PostgreSQL on every request: no cache to go stale."""
    g1, g2 = gateways
    bucket = uid("pol")
    tenant.s3.create_bucket(Bucket=bucket)
    tenant.s3.put_object(Bucket=bucket, Key="o", Body=b"shared")
    other = Tenant(g1, AdminClient(g1.endpoint, g1.access_key, g1.secret_key, g1.region))
    okey = other.user("reader", READ_ALL)
    grant = doc({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{other.id}:user/reader"},
                 "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"})
    s3_for(g1, *tenant.admin_key).put_bucket_policy(Bucket=bucket, Policy=json.dumps(grant))
    reader2 = s3_for(g2, *okey)
    assert reader2.get_object(Bucket=bucket, Key="o")["Body"].read() == b"shared"
    s3_for(g1, *tenant.admin_key).delete_bucket_policy(Bucket=bucket)
    with pytest.raises(ClientError) as err:                     # the very next request
        reader2.get_object(Bucket=bucket, Key="o")
    assert code_of(err) == "AccessDenied"
    # The other tenant never lists or writes there, on either gateway.
    for g in (g1, g2):
        with pytest.raises(ClientError) as err:
            s3_for(g, *okey).put_object(Bucket=bucket, Key="x", Body=b"no")
        assert code_of(err) == "AccessDenied"


def test_a_legal_hold_set_on_one_gateway_binds_the_other_at_once(gateways):
    g1, g2 = gateways
    a, b = g1.client(), g2.client()
    a.create_bucket(Bucket="held", ObjectLockEnabledForBucket=True)
    vid = b.put_object(Bucket="held", Key="h", Body=b"evidence")["VersionId"]
    a.put_object_legal_hold(Bucket="held", Key="h", VersionId=vid, LegalHold={"Status": "ON"})
    with pytest.raises(ClientError) as err:
        b.delete_object(Bucket="held", Key="h", VersionId=vid)
    assert code_of(err) == "AccessDenied"
    assert b.get_object_legal_hold(Bucket="held", Key="h", VersionId=vid)["LegalHold"]["Status"] == "ON"
    b.put_object_legal_hold(Bucket="held", Key="h", VersionId=vid, LegalHold={"Status": "OFF"})
    a.delete_object(Bucket="held", Key="h", VersionId=vid)


def test_label_and_clearance_changes_apply_on_both_gateways(gateways):
    g1, g2 = gateways
    world = Cleared(g1)
    world.user("analyst", "SECRET")
    key = world.key("analyst")
    bucket = world.bucket("UNCLASSIFIED", "TOP SECRET")
    root1 = g1.client()
    root1.put_object(Bucket=bucket, Key="doc", Body=b"x", Tagging="vallum:label=SECRET")
    reader2 = s3_for(g2, *key)
    assert reader2.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"x"
    # A relabel on gateway 1 (an object record): gateway 2 hides the object at once.
    root1.put_object_tagging(Bucket=bucket, Key="doc",
                             Tagging={"TagSet": [{"Key": "vallum:label", "Value": "TOP SECRET"}]})
    with pytest.raises(ClientError) as err:
        reader2.get_object(Bucket=bucket, Key="doc")
    assert code_of(err) in {"NoSuchKey", "AccessDenied"}
    # A clearance lowered on gateway 1 (IAM): gateway 2 within the IAM bound.
    root1.put_object(Bucket=bucket, Key="secret", Body=b"s", Tagging="vallum:label=SECRET")
    assert reader2.get_object(Bucket=bucket, Key="secret")["Body"].read() == b"s"
    # A clearance lowered on gateway 1 (IAM): gateway 2 applies it before gateway 1 answers.
    world.root.call("SetClearance", account=world.account, user="analyst", clearance="CONFIDENTIAL")
    with pytest.raises(ClientError) as err:
        reader2.get_object(Bucket=bucket, Key="secret")
    assert code_of(err) in {"NoSuchKey", "AccessDenied"}


def _pg(url: str, sql: str, *params) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def test_a_key_deleted_on_one_gateway_is_refused_by_the_other_before_the_answer(gateways, tenant,
                                                                               url):
    g1, g2 = gateways
    key = tenant.user(uid("gone"), READ_ALL)
    # The key is a PostgreSQL row (what a gateway on another host reads), not a SQLite one.
    assert _pg(url, "SELECT status FROM iam_access_keys WHERE access_key_id = %s", key[0]) \
        == [("Active",)]
    with sqlite3.connect(g1.data_dir / "meta.sqlite3") as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "iam_access_keys" not in tables or not db.execute(
            "SELECT 1 FROM iam_access_keys WHERE access_key_id = ?", (key[0],)).fetchall()
    c2 = s3_for(g2, *key)
    c2.list_buckets()
    # Deleted on gateway 1: gateway 2 refuses the very next request (apply waited for it).
    tenant.admin.call("DeleteAccessKey", access_key_id=key[0])
    with pytest.raises(ClientError) as err:
        c2.list_buckets()
    assert code_of(err) == "InvalidAccessKeyId"
    # A disabled one, the same way, twenty times over (no lucky timing).
    key2 = tenant.user(uid("off"), READ_ALL)
    c2 = s3_for(g2, *key2)
    for _ in range(20):
        c2.list_buckets()
        tenant.admin.call("UpdateAccessKey", access_key_id=key2[0], status="Inactive")
        with pytest.raises(ClientError) as err:
            c2.list_buckets()
        assert code_of(err) == "InvalidAccessKeyId"
        tenant.admin.call("UpdateAccessKey", access_key_id=key2[0], status="Active")
    # A forged secret for a live key is refused by both.
    key3 = tenant.user(uid("live"), READ_ALL)
    for g in gateways:
        with pytest.raises(ClientError) as err:
            s3_for(g, key3[0], "not-the-secret").list_buckets()
        assert code_of(err) == "SignatureDoesNotMatch"


def test_failed_authentications_are_counted_across_gateways(gateways, tenant, url):
    """20 bad signatures for one key from one address, alternating: the 21st is refused
    (SlowDown) by either gateway, while the right secret still works (a lockout never locks
    out the key's owner)."""
    g1, g2 = gateways
    key = tenant.user(uid("stuffed"), READ_ALL)
    for i in range(20):
        g = gateways[i % 2]
        with pytest.raises(ClientError) as err:
            s3_for(g, key[0], "guess").list_buckets()
        assert code_of(err) == "SignatureDoesNotMatch"
    who = _pg(url, "SELECT who FROM iam_auth_lockouts WHERE who LIKE %s", f"k:{key[0]}@%")
    assert len(who) == 1                            # the lockout is a PostgreSQL row
    for g in (g1, g2):
        with pytest.raises(ClientError) as err:
            s3_for(g, key[0], "guess").list_buckets()
        assert code_of(err) == "SlowDown"
        s3_for(g, *key).list_buckets()


def test_operator_containment_journalled_once_applies_on_both_gateways(gateways, tenant, url):
    """A suspension of a session key and a throttle, journalled in PostgreSQL as a detector on
    any host journals them (pg_state.journal_action), are applied by both gateways within a
    second; `vallum operator release` (the real CLI) lifts the suspension on both."""
    g1, g2 = gateways
    key = tenant.user(uid("contained"), READ_ALL)
    clients = [s3_for(g, *key) for g in gateways]
    for c in clients:
        c.list_buckets()
    base = {"entity_type": "principal", "reason": "test", "account": tenant.id, "kind": "test",
            "by": "operator", "pid": -1}
    journal_action(url, {**base, "ts": time.time(), "action": "suspend", "entity": key[0]})
    for c in clients:
        _refused_within(c.list_buckets, {"AccessDenied"}, 1.0)
    out = subprocess.run([sys.executable, "-m", "vallum", "operator", "release", key[0],
                          "--data-dir", str(g1.data_dir), "--reason", "false alarm"],
                         env=dict(os.environ, VALLUM_META_URL=url), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for c in clients:
        deadline = time.monotonic() + 1.0
        while True:
            try:
                c.list_buckets()
                break
            except ClientError:
                assert time.monotonic() < deadline, "release not applied within a second"
    other = tenant.user(uid("throttled"), READ_ALL)
    journal_action(url, {**base, "ts": time.time(), "action": "throttle", "entity": other[0],
                         "rate": 0.01})
    time.sleep(1.0)                     # the bound: applied by then
    for g in gateways:                  # its own burst of 5 on each gateway, then SlowDown
        once = boto3.client("s3", endpoint_url=g.endpoint, aws_access_key_id=other[0],
                            aws_secret_access_key=other[1], region_name=g.region,
                            config=Config(retries={"total_max_attempts": 1}))
        seen = []
        for _ in range(8):
            try:
                once.list_buckets()
                seen.append("ok")
            except ClientError as exc:
                seen.append(exc.response["Error"]["Code"])
        # (one connection: one worker's bucket; each worker of each gateway holds its own)
        assert seen[:5] == ["ok"] * 5 and "SlowDown" in seen[5:]


def test_identities_move_to_postgres_with_the_deployment(postgres, tmp_path):  # noqa: F811
    """A gateway that kept IAM in SQLite restarted with --meta: its keys still sign in (the
    empty PostgreSQL IAM adopted them), a key deleted since is still refused."""
    data = tmp_path / "data"
    srv = start_server(data)
    try:
        root = AdminClient(srv.endpoint, srv.access_key, srv.secret_key, srv.region)
        t = Tenant(srv, root)
        kept, dropped = t.user(uid("kept"), READ_ALL), t.user(uid("dropped"), READ_ALL)
        t.admin.call("DeleteAccessKey", access_key_id=dropped[0])
    finally:
        stop_server(srv)
    srv = start_server(data, env={"VALLUM_META_URL": fresh_url()})
    try:
        s3_for(srv, *kept).list_buckets()
        with pytest.raises(ClientError) as err:
            s3_for(srv, *dropped).list_buckets()
        assert code_of(err) == "InvalidAccessKeyId"
        assert "IAM: adopted" in server_log(data).read_text()
    finally:
        stop_server(srv)
