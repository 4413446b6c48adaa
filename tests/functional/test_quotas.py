"""Storage quotas and usage per tenant against the real server: refused before bytes are
stored, exact under concurrent uploads, invisible and untouchable for other tenants, and
usage that leaves out what a lower-cleared admin may not see."""

from __future__ import annotations

import concurrent.futures
import http.client
import os
import urllib.parse

import pytest
from botocore.exceptions import ClientError

from tests.support.iam import Tenant, s3_for, uid
from vallum.cli.admin import AdminClient, AdminError

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                                reason="needs Vallum's admin API")

KIB = 1024


def code(exc_info) -> str:
    return exc_info.value.response["Error"]["Code"]


def usage_of(admin: AdminClient, account: str) -> dict:
    return admin.call("GetUsage", account=account)["accounts"][account]


@pytest.fixture
def tenant(server, root) -> Tenant:
    return Tenant(server, root)


def test_bucket_quota_refuses_growth_and_counts_overwrites_deletes_and_parts(server, root, tenant):
    b = uid("q")
    tenant.s3.create_bucket(Bucket=b)
    tenant.admin.call("SetBucketQuota", bucket=b, max_bytes=100 * KIB, max_objects=3)
    tenant.s3.put_object(Bucket=b, Key="a", Body=os.urandom(60 * KIB))
    with pytest.raises(ClientError) as err:
        tenant.s3.put_object(Bucket=b, Key="b", Body=os.urandom(41 * KIB))
    assert code(err) == "QuotaExceeded"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert [o["Key"] for o in tenant.s3.list_objects_v2(Bucket=b).get("Contents", [])] == ["a"]
    tenant.s3.put_object(Bucket=b, Key="a", Body=os.urandom(90 * KIB))      # overwrite: credited
    with pytest.raises(ClientError) as err:                                   # copy counts too
        tenant.s3.copy_object(Bucket=b, Key="c", CopySource={"Bucket": b, "Key": "a"})
    assert code(err) == "QuotaExceeded"
    tenant.s3.delete_object(Bucket=b, Key="a")
    up = tenant.s3.create_multipart_upload(Bucket=b, Key="m")["UploadId"]
    tenant.s3.upload_part(Bucket=b, Key="m", UploadId=up, PartNumber=1, Body=os.urandom(70 * KIB))
    with pytest.raises(ClientError) as err:                                   # parts in flight count
        tenant.s3.upload_part(Bucket=b, Key="m", UploadId=up, PartNumber=2, Body=os.urandom(40 * KIB))
    assert code(err) == "QuotaExceeded"
    used = usage_of(tenant.admin, tenant.id)["buckets"][b]
    assert (used["bytes"], used["objects"], used["pending_bytes"]) == (0, 0, 70 * KIB)
    assert used["quota"] == {"max_bytes": 100 * KIB, "max_objects": 3}
    tenant.s3.abort_multipart_upload(Bucket=b, Key="m", UploadId=up)
    for k in ("x", "y", "z"):
        tenant.s3.put_object(Bucket=b, Key=k, Body=b"")
    with pytest.raises(ClientError) as err:
        tenant.s3.put_object(Bucket=b, Key="w", Body=b"")
    assert code(err) == "QuotaExceeded"


def test_a_large_upload_is_refused_before_its_body_is_sent(server, root, tenant):
    b = uid("q")
    tenant.s3.create_bucket(Bucket=b)
    tenant.admin.call("SetBucketQuota", bucket=b, max_bytes=1024 * KIB)
    # Sign a PUT of 64 MiB with an unsigned payload, send only the headers and wait: the
    # answer must come without the body (the gateway read nothing and stored nothing).
    url = tenant.s3.generate_presigned_url("put_object", Params={"Bucket": b, "Key": "big"},
                                           ExpiresIn=300)
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=20)
    conn.putrequest("PUT", f"{parts.path}?{parts.query}", skip_accept_encoding=True)
    conn.putheader("Content-Length", str(64 * 1024 * KIB))
    conn.endheaders()
    conn.send(os.urandom(64 * KIB))
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    assert resp.status == 403 and b"<Code>QuotaExceeded</Code>" in body
    assert "Contents" not in tenant.s3.list_objects_v2(Bucket=b)


