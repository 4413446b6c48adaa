"""The IAM query API refuses what the caller's policies do not allow, per resource ARN and
only in the caller's own account: a user without iam:* is denied every action; another
tenant's users, keys and policies can be neither read nor changed, and an unauthorized
caller's answers do not depend on whether they exist; privilege escalation through
attach, boundaries and access keys (clearance) is refused. Real server, boto3 and raw
signed requests (answers compared byte for byte).
"""

from __future__ import annotations

import json
import re

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import fixtures as functional
from tests.support.frontdoor import FrontDoor
from tests.support.iam import Tenant, code_of, doc, iam_for, iam_raw, s3_for, sts_for, uid
from vallum.server.iam_query.api import ACTIONS

server, root = functional.server, functional.root
S3_ALL = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
ADMIN_DOC = json.dumps(doc({"Effect": "Allow", "Action": "*", "Resource": "*"}))


@pytest.fixture(scope="module")
def a(server, root):
    return Tenant(server, root)


@pytest.fixture(scope="module")
def b(server, root):
    return Tenant(server, root)


def _code(call) -> str:
    with pytest.raises(ClientError) as exc:
        call()
    return code_of(exc)


def _scrub(body: bytes) -> bytes:
    """An answer without its request id (the one part that differs by design)."""
    return re.sub(rb"<RequestId>[^<]*</RequestId>", b"", body)


def _params(t: Tenant, name: str) -> dict[str, dict[str, str]]:
    """Valid parameters of every action on entities of tenant ``t`` named ``name``."""
    pol = f"arn:aws:iam::{t.id}:policy/{name}"
    u, g, r = {"UserName": name}, {"GroupName": name}, {"RoleName": name}
    trust = json.dumps(doc({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{t.id}:root"},
                            "Action": "sts:AssumeRole"}))
    out = {
        "CreateUser": u, "GetUser": u, "ListUsers": {}, "DeleteUser": u,
        "CreateAccessKey": u, "ListAccessKeys": u,
        "UpdateAccessKey": {**u, "AccessKeyId": "AKIAAAAAAAAAAAAAAAAA", "Status": "Active"},
        "DeleteAccessKey": {**u, "AccessKeyId": "AKIAAAAAAAAAAAAAAAAA"},
        "CreateGroup": g, "GetGroup": g, "ListGroups": {}, "DeleteGroup": g,
        "AddUserToGroup": {**g, **u}, "RemoveUserFromGroup": {**g, **u},
        "ListGroupsForUser": u,
        "CreateRole": {**r, "AssumeRolePolicyDocument": trust}, "GetRole": r, "ListRoles": {},
        "DeleteRole": r, "UpdateAssumeRolePolicy": {**r, "PolicyDocument": trust},
        "PutUserPermissionsBoundary": {**u, "PermissionsBoundary": pol},
        "DeleteUserPermissionsBoundary": u,
        "PutRolePermissionsBoundary": {**r, "PermissionsBoundary": pol},
        "DeleteRolePermissionsBoundary": r,
        "CreatePolicy": {"PolicyName": name, "PolicyDocument": ADMIN_DOC},
        "GetPolicy": {"PolicyArn": pol}, "GetPolicyVersion": {"PolicyArn": pol, "VersionId": "v1"},
        "ListPolicyVersions": {"PolicyArn": pol}, "ListPolicies": {},
        "DeletePolicy": {"PolicyArn": pol}, "GetAccountAuthorizationDetails": {},
        "ListEntitiesForPolicy": {"PolicyArn": pol}, "ListInstanceProfilesForRole": r,
        "ListUserTags": u, "ListRoleTags": r, "ListPolicyTags": {"PolicyArn": pol},
    }
    for kind, who in (("User", u), ("Group", g), ("Role", r)):
        out.update({f"Put{kind}Policy": {**who, "PolicyName": "p", "PolicyDocument": ADMIN_DOC},
                    f"Get{kind}Policy": {**who, "PolicyName": "p"},
                    f"List{kind}Policies": who, f"Delete{kind}Policy": {**who, "PolicyName": "p"},
                    f"Attach{kind}Policy": {**who, "PolicyArn": pol},
                    f"Detach{kind}Policy": {**who, "PolicyArn": pol},
                    f"ListAttached{kind}Policies": who})
    return out


