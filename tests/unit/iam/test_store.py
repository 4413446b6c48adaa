"""IAM store contract on every backend (PostgreSQL: tests/unit/iam/test_pg_iam.py for what
is its own), directory rules, identity cache invalidation."""

from __future__ import annotations

import os
import stat

import pytest

from tests.support.postgres import fresh_url
from vallum.iam import sts
from vallum.iam.auth_failures import FailureLimiter
from vallum.iam.directory import DeleteConflict, Directory, EntityAlreadyExists, NoSuchEntity
from vallum.iam.identity import Identities
from vallum.iam.pgstore import PostgresIAMStore
from vallum.iam.policy import MalformedPolicy
from vallum.iam.root import RootCredentials
from vallum.iam.sqlstore import SQLiteIAMStore
from vallum.iam.store import KeyRow, MemoryIAMStore, Op
from vallum.security.crypto import primitives as crypto

ROOT = RootCredentials("ROOTKEY", "rootsecret")
READ = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}'


def make_store(kind, tmp_path):
    if kind == "postgres":
        return PostgresIAMStore(fresh_url())          # a new schema: an empty store
    return MemoryIAMStore() if kind == "memory" else SQLiteIAMStore(tmp_path / "meta.sqlite3")


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request, tmp_path):
    s = make_store(request.param, tmp_path)
    s.open()
    yield s
    s.close()


def test_rows_keys_and_generation(store):
    g0 = store.generation()
    g1 = store.apply([Op("put", "user", {"account": "1", "name": "a", "admin": False}),
                      Op("put", "user", {"account": "1", "name": "b"}),
                      Op("put", "user", {"account": "2", "name": "a"}),
                      Op("put_key", value=KeyRow("AK1", "1", "a", "Active", b"w", 1.0))])
    assert g1 == store.generation() > g0
    assert store.get("user", account="1", name="a") == {"account": "1", "name": "a", "admin": False}
    assert [r["name"] for r in store.scan("user", account="1")] == ["a", "b"]
    assert len(store.scan("user")) == 3
    store.apply([Op("key_status", value=("AK1", "Inactive"))])
    assert store.get_key("AK1").status == "Inactive"
    store.touch_key("AK1", 5.0)
    assert store.get_key("AK1").last_used == 5.0 and store.generation() == g1 + 1
    store.apply([Op("delete", "user", {"account": "1", "name": "a"}), Op("delete_key", value="AK1"),
                 Op("delete", "user", {"account": "9", "name": "missing"})])
    assert store.get("user", account="1", name="a") is None and store.get_key("AK1") is None
    assert [k.access_key_id for k in store.keys_of("1")] == []


def test_apply_is_atomic(store):
    with pytest.raises(ValueError):
        store.apply([Op("put", "group", {"account": "1", "name": "g"}), Op("bogus")])
    assert store.get("group", account="1", name="g") is None


def test_sqlite_generation_is_shared_between_connections(tmp_path):
    a, b = SQLiteIAMStore(tmp_path / "m.db"), SQLiteIAMStore(tmp_path / "m.db")
    a.open()
    b.open()
    a.apply([Op("put_key", value=KeyRow("AK", "1", "u", "Active", b"w", 1.0))])
    assert b.generation() == a.generation() and b.get_key("AK").status == "Active"
    a.close()
    b.close()


@pytest.fixture
def directory(store):
    return Directory(store, crypto.new_key())


def test_directory_lifecycle(directory):
    account, admin = directory.create_account("navy")
    acct = account["id"]
    assert len(acct) == 12 and admin.user == "admin"
    with pytest.raises(EntityAlreadyExists):
        directory.create_account("navy")
    directory.create_user(acct, "alice", tags={"team": "red"})
    with pytest.raises(EntityAlreadyExists):
        directory.create_user(acct, "alice")
    with pytest.raises(NoSuchEntity):
        directory.create_user("000000000000", "x")
    directory.create_group(acct, "ops")
    directory.add_to_group(acct, "ops", "alice")
    directory.put_policy(acct, "read", READ)
    directory.attach(acct, "group", "ops", "read")
    with pytest.raises(MalformedPolicy):
        directory.put_policy(acct, "bad", '{"Statement": [{"Effect": "Allow", "Action": "s3:Nope", "Resource": "*"}]}')
    with pytest.raises(DeleteConflict):
        directory.delete_policy(acct, "read")
    key = directory.create_key(acct, "alice")
    row = directory.key(key.access_key_id)
    assert key.secret_access_key.encode() not in row.secret          # stored wrapped
    assert directory.secret_of(row) == key.secret_access_key
    new = directory.rotate_key(key.access_key_id, account=acct)
    statuses = {k["access_key_id"]: k["status"] for k in directory.list_keys(acct, "alice")}
    assert statuses == {key.access_key_id: "Inactive", new.access_key_id: "Active"}
    with pytest.raises(NoSuchEntity):
        directory.set_key_status(key.access_key_id, "Active", account="999999999999")
    directory.delete_user(acct, "alice")
    assert directory.list_keys(acct, "alice") == [] and directory.group(acct, "ops")["users"] == []
    directory.delete_account(acct)
    assert directory.list_accounts() == [] and directory.list_keys(acct) == []


