"""The ``iam:PermissionsBoundary`` condition key through the real server's admin API.

AWS's delegation pattern: an administrator may create users and roles (and set their
boundary) only under a given boundary: Allow iam:CreateUser + iam:PutUserPermissionsBoundary
with StringEquals iam:PermissionsBoundary = that boundary's ARN. The key holds the
boundary being set (CreateUser/CreateRole with one, Put*PermissionsBoundary), or, for
calls on an existing user or role (its policies, deleting its boundary), its current one.
A denied call changes nothing.
"""

from __future__ import annotations

import os

import pytest

from tests.support.iam import Tenant, doc, uid
from vallum.cli.admin import AdminClient, AdminError

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                                reason="needs Vallum's admin API")


LIST_ONLY = doc({"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"})


def _boundaries(t: Tenant) -> tuple[str, str, str, str]:
    """Two managed policies X and Y: (name X, ARN X, name Y, ARN Y)."""
    x, y = uid("bx"), uid("by")
    for name in (x, y):
        t.admin.call("CreatePolicy", policy=name, document=LIST_ONLY)
    return x, f"arn:aws:iam::{t.id}:policy/{x}", y, f"arn:aws:iam::{t.id}:policy/{y}"


def _delegate(server, t: Tenant, *statements: dict) -> AdminClient:
    key = t.user(uid("delegate"), *statements)
    return AdminClient(server.endpoint, *key, server.region)


def _denied(call) -> None:
    with pytest.raises(AdminError) as exc:
        call()
    assert exc.value.code == "AccessDenied", exc.value


def _missing(t: Tenant, kind: str, name: str) -> None:
    with pytest.raises(AdminError) as exc:
        t.admin.call("GetUser" if kind == "user" else "GetRole", **{kind: name})
    assert exc.value.code == "NoSuchEntity"


def test_delegate_creates_users_only_under_the_named_boundary(server, tenant):
    t = tenant
    x, x_arn, y, y_arn = _boundaries(t)
    delegate = _delegate(server, t, {
        "Sid": "OnlyWithBoundaryX", "Effect": "Allow",
        "Action": ["iam:CreateUser", "iam:PutUserPermissionsBoundary"], "Resource": "*",
        "Condition": {"StringEquals": {"iam:PermissionsBoundary": x_arn}}})

    made = uid("bounded")
    out = delegate.call("CreateUser", user=made, boundary=x_arn)
    assert out["boundary"] == x
    assert t.admin.call("GetUser", user=made)["boundary"] == x
    by_name = uid("byname")         # a name is the same boundary as its ARN
    delegate.call("CreateUser", user=by_name, boundary=x)
    assert t.admin.call("GetUser", user=by_name)["boundary"] == x

    users_before = {u["name"] for u in t.admin.call("ListUsers")["users"]}
    other, unbounded = uid("otherbnd"), uid("nobnd")
    _denied(lambda: delegate.call("CreateUser", user=other, boundary=y_arn))
    _denied(lambda: delegate.call("CreateUser", user=unbounded))
    _denied(lambda: delegate.call("CreateUser", user=unbounded, boundary=""))
    _missing(t, "user", other)
    _missing(t, "user", unbounded)
    assert {u["name"] for u in t.admin.call("ListUsers")["users"]} == users_before

    # Setting a boundary on an existing user: only X, and a denied call leaves it as it was.
    plain = uid("plain")
    t.admin.call("CreateUser", user=plain)
    _denied(lambda: delegate.call("PutUserPermissionsBoundary", user=plain, policy=y_arn))
    assert "boundary" not in t.admin.call("GetUser", user=plain)
    delegate.call("PutUserPermissionsBoundary", user=plain, policy=x_arn)
    assert t.admin.call("GetUser", user=plain)["boundary"] == x
    _denied(lambda: delegate.call("PutUserPermissionsBoundary", user=made, policy=y))
    assert t.admin.call("GetUser", user=made)["boundary"] == x

    # Without the condition key matching, the admin flag's extra PutUserPolicy is denied too.
    _denied(lambda: delegate.call("CreateUser", user=uid("adm"), boundary=y_arn, admin=True))


def test_create_with_a_boundary_is_one_write(server, tenant):
    """The boundary is checked before the user or role exists: a bad one creates nothing."""
    t = tenant
    x, x_arn, _, _ = _boundaries(t)
    user, role = uid("ghost"), uid("ghostrole")
    with pytest.raises(AdminError) as exc:
        t.admin.call("CreateUser", user=user, boundary=f"arn:aws:iam::{t.id}:policy/{uid('no')}")
    assert exc.value.code == "NoSuchEntity"
    _missing(t, "user", user)
    with pytest.raises(AdminError) as exc:
        t.admin.call("CreateUser", user=user, boundary="arn:aws:iam::000000000001:policy/" + x)
    assert exc.value.code == "ValidationError"
    _missing(t, "user", user)
    trust = doc({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{t.id}:root"},
                  "Action": "sts:AssumeRole"})
    with pytest.raises(AdminError) as exc:
        t.admin.call("CreateRole", role=role, trust_policy=trust, boundary=uid("no"))
    assert exc.value.code == "NoSuchEntity"
    _missing(t, "role", role)
    assert t.admin.call("CreateRole", role=role, trust_policy=trust,
                        boundary=x_arn)["boundary"] == x


