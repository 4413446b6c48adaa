"""Multi-tenant identity end to end: accounts, users, keys, bucket policies, STS, admin CLI.

Runs against the real `vallum serve`; every account and bucket name is unique, so the
tests share the session server with the others.
"""

from __future__ import annotations

import json
import os
import time

import pytest
import requests
from botocore.exceptions import ClientError

from tests.support.iam import Tenant, admin_cli, code_of, s3_for, sts_for, uid
from tests.support.server import start_server, stop_server
from vallum.cli.admin import AdminClient, AdminError

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                                reason="needs Vallum's admin API")



@pytest.fixture(scope="module")
def tenants(server, root):
    return Tenant(server, root), Tenant(server, root)


def test_accounts_are_isolated_both_ways(tenants):
    a, b = tenants
    for owner, other in ((a, b), (b, a)):
        name = uid("iso")
        owner.s3.create_bucket(Bucket=name)
        owner.s3.put_object(Bucket=name, Key="secret.txt", Body=b"mine")
        assert name in [x["Name"] for x in owner.s3.list_buckets()["Buckets"]]
        assert name not in [x["Name"] for x in other.s3.list_buckets()["Buckets"]]
        for call in (lambda: other.s3.get_object(Bucket=name, Key="secret.txt"),
                     lambda: other.s3.put_object(Bucket=name, Key="x", Body=b"y"),
                     lambda: other.s3.delete_object(Bucket=name, Key="secret.txt"),
                     lambda: other.s3.list_objects_v2(Bucket=name),
                     lambda: other.s3.delete_bucket(Bucket=name)):
            with pytest.raises(ClientError) as exc:
                call()
            assert code_of(exc) in ("AccessDenied", "403")
        with pytest.raises(ClientError) as exc:
            other.s3.create_bucket(Bucket=name)
        assert code_of(exc) == "BucketAlreadyExists"
        assert owner.s3.get_object(Bucket=name, Key="secret.txt")["Body"].read() == b"mine"


def test_bucket_policy_grants_cross_account_only_with_both_sides(server, tenants):
    a, b = tenants
    name = uid("shared")
    a.s3.create_bucket(Bucket=name)
    a.s3.put_object(Bucket=name, Key="doc", Body=b"shared")
    a.s3.put_bucket_policy(Bucket=name, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Sid": "ReadForB", "Effect": "Allow",
                       "Principal": {"AWS": f"arn:aws:iam::{b.id}:root"},
                       "Action": ["s3:GetObject"], "Resource": f"arn:aws:s3:::{name}/*"}]}))
    assert b.s3.get_object(Bucket=name, Key="doc")["Body"].read() == b"shared"
    with pytest.raises(ClientError) as exc:
        b.s3.put_object(Bucket=name, Key="doc", Body=b"overwrite")
    assert code_of(exc) == "AccessDenied"
    # A user of B with no identity policy: the bucket policy alone is not enough.
    plain = s3_for(server, *b.user(uid("plain")))
    with pytest.raises(ClientError) as exc:
        plain.get_object(Bucket=name, Key="doc")
    assert code_of(exc) == "AccessDenied"
    a.s3.delete_bucket_policy(Bucket=name)
    with pytest.raises(ClientError) as exc:
        b.s3.get_object(Bucket=name, Key="doc")
    assert code_of(exc) == "AccessDenied"


def test_user_policies_with_variables_and_explicit_deny(server, tenants):
    a, _ = tenants
    name = uid("home")
    a.s3.create_bucket(Bucket=name)
    user = uid("u")
    s3 = s3_for(server, *a.user(
        user,
        {"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"],
         "Resource": f"arn:aws:s3:::{name}/home/${{aws:username}}/*"},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{name}",
         "Condition": {"StringLike": {"s3:prefix": "home/${aws:username}/*"}}},
        {"Effect": "Deny", "Action": "s3:PutObject",
         "Resource": f"arn:aws:s3:::{name}/home/${{aws:username}}/locked/*"}))
    s3.put_object(Bucket=name, Key=f"home/{user}/a.txt", Body=b"1")
    assert s3.get_object(Bucket=name, Key=f"home/{user}/a.txt")["Body"].read() == b"1"
    assert s3.list_objects_v2(Bucket=name, Prefix=f"home/{user}/")["KeyCount"] == 1
    for call in (lambda: s3.put_object(Bucket=name, Key="home/someone/a.txt", Body=b"1"),
                 lambda: s3.put_object(Bucket=name, Key=f"home/{user}/locked/x", Body=b"1"),
                 lambda: s3.list_objects_v2(Bucket=name),
                 lambda: s3.create_bucket(Bucket=uid("nope"))):
        with pytest.raises(ClientError) as exc:
            call()
        assert code_of(exc) == "AccessDenied"


