"""Permissions boundaries and admin users through the real server, with boto3 and the CLI.

AWS's rules: a boundary caps what identity policies grant (user or role, and the role's
sessions); a bucket policy naming the user (or the session) directly is not capped, one
naming the role is; an explicit deny anywhere wins.
"""

from __future__ import annotations

import json
import os

import pytest
from botocore.exceptions import ClientError

from tests.support.iam import admin_cli, code_of, doc, s3_for, sts_for, uid
from vallum.cli.admin import AdminClient, AdminError

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                                reason="needs Vallum's admin API")

S3_ALL = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}


def _read_only(bucket: str) -> dict:
    return doc({"Sid": "ReadOnly", "Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
                 "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]})


def _denied(call) -> None:
    with pytest.raises(ClientError) as exc:
        call()
    assert code_of(exc) == "AccessDenied"


def test_user_boundary_caps_identity_policies_not_direct_grants(server, tenant):
    t = tenant
    bucket = uid("bnd")
    t.s3.create_bucket(Bucket=bucket)
    t.s3.put_object(Bucket=bucket, Key="doc", Body=b"v1")
    user = uid("capped")
    s3 = s3_for(server, *t.user(user, S3_ALL))
    s3.put_object(Bucket=bucket, Key="doc", Body=b"v2")          # no boundary yet
    t.admin.call("CreatePolicy", policy=user + "-ro", document=_read_only(bucket))
    t.admin.call("PutUserPermissionsBoundary", user=user,
                 policy=f"arn:aws:iam::{t.id}:policy/{user}-ro")
    assert t.admin.call("GetUser", user=user)["boundary"] == user + "-ro"

    assert s3.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"v2"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["doc"]
    _denied(lambda: s3.put_object(Bucket=bucket, Key="doc", Body=b"v3"))
    _denied(lambda: s3.delete_object(Bucket=bucket, Key="doc"))
    sim = t.admin.call("Simulate", user=user, action="s3:PutObject",
                       resource=f"arn:aws:s3:::{bucket}/doc")
    assert sim["decision"] == "deny" and "permissions boundary" in sim["reason"]

    # A bucket policy naming the user's ARN is not limited by the boundary ...
    user_arn = f"arn:aws:iam::{t.id}:user/{user}"
    t.s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(doc(
        {"Sid": "UserMayWrite", "Effect": "Allow", "Principal": {"AWS": user_arn},
         "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*"})))
    s3.put_object(Bucket=bucket, Key="doc", Body=b"v3")
    _denied(lambda: s3.delete_object(Bucket=bucket, Key="doc"))
    # ... but an explicit deny in the boundary wins over it.
    t.admin.call("CreatePolicy", policy=user + "-ro", document=doc(
        *_read_only(bucket)["Statement"],
        {"Sid": "NoWrites", "Effect": "Deny", "Action": "s3:PutObject", "Resource": "*"}))
    _denied(lambda: s3.put_object(Bucket=bucket, Key="doc", Body=b"v4"))

    with pytest.raises(AdminError) as exc:
        t.admin.call("DeletePolicy", policy=user + "-ro")
    assert exc.value.code == "DeleteConflict"
    t.admin.call("DeleteUserPermissionsBoundary", user=user)
    assert "boundary" not in t.admin.call("GetUser", user=user)
    s3.delete_object(Bucket=bucket, Key="doc")
    t.admin.call("DeletePolicy", policy=user + "-ro")


def test_role_sessions_keep_the_role_boundary(server, tenant):
    t = tenant
    bucket = uid("rbnd")
    t.s3.create_bucket(Bucket=bucket)
    t.s3.put_object(Bucket=bucket, Key="a", Body=b"a")
    t.s3.put_object(Bucket=bucket, Key="b", Body=b"b")
    caller = uid("assumer")
    caller_key = t.user(caller, {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"})
    role = uid("worker")
    t.admin.call("CreateRole", role=role, trust_policy=doc(
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{t.id}:user/{caller}"},
         "Action": "sts:AssumeRole"}))
    t.admin.call("PutInlinePolicy", kind="role", target=role, name="all", document=doc(S3_ALL))
    t.admin.call("CreatePolicy", policy=role + "-ro", document=_read_only(bucket))
    t.admin.call("PutRolePermissionsBoundary", role=role, policy=role + "-ro")
    assert t.admin.call("GetRole", role=role)["boundary"] == role + "-ro"

    out = sts_for(server, *caller_key).assume_role(
        RoleArn=f"arn:aws:iam::{t.id}:role/{role}", RoleSessionName="job1", DurationSeconds=900)
    c, session_arn = out["Credentials"], out["AssumedRoleUser"]["Arn"]
    s3 = s3_for(server, c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
    assert s3.get_object(Bucket=bucket, Key="a")["Body"].read() == b"a"
    _denied(lambda: s3.put_object(Bucket=bucket, Key="c", Body=b"c"))

    # A bucket policy naming the role is capped by the boundary; naming the session is not.
    t.s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(doc(
        {"Sid": "Role", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{t.id}:role/{role}"},
         "Action": "s3:DeleteObject", "Resource": f"arn:aws:s3:::{bucket}/a"},
        {"Sid": "Session", "Effect": "Allow", "Principal": {"AWS": session_arn},
         "Action": "s3:DeleteObject", "Resource": f"arn:aws:s3:::{bucket}/b"})))
    _denied(lambda: s3.delete_object(Bucket=bucket, Key="a"))
    s3.delete_object(Bucket=bucket, Key="b")

    # Removing the role's boundary lifts the cap for its existing sessions at once.
    t.admin.call("DeleteRolePermissionsBoundary", role=role)
    s3.put_object(Bucket=bucket, Key="c", Body=b"c")


def test_boundary_cli_round_trip(server, tenant, tmp_path):
    t = tenant
    user = uid("cliuser")
    s3 = s3_for(server, *t.user(user, S3_ALL))
    doc_file = tmp_path / "deny-all.json"
    doc_file.write_text(json.dumps(doc({"Effect": "Allow", "Action": "s3:ListAllMyBuckets",
                                    "Resource": "*"})))
    assert admin_cli(server, "policy", "create", user + "-lb", "-d", f"@{doc_file}",
                "--account", t.id).returncode == 0
    out = admin_cli(server, "-o", "json", "user", "set-boundary", user, user + "-lb", "--account", t.id)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["boundary_arn"] == f"arn:aws:iam::{t.id}:policy/{user}-lb"
    s3.list_buckets()
    _denied(lambda: s3.create_bucket(Bucket=uid("nope")))
    missing = admin_cli(server, "user", "set-boundary", user, "no-such-policy", "--account", t.id)
    assert missing.returncode == 1 and "NoSuchEntity" in missing.stderr
    assert admin_cli(server, "user", "delete-boundary", user, "--account", t.id).returncode == 0
    name = uid("yes")
    s3.create_bucket(Bucket=name)
    s3.delete_bucket(Bucket=name)
    role = uid("clirole")
    t.admin.call("CreateRole", role=role, trust_policy=doc(
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{t.id}:root"},
         "Action": "sts:AssumeRole"}))
    assert admin_cli(server, "role", "set-boundary", role, user + "-lb", "--account", t.id).returncode == 0
    assert t.admin.call("GetRole", role=role)["boundary"] == user + "-lb"
    assert admin_cli(server, "role", "delete-boundary", role, "--account", t.id).returncode == 0
    assert "boundary" not in t.admin.call("GetRole", role=role)


def test_admin_flag_grants_account_administration(server, tenant):
    t = tenant
    ops = uid("ops")
    out = admin_cli(server, "user", "create", ops, "--admin", "--account", t.id)
    assert out.returncode == 0, out.stderr
    assert t.admin.call("GetUser", user=ops)["policies"] == [f"user/{ops}/inline/AccountAdmin"]
    key = t.admin.call("CreateAccessKey", user=ops)
    admin = AdminClient(server.endpoint, key["access_key_id"], key["secret_access_key"],
                        server.region)
    created = uid("made-by-ops")
    admin.call("CreateUser", user=created)
    assert created in [u["name"] for u in admin.call("ListUsers")["users"]]
    s3 = s3_for(server, key["access_key_id"], key["secret_access_key"])
    name = uid("opsb")
    s3.create_bucket(Bucket=name)
    s3.delete_bucket(Bucket=name)
    with pytest.raises(AdminError) as exc:          # inside its account only
        admin.call("ListUsers", account="000000000001")
    assert exc.value.code == "AccessDenied"

    # Creating an admin user needs iam:PutUserPolicy too: iam:CreateUser alone cannot
    # mint a more powerful user than its caller.
    clerk = uid("clerk")
    clerk_key = t.user(clerk, {"Effect": "Allow", "Action": "iam:CreateUser", "Resource": "*"})
    clerk_api = AdminClient(server.endpoint, *clerk_key, server.region)
    clerk_api.call("CreateUser", user=uid("plain"))
    with pytest.raises(AdminError) as exc:
        clerk_api.call("CreateUser", user=uid("sneaky"), admin=True)
    assert exc.value.code == "AccessDenied" and "PutUserPolicy" in exc.value.message


def test_cli_creates_users_and_roles_under_a_boundary(server, tenant, tmp_path):
    t = tenant
    policy = uid("cb")
    doc_file = tmp_path / "list-only.json"
    doc_file.write_text(json.dumps(doc({"Effect": "Allow", "Action": "s3:ListAllMyBuckets",
                                    "Resource": "*"})))
    assert admin_cli(server, "policy", "create", policy, "-d", f"@{doc_file}", "--account", t.id).returncode == 0
    user = uid("cbuser")
    out = admin_cli(server, "user", "create", user, "--boundary", policy, "--account", t.id)
    assert out.returncode == 0, out.stderr
    assert t.admin.call("GetUser", user=user)["boundary"] == policy
    trust = tmp_path / "trust.json"
    trust.write_text(json.dumps(doc({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{t.id}:root"},
                                      "Action": "sts:AssumeRole"})))
    role = uid("cbrole")
    out = admin_cli(server, "role", "create", role, "--trust", f"@{trust}",
               "--boundary", f"arn:aws:iam::{t.id}:policy/{policy}", "--account", t.id)
    assert out.returncode == 0, out.stderr
    assert t.admin.call("GetRole", role=role)["boundary"] == policy
    bad = uid("cbbad")
    out = admin_cli(server, "user", "create", bad, "--boundary", "no-such-policy", "--account", t.id)
    assert out.returncode == 1 and "NoSuchEntity" in out.stderr
    assert bad not in [u["name"] for u in t.admin.call("ListUsers")["users"]]