def test_a_user_without_iam_permissions_is_denied_every_action(server, a):
    key = a.user(uid("s3only"), S3_ALL)
    target = uid("t")
    a.admin.call("CreateUser", user=target)             # exists, so only authz can refuse
    calls = _params(a, target)
    assert set(calls) == set(ACTIONS), "every IAM action must be covered here"
    for action, params in calls.items():
        status, body = iam_raw(server, *key, {"Action": action, **params})
        assert (status, b"<Code>AccessDenied</Code>" in body) == (403, True), (action, body)
    assert a.admin.call("GetUser", user=target)["name"] == target
    assert a.admin.call("ListAccessKeys", user=target)["keys"] == []


def test_another_tenant_can_neither_read_nor_change(server, a, b):
    victim = uid("victim")
    b.admin.call("CreateUser", user=victim)
    bkey = b.admin.call("CreateAccessKey", user=victim)["access_key_id"]
    b.admin.call("CreatePolicy", policy=victim, document=json.loads(ADMIN_DOC))
    attacker = iam_for(server, *a.admin_key)            # "*" on "*" inside its own account
    b_policy = f"arn:aws:iam::{b.id}:policy/{victim}"
    assert _code(lambda: attacker.get_user(UserName=victim)) == "NoSuchEntity"
    assert _code(lambda: attacker.create_access_key(UserName=victim)) == "NoSuchEntity"
    assert _code(lambda: attacker.update_access_key(UserName=victim, AccessKeyId=bkey,
                                                    Status="Inactive")) == "NoSuchEntity"
    assert _code(lambda: attacker.delete_access_key(AccessKeyId=bkey)) == "NoSuchEntity"
    assert _code(lambda: attacker.get_policy(PolicyArn=b_policy)) == "AccessDenied"
    assert _code(lambda: attacker.delete_policy(PolicyArn=b_policy)) == "AccessDenied"
    mine = uid("mine")
    attacker.create_user(UserName=mine)
    assert _code(lambda: attacker.attach_user_policy(UserName=mine, PolicyArn=b_policy)) \
        == "AccessDenied"
    assert _code(lambda: attacker.put_user_permissions_boundary(
        UserName=mine, PermissionsBoundary=b_policy)) == "AccessDenied"
    assert victim not in [u["UserName"] for u in attacker.list_users()["Users"]]
    details = attacker.get_account_authorization_details()
    assert b.id not in json.dumps(details, default=str)
    # B is untouched: one key, still active; its policy still there
    keys = b.admin.call("ListAccessKeys", user=victim)["keys"]
    assert [(k["access_key_id"], k["status"]) for k in keys] == [(bkey, "Active")]
    assert b.admin.call("GetPolicy", policy=victim)["name"] == victim


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.from_regex(r"[A-Za-z0-9_]{1,20}", fullmatch=True),
       action=st.sampled_from(["GetPolicy", "GetPolicyVersion", "DeletePolicy",
                               "AttachUserPolicy", "PutUserPermissionsBoundary",
                               "DeleteAccessKey", "UpdateAccessKey"]))