def test_concurrent_uploads_cannot_both_slip_under_the_quota(server, root, tenant):
    b = uid("q")
    tenant.s3.create_bucket(Bucket=b)
    root.call("SetAccountQuota", account=tenant.id, max_bytes=1000 * KIB)
    bodies = [os.urandom(300 * KIB) for _ in range(8)]

    def put(i):
        try:
            tenant.s3.put_object(Bucket=b, Key=f"k{i}", Body=bodies[i])
            return "ok"
        except ClientError as exc:
            return exc.response["Error"]["Code"]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(put, range(8)))
    assert outcomes.count("ok") == 3 and outcomes.count("QuotaExceeded") == 5, outcomes
    listed = sum(o["Size"] for o in tenant.s3.list_objects_v2(Bucket=b)["Contents"])
    account = usage_of(root, tenant.id)
    assert account["bytes"] == listed == 900 * KIB
    assert account["quota"]["max_bytes"] == 1000 * KIB
    root.call("SetAccountQuota", account=tenant.id, max_bytes=None, max_objects=None)
    tenant.s3.put_object(Bucket=b, Key="more", Body=bodies[0])           # limit removed


def test_another_tenant_can_neither_see_nor_set_quotas_and_nobody_raises_their_own(server, root, tenant):
    b = uid("q")
    tenant.s3.create_bucket(Bucket=b)
    other = Tenant(server, root)
    with pytest.raises(AdminError) as err:          # as for a missing bucket: no existence leak
        other.admin.call("SetBucketQuota", bucket=b, max_bytes=1)
    missing = uid("none")
    with pytest.raises(AdminError) as err2:
        other.admin.call("SetBucketQuota", bucket=missing, max_bytes=1)
    assert (err.value.status, err.value.code, err.value.message.replace(b, "B")) == \
        (err2.value.status, err2.value.code, err2.value.message.replace(missing, "B"))
    for caller in (other.admin, tenant.admin):
        with pytest.raises(AdminError) as err:
            caller.call("SetAccountQuota", account=tenant.id, max_bytes=10**15)
        assert err.value.code == "AccessDenied"
    with pytest.raises(AdminError) as err:
        other.admin.call("GetUsage", account=tenant.id)
    assert err.value.code == "AccessDenied"
    assert list(other.admin.call("GetUsage")["accounts"]) == [other.id]
    # A user without vallum:GetUsage / PutBucketQuota is refused.
    key = tenant.user(uid("u"), {"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    plain = AdminClient(server.endpoint, *key, server.region)
    for action, args in (("GetUsage", {}), ("SetBucketQuota", {"bucket": b, "max_bytes": 5})):
        with pytest.raises(AdminError) as err:
            plain.call(action, **args)
        assert err.value.code == "AccessDenied"
    assert tenant.admin.call("GetUsage")["accounts"][tenant.id]["buckets"][b]["quota"] is None


@pytest.mark.parametrize("bad", [{"max_bytes": -1}, {"max_bytes": "10"}, {"max_objects": 1.5},
                                 {"max_bytes": True}], ids=["negative", "string", "float", "bool"])
def test_malformed_quota_is_refused_and_changes_nothing(server, root, tenant, bad):
    b = uid("q")
    tenant.s3.create_bucket(Bucket=b)
    tenant.admin.call("SetBucketQuota", bucket=b, max_bytes=7)
    with pytest.raises(AdminError) as err:
        tenant.admin.call("SetBucketQuota", bucket=b, **bad)
    assert err.value.status == 400
    assert usage_of(tenant.admin, tenant.id)["buckets"][b]["quota"] == {"max_bytes": 7, "max_objects": None}


def test_usage_leaves_out_levels_the_admin_may_not_read(server, root, tenant):
    b = uid("q")
    tenant.s3.create_bucket(Bucket=b)
    name = uid("cleared")
    tenant.admin.call("CreateUser", user=name)
    tenant.admin.call("PutInlinePolicy", kind="user", target=name, name="p", document={
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
    root.call("SetClearance", account=tenant.id, user=name, clearance="SECRET")
    key = root.call("CreateAccessKey", account=tenant.id, user=name)
    cleared = s3_for(server, key["access_key_id"], key["secret_access_key"],
                     headers={"x-vallum-classification": "SECRET"})
    tenant.s3.put_object(Bucket=b, Key="open", Body=b"x" * 10)
    cleared.put_object(Bucket=b, Key="hidden", Body=b"y" * 1000)
    seen = usage_of(tenant.admin, tenant.id)["buckets"][b]           # the admin is uncleared
    assert (seen["bytes"], seen["objects"], list(seen["by_label"])) == (10, 1, ["UNCLASSIFIED"])
    full = usage_of(root, tenant.id)["buckets"][b]
    assert (full["bytes"], full["objects"]) == (1010, 2)
    assert full["by_label"]["SECRET"] == {"bytes": 1000, "objects": 1, "pending_bytes": 0}
