"""STS AssumeRoleWithLDAPIdentity end to end: a real OpenLDAP slapd over StartTLS
(tests/support/slapd.py), a directory registered by the platform root, the STS form POST,
then boto3 with the session's credentials. Refusals: tests/security/test_ldap_logins.py."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime

import boto3
import ldap3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support import fixtures as functional
from tests.support import slapd
from tests.support.iam import admin_cli, doc, s3_for
from tests.support.ldap_sts import World
from vallum.cli.admin import AdminError

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                                reason="needs Vallum's admin API")
server = functional.server        # a server of this module's own


@pytest.fixture(scope="module")
def ldap(tmp_path_factory):
    with slapd.start(tmp_path_factory.mktemp("slapd") / "ldap") as s:
        yield s


@pytest.fixture(scope="module")
def world(server, ldap) -> World:
    return World(server, ldap)


def test_nested_group_login_reaches_s3_at_the_capped_clearance(world):
    """alice is in intel-staff only through analysts; her employeeType SECRET caps the
    TOP SECRET role: the session reads the SECRET object, not the TOP SECRET one."""
    r = world.login("alice", DurationSeconds="900")
    assert r.status == 200, r
    assert r.creds["AccessKeyId"].startswith("ASIA")
    arn = f"arn:aws:sts::{world.a.id}:assumed-role/intel/alice"
    assert r.result["AssumedRoleUser"]["Arn"] == arn
    expires = datetime.strptime(r.creds["Expiration"], "%Y-%m-%dT%H:%M:%SZ")
    assert 800 < (expires - datetime.utcnow()).total_seconds() <= 900
    assert world.readable(r.creds) == {"s"}
    sts = boto3.client("sts", endpoint_url=world.server.endpoint, region_name="us-east-1",
                       aws_access_key_id=r.creds["AccessKeyId"],
                       aws_secret_access_key=r.creds["SecretAccessKey"],
                       aws_session_token=r.creds["SessionToken"],
                       config=Config(retries={"max_attempts": 1}))
    assert sts.get_caller_identity()["Arn"] == arn


def test_groups_map_to_roles_in_their_own_accounts(world):
    """erin (analysts -> intel-staff, and devs) maps to a role in A and one in B: she
    names one with RoleArn; carol (devs, and loop-b <-> loop-a, a cycle) too."""
    r = world.login("erin")
    assert (r.status, r.code) == (400, "InvalidParameterValue"), r
    assert "several roles" in r.result["Message"]
    r = world.login("erin", RoleArn=world.dev)
    assert r.status == 200, r
    assert r.result["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{world.b.id}:assumed-role/dev/erin"
    s3 = s3_for(world.server, r.creds["AccessKeyId"], r.creds["SecretAccessKey"],
                r.creds["SessionToken"])
    with pytest.raises(ClientError):          # B's role: A's bucket is another account's
        s3.get_object(Bucket=world.bucket, Key="s")
    r = world.login("carol", RoleArn=world.dev)
    assert r.status == 200, r
    r = world.login("carol", RoleArn=world.untrusted)      # mapped, but its trust refuses
    assert (r.status, r.code) == (403, "AccessDenied"), r


def test_session_policy_narrows_and_duration_is_bounded(world):
    r = world.login("alice", Policy=json.dumps(doc(
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"})))
    assert r.status == 200, r
    s3 = s3_for(world.server, r.creds["AccessKeyId"], r.creds["SecretAccessKey"],
                r.creds["SessionToken"])
    s3.list_objects_v2(Bucket=world.bucket)
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=world.bucket, Key="s")
    assert exc.value.response["Error"]["Code"] == "AccessDenied"
    for bad in ("7200", "899", "x"):        # the directory's max_session is 3600
        r = world.login("alice", DurationSeconds=bad)
        assert (r.status, r.code) == (400, "ValidationError"), (bad, r)
    r = world.login("alice", Policy="{not json")
    assert (r.status, r.code) == (400, "MalformedPolicyDocument"), r


def test_directory_changes_apply_at_the_next_session(world, ldap):
    """Removed from analysts, alice's next login maps to no role; the session she already
    holds lasts until it expires (bounded by max_session). A new password replaces the
    old one at once."""
    before = world.login("alice")
    assert before.status == 200, before
    ldap.modify(slapd.group_dn("analysts"),
                {"member": [(ldap3.MODIFY_DELETE, [slapd.user_dn("alice")])]})
    try:
        r = world.login("alice")
        assert (r.status, r.code) == (400, "InvalidParameterValue"), r
        assert world.readable(before.creds) == {"s"}
    finally:
        ldap.modify(slapd.group_dn("analysts"),
                    {"member": [(ldap3.MODIFY_ADD, [slapd.user_dn("alice")])]})
    assert world.login("alice").status == 200
    ldap.modify(slapd.user_dn("carol"), {"userPassword": [(ldap3.MODIFY_REPLACE,
                                                           [slapd.ssha("carol-new-pw")])]})
    try:
        assert world.login("carol", RoleArn=world.dev).code == "InvalidParameterValue"
        assert world.login("carol", "carol-new-pw", RoleArn=world.dev).status == 200
    finally:
        ldap.modify(slapd.user_dn("carol"), {"userPassword": [(ldap3.MODIFY_REPLACE, [
            slapd.ssha(slapd.PASSWORDS["carol"])])]})


def test_search_mode_with_a_lookup_account(world, ldap, tmp_path):
    """The username found by a search as a lookup account whose password is a 0600 file
    (never stored); LDAPDirectory names the directory when several are registered."""
    pw = tmp_path / "lookup.pw"
    pw.write_text(slapd.PASSWORDS["svc-vallum"] + "\n")
    pw.chmod(0o600)
    config = world.directory_config(
        name="corp-search", user_dn_template=None, user_search_base=slapd.PEOPLE,
        user_filter="(&(objectClass=inetOrgPerson)(uid={username}))",
        lookup_dn=slapd.user_dn("svc-vallum"), lookup_password_file=str(pw))
    world.root.call("PutLDAPDirectory", **config)
    try:
        r = world.login("alice", LDAPDirectory="corp-search")
        # alice's roles trust the directory "corp", not "corp-search": the trust decides
        assert (r.status, r.code) == (403, "AccessDenied"), r
        world.a.admin.call("CreateRole", role="intel-search", trust_policy=doc({
            "Effect": "Allow", "Action": "sts:AssumeRoleWithLDAPIdentity",
            "Principal": {"Federated": f"arn:aws:iam::{world.a.id}:ldap-provider/corp-search"}}))
        config["roles"] = {slapd.group_dn("intel-staff"): f"arn:aws:iam::{world.a.id}:role/intel-search"}
        world.root.call("PutLDAPDirectory", **config)
        r = world.login("alice", LDAPDirectory="corp-search")
        assert r.status == 200, r
        assert world.login("alice", "wrong", LDAPDirectory="corp-search").code == \
            "InvalidParameterValue"
        r = world.login("alice")                   # two directories: which one?
        assert (r.status, r.code) == (400, "InvalidParameterValue"), r
        pw.chmod(0o644)
        with pytest.raises(AdminError) as exc:
            world.root.call("PutLDAPDirectory", **config)
        assert exc.value.code == "ValidationError" and "chmod 600" in exc.value.message
        r = world.login("alice", LDAPDirectory="corp-search")
        assert (r.status, r.code) == (400, "IDPCommunicationError"), r
    finally:
        world.root.call("DeleteLDAPDirectory", name="corp-search")


def test_admin_api_and_cli(world, server):
    got = world.root.call("GetLDAPDirectory", name="corp")
    assert got["start_tls"] is True and got["max_clearance"] == "SECRET"
    assert got["roles"][slapd.group_dn("devs").lower()] == world.dev
    assert "corp" in [d["name"] for d in world.root.call("ListLDAPDirectories")["directories"]]
    out = admin_cli(server, "ldap", "list")
    assert out.returncode == 0 and "corp" in out.stdout, out.stderr
    out = admin_cli(server, "-o", "json", "ldap", "get", "corp")
    assert out.returncode == 0 and json.loads(out.stdout)["name"] == "corp", out.stderr
    out = admin_cli(server, "ldap", "put", "cli-dir", "-c", json.dumps(
        world.directory_config(name="ignored")))
    assert out.returncode == 0, out.stderr
    assert admin_cli(server, "ldap", "delete", "cli-dir").returncode == 0
    out = admin_cli(server, "ldap", "get", "cli-dir")
    assert out.returncode == 1 and "NoSuchEntity" in out.stderr


@pytest.mark.parametrize("bad", [
    {"url": "ldap://127.0.0.1:389", "start_tls": False},
    {"url": "http://127.0.0.1:389"},
    {"ca_file": "ca.pem"},
    {"ca_file": "/nonexistent/ca.pem"},
    {"user_dn_template": "{username}"},
    {"user_dn_template": "uid=alice,ou=people,dc=vallum,dc=test"},
    {"roles": {}},
    {"roles": {"cn=x,dc=test": "arn:aws:iam::123:role/short-account"}},
    {"roles": {"not a dn": "arn:aws:iam::123456789012:role/r"}},
    {"group_filter": "(objectClass=groupOfNames"},
    {"max_clearance": "NOT A LABEL"},
    {"clearance_attribute": None},
    {"max_session": 60},
    {"name": "bad name"},
])
def test_malformed_directory_is_refused_and_stores_nothing(world, bad):
    config = {k: v for k, v in {**world.directory_config(name="malformed"), **bad}.items()
              if v is not None}
    with pytest.raises(AdminError) as exc:
        world.root.call("PutLDAPDirectory", **config)
    assert exc.value.code == "ValidationError", exc.value
    names = [d["name"] for d in world.root.call("ListLDAPDirectories")["directories"]]
    assert "malformed" not in names and "bad name" not in names


def test_only_the_platform_root_manages_directories(world):
    admin = world.a.admin
    for action, args in (("PutLDAPDirectory", world.directory_config(name="mine")),
                         ("GetLDAPDirectory", {"name": "corp"}),
                         ("ListLDAPDirectories", {}),
                         ("DeleteLDAPDirectory", {"name": "corp"})):
        with pytest.raises(AdminError) as exc:
            admin.call(action, **args)
        assert exc.value.code == "AccessDenied", action
    assert world.root.call("GetLDAPDirectory", name="corp")["name"] == "corp"


def test_another_ca_is_refused_before_any_password_is_sent(world, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    slapd.make_certs(other)
    world.root.call("PutLDAPDirectory", **world.directory_config(
        name="wrong-ca", ca_file=str(other / "ca.pem")))
    try:
        r = world.login("alice", LDAPDirectory="wrong-ca")
        assert (r.status, r.code) == (400, "IDPCommunicationError"), r
    finally:
        world.root.call("DeleteLDAPDirectory", name="wrong-ca")
    t0 = time.monotonic()
    assert world.login("alice").status == 200
    assert time.monotonic() - t0 < 10


def test_nesting_is_walked_only_to_the_configured_depth(world):
    """nesting=1: only alice's direct groups (analysts, unmapped) count, so no role."""
    world.root.call("PutLDAPDirectory", **world.directory_config(name="shallow", nesting=1))
    try:
        r = world.login("alice", LDAPDirectory="shallow")
        assert (r.status, r.code) == (400, "InvalidParameterValue"), r
        assert world.login("carol", LDAPDirectory="shallow", RoleArn=world.dev).code == \
            "AccessDenied"       # "shallow" is not the directory B's role trusts
    finally:
        world.root.call("DeleteLDAPDirectory", name="shallow")


def test_an_unreachable_directory(world):
    from tests.support.server import free_port
    world.root.call("PutLDAPDirectory", **world.directory_config(
        name="down", url=f"ldap://127.0.0.1:{free_port()}", timeout=2))
    try:
        r = world.login("alice", LDAPDirectory="down")
        assert (r.status, r.code) == (400, "IDPCommunicationError"), r
    finally:
        world.root.call("DeleteLDAPDirectory", name="down")


def test_ldaps_from_the_start(world):
    """ldaps:// (TLS before any LDAP message) works the same; start_tls is refused with it."""
    world.root.call("PutLDAPDirectory", **world.directory_config(
        name="tls", url=world.ldap.ldaps_url, start_tls=False))
    try:
        r = world.login("alice", LDAPDirectory="tls")
        assert (r.status, r.code) == (403, "AccessDenied"), r     # bound; trust names "corp"
        assert world.login("alice", "wrong", LDAPDirectory="tls").code == "InvalidParameterValue"
    finally:
        world.root.call("DeleteLDAPDirectory", name="tls")
    with pytest.raises(AdminError):
        world.root.call("PutLDAPDirectory", **world.directory_config(
            name="tls", url=world.ldap.ldaps_url, start_tls=True))
