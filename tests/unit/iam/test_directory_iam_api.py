"""The directory methods the IAM query API adds, on both store backends: CreatePolicy
never replaces, trust policies are validated when replaced, inline and attached policies
are listed per entity, and groups and policies carry ids that survive a replace."""

from __future__ import annotations

import pytest

from vallum.iam.directory import Directory, EntityAlreadyExists, NoSuchEntity
from vallum.iam.policy import MalformedPolicy
from vallum.iam.sqlstore import SQLiteIAMStore
from vallum.iam.store import MemoryIAMStore

READ = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}'
TRUST = ('{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole",'
         '"Principal":{"AWS":"arn:aws:iam::123456789012:root"}}]}')


@pytest.fixture(params=["memory", "sqlite"])
def d(request, tmp_path):
    s = MemoryIAMStore() if request.param == "memory" else SQLiteIAMStore(tmp_path / "meta.sqlite3")
    s.open()
    yield Directory(s, b"k" * 32)
    s.close()


@pytest.fixture
def account(d):
    return d.create_account("acme")[0]["id"]


def test_create_policy_never_replaces_and_keeps_its_id(d, account):
    row = d.create_policy(account, "read", READ, "reads")
    assert row["id"].startswith("ANPA") and row["description"] == "reads"
    with pytest.raises(EntityAlreadyExists):
        d.create_policy(account, "read", READ)
    with pytest.raises(MalformedPolicy):
        d.create_policy(account, "bad", "{")
    again = d.put_policy(account, "read", READ.replace("GetObject", "ListBucket"))
    assert (again["id"], again["created"], again["description"]) == (row["id"], row["created"], "reads")


def test_trust_policy_replaced_only_when_valid(d, account):
    d.create_role(account, "r", TRUST, description="why")
    assert d.role(account, "r")["description"] == "why"
    with pytest.raises(MalformedPolicy):
        d.set_trust_policy(account, "r", READ)           # no Principal: not a trust policy
    with pytest.raises(NoSuchEntity):
        d.set_trust_policy(account, "ghost", TRUST)
    other = TRUST.replace("123456789012", "210987654321")
    assert d.set_trust_policy(account, "r", other)["trust_policy"] == other
    assert d.role(account, "r")["trust_policy"] == other


def test_inline_and_attached_listings(d, account):
    d.create_user(account, "u")
    d.create_group(account, "g")
    assert d.group(account, "g")["id"].startswith("AGPA")
    d.put_policy(account, "read", READ)
    d.put_inline(account, "user", "u", "b", READ)
    d.put_inline(account, "user", "u", "a", READ)
    d.attach(account, "user", "u", "read")
    d.attach(account, "group", "g", "read")
    assert [r["name"] for r in d.inline_policies(account, "user", "u")] == ["a", "b"]
    assert d.inline_policy(account, "user", "u", "a")["document"] == READ
    with pytest.raises(NoSuchEntity):
        d.inline_policy(account, "user", "u", "c")
    assert d.attached(account, "user", "u") == ["read"] and d.attached(account, "role", "u") == []
    assert sorted((a["kind"], a["target"]) for a in d.attached_to(account, "read")) == [
        ("group", "g"), ("user", "u")]
    other = d.create_account("other")[0]["id"]
    assert d.attached_to(other, "read") == [] and d.inline_policies(other, "user", "u") == []