def test_answers_do_not_reveal_what_exists_in_another_account(server, a, b, name, action):
    """For A's admin, B's existing entities answer byte for byte as missing ones."""
    exists = "x" + name
    missing = "y" + name
    if exists not in {p["name"] for p in b.admin.call("ListPolicies")["policies"]}:
        b.admin.call("CreatePolicy", policy=exists, document=json.loads(ADMIN_DOC))
    users = {u["name"] for u in b.admin.call("ListUsers")["users"]}
    if exists not in users:
        b.admin.call("CreateUser", user=exists)
        b.admin.call("CreateAccessKey", user=exists)
    real_key = b.admin.call("ListAccessKeys", user=exists)["keys"][0]["access_key_id"]
    mine = "probe"
    if mine not in {u["name"] for u in a.admin.call("ListUsers")["users"]}:
        a.admin.call("CreateUser", user=mine)

    def ask(entity: str, key_id: str) -> tuple[int, bytes]:
        pol = f"arn:aws:iam::{b.id}:policy/{entity}"
        params = {"GetPolicy": {"PolicyArn": pol},
                  "GetPolicyVersion": {"PolicyArn": pol, "VersionId": "v1"},
                  "DeletePolicy": {"PolicyArn": pol},
                  "AttachUserPolicy": {"UserName": mine, "PolicyArn": pol},
                  "PutUserPermissionsBoundary": {"UserName": mine, "PermissionsBoundary": pol},
                  "DeleteAccessKey": {"UserName": mine, "AccessKeyId": key_id},
                  "UpdateAccessKey": {"UserName": mine, "AccessKeyId": key_id,
                                      "Status": "Inactive"}}[action]
        status, body = iam_raw(server, *a.admin_key, {"Action": action, **params})
        # Only the ARN's name part: a short name also occurs inside tags ("yp" in "Type").
        return status, _scrub(body).replace(f"policy/{entity}".encode(), b"policy/NAME") \
            .replace(key_id.encode(), b"KEY")

    assert ask(exists, real_key) == ask(missing, "AKIA" + "Z" * 16)
    assert ask(exists, real_key)[0] in (403, 404)


def test_unauthorized_in_its_own_account_learns_nothing_of_existence(server, a):
    key = a.user(uid("nosy"), S3_ALL)
    there = uid("there")
    a.admin.call("CreateUser", user=there)
    for action in ("GetUser", "DeleteUser", "ListAccessKeys", "ListGroupsForUser",
                   "ListUserPolicies", "CreateAccessKey"):
        answers = []
        for name in (there, there.replace("there", "ghost")):
            status, body = iam_raw(server, *key, {"Action": action, "UserName": name})
            answers.append((status, _scrub(body).replace(name.encode(), b"NAME")))
        assert answers[0] == answers[1] and answers[0][0] == 403, action


def test_attaching_more_to_oneself_needs_the_permission(server, a):
    ro = uid("ro")
    a.admin.call("CreatePolicy", policy=ro, document=doc(
        {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}))
    admin_like = uid("adminlike")
    a.admin.call("CreatePolicy", policy=admin_like, document=json.loads(ADMIN_DOC))
    me = uid("climber")
    ro_arn = f"arn:aws:iam::{a.id}:policy/{ro}"
    key = a.user(me, {"Effect": "Allow", "Action": "iam:AttachUserPolicy",
                      "Resource": f"arn:aws:iam::{a.id}:user/${{aws:username}}",
                      "Condition": {"ArnEquals": {"iam:PolicyARN": ro_arn}}})
    iam = iam_for(server, *key)
    admin_arn = f"arn:aws:iam::{a.id}:policy/{admin_like}"
    assert _code(lambda: iam.attach_user_policy(UserName=me, PolicyArn=admin_arn)) == "AccessDenied"
    assert _code(lambda: iam.put_user_policy(UserName=me, PolicyName="all",
                                             PolicyDocument=ADMIN_DOC)) == "AccessDenied"
    assert _code(lambda: iam.attach_user_policy(UserName="admin", PolicyArn=ro_arn)) == "AccessDenied"
    assert _code(lambda: iam.create_access_key(UserName="admin")) == "AccessDenied"
    iam.attach_user_policy(UserName=me, PolicyArn=ro_arn)          # what it was allowed
    attached = a.admin.call("GetUser", user=me)["policies"]
    assert f"policy/{ro}" in attached and f"policy/{admin_like}" not in attached
    s3 = s3_for(server, *key)
    with pytest.raises(ClientError):
        s3.create_bucket(Bucket=uid("nope"))                      # still no more than s3:List*


