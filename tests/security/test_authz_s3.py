"""Adversarial tests of S3 authorization on the request path (issue 13: High 1, High 6,
the ExistingObjectTag/MAC ordering). Each attack is run against a real `vallum serve`
with stock boto3 clients, the way the red team ran it.

- DeleteObjects must authorize every key and version exactly as the single delete does.
- A copy source the gate cannot parse must never be let through (one parser for both).
- s3:ExistingObjectTag must not reveal a hidden object (MAC first, then tags).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.support.iam import Tenant, doc, s3_for
from tests.support.mac import LABEL, TS, put, with_headers
from tests.support.server import code, start_server, stop_server
from vallum.cli.admin import AdminClient

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                                reason="needs Vallum's admin API")

ALLOW_ALL = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("authz") / "data")
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def root(srv):
    return AdminClient(srv.endpoint, srv.access_key, srv.secret_key, srv.region)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# ---------------------------------------------------------------- High 1: DeleteObjects

@pytest.fixture(scope="module")
def guarded(srv, root):
    """A versioned bucket of a tenant whose user may not delete protected/*, may not delete
    any version, and may not delete objects tagged keep=yes."""
    tenant = Tenant(srv, root)
    bucket = _name("md")
    tenant.s3.create_bucket(Bucket=bucket)
    tenant.s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    user = s3_for(srv, *tenant.user(_name("u"), ALLOW_ALL, {
        "Effect": "Deny", "Action": "s3:DeleteObject",
        "Resource": f"arn:aws:s3:::{bucket}/protected/*"}, {
        "Effect": "Deny", "Action": "s3:DeleteObjectVersion", "Resource": "*"}, {
        "Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "*",
        "Condition": {"StringEquals": {"s3:ExistingObjectTag/keep": "yes"}}}))
    return tenant, user, bucket


def _versions(c, bucket: str) -> list[tuple[str, str]]:
    out = c.list_object_versions(Bucket=bucket)
    return sorted((v["Key"], v["VersionId"]) for v in out.get("Versions", []))


def test_delete_objects_authorizes_every_key_and_version(guarded):
    tenant, user, bucket = guarded
    v_protected = user.put_object(Bucket=bucket, Key="protected/a", Body=b"a")["VersionId"]
    v_free = user.put_object(Bucket=bucket, Key="free/b", Body=b"b")["VersionId"]
    user.put_object(Bucket=bucket, Key="free/tagged", Body=b"t", Tagging="keep=yes")
    before = _versions(tenant.s3, bucket)
    out = user.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "protected/a", "VersionId": v_protected},   # both denies apply
        {"Key": "protected/a"},                              # prefix deny
        {"Key": "free/b", "VersionId": v_free},              # DeleteObjectVersion denied on *
        {"Key": "free/tagged"},                              # existing-tag condition
        {"Key": "free/b"},                                   # allowed: a delete marker
    ]})
    errors = sorted((e["Key"], e.get("VersionId", ""), e["Code"]) for e in out.get("Errors", []))
    assert errors == [("free/b", v_free, "AccessDenied"), ("free/tagged", "", "AccessDenied"),
                      ("protected/a", "", "AccessDenied"),
                      ("protected/a", v_protected, "AccessDenied")]
    assert [(d["Key"], d.get("DeleteMarker")) for d in out["Deleted"]] == [("free/b", True)]
    assert _versions(tenant.s3, bucket) == before, "no protected version may be removed"
    # The batch answers each key as the single request does.
    for key, version in (("protected/a", v_protected), ("protected/a", None),
                         ("free/b", v_free), ("free/tagged", None)):
        with pytest.raises(ClientError) as exc:
            user.delete_object(Bucket=bucket, Key=key, **({"VersionId": version} if version else {}))
        assert code(exc) == "AccessDenied"


def test_delete_objects_of_another_tenant_is_refused_per_key(srv, root, guarded):
    owner, _, bucket = guarded
    owner.s3.put_object(Bucket=bucket, Key="theirs", Body=b"x")
    stranger = Tenant(srv, root).s3
    out = stranger.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "theirs"}]})
    assert [e["Code"] for e in out["Errors"]] == ["AccessDenied"]
    assert owner.s3.get_object(Bucket=bucket, Key="theirs")["Body"].read() == b"x"


# ---------------------------------------------------------------- implied actions of a write

@pytest.mark.parametrize("op", ["put", "copy", "multipart"])
@pytest.mark.parametrize("extra, denied", [
    ({"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": "2099-01-01T00:00:00Z"},
     "s3:PutObjectRetention"),
    ({"ObjectLockLegalHoldStatus": "ON"}, "s3:PutObjectLegalHold"),
    ({"Tagging": "team=red"}, "s3:PutObjectTagging"),
    ({"ACL": "public-read"}, "s3:PutObjectAcl"),
])
def test_a_write_cannot_do_through_headers_what_its_caller_is_denied(srv, root, op, extra, denied):
    """A caller denied s3:PutObjectRetention must not make an undeletable object by sending
    x-amz-object-lock-* on PutObject (nor tags, legal holds, ACLs likewise)."""
    tenant = Tenant(srv, root)
    bucket = _name("impl")
    tenant.s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    tenant.s3.put_object(Bucket=bucket, Key="src", Body=b"s")
    user = s3_for(srv, *tenant.user(_name("u"), ALLOW_ALL,
                                    {"Effect": "Deny", "Action": denied, "Resource": "*"}))
    args = dict(Bucket=bucket, Key="k", **extra)
    if "Object" in next(iter(extra)):
        args["ChecksumAlgorithm"] = "SHA256"        # object lock headers need a digest
    with pytest.raises(ClientError) as exc:
        if op == "put":
            user.put_object(Body=b"x", **args)
        elif op == "copy":
            args.pop("ChecksumAlgorithm", None)
            user.copy_object(CopySource=f"{bucket}/src", TaggingDirective="REPLACE", **args)
        else:
            args.pop("ChecksumAlgorithm", None)
            user.create_multipart_upload(**args)
    assert code(exc) == "AccessDenied"
    assert [v["Key"] for v in tenant.s3.list_object_versions(Bucket=bucket).get("Versions", [])] \
        == ["src"]
    assert not tenant.s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    user.put_object(Bucket=bucket, Key="plain", Body=b"x")         # the write itself is allowed


# ---------------------------------------------------------------- High 6: copy source

@pytest.fixture(scope="module")
def victim(srv, root):
    """Another tenant's bucket holding a key that starts with '?'."""
    tenant = Tenant(srv, root)
    bucket = _name("victim")
    tenant.s3.create_bucket(Bucket=bucket)
    tenant.s3.put_object(Bucket=bucket, Key="?secret", Body=b"the other tenant's data")
    return bucket


@pytest.fixture(scope="module")
def attacker(srv, root):
    tenant = Tenant(srv, root)
    bucket = _name("loot")
    tenant.s3.create_bucket(Bucket=bucket)
    return tenant.s3, bucket


@pytest.mark.parametrize("source", ["{b}/%3Fsecret", "/{b}/%3Fsecret", "{b}/%3Fsecret?versionId=null"])
def test_cross_tenant_copy_of_a_question_mark_key_is_refused(victim, attacker, source):
    s3, loot = attacker
    raw = source.format(b=victim)

    def raw_source(params, **_):
        params["headers"]["x-amz-copy-source"] = raw     # exactly these bytes on the wire
    s3.meta.events.register_first("before-call.s3.CopyObject", raw_source)
    try:
        with pytest.raises(ClientError) as exc:
            s3.copy_object(Bucket=loot, Key="stolen", CopySource=f"{victim}/placeholder")
    finally:
        s3.meta.events.unregister("before-call.s3.CopyObject", raw_source)
    assert code(exc) == "AccessDenied"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=loot, Key="stolen")


def test_cross_tenant_upload_part_copy_of_a_question_mark_key_is_refused(victim, attacker):
    s3, loot = attacker
    upload = s3.create_multipart_upload(Bucket=loot, Key="stolen-mp")["UploadId"]
    try:
        with pytest.raises(ClientError) as exc:
            s3.upload_part_copy(Bucket=loot, Key="stolen-mp", UploadId=upload, PartNumber=1,
                                CopySource=f"{victim}/?secret")   # boto3 sends %3Fsecret
        assert code(exc) == "AccessDenied"
    finally:
        s3.abort_multipart_upload(Bucket=loot, Key="stolen-mp", UploadId=upload)


@pytest.mark.parametrize("source", ["{b}", "{b}/", "/", "{b}/k?versionId=", "{b}/k?partNumber=1",
                                    "{b}/k?versionId=../../x", "{b}/%ff%fe"])
def test_unparsable_copy_source_is_refused_not_waved_through(victim, attacker, source):
    s3, loot = attacker
    raw = source.format(b=victim)

    def raw_source(params, **_):
        params["headers"]["x-amz-copy-source"] = raw
    s3.meta.events.register_first("before-call.s3.CopyObject", raw_source)
    try:
        with pytest.raises(ClientError) as exc:
            s3.copy_object(Bucket=loot, Key="x", CopySource=f"{victim}/placeholder")
    finally:
        s3.meta.events.unregister("before-call.s3.CopyObject", raw_source)
    assert code(exc) == "InvalidArgument"


def test_same_tenant_copy_of_a_question_mark_key_still_works(attacker):
    s3, loot = attacker
    s3.put_object(Bucket=loot, Key="?mine", Body=b"ok")
    s3.copy_object(Bucket=loot, Key="copy", CopySource=f"{loot}/?mine")
    assert s3.get_object(Bucket=loot, Key="copy")["Body"].read() == b"ok"


# ---------------------------------------------------------------- MAC: tags, audit

def top_secret_user(server, root, tenant):
    """An S3 client of a new TOP SECRET-cleared user of ``tenant`` allowed everything (its
    key minted by the platform root: only the root may mint a cleared credential)."""
    name = _name("top")
    tenant.admin.call("CreateUser", user=name)
    tenant.admin.call("PutInlinePolicy", kind="user", target=name, name="p",
                      document=doc(ALLOW_ALL))
    root.call("SetClearance", account=tenant.id, user=name, clearance=TS)
    key = root.call("CreateAccessKey", account=tenant.id, user=name)
    return s3_for(server, key["access_key_id"], key["secret_access_key"])


@pytest.fixture(scope="module")
def mac(srv, root):
    """A tenant with a TOP SECRET user and an uncleared one (denied GetObject on objects
    tagged project=x), and an unversioned bucket holding a TOP SECRET object so tagged."""
    tenant = Tenant(srv, root)
    top = top_secret_user(srv, root, tenant)
    low = s3_for(srv, *tenant.user(_name("low"), ALLOW_ALL, {
        "Effect": "Deny", "Action": ["s3:GetObject", "s3:GetObjectTagging"], "Resource": "*",
        "Condition": {"StringEquals": {"s3:ExistingObjectTag/project": "x"}}}))
    bucket = _name("mac")
    top.create_bucket(Bucket=bucket)
    put(top, bucket, "hidden", b"ts", TS)
    top.put_object_tagging(Bucket=bucket, Key="hidden",
                           Tagging={"TagSet": [{"Key": "project", "Value": "x"}]})
    return top, low, bucket


def test_existing_object_tag_does_not_reveal_a_hidden_object(mac):
    """For a TOP SECRET object tagged project=x, the uncleared user denied by that tag must
    get exactly the answer a missing key gives."""
    _, low, bucket = mac
    answers = []
    for k in ("hidden", "absent"):
        with pytest.raises(ClientError) as exc:
            low.get_object(Bucket=bucket, Key=k)
        answers.append((code(exc), exc.value.response["ResponseMetadata"]["HTTPStatusCode"]))
    assert answers[0] == answers[1] == ("NoSuchKey", 404)


def test_a_tag_condition_on_reads_also_holds_for_copies(mac):
    """Denied GetObject on objects tagged project=x, the low user must not read one by
    copying it: the copy source's tags are evaluated as for a GET."""
    top, low, bucket = mac
    low.put_object(Bucket=bucket, Key="low-tagged", Body=b"need to know",
                   Tagging="project=x")
    with pytest.raises(ClientError) as exc:
        low.get_object(Bucket=bucket, Key="low-tagged")
    assert code(exc) == "AccessDenied"
    with pytest.raises(ClientError) as exc:
        low.copy_object(Bucket=bucket, Key="laundered", CopySource=f"{bucket}/low-tagged",
                        TaggingDirective="REPLACE")
    assert code(exc) == "AccessDenied"
    with pytest.raises(ClientError) as exc:
        low.head_object(Bucket=bucket, Key="laundered")
    assert code(exc) == "404"


def _audit(srv, bucket: str) -> dict[str, dict]:
    out = subprocess.run([sys.executable, "-m", "vallum", "audit", "export", "--data-dir",
                          str(srv.data_dir), "--bucket", bucket],
                         capture_output=True, text=True, check=True)
    return {r["request_id"]: r for r in map(json.loads, out.stdout.splitlines())}


def test_mac_refusals_are_audited_as_deny(srv, mac):
    """No read up (404), a hidden delete (204) and a refused overwrite of a hidden null
    version (503) all look like something else to the client; the audit says deny."""
    _, low, bucket = mac
    rids = {}
    with pytest.raises(ClientError) as exc:
        low.head_object(Bucket=bucket, Key="hidden")
    rids["read"] = exc.value.response["ResponseMetadata"]["RequestId"]
    rids["delete"] = low.delete_object(Bucket=bucket, Key="hidden")["ResponseMetadata"]["RequestId"]
    with pytest.raises(ClientError) as exc:
        low.put_object(Bucket=bucket, Key="hidden", Body=b"overwrite")
    rids["overwrite"] = exc.value.response["ResponseMetadata"]["RequestId"]
    rids["allowed"] = low.put_object(Bucket=bucket, Key="mine", Body=b"u")["ResponseMetadata"]["RequestId"]
    records = _audit(srv, bucket)
    got = {what: (records[rid]["decision"], (records[rid]["rule"] or "").startswith("mac:"))
           for what, rid in rids.items()}
    assert got == {"read": ("deny", True), "delete": ("deny", True),
                   "overwrite": ("deny", True), "allowed": ("allow", False)}


# ---------------------------------------------------------------- lifecycle: a scheduled delete

@pytest.fixture(scope="module")
def clocked(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("authz-clock") / "data", "--test-clock")
    yield server
    stop_server(server)


def test_a_low_users_lifecycle_rule_cannot_expire_hidden_objects(clocked):
    """An uncleared user who may set its bucket's lifecycle must not destroy, through an
    expiration rule, the TOP SECRET objects it can neither see nor delete."""
    from tests.support.lifecycle import sweep_at
    root = AdminClient(clocked.endpoint, clocked.access_key, clocked.secret_key, clocked.region)
    tenant = Tenant(clocked, root)
    top = top_secret_user(clocked, root, tenant)
    low = s3_for(clocked, *tenant.user(_name("low"), ALLOW_ALL))
    bucket = _name("lc")
    low.create_bucket(Bucket=bucket)
    put(top, bucket, "ts.txt", b"top secret", TS)
    add = with_headers(top, {LABEL: TS})
    try:
        upload = top.create_multipart_upload(Bucket=bucket, Key="ts-upload")["UploadId"]
    finally:
        top.meta.events.unregister("before-call.s3", add)
    low.put_object(Bucket=bucket, Key="low.txt", Body=b"low")
    low.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [
        {"ID": "all", "Status": "Enabled", "Filter": {"Prefix": ""},
         "Expiration": {"Days": 1}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]})
    sweep_at(clocked, 3 * 86400)
    assert top.get_object(Bucket=bucket, Key="ts.txt")["Body"].read() == b"top secret"
    assert [u["UploadId"] for u in top.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [upload]
    with pytest.raises(ClientError) as exc:
        low.head_object(Bucket=bucket, Key="low.txt")               # the rule did run
    assert code(exc) == "404"
