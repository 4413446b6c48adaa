"""Permissions boundaries and admin users in the directory, the identities and authz.decide,
on both store backends (SQLite also across a reopen: boundaries are stored durably)."""

from __future__ import annotations

import json

import pytest

from vallum import authz
from vallum.iam import sts
from vallum.iam.directory import DeleteConflict, Directory, IAMError, NoSuchEntity
from vallum.iam.identity import Identities, parsed
from vallum.iam.root import RootCredentials
from vallum.iam.sqlstore import SQLiteIAMStore
from vallum.iam.store import MemoryIAMStore, Op
from vallum.security.crypto import primitives as crypto

ROOT = RootCredentials("ROOTKEY", "rootsecret")


def doc(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


ALL = doc({"Effect": "Allow", "Action": "*", "Resource": "*"})
READ_B = doc({"Sid": "ReadB", "Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
              "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]})


@pytest.fixture(params=["memory", "sqlite"])
def directory(request, tmp_path):
    store = MemoryIAMStore() if request.param == "memory" else SQLiteIAMStore(tmp_path / "m.db")
    store.open()
    yield Directory(store, crypto.new_key())
    store.close()


def _decide(who, action, resource="arn:aws:s3:::b/k"):
    return authz.decide(who, action, resource)


def test_user_boundary_caps_identity_policies(directory):
    acct = directory.create_account("navy")[0]["id"]
    directory.create_user(acct, "alice")
    directory.put_inline(acct, "user", "alice", "all", ALL)
    directory.put_policy(acct, "read-b", READ_B)
    key = directory.create_key(acct, "alice")
    ids = Identities(directory, ROOT, "root")
    who = ids.resolve(key.access_key_id, None, 0.0)[1]
    assert _decide(who, "s3:PutObject").allowed and who.boundary == ()

    out = directory.put_boundary(acct, "user", "alice", f"arn:aws:iam::{acct}:policy/read-b")
    assert out["boundary"] == "read-b" and directory.user(acct, "alice")["boundary"] == "read-b"
    who = ids.resolve(key.access_key_id, None, 0.0)[1]          # the generation moved
    assert [label for label, _ in who.boundary] == ["boundary/read-b"]
    assert _decide(who, "s3:GetObject").allowed
    denied = _decide(who, "s3:PutObject")
    assert not denied.allowed and "permissions boundary" in denied.reason
    assert not _decide(who, "s3:GetObject", "arn:aws:s3:::c/k").allowed
    assert not _decide(who, "iam:CreateUser", f"arn:aws:iam::{acct}:*").allowed

    # The boundary's document is read live: widening the policy widens the cap.
    directory.put_policy(acct, "read-b", ALL)
    assert _decide(ids.resolve(key.access_key_id, None, 0.0)[1], "s3:PutObject").allowed
    directory.put_policy(acct, "read-b", READ_B)

    with pytest.raises(DeleteConflict):
        directory.delete_policy(acct, "read-b")
    directory.delete_boundary(acct, "user", "alice")
    assert "boundary" not in directory.user(acct, "alice")
    assert _decide(ids.resolve(key.access_key_id, None, 0.0)[1], "s3:PutObject").allowed
    directory.delete_policy(acct, "read-b")


def test_boundary_must_be_a_managed_policy_of_the_account(directory):
    acct = directory.create_account("army")[0]["id"]
    other = directory.create_account("af")[0]["id"]
    directory.create_user(acct, "bob")
    directory.put_policy(other, "theirs", READ_B)
    with pytest.raises(NoSuchEntity):
        directory.put_boundary(acct, "user", "bob", "missing")
    with pytest.raises(IAMError):
        directory.put_boundary(acct, "user", "bob", f"arn:aws:iam::{other}:policy/theirs")
    with pytest.raises(NoSuchEntity):
        directory.put_boundary(acct, "user", "nobody", "theirs")
    with pytest.raises(IAMError):
        directory.put_boundary(acct, "group", "ops", "theirs")


def test_role_sessions_keep_the_role_boundary(directory):
    acct = directory.create_account("marines")[0]["id"]
    trust = doc({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{acct}:root"},
                 "Action": "sts:AssumeRole"})
    directory.create_role(acct, "worker", trust)
    directory.put_inline(acct, "role", "worker", "all", ALL)
    directory.put_policy(acct, "read-b", READ_B)
    directory.put_boundary(acct, "role", "worker", "read-b")
    ids = Identities(directory, ROOT, "root")
    s = sts.new_session(account=acct, duration=900, role="worker", session_name="j", now=1000.0,
                        role_id=directory.role(acct, "worker")["id"])
    who = ids.resolve(s.access_key_id, sts.encode(directory.master_key, s), 1100.0)[1]
    assert who.role == "worker" and [lbl for lbl, _ in who.boundary] == ["boundary/read-b"]
    assert _decide(who, "s3:GetObject").allowed
    assert not _decide(who, "s3:DeleteObject").allowed
    # A bucket policy naming the role is capped too; one naming this session is not.
    for principal, allowed in ((f"arn:aws:iam::{acct}:role/worker", False), (who.arn, True)):
        bucket_policy = doc({"Effect": "Allow", "Principal": {"AWS": principal},
                             "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::b/*"})
        ctx = authz.Context(resource_owner=acct, bucket_policy=parsed(bucket_policy, "resource"))
        assert authz.decide(who, "s3:DeleteObject", "arn:aws:s3:::b/k", ctx).allowed is allowed


def test_boundary_survives_a_reopen(tmp_path):
    store = SQLiteIAMStore(tmp_path / "m.db")
    store.open()
    d = Directory(store, crypto.new_key())
    acct = d.create_account("coast")[0]["id"]
    d.create_user(acct, "carol")
    d.put_policy(acct, "read-b", READ_B)
    d.put_boundary(acct, "user", "carol", "read-b")
    store.close()
    again = SQLiteIAMStore(tmp_path / "m.db")
    again.open()
    try:
        d2 = Directory(again, d.master_key)
        assert d2.user(acct, "carol")["boundary"] == "read-b"
        who = Identities(d2, ROOT, "root").user_principal("AKIAX", acct, "carol")
        assert [lbl for lbl, _ in who.boundary] == ["boundary/read-b"]
    finally:
        again.close()


def test_a_boundary_whose_policy_vanished_denies_everything(directory):
    acct = directory.create_account("guard")[0]["id"]
    directory.create_user(acct, "dan")
    directory.put_inline(acct, "user", "dan", "all", ALL)
    directory.put_policy(acct, "read-b", READ_B)
    directory.put_boundary(acct, "user", "dan", "read-b")
    directory.store.apply([Op("delete", "policy", {"account": acct, "name": "read-b"})])
    who = Identities(directory, ROOT, "root").user_principal("AKIAX", acct, "dan")
    assert not _decide(who, "s3:GetObject").allowed


def test_admin_user_gets_a_full_access_policy(directory):
    acct = directory.create_account("space")[0]["id"]
    directory.create_user(acct, "ops", admin=True)
    directory.create_user(acct, "plain")
    assert [lbl for lbl, _ in directory.policies_of(acct, "user", "ops")] == \
        ["user/ops/inline/AccountAdmin"]
    assert directory.policies_of(acct, "user", "plain") == []
    ids = Identities(directory, ROOT, "root")
    ops, plain = (ids.user_principal("AKIAX", acct, u) for u in ("ops", "plain"))
    for action, resource in (("iam:CreateUser", f"arn:aws:iam::{acct}:*"),
                             ("s3:PutObject", "arn:aws:s3:::b/k")):
        assert authz.decide(ops, action, resource).allowed
        assert not authz.decide(plain, action, resource).allowed
