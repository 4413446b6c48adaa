"""Admin API permissions are decided per resource ARN, as AWS IAM does: a policy scoped to
``user/${aws:username}`` lets a user manage its own keys and nothing else; a permission on
one group, one entity kind or one policy ARN grants exactly that. The policy simulator
decides in the context a real request would have (PublicAccessBlock, MAC).
Real server, boto3 and the admin API.
"""

from __future__ import annotations

import json
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.support import fixtures as functional
from tests.support.iam import Tenant, doc, s3_for
from vallum.cli.admin import AdminClient, AdminError

server, root = functional.server, functional.root


@pytest.fixture(scope="module")
def tenant(server, root):
    return Tenant(server, root)


def _client(tenant, name: str, *statements: dict) -> AdminClient:
    key = tenant.user(name, *statements)
    return AdminClient(tenant.server.endpoint, *key, tenant.server.region)


def _denied(call) -> None:
    with pytest.raises(AdminError) as exc:
        call()
    assert exc.value.code == "AccessDenied", exc.value


def test_a_user_manages_its_own_keys_and_no_one_elses(tenant):
    me = _client(tenant, "selfie", {
        "Effect": "Allow", "Resource": f"arn:aws:iam::{tenant.id}:user/${{aws:username}}",
        "Action": ["iam:CreateAccessKey", "iam:ListAccessKeys", "iam:UpdateAccessKey",
                   "iam:DeleteAccessKey", "iam:GetUser"]})
    tenant.admin.call("CreateUser", user="other")
    other_key = tenant.admin.call("CreateAccessKey", user="other")["access_key_id"]
    new = me.call("CreateAccessKey", user="selfie")
    assert {k["access_key_id"] for k in me.call("ListAccessKeys", user="selfie")["keys"]} >= \
        {new["access_key_id"]}
    me.call("GetUser", user="selfie")
    me.call("DeleteAccessKey", access_key_id=new["access_key_id"])
    _denied(lambda: me.call("CreateAccessKey", user="other"))
    _denied(lambda: me.call("ListAccessKeys", user="other"))
    _denied(lambda: me.call("ListAccessKeys"))                    # every user's keys
    _denied(lambda: me.call("UpdateAccessKey", access_key_id=other_key, status="Inactive"))
    _denied(lambda: me.call("DeleteAccessKey", access_key_id=other_key))
    _denied(lambda: me.call("GetUser", user="other"))


def test_a_group_permission_is_for_that_group(tenant):
    for g in ("team-a", "team-b"):
        tenant.admin.call("CreateGroup", group=g)
    tenant.admin.call("CreateUser", user="joiner")
    lead = _client(tenant, "lead", {"Effect": "Allow", "Action": "iam:AddUserToGroup",
                                    "Resource": f"arn:aws:iam::{tenant.id}:group/team-a"})
    lead.call("AddUserToGroup", group="team-a", user="joiner")
    _denied(lambda: lead.call("AddUserToGroup", group="team-b", user="joiner"))


def test_attach_needs_the_kinds_action_and_may_be_limited_to_a_policy(tenant):
    for name in ("ReadOnly", "Everything"):
        tenant.admin.call("CreatePolicy", policy=name, document=doc(
            {"Effect": "Allow", "Action": "s3:GetObject" if name == "ReadOnly" else "*",
             "Resource": "*"}))
    tenant.admin.call("CreateUser", user="target")
    tenant.admin.call("CreateRole", role="target-role", trust_policy=doc(
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{tenant.id}:root"},
         "Action": "sts:AssumeRole"}))
    granter = _client(tenant, "granter", {
        "Effect": "Allow", "Action": "iam:AttachUserPolicy",
        "Resource": f"arn:aws:iam::{tenant.id}:user/*",
        "Condition": {"ArnEquals": {"iam:PolicyARN": f"arn:aws:iam::{tenant.id}:policy/ReadOnly"}}})
    granter.call("AttachPolicy", kind="user", target="target", policy="ReadOnly")
    _denied(lambda: granter.call("AttachPolicy", kind="user", target="target", policy="Everything"))
    # iam:AttachUserPolicy does not attach to a role (it used to: one action for every kind).
    _denied(lambda: granter.call("AttachPolicy", kind="role", target="target-role",
                                 policy="ReadOnly"))


def test_the_simulator_sees_mac_and_public_access_blocks(server, root, tenant):
    other = Tenant(server, root)
    bucket = "sim-" + uuid.uuid4().hex[:12]
    other.s3.create_bucket(Bucket=bucket)
    other.s3.put_object(Bucket=bucket, Key="o.txt", Body=b"x")
    other.s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(doc(
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{bucket}/*"})))
    other.s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": False, "IgnorePublicAcls": False, "BlockPublicPolicy": False,
        "RestrictPublicBuckets": True})
    reader = tenant.user("reader", {"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    with pytest.raises(ClientError):                                  # the real request
        s3_for(server, *reader).get_object(Bucket=bucket, Key="o.txt")
    out = tenant.admin.call("Simulate", user="reader", action="s3:GetObject",
                            resource=f"arn:aws:s3:::{bucket}/o.txt")
    assert out["decision"] == "deny"
    # MAC: an uncleared user may not read a TOP SECRET object, whatever its policies say.
    mine = "sim-" + uuid.uuid4().hex[:12]
    tenant.s3.create_bucket(Bucket=mine)
    root.call("SetClearance", account=tenant.id, user="admin", clearance="TOP SECRET")
    try:
        labelled = tenant.s3
        key = root.call("CreateAccessKey", account=tenant.id, user="admin")
        labelled = s3_for(server, key["access_key_id"], key["secret_access_key"])

        def ts(params, **_):
            params["headers"]["x-vallum-classification"] = "TOP SECRET"
        labelled.meta.events.register_first("before-call.s3.PutObject", ts)
        labelled.put_object(Bucket=mine, Key="ts.txt", Body=b"ts")
    finally:
        root.call("SetClearance", account=tenant.id, user="admin")
    # The root may know the object: its simulation says MAC decides.
    out = root.call("Simulate", account=tenant.id, user="reader", action="s3:GetObject",
                    resource=f"arn:aws:s3:::{mine}/ts.txt")
    assert out["decision"] == "deny" and out["policy"] == "mac"
    # The uncleared admin may not: to it the object answers as a missing one would.
    hidden, missing = (tenant.admin.call("Simulate", user="reader", action="s3:GetObject",
                                         resource=f"arn:aws:s3:::{mine}/{k}")
                       for k in ("ts.txt", "none.txt"))
    assert hidden == missing


def test_the_simulator_does_not_probe_another_accounts_objects(server, root, tenant):
    """Tags (and labels) of another account's objects are not read: a simulation cannot
    tell whether such an object exists or what it is tagged."""
    other = Tenant(server, root)
    bucket = "sim-" + uuid.uuid4().hex[:12]
    other.s3.create_bucket(Bucket=bucket)
    other.s3.put_object(Bucket=bucket, Key="tagged.txt", Body=b"x", Tagging="secret=yes")
    other.s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(doc(
        {"Sid": "OtherTenantsPrivateSid", "Effect": "Allow", "Principal": "*",
         "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"})))
    tenant.user("prober", {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
                           "Condition": {"StringEquals": {"s3:ExistingObjectTag/secret": "yes"}}})
    answers = [tenant.admin.call("Simulate", user="prober", action="s3:GetObject",
                                 resource=f"arn:aws:s3:::{bucket}/{key}")
               for key in ("tagged.txt", "absent.txt")]
    assert answers[0] == answers[1]
    assert "OtherTenantsPrivateSid" not in json.dumps(answers)
