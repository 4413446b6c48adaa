"""Every admin API action is authorized on its own resource ARN (iam/admin_authz.py)."""

from __future__ import annotations

import pytest

from vallum.iam import admin_authz
from vallum.iam.directory import Directory, IAMError
from vallum.iam.store import MemoryIAMStore
from vallum.security.crypto import primitives as crypto
from vallum.server import admin

A = "123456789012"


@pytest.fixture
def directory():
    return Directory(MemoryIAMStore(), crypto.new_key())


ARGS = {"user": "bob", "group": "g", "role": "r", "policy": "p", "kind": "role", "target": "r",
        "name": "n", "access_key_id": "AKIANOSUCHKEY", "status": "Active",
        "url": "https://idp.example/realm"}


def test_every_account_action_names_its_permissions(directory):
    """No admin action falls through to the root-only refusal by omission."""
    for name in [*admin.ACTIONS, "Simulate", "OperatorAlerts"]:
        needs = admin_authz.needs(directory, name, A, ARGS)
        assert bool(needs) != (name in admin.ROOT_ONLY), name
        for action, resource, _ in needs:
            assert resource.startswith(f"arn:aws:iam::{A}:"), (name, resource)
            assert action[0].isupper() and ":" not in action, (name, action)


@pytest.mark.parametrize(("name", "args", "want"), [
    ("CreateAccessKey", {"user": "bob"}, [("CreateAccessKey", f"arn:aws:iam::{A}:user/bob")]),
    ("ListAccessKeys", {}, [("ListAccessKeys", f"arn:aws:iam::{A}:user/*")]),
    ("GetGroup", {"group": "g"}, [("GetGroup", f"arn:aws:iam::{A}:group/g")]),
    ("AddUserToGroup", {"group": "g", "user": "bob"},
     [("AddUserToGroup", f"arn:aws:iam::{A}:group/g")]),
    ("PutInlinePolicy", {"kind": "group", "target": "g", "name": "n"},
     [("PutGroupPolicy", f"arn:aws:iam::{A}:group/g")]),
    ("DeleteRolePermissionsBoundary", {"role": "r"},
     [("DeleteRolePermissionsBoundary", f"arn:aws:iam::{A}:role/r")]),
    ("CreateUser", {"user": "bob", "admin": True},
     [("CreateUser", f"arn:aws:iam::{A}:user/bob"), ("PutUserPolicy", f"arn:aws:iam::{A}:user/bob")]),
    ("CreateOpenIDConnectProvider", {"url": "https://idp.example/r"},
     [("CreateOpenIDConnectProvider", f"arn:aws:iam::{A}:oidc-provider/idp.example/r")]),
    ("DeleteOpenIDConnectProvider", {"arn": f"arn:aws:iam::{A}:oidc-provider/idp.example/r"},
     [("DeleteOpenIDConnectProvider", f"arn:aws:iam::{A}:oidc-provider/idp.example/r")]),
    ("ListOpenIDConnectProviders", {},
     [("ListOpenIDConnectProviders", f"arn:aws:iam::{A}:oidc-provider/*")]),
    ("RotateAccessKey", {"access_key_id": "AKIAUNKNOWN"},
     [("CreateAccessKey", f"arn:aws:iam::{A}:user/*"), ("UpdateAccessKey", f"arn:aws:iam::{A}:user/*")]),
])
def test_resources(directory, name, args, want):
    assert [(a, r) for a, r, _ in admin_authz.needs(directory, name, A, args)] == want


def test_attach_carries_the_policy_arn_and_checks_kind(directory):
    [(action, resource, keys)] = admin_authz.needs(
        directory, "AttachPolicy", A, {"kind": "user", "target": "bob", "policy": "ReadOnly"})
    assert (action, resource) == ("AttachUserPolicy", f"arn:aws:iam::{A}:user/bob")
    assert keys == {"iam:policyarn": f"arn:aws:iam::{A}:policy/ReadOnly"}
    with pytest.raises(IAMError):
        admin_authz.needs(directory, "AttachPolicy", A, {"kind": "account", "target": "x",
                                                          "policy": "p"})
    with pytest.raises(IAMError):                     # a name must be a string
        admin_authz.needs(directory, "GetUser", A, {"user": ["a", "b"]})


def test_a_key_is_checked_on_its_users_arn(directory):
    acct = directory.create_account("keys")[0]["id"]
    directory.create_user(acct, "carol")
    key = directory.create_key(acct, "carol")
    [(_, resource, _)] = admin_authz.needs(directory, "DeleteAccessKey", acct,
                                           {"access_key_id": key.access_key_id})
    assert resource == f"arn:aws:iam::{acct}:user/carol"
    [(_, resource, _)] = admin_authz.needs(directory, "DeleteAccessKey", A,     # another account's
                                           {"access_key_id": key.access_key_id})
    assert resource == f"arn:aws:iam::{A}:user/*"