def test_a_delegated_admin_cannot_widen_the_boundary(server, a):
    narrow = uid("narrow")
    wide = uid("wide")
    a.admin.call("CreatePolicy", policy=narrow, document=doc(
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}))
    a.admin.call("CreatePolicy", policy=wide, document=json.loads(ADMIN_DOC))
    narrow_arn = f"arn:aws:iam::{a.id}:policy/{narrow}"
    wide_arn = f"arn:aws:iam::{a.id}:policy/{wide}"
    only_bounded = {"StringEquals": {"iam:PermissionsBoundary": narrow_arn}}
    key = a.user(uid("delegate"), {
        "Effect": "Allow", "Resource": "*", "Condition": only_bounded,
        "Action": ["iam:CreateUser", "iam:PutUserPermissionsBoundary", "iam:PutUserPolicy",
                   "iam:AttachUserPolicy", "iam:DeleteUserPermissionsBoundary"]})
    iam = iam_for(server, *key)
    assert _code(lambda: iam.create_user(UserName=uid("free"))) == "AccessDenied"
    assert _code(lambda: iam.create_user(UserName=uid("wide"), PermissionsBoundary=wide_arn)) \
        == "AccessDenied"
    bounded = uid("bounded")
    iam.create_user(UserName=bounded, PermissionsBoundary=narrow_arn)
    assert _code(lambda: iam.put_user_permissions_boundary(
        UserName=bounded, PermissionsBoundary=wide_arn)) == "AccessDenied"
    iam.put_user_policy(UserName=bounded, PolicyName="all", PolicyDocument=ADMIN_DOC)
    assert a.admin.call("GetUser", user=bounded)["boundary"] == narrow
    # Deleting the boundary is allowed only while it is the narrow one: and it is. A user
    # left without boundary can no longer be changed by the delegate.
    iam.delete_user_permissions_boundary(UserName=bounded)
    assert _code(lambda: iam.put_user_policy(UserName=bounded, PolicyName="more",
                                             PolicyDocument=ADMIN_DOC)) == "AccessDenied"


def test_no_key_above_the_callers_clearance(server, root, a):
    cleared = uid("cleared")
    a.admin.call("CreateUser", user=cleared)
    a.admin.call("PutInlinePolicy", kind="user", target=cleared, name="own", document=doc(
        S3_ALL, {"Effect": "Allow", "Action": ["iam:CreateAccessKey", "iam:UpdateAccessKey"],
                 "Resource": f"arn:aws:iam::{a.id}:user/${{aws:username}}"}))
    root.call("SetClearance", account=a.id, user=cleared, clearance="SECRET")
    admin = iam_for(server, *a.admin_key)                  # uncleared, with "*"
    assert _code(lambda: admin.create_access_key(UserName=cleared)) == "AccessDenied"
    assert a.admin.call("ListAccessKeys", user=cleared)["keys"] == []
    minted = root.call("CreateAccessKey", account=a.id, user=cleared)
    own = iam_for(server, minted["access_key_id"], minted["secret_access_key"])
    second = own.create_access_key()["AccessKey"]         # a cleared user mints its own
    own.update_access_key(AccessKeyId=second["AccessKeyId"], Status="Inactive")
    # The uncleared admin may disable it but not bring it back (it could be one it kept).
    admin.update_access_key(UserName=cleared, AccessKeyId=minted["access_key_id"],
                            Status="Inactive")
    assert _code(lambda: admin.update_access_key(
        UserName=cleared, AccessKeyId=second["AccessKeyId"], Status="Active")) == "AccessDenied"
    statuses = {k["access_key_id"]: k["status"]
                for k in a.admin.call("ListAccessKeys", user=cleared)["keys"]}
    assert statuses == {minted["access_key_id"]: "Inactive", second["AccessKeyId"]: "Inactive"}


