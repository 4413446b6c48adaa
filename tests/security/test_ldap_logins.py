"""Hostile LDAP logins (STS AssumeRoleWithLDAPIdentity) against a real slapd: injection in
usernames, group spoofing, a clearance above the directory's cap, a locked user, a wrong
password, an anonymous or empty-password bind, password guessing. Each is refused with the
STS error MinIO/AWS give, mints nothing, and is audited (the password never is).

Real server (one of this module's own), real slapd over StartTLS (tests/support/slapd.py).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError

from tests.support import fixtures as functional
from tests.support import slapd
from tests.support.audit import audit_records
from tests.support.iam import s3_for
from tests.support.ldap_sts import World, login
from tests.support.server import server_log

server = functional.server
ACTION = "sts:AssumeRoleWithLDAPIdentity"


@pytest.fixture(scope="module")
def ldap(tmp_path_factory):
    with slapd.start(tmp_path_factory.mktemp("slapd") / "ldap") as s:
        yield s


@pytest.fixture(scope="module")
def world(server, ldap) -> World:
    return World(server, ldap)


def refused(world: World, code: str, status: int, username, password=None, **extra):
    r = world.login(username, password, **extra)
    assert (r.status, r.code) == (status, code), (username, r)
    assert "Credentials" not in r.result
    rec = audit_records(world.server.data_dir)[r.request_id]
    assert rec["action"] == ACTION and rec["decision"] == "deny" and rec["rule"], rec
    return r, rec


@pytest.mark.parametrize("username", [
    "*", "alice*", "*)(uid=*", "alice)(|(uid=*", "*)(objectClass=*", "alice\x00",
    "alice,ou=groups", "uid=alice,ou=people,dc=vallum,dc=test", "alice+cn=admin",
    "cn=admin,dc=vallum,dc=test", " alice", "al ice", "a" * 65, "élise",
])
def test_ldap_injection_in_the_username(world, username):
    """Filter or DN metacharacters never widen the match: refused by the username rule, or
    escaped (RFC 4514) into a DN nobody has. alice's own password is sent each time."""
    _, rec = refused(world, "InvalidParameterValue", 400, username, slapd.PASSWORDS["alice"])
    assert rec["principal"] is None, rec          # no one was authenticated


def test_injection_in_search_mode(world, tmp_path):
    """The lookup search escapes the username (RFC 4515) and wants exactly one entry."""
    pw = tmp_path / "lookup.pw"
    pw.write_text(slapd.PASSWORDS["svc-vallum"])
    pw.chmod(0o600)
    world.root.call("PutLDAPDirectory", **world.directory_config(
        name="search", user_dn_template=None, user_search_base=slapd.PEOPLE,
        user_filter="(&(objectClass=inetOrgPerson)(|(uid={username})(mail={username})))",
        lookup_dn=slapd.user_dn("svc-vallum"), lookup_password_file=str(pw)))
    try:
        for name in ("*", "alice)(uid=*", "al*", "alice,ou=people"):
            refused(world, "InvalidParameterValue", 400, name, slapd.PASSWORDS["alice"],
                    LDAPDirectory="search")
    finally:
        world.root.call("DeleteLDAPDirectory", name="search")


def test_group_spoofing(world):
    """mallory wrote her own cn=intel-staff (in the self-service OU) and names the real
    group in her description: neither is a group under the group base, so nothing maps;
    naming the role outright is refused; extra request parameters are not groups."""
    r, rec = refused(world, "InvalidParameterValue", 400, "mallory")
    assert rec["principal"] == f"ldap:{slapd.user_dn('mallory')}", rec
    refused(world, "AccessDenied", 403, "mallory", RoleArn=world.intel)
    refused(world, "InvalidParameterValue", 400, "mallory",
            Groups=slapd.group_dn("intel-staff"), **{"memberOf": slapd.group_dn("intel-staff")})
    # A role of another account, not mapped to any of alice's groups:
    refused(world, "AccessDenied", 403, "alice", RoleArn=world.dev)