def test_delegate_creates_roles_only_under_the_named_boundary(server, tenant):
    t = tenant
    x, x_arn, _, y_arn = _boundaries(t)
    delegate = _delegate(server, t, {
        "Effect": "Allow", "Action": ["iam:CreateRole", "iam:PutRolePermissionsBoundary"],
        "Resource": "*", "Condition": {"StringEquals": {"iam:PermissionsBoundary": x_arn}}})
    trust = doc({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{t.id}:root"},
                  "Action": "sts:AssumeRole"})
    ok, bad, bare = uid("okrole"), uid("badrole"), uid("barerole")
    delegate.call("CreateRole", role=ok, trust_policy=trust, boundary=x_arn)
    assert t.admin.call("GetRole", role=ok)["boundary"] == x
    _denied(lambda: delegate.call("CreateRole", role=bad, trust_policy=trust, boundary=y_arn))
    _denied(lambda: delegate.call("CreateRole", role=bare, trust_policy=trust))
    _missing(t, "role", bad)
    _missing(t, "role", bare)
    _denied(lambda: delegate.call("PutRolePermissionsBoundary", role=ok, policy=y_arn))
    assert t.admin.call("GetRole", role=ok)["boundary"] == x


def test_calls_on_a_bounded_user_carry_its_current_boundary(server, tenant):
    """AWS's other half: a delegate may edit only users under boundary X, and a deny on
    iam:DeleteUserPermissionsBoundary keyed on X keeps X in place."""
    t = tenant
    x, x_arn, y, y_arn = _boundaries(t)
    delegate = _delegate(server, t, {
        "Sid": "EditOnlyBoundedUsers", "Effect": "Allow",
        "Action": ["iam:PutUserPolicy", "iam:DeleteUserPolicy", "iam:AttachUserPolicy",
                   "iam:DetachUserPolicy", "iam:DeleteUserPermissionsBoundary"],
        "Resource": "*", "Condition": {"StringEquals": {"iam:PermissionsBoundary": [x_arn, y_arn]}}
    }, {
        "Sid": "KeepBoundaryX", "Effect": "Deny", "Action": "iam:DeleteUserPermissionsBoundary",
        "Resource": "*", "Condition": {"StringEquals": {"iam:PermissionsBoundary": x_arn}}})
    under_x, under_y, free = uid("ux"), uid("uy"), uid("free")
    t.admin.call("CreateUser", user=under_x, boundary=x)
    t.admin.call("CreateUser", user=under_y, boundary=y_arn)
    t.admin.call("CreateUser", user=free)

    delegate.call("PutInlinePolicy", kind="user", target=under_x, name="p", document=LIST_ONLY)
    delegate.call("AttachPolicy", kind="user", target=under_x, policy=y)
    assert sorted(t.admin.call("GetUser", user=under_x)["policies"]) == sorted(
        [f"user/{under_x}/inline/p", f"policy/{y}"])
    delegate.call("DetachPolicy", kind="user", target=under_x, policy=y)
    delegate.call("DeleteInlinePolicy", kind="user", target=under_x, name="p")
    assert t.admin.call("GetUser", user=under_x)["policies"] == []

    _denied(lambda: delegate.call("PutInlinePolicy", kind="user", target=free, name="p",
                                  document=LIST_ONLY))
    _denied(lambda: delegate.call("AttachPolicy", kind="user", target=free, policy=y))
    assert t.admin.call("GetUser", user=free)["policies"] == []

    _denied(lambda: delegate.call("DeleteUserPermissionsBoundary", user=under_x))
    assert t.admin.call("GetUser", user=under_x)["boundary"] == x
    delegate.call("DeleteUserPermissionsBoundary", user=under_y)
    assert "boundary" not in t.admin.call("GetUser", user=under_y)
    # Now unbounded: the delegate's allow no longer matches it.
    _denied(lambda: delegate.call("PutInlinePolicy", kind="user", target=under_y, name="p",
                                  document=LIST_ONLY))


def test_the_key_is_accepted_in_policies_and_simulated(server, tenant):
    t = tenant
    _, x_arn, _, y_arn = _boundaries(t)
    user = uid("sim")
    t.user(user, {"Effect": "Allow", "Action": "iam:CreateUser", "Resource": "*",
                  "Condition": {"StringEquals": {"iam:PermissionsBoundary": x_arn}}})
    for arn, want in ((x_arn, "allow"), (y_arn, "deny")):
        sim = t.admin.call("Simulate", user=user, action="iam:CreateUser",
                           resource=f"arn:aws:iam::{t.id}:*",
                           context={"iam:PermissionsBoundary": arn})
        assert sim["decision"] == want
    with pytest.raises(AdminError) as exc:
        t.admin.call("PutInlinePolicy", kind="user", target=user, name="bad", document=doc(
            {"Effect": "Allow", "Action": "iam:CreateUser", "Resource": "*",
             "Condition": {"StringEquals": {"iam:NoSuchKey": x_arn}}}))
    assert exc.value.code == "MalformedPolicy"


def test_admin_calls_carry_the_global_request_keys(server, tenant):
    """aws:SourceIp and aws:SecureTransport reach admin-API decisions as they reach S3's."""
    t = tenant
    elsewhere = _delegate(server, t, {
        "Effect": "Allow", "Action": "iam:CreateUser", "Resource": "*",
        "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}})
    _denied(lambda: elsewhere.call("CreateUser", user=uid("fromafar")))
    loopback = _delegate(server, t, {
        "Effect": "Allow", "Action": "iam:CreateUser", "Resource": "*",
        "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"},
                      "Bool": {"aws:SecureTransport": "false"}}})
    made = uid("local")
    loopback.call("CreateUser", user=made)
    assert t.admin.call("GetUser", user=made)["name"] == made
    tls_only = _delegate(server, t, {
        "Effect": "Allow", "Action": "iam:CreateUser", "Resource": "*",
        "Condition": {"Bool": {"aws:SecureTransport": "true"}}})
    refused = uid("plainhttp")
    _denied(lambda: tls_only.call("CreateUser", user=refused))
    _missing(t, "user", refused)