def test_malformed_and_oversize_documents(server, a):
    iam = iam_for(server, *a.admin_key)
    role = uid("r")
    nested = "[" * 2500 + "]" * 2500        # under the size quota, too deep to parse
    assert _code(lambda: iam.create_policy(PolicyName=uid("n"), PolicyDocument=nested)) \
        == "MalformedPolicyDocument"
    no_principal = json.dumps(doc({"Effect": "Allow", "Action": "sts:AssumeRole"}))
    assert _code(lambda: iam.create_role(RoleName=role, AssumeRolePolicyDocument=no_principal)) \
        == "MalformedPolicyDocument"
    long_trust = json.dumps(doc({"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {
        "AWS": [f"arn:aws:iam::{a.id}:user/u{i:04d}" for i in range(80)]}}))
    assert _code(lambda: iam.create_role(RoleName=role, AssumeRolePolicyDocument=long_trust)) \
        == "LimitExceeded"
    # Inline user policies count together, as AWS counts them (2048 per user).
    user = uid("u")
    iam.create_user(UserName=user)
    half = json.dumps(doc({"Effect": "Allow", "Action": "s3:GetObject",
                           "Resource": [f"arn:aws:s3:::b/{i:03d}-abcdefghij" for i in range(30)]}))
    iam.put_user_policy(UserName=user, PolicyName="one", PolicyDocument=half)
    iam.put_user_policy(UserName=user, PolicyName="one", PolicyDocument=half)   # a replace
    assert _code(lambda: iam.put_user_policy(UserName=user, PolicyName="two",
                                             PolicyDocument=half)) == "LimitExceeded"
    status, body = iam_raw(server, *a.admin_key, {"Action": "CreatePolicy", "PolicyName": "huge",
                                                  "PolicyDocument": "x" * (300 * 1024)})
    assert status >= 400 and b"<ErrorResponse" in body
    assert "huge" not in [p["name"] for p in a.admin.call("ListPolicies")["policies"]]


def test_forged_and_session_credentials(server, a):
    forged = iam_for(server, a.admin_key[0], "not-the-secret")
    assert _code(lambda: forged.list_users()) == "SignatureDoesNotMatch"
    unknown = iam_for(server, "AKIA" + "Q" * 16, "secret")
    assert _code(lambda: unknown.list_users()) == "InvalidAccessKeyId"
    key = a.user(uid("tok"), S3_ALL)
    creds = sts_for(server, *key).get_session_token()["Credentials"]
    session = iam_for(server, creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    assert _code(lambda: session.list_users()) == "AccessDenied"
    bad_token = iam_for(server, creds["AccessKeyId"], creds["SecretAccessKey"], "forged")
    assert _code(lambda: bad_token.list_users()) == "InvalidToken"


def test_every_call_is_audited_allowed_and_refused(tmp_path):
    """In process on a fresh data directory: the audit record of each IAM call names
    the caller, the iam: action, the resource ARN, the decision and what decided."""
    door = FrontDoor(tmp_path / "data")
    try:
        acct, adm = door.account("audited")
        out = door.iam(adm, Action="CreateUser", UserName="bob")
        rec = door.audit(out)
        assert out.status == 200
        assert {k: rec[k] for k in ("principal", "account", "action", "target", "decision")} == {
            "principal": adm[0], "account": acct, "action": "iam:CreateUser",
            "target": f"arn:aws:iam::{acct}:user/bob", "decision": "allow"} and rec["rule"]
        out = door.iam(adm, Action="CreateAccessKey", UserName="bob")
        bob = (re.search(rb"<AccessKeyId>([^<]+)", out.body).group(1).decode(),
               re.search(rb"<SecretAccessKey>([^<]+)", out.body).group(1).decode())
        out = door.iam(bob, Action="DeleteUser", UserName="admin")
        rec = door.audit(out)
        assert out.status == 403 and rec["decision"] == "deny" and rec["principal"] == bob[0]
        assert rec["action"] == "iam:DeleteUser" and rec["target"] == f"arn:aws:iam::{acct}:user/admin"
        out = door.iam(adm, Action="GetUser", UserName="ghost")      # allowed, then not found
        rec = door.audit(out)
        assert out.status == 404 and rec["decision"] == "allow" and rec["action"] == "iam:GetUser"
        out = door.iam(door.root, Action="ListUsers")
        rec = door.audit(out)
        assert out.status == 403 and rec["rule"] == "platform root: no account"
    finally:
        door.close()