def test_a_same_named_group_found_by_the_search_still_maps_nothing(world, ldap):
    """Searching the whole tree (group base = the suffix), mallory's self-made
    cn=intel-staff IS found as her group; roles map by full DN, so it maps nothing, while
    alice's real intel-staff maps (her role trusts "corp", not "wide": AccessDenied)."""
    conn = ldap.admin()
    try:
        assert conn.search(slapd.SELF, "(cn=intel-staff)", attributes=["member"])
        assert slapd.user_dn("mallory") in conn.entries[0].member.values
    finally:
        conn.unbind()
    world.root.call("PutLDAPDirectory", **world.directory_config(
        name="wide", group_search_base=slapd.BASE))
    try:
        refused(world, "InvalidParameterValue", 400, "mallory", LDAPDirectory="wide")
        refused(world, "AccessDenied", 403, "alice", LDAPDirectory="wide")
    finally:
        world.root.call("DeleteLDAPDirectory", name="wide")


def test_clearance_above_the_cap(world, ldap):
    """bob's employeeType TOP SECRET is above the directory's SECRET cap; a value that is
    no label, and two values, are refused too (never read as the lowest level)."""
    _, rec = refused(world, "IDPRejectedClaim", 403, "bob")
    assert rec["principal"] == f"ldap:{slapd.user_dn('bob')}", rec
    import ldap3
    for values in (["COSMIC"], ["SECRET", "CONFIDENTIAL"]):
        ldap.modify(slapd.user_dn("erin"), {"employeeType": [(ldap3.MODIFY_REPLACE, values)]})
        try:
            refused(world, "IDPRejectedClaim", 403, "erin", RoleArn=world.dev)
        finally:
            ldap.modify(slapd.user_dn("erin"),
                        {"employeeType": [(ldap3.MODIFY_REPLACE, ["CONFIDENTIAL"])]})
    assert world.login("erin", RoleArn=world.dev).status == 200


def test_locked_user(world):
    """dave is locked by the ppolicy overlay (pwdAccountLockedTime): slapd refuses his
    bind, and the answer is the same as for a wrong password."""
    r, _ = refused(world, "InvalidParameterValue", 400, "dave")
    wrong, _ = refused(world, "InvalidParameterValue", 400, "alice", "not-alices-password")
    assert r.result["Message"] == wrong.result["Message"]
    nobody, _ = refused(world, "InvalidParameterValue", 400, "nobody", "whatever")
    assert nobody.result["Message"] == wrong.result["Message"]


def test_empty_password_is_an_unauthenticated_bind_and_refused(world, ldap):
    """This slapd ACCEPTS a DN with an empty password (as an anonymous session): Vallum
    refuses it before any bind (MissingParameter), and a missing one alike."""
    if shutil.which("ldapwhoami"):
        out = subprocess.run(["ldapwhoami", "-x", "-ZZ", "-H", ldap.url, "-D",
                              slapd.user_dn("alice"), "-w", ""],
                             env={**os.environ, "LDAPTLS_CACERT": ldap.ca_file},
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and "anonymous" in out.stdout, out   # the danger is real
    refused(world, "MissingParameter", 400, "alice", "")
    refused(world, "MissingParameter", 400, "", "alice-pw-1")
    refused(world, "MissingParameter", 400, None, None)
    no_password = login(world.server.endpoint, "alice", None)       # the field left out
    assert (no_password.status, no_password.code) == (400, "MissingParameter"), no_password


def test_a_directory_without_tls_cannot_be_registered(world):
    from vallum.cli.admin import AdminError
    with pytest.raises(AdminError) as exc:
        world.root.call("PutLDAPDirectory", **world.directory_config(
            name="plain", start_tls=False))
    assert exc.value.code == "ValidationError"


def test_audit_names_the_dn_and_never_the_password(world):
    r = world.login("alice")
    assert r.status == 200, r
    rec = audit_records(world.server.data_dir)[r.request_id]
    assert rec["principal"] == f"ldap:{slapd.user_dn('alice')}", rec
    assert rec["action"] == ACTION and rec["decision"] == "allow", rec
    assert rec["account"] == world.a.id and rec["target"] == world.intel, rec
    assert r.creds["AccessKeyId"] in rec["rule"], rec
    s3 = s3_for(world.server, r.creds["AccessKeyId"], r.creds["SecretAccessKey"],
                r.creds["SessionToken"])
    rid = s3.get_object(Bucket=world.bucket, Key="s")["ResponseMetadata"]["RequestId"]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=world.bucket, Key="ts")            # above the session: hidden
    refused_id = exc.value.response["ResponseMetadata"]["RequestId"]
    records = audit_records(world.server.data_dir)
    for request_id, decision in ((rid, "allow"), (refused_id, "deny")):
        rec = records[request_id]          # every request of the session names the DN
        assert rec["principal"] == r.creds["AccessKeyId"], rec
        assert rec["source_identity"] == f"ldap:{slapd.user_dn('alice')}", rec
        assert rec["decision"] == decision, rec
    audit = (world.server.data_dir / "audit" / "audit.log").read_bytes()
    logs = server_log(world.server.data_dir).read_bytes()
    for pw in slapd.PASSWORDS.values():
        assert pw.encode() not in audit and pw.encode() not in logs