def test_group_policy_applies_to_members(server, tenants):
    a, _ = tenants
    name = uid("grp")
    a.s3.create_bucket(Bucket=name)
    a.s3.put_object(Bucket=name, Key="k", Body=b"v")
    user, group = uid("m"), uid("readers")
    s3 = s3_for(server, *a.user(user))
    with pytest.raises(ClientError):
        s3.get_object(Bucket=name, Key="k")
    a.admin.call("CreateGroup", group=group)
    a.admin.call("CreatePolicy", policy=group + "-read", document={
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{name}/*"}]})
    a.admin.call("AttachPolicy", kind="group", target=group, policy=group + "-read")
    a.admin.call("AddUserToGroup", group=group, user=user)
    assert s3.get_object(Bucket=name, Key="k")["Body"].read() == b"v"


def test_disabled_or_deleted_key_stops_at_once_on_every_gateway(server, tenants, tmp_path):
    a, _ = tenants
    name = uid("dis")
    a.s3.create_bucket(Bucket=name)
    user = uid("k")
    key, secret = a.user(user, {"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    second = start_server(server.data_dir)     # another gateway process on the same database
    try:
        clients = [s3_for(server, key, secret), s3_for(second, key, secret)]
        for c in clients:
            c.put_object(Bucket=name, Key="k", Body=b"v")      # caches are warm
        a.admin.call("UpdateAccessKey", access_key_id=key, status="Inactive")
        for c in clients:
            with pytest.raises(ClientError) as exc:
                c.get_object(Bucket=name, Key="k")
            assert code_of(exc) == "InvalidAccessKeyId"
        a.admin.call("UpdateAccessKey", access_key_id=key, status="Active")
        assert clients[1].get_object(Bucket=name, Key="k")["Body"].read() == b"v"
        a.admin.call("DeleteAccessKey", access_key_id=key)
        for c in clients:
            with pytest.raises(ClientError) as exc:
                c.head_bucket(Bucket=name)
            assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    finally:
        stop_server(second)


def test_keys_list_rotate_and_last_used(server, tenants):
    a, _ = tenants
    user = uid("rot")
    key, secret = a.user(user, {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"})
    s3_for(server, key, secret).list_buckets()
    new = a.admin.call("RotateAccessKey", access_key_id=key)
    keys = {k["access_key_id"]: k for k in a.admin.call("ListAccessKeys", user=user)["keys"]}
    assert keys[key]["status"] == "Inactive" and keys[new["access_key_id"]]["status"] == "Active"
    deadline = time.time() + 5
    while keys[key]["last_used"] is None and time.time() < deadline:
        time.sleep(0.1)
        keys = {k["access_key_id"]: k for k in a.admin.call("ListAccessKeys", user=user)["keys"]}
    assert keys[key]["last_used"] is not None
    s3_for(server, new["access_key_id"], new["secret_access_key"]).list_buckets()
    with pytest.raises(ClientError):
        s3_for(server, key, secret).list_buckets()


def test_sts_assume_role_round_trip_and_expired_token(server, tenants):
    a, b = tenants
    name = uid("sts")
    a.s3.create_bucket(Bucket=name)
    a.s3.put_object(Bucket=name, Key="in/report", Body=b"r")
    role = uid("reader")
    a.admin.call("CreateRole", role=role, trust_policy={
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{b.id}:root"},
                       "Action": "sts:AssumeRole"}]})
    a.admin.call("PutInlinePolicy", kind="role", target=role, name="read", document={
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
                       "Resource": f"arn:aws:s3:::{name}/*"}]})
    sts = sts_for(server, *b.admin_key)
    me = sts.get_caller_identity()
    assert me["Account"] == b.id and me["Arn"].endswith(":user/admin")
    out = sts.assume_role(RoleArn=f"arn:aws:iam::{a.id}:role/{role}", RoleSessionName="job-1",
                          DurationSeconds=900, Policy=json.dumps({
                              "Version": "2012-10-17",
                              "Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                                             "Resource": "*"}]}))
    c = out["Credentials"]
    assert out["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{a.id}:assumed-role/{role}/job-1"
    session = s3_for(server, c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
    assert session.get_object(Bucket=name, Key="in/report")["Body"].read() == b"r"
    with pytest.raises(ClientError) as exc:      # the role allows it, the session policy does not
        session.put_object(Bucket=name, Key="in/x", Body=b"x")
    assert code_of(exc) == "AccessDenied"
    who = sts_for(server, c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]).get_caller_identity()
    assert who["Arn"].endswith(f"assumed-role/{role}/job-1")
    with pytest.raises(ClientError) as exc:      # a tampered token
        s3_for(server, c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"][:-4] + "AAAA"
               ).get_object(Bucket=name, Key="in/report")
    assert code_of(exc) == "InvalidToken"
    # Nobody else may assume it: the trust policy names only account B.
    with pytest.raises(ClientError) as exc:
        sts_for(server, *a.user(uid("x"), {"Effect": "Allow", "Action": "sts:AssumeRole",
                                           "Resource": "*"})).assume_role(
            RoleArn=f"arn:aws:iam::{a.id}:role/{role}", RoleSessionName="nope")
    assert code_of(exc) == "AccessDenied"
    # An expired session token is refused with ExpiredToken.
    from vallum.iam import sts as sts_tokens
    from vallum.security.crypto.primitives import load_or_create_master_key
    master = load_or_create_master_key(server.data_dir)
    old = sts_tokens.new_session(account=a.id, duration=900, role=role, session_name="old",
                                 now=time.time() - 1000)
    expired = s3_for(server, old.access_key_id, old.secret, sts_tokens.encode(master, old))
    with pytest.raises(ClientError) as exc:
        expired.get_object(Bucket=name, Key="in/report")
    assert code_of(exc) == "ExpiredToken"


def test_get_session_token(server, tenants):
    a, _ = tenants
    key = a.user(uid("gst"), {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"})
    c = sts_for(server, *key).get_session_token(DurationSeconds=900)["Credentials"]
    s3_for(server, c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]).list_buckets()
    a.admin.call("UpdateAccessKey", access_key_id=key[0], status="Inactive")
    with pytest.raises(ClientError):     # the session dies with its long-term key
        s3_for(server, c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]).list_buckets()


def test_anonymous_access_only_where_a_policy_grants_it(server, tenants):
    a, _ = tenants
    name = uid("pub")
    a.s3.create_bucket(Bucket=name)
    a.s3.put_object(Bucket=name, Key="open/page.html", Body=b"hello")
    a.s3.put_object(Bucket=name, Key="closed/x", Body=b"no")
    url = f"{server.endpoint}/{name}/open/page.html"
    assert requests.get(url, timeout=5).status_code == 403
    a.s3.put_bucket_policy(Bucket=name, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                       "Resource": f"arn:aws:s3:::{name}/open/*"}]}))
    assert requests.get(url, timeout=5).content == b"hello"
    assert requests.get(f"{server.endpoint}/{name}/closed/x", timeout=5).status_code == 403
    assert requests.put(f"{server.endpoint}/{name}/open/new", data=b"x", timeout=5).status_code == 403
    a.s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True})
    assert a.s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"]
    assert requests.get(url, timeout=5).status_code == 403
    with pytest.raises(ClientError) as exc:
        a.s3.put_bucket_policy(Bucket=name, Policy=a.s3.get_bucket_policy(Bucket=name)["Policy"])
    assert code_of(exc) == "AccessDenied"
    a.s3.delete_public_access_block(Bucket=name)
    with pytest.raises(ClientError) as exc:
        a.s3.get_public_access_block(Bucket=name)
    assert code_of(exc) == "NoSuchPublicAccessBlockConfiguration"
    assert requests.get(url, timeout=5).content == b"hello"


def test_malformed_bucket_policy_is_refused_with_position(tenants):
    a, _ = tenants
    name = uid("bad")
    a.s3.create_bucket(Bucket=name)
    for doc, where in (
        ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",
                                                 "Action": "s3:GetObjekt", "Resource": f"arn:aws:s3:::{name}/*"}]},
         "Statement[0].Action"),
        ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                                 "Resource": f"arn:aws:s3:::{name}/*",
                                                 "Condition": {"StringEqualz": {"s3:prefix": "x"}}}]},
         "Statement[0].Condition.StringEqualz"),
        ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                                 "Resource": "arn:aws:s3:::another-bucket/*"}]},
         "Statement[0].Resource"),
    ):
        with pytest.raises(ClientError) as exc:
            a.s3.put_bucket_policy(Bucket=name, Policy=json.dumps(doc))
        assert code_of(exc) == "MalformedPolicy"
        assert where in exc.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as exc:
        a.s3.get_bucket_policy(Bucket=name)
    assert code_of(exc) == "NoSuchBucketPolicy"


def test_admin_api_is_scoped(server, tenants, root):
    a, b = tenants
    with pytest.raises(AdminError) as exc:
        a.admin.call("CreateAccount", name=uid("x"))
    assert exc.value.code == "AccessDenied"
    with pytest.raises(AdminError) as exc:
        a.admin.call("ListUsers", account=b.id)
    assert exc.value.code == "AccessDenied"
    with pytest.raises(AdminError) as exc:
        a.admin.call("CreatePolicy", policy="bad", document='{"Statement": [{"Effect": "Allow", "Action": "s3:Nope", "Resource": "*"}]}')
    assert exc.value.code == "MalformedPolicy"
    key = a.user(uid("plain"))
    with pytest.raises(AdminError) as exc:
        AdminClient(server.endpoint, *key).call("ListUsers")
    assert exc.value.code == "AccessDenied"
    assert {u["name"] for u in root.call("ListUsers", account=a.id)["users"]} >= {"admin"}


def test_failed_authentication_is_rate_limited(server, tenants):
    a, _ = tenants
    key, _ = a.user(uid("brute"), {"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    bad = s3_for(server, key, "wrong-secret-wrong-secret-wrong-secret00")
    codes = []
    for _ in range(25):
        with pytest.raises(ClientError) as exc:
            bad.list_buckets()
        codes.append(code_of(exc))
    assert codes[0] == "SignatureDoesNotMatch"
    assert codes[-1] == "SlowDown"



def test_admin_cli_round_trip(server, tmp_path):
    acct = uid("cli")
    out = admin_cli(server, "--output", "json", "account", "create", acct)
    assert out.returncode == 0, out.stderr
    created = json.loads(out.stdout)
    account_id = created["account"]["id"]
    assert admin_cli(server, "user", "create", "bob", "--account", acct).returncode == 0
    key = json.loads(admin_cli(server, "key", "create", "--user", "bob", "--account", acct,
                          "--output", "json").stdout)
    assert key["access_key_id"].startswith("AKIA") and key["secret_access_key"]
    doc = tmp_path / "p.json"
    doc.write_text(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadReports", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": "arn:aws:s3:::reports/*"}]}))
    assert admin_cli(server, "policy", "create", "read-reports", "--document", f"@{doc}",
                "--account", acct).returncode == 0
    assert admin_cli(server, "policy", "attach", "read-reports", "--user", "bob",
                "--account", acct).returncode == 0
    sim = json.loads(admin_cli(server, "-o", "json", "policy", "simulate", "--user", "bob",
                          "--action", "s3:GetObject", "--resource", "arn:aws:s3:::reports/q1",
                          "--account", acct).stdout)
    assert sim["decision"] == "allow" and sim["statement"] == "ReadReports"
    sim = json.loads(admin_cli(server, "-o", "json", "policy", "simulate", "--user", "bob",
                          "--action", "s3:PutObject", "--resource", "arn:aws:s3:::reports/q1",
                          "--account", acct).stdout)
    assert sim["decision"] == "deny"
    table = admin_cli(server, "user", "list", "--account", acct)
    assert table.returncode == 0 and "bob" in table.stdout and "NAME" in table.stdout
    # The account's admin acts in its own account without naming it.
    admin_key = (created["admin_key"]["access_key_id"], created["admin_key"]["secret_access_key"])
    listed = json.loads(admin_cli(server, "-o", "json", "key", "list", key=admin_key).stdout)
    assert key["access_key_id"] in [k["access_key_id"] for k in listed["keys"]]
    bad = admin_cli(server, "policy", "create", "broken", "--document", '{"Statement": []}', "--account", acct)
    assert bad.returncode == 1 and "MalformedPolicy" in bad.stderr
    assert admin_cli(server, "account", "delete", account_id).returncode == 0
    assert admin_cli(server, "user", "list", "--account", acct).returncode == 1