def test_identities_follow_the_generation(directory):
    account, _ = directory.create_account("army")
    acct = account["id"]
    directory.create_user(acct, "bob")
    directory.put_inline(acct, "user", "bob", "read", READ)
    key = directory.create_key(acct, "bob")
    ids = Identities(directory, ROOT, "root-canonical")
    secret, who = ids.resolve(key.access_key_id, None, 0.0)
    assert secret == key.secret_access_key and who.user == "bob" and who.account == acct
    assert who.arn == f"arn:aws:iam::{acct}:user/bob" and len(who.policies) == 1
    assert ids.resolve("ROOTKEY", None, 0.0)[1].is_root
    directory.set_key_status(key.access_key_id, "Inactive")
    assert ids.resolve(key.access_key_id, None, 0.0) is None        # at once, cache or not
    directory.set_key_status(key.access_key_id, "Active")
    assert ids.resolve(key.access_key_id, None, 0.0) is not None
    directory.delete_key(key.access_key_id)
    assert ids.resolve(key.access_key_id, None, 0.0) is None
    assert ids.resolve("AKIANOSUCHKEY", None, 0.0) is None


def test_session_tokens(directory):
    account, admin = directory.create_account("af")
    acct = account["id"]
    directory.create_role(acct, "reader", '{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
                          '"Principal":{"AWS":"arn:aws:iam::' + acct + ':root"},"Action":"sts:AssumeRole"}]}')
    directory.put_inline(acct, "role", "reader", "read", READ)
    ids = Identities(directory, ROOT, "root")
    s = sts.new_session(account=acct, duration=900, role="reader", session_name="job", now=1000.0,
                        role_id=directory.role(acct, "reader")["id"])
    token = sts.encode(directory.master_key, s)
    secret, who = ids.resolve(s.access_key_id, token, 1500.0)
    assert secret == s.secret and who.role == "reader" and who.arn.endswith("assumed-role/reader/job")
    with pytest.raises(sts.TokenExpired):
        ids.resolve(s.access_key_id, token, 1900.0)
    with pytest.raises(sts.TokenError):
        ids.resolve("ASIAOTHER", token, 1500.0)
    with pytest.raises(sts.TokenError):
        ids.resolve(s.access_key_id, token[:-3] + "AAA", 1500.0)
    with pytest.raises(sts.TokenError):
        ids.resolve(s.access_key_id, None, 1500.0)
    u = sts.new_session(account=acct, duration=900, user="admin", source_key=admin.access_key_id, now=1000.0)
    assert ids.resolve(u.access_key_id, sts.encode(directory.master_key, u), 1100.0)[1].user == "admin"
    directory.set_key_status(admin.access_key_id, "Inactive")
    assert ids.resolve(u.access_key_id, sts.encode(directory.master_key, u), 1100.0) is None
    # A role deleted and re-created under its name does not revive the old role's sessions.
    trust = directory.role(acct, "reader")["trust_policy"]
    directory.delete_role(acct, "reader")
    directory.create_role(acct, "reader", trust)
    assert ids.resolve(s.access_key_id, token, 1500.0) is None


def test_master_key_and_wrapping(tmp_path):
    key = crypto.load_or_create_master_key(tmp_path)
    assert len(key) == 32 and crypto.load_or_create_master_key(tmp_path) == key
    assert stat.S_IMODE(os.stat(tmp_path / crypto.MASTER_KEY_FILE).st_mode) == 0o600
    wrapped = crypto.wrap(key, b"secret", b"ctx")
    assert crypto.unwrap(key, wrapped, b"ctx") == b"secret"
    for bad in (lambda: crypto.unwrap(key, wrapped, b"other"),
                lambda: crypto.unwrap(crypto.new_key(), wrapped, b"ctx"),
                lambda: crypto.unwrap(key, wrapped[:-1] + bytes([wrapped[-1] ^ 1]), b"ctx"),
                lambda: crypto.unwrap(key, b"\x01short", b"ctx")):
        with pytest.raises(crypto.CryptoError):
            bad()


def test_failure_limiter():
    lim = FailureLimiter(max_per_key=3, max_per_address=5, window=10.0)
    for t in range(3):
        assert lim.blocked("AK", "1.2.3.4", now=float(t)) is None
        lim.failed("AK", "1.2.3.4", now=float(t))
    assert lim.blocked("AK", "1.2.3.4", now=3.0) == "key"
    # Counted per (key, address): failures elsewhere never lock the key out here.
    assert lim.blocked("AK", "9.9.9.9", now=3.0) is None
    assert lim.blocked("OTHER", "1.2.3.4", now=3.0) is None
    lim.failed("OTHER", "1.2.3.4", now=3.0)
    lim.failed("OTHER", "1.2.3.4", now=3.0)
    assert lim.blocked("THIRD", "1.2.3.4", now=3.0) == "address"
    assert lim.blocked("AK", "1.2.3.4", now=20.0) is None          # the window passed


def test_every_router_operation_maps_to_a_known_action():
    from vallum.iam.actions import SERVICES
    from vallum.iam.gate import VERSIONED_ACTIONS
    from vallum.s3.handlers.registry import action_of
    from vallum.s3.router import ALL_OPERATIONS
    for op in ALL_OPERATIONS:
        service, _, name = action_of(op).partition(":")
        assert name in SERVICES[service], (op, action_of(op))
    for versioned in VERSIONED_ACTIONS.values():
        assert versioned.split(":")[1] in SERVICES["s3"]