def test_a_certificate_for_another_host_is_refused(world, tmp_path):
    """A slapd whose certificate (from the right CA) names 127.0.0.2 and localhost: reached
    as 127.0.0.1 the name does not match and no password is sent; as localhost it works."""
    with slapd.start(tmp_path / "other", cert_ip="127.0.0.2") as other:
        for url, status in ((other.url, 400), (other.url.replace("127.0.0.1", "localhost"), 403)):
            world.root.call("PutLDAPDirectory", **world.directory_config(
                name="misnamed", url=url, ca_file=other.ca_file))
            try:
                r = world.login("alice", LDAPDirectory="misnamed")
                # 403: the bind worked; the role trusts "corp", not "misnamed"
                assert r.status == status, r
                assert r.code == ("IDPCommunicationError" if status == 400 else "AccessDenied"), r
            finally:
                world.root.call("DeleteLDAPDirectory", name="misnamed")


def test_a_newline_in_the_username_cannot_forge_a_log_line(world):
    r, rec = refused(world, "InvalidParameterValue", 400, "alice\nWARNING forged", "x")
    assert "\n" not in rec["rule"] and "'alice\\nWARNING forged'" in rec["rule"], rec
    assert b"\nWARNING forged" not in server_log(world.server.data_dir).read_bytes()


def test_a_silent_directory_cannot_stall_object_reads(world):
    """A directory that accepts connections and never answers, and a flood of logins to
    it: logins wait in threads of their own (past the queue: Throttling at once), and an
    object read in the meantime is served as usual."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(256)                     # never accept()ed: the kernel completes handshakes
    world.root.call("PutLDAPDirectory", **world.directory_config(
        name="silent", url=f"ldap://127.0.0.1:{hole.getsockname()[1]}", timeout=3))
    s3 = world.server.client()
    bucket = "ldap-flood-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"still here")
    try:
        with ThreadPoolExecutor(48) as pool:
            logins = [pool.submit(world.login, "alice", LDAPDirectory="silent")
                      for _ in range(48)]
            time.sleep(1.0)
            t0 = time.monotonic()
            assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"still here"
            elapsed = time.monotonic() - t0
            codes = [f.result().code for f in logins]
        assert elapsed < 2.0, elapsed
        assert codes.count("Throttling") >= 48 - 32, codes
        assert set(codes) == {"Throttling", "IDPCommunicationError"}, codes
    finally:
        world.root.call("DeleteLDAPDirectory", name="silent")
        hole.close()
        s3.delete_object(Bucket=bucket, Key="k")
        s3.delete_bucket(Bucket=bucket)


def test_password_guessing_is_throttled_before_the_bind(server, world):
    """20 wrong passwords for one user from one address: the next attempt is refused
    before any bind (Throttling), even with the right password. Last in the module: the
    address's own limit is shared with every failure above."""
    for _ in range(20):
        r = login(server.endpoint, "erin", "guess", RoleArn=world.dev)
        assert r.code == "InvalidParameterValue", r
    r = login(server.endpoint, "erin", slapd.PASSWORDS["erin"], RoleArn=world.dev)
    assert (r.status, r.code) == (400, "Throttling"), r
    rec = audit_records(server.data_dir)[r.request_id]
    assert rec["decision"] == "deny" and "locked out" in rec["rule"], rec
    assert world.login("alice").status == 200        # another user is not locked out
