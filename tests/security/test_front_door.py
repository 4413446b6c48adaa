"""One front door: every API answers hostile requests as S3 does, and is audited as S3 is.

The admin, STS and compute APIs used to branch off before the S3 chain, each with its own
body reader and authentication and no operator admission: a suspended key kept the admin,
STS and compute APIs. Here the same hostile request (unsigned, wrongly signed, oversized,
malformed, from a contained caller) goes to each API through the real gateway on real
stores, and its answer, its audit record and the state after it are checked. The policy
simulator is checked against the live gateway's decision for a MAC-hidden object and a
public bucket policy set aside by PublicAccessBlock.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sqlite3
import time
from dataclasses import dataclass

import pytest

from tests.support.frontdoor import FrontDoor, Reply
from vallum.compute import api as compute_api
from vallum.operator import gateway as operator_hook
from vallum.operator import journal
from vallum.s3.xml import MAX_XML_BODY
from vallum.server import admin

TAGGING = (b'<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet><Tag><Key>k</Key>'
           b"<Value>v</Value></Tag></TagSet></Tagging>")


@pytest.fixture(scope="module")
def door(tmp_path_factory):
    d = FrontDoor(tmp_path_factory.mktemp("frontdoor") / "data", compute=True)
    yield d
    d.close()


_SEQ = iter(range(10**6))


@dataclass
class Tenant:
    """A fresh account with its admin key and one bucket."""

    id: str
    key: tuple[str, str]
    bucket: str


def tenant(door: FrontDoor) -> Tenant:
    n = next(_SEQ)
    account, key = door.account(f"fd-{n}")
    bucket = f"fd-bucket-{n}"
    assert door.send("PUT", f"/{bucket}", creds=key).status == 200
    return Tenant(account, key, bucket)


# ------------------------------------------------------------------ the APIs' calls

@dataclass(frozen=True)
class Call:
    """One state-changing call of an API, and how to see that it changed nothing."""

    api: str
    limit: int            # the body size the API refuses above

    def send(self, door: FrontDoor, t: Tenant, creds: tuple[str, str] | None,
             body: bytes | None = None) -> Reply:
        if self.api == "s3":
            body = TAGGING if body is None else body
            return door.send("PUT", f"/{t.bucket}", query={"tagging": ""}, creds=creds, body=body,
                             headers={"content-md5": base64.b64encode(
                                 hashlib.md5(body).digest()).decode()})
        if self.api == "admin":
            return door.send("POST", "/-/admin/v1/CreateUser", creds=creds,
                             body=b'{"user": "mallory"}' if body is None else body,
                             headers={"content-type": "application/json"})
        if self.api == "sts":
            return door.send("POST", "/", creds=creds, service="sts",
                             body=b"Action=GetSessionToken&Version=2011-06-15" if body is None
                             else body, headers={"content-type": "application/x-www-form-urlencoded"})
        return door.send("POST", "/-/jobs/v1/jobs", creds=creds,
                         body=b'{"runtime": "command", "command": ["true"]}' if body is None
                         else body, headers={"content-type": "application/json"})

    def unchanged(self, door: FrontDoor, t: Tenant, reply: Reply) -> None:
        if self.api == "s3":
            got = door.send("GET", f"/{t.bucket}", query={"tagging": ""}, creds=door.root)
            assert got.status == 404 and error_code(got) == "NoSuchTagSet"
        elif self.api == "admin":
            got = door.admin(door.root, "GetUser", account=t.id, user="mallory")
            assert got.status == 404, got.body
        elif self.api == "sts":
            assert b"SecretAccessKey" not in reply.body
        else:               # read from the store: the caller itself may be refused by now
            with sqlite3.connect(door.services.config.meta_path) as db:
                (n,) = db.execute("SELECT count(*) FROM compute_jobs WHERE account = ?",
                                  (t.id,)).fetchone()
            assert n == 0


CALLS = [Call("s3", MAX_XML_BODY), Call("admin", admin.MAX_BODY),
         Call("sts", admin.STS_MAX_BODY), Call("compute", compute_api.MAX_BODY)]
IDS = [c.api for c in CALLS]


def error_code(reply: Reply) -> str:
    """The error code in the API's own format: S3 or STS XML, or admin/compute JSON."""
    if reply.headers.get("content-type", "").endswith("json"):
        return reply.json()["error"]["code"]
    m = re.search(rb"<Code>([^<]*)</Code>", reply.body)
    assert m, reply.body
    return m.group(1).decode()


def assert_in_format(call: Call, reply: Reply) -> None:
    ctype = reply.headers.get("content-type", "")
    if call.api in ("admin", "compute"):
        assert ctype == "application/json", ctype
    elif call.api == "sts":
        assert ctype == "text/xml" and b"<ErrorResponse" in reply.body, reply.body
    else:
        assert ctype == "application/xml" and b"<Error>" in reply.body, reply.body


def assert_audited_deny(door: FrontDoor, reply: Reply, principal: str | None) -> dict:
    rec = door.audit(reply)
    assert rec["decision"] == "deny" and rec["principal"] == principal, rec
    assert rec["rule"], rec
    return rec


# ------------------------------------------------------------------ hostile requests

@pytest.mark.parametrize("call", [c for c in CALLS if c.api != "sts"],
                         ids=[i for i in IDS if i != "sts"])
def test_unsigned_request_is_refused_as_s3_refuses_it(door, call):
    t = tenant(door)
    reply = call.send(door, t, None)
    assert (reply.status, error_code(reply)) == (403, "AccessDenied")
    assert_in_format(call, reply)
    assert_audited_deny(door, reply, None)
    call.unchanged(door, t, reply)


def test_an_unsigned_sts_call_is_not_an_sts_call(door):
    """STS is what is signed for STS: an unsigned POST / is an S3 request (refused)."""
    t = tenant(door)
    reply = Call("sts", 0).send(door, t, None)
    assert reply.status >= 400 and b"SecretAccessKey" not in reply.body
    assert reply.headers["content-type"] == "application/xml"


@pytest.mark.parametrize("call", CALLS, ids=IDS)
def test_wrong_signature_is_refused_as_s3_refuses_it(door, call):
    t = tenant(door)
    reply = call.send(door, t, (t.key[0], "not-the-secret-" + t.key[1][:20]))
    assert (reply.status, error_code(reply)) == (403, "SignatureDoesNotMatch")
    assert_in_format(call, reply)
    rec = assert_audited_deny(door, reply, t.key[0])
    assert rec["principal_claimed"] is True and rec["rule"] == "authentication: SignatureDoesNotMatch"
    call.unchanged(door, t, reply)


@pytest.mark.parametrize("call", CALLS, ids=IDS)
def test_oversized_body_is_refused_as_s3_refuses_it(door, call):
    t = tenant(door)
    reply = call.send(door, t, t.key, b" " * (call.limit + 1))
    assert (reply.status, error_code(reply)) == (400, "MaxMessageLengthExceeded")
    assert_in_format(call, reply)
    assert door.audit(reply)["error"] == "MaxMessageLengthExceeded"
    call.unchanged(door, t, reply)


MALFORMED = {"s3": (b"<Tagging><TagSet><Tag>", "MalformedXML"),
             "admin": (b'{"user": "mallory"', "ValidationError"),
             "sts": (b"Action=Get%ZZSessionToken&Version=2011-06-15", "InvalidAction"),
             "compute": (b'{"runtime": "command"', "MalformedJSON")}


@pytest.mark.parametrize("call", CALLS, ids=IDS)
def test_malformed_body_gets_a_precise_error_and_changes_nothing(door, call):
    t = tenant(door)
    body, code = MALFORMED[call.api]
    reply = call.send(door, t, t.key, body)
    assert (reply.status, error_code(reply)) == (400, code)
    assert_in_format(call, reply)
    rec = door.audit(reply)
    assert (rec["principal"], rec["account"], rec["principal_claimed"]) == (t.key[0], t.id, False)
    call.unchanged(door, t, reply)


@pytest.fixture
def containment(door, monkeypatch):
    """The operator in contain mode on this gateway; returns suspend(key), which journals a
    suspension as another gateway (or `vallum operator`) does and lets this one read it."""
    hook = operator_hook.Hook(door.data_dir, door.services.iam, "contain", door.root[0])
    monkeypatch.setattr(operator_hook, "_hook", hook)
    monkeypatch.setattr(operator_hook, "_checked", True)

    def suspend(key: str) -> None:
        journal.append(journal.directory(door.data_dir) / journal.ACTIONS, {
            "ts": time.time(), "action": "suspend", "entity": key, "entity_type": "principal",
            "reason": "front-door test", "account": "", "kind": "", "by": "test", "pid": -1})
        hook.poll(force=True)
        assert key in hook.policy.suspended

    yield suspend
    hook.flush()


@pytest.mark.parametrize("call", CALLS, ids=IDS)
def test_contained_caller_is_refused_by_every_api(door, containment, call):
    t = tenant(door)
    containment(t.key[0])
    reply = call.send(door, t, t.key)
    assert (reply.status, error_code(reply)) == (403, "AccessDenied")
    assert_in_format(call, reply)
    rec = assert_audited_deny(door, reply, t.key[0])
    assert rec["account"] == t.id and rec["principal_claimed"] is False
    call.unchanged(door, t, reply)


def test_a_suspended_session_key_keeps_no_api(door, containment):
    """Session keys are suspended through the operator's journal only (IAM has no row to
    disable): admission is the one thing standing between them and STS, admin, compute."""
    t = tenant(door)
    sts = door.sts(t.key, Action="GetSessionToken")
    creds = re.search(rb"<AccessKeyId>([^<]+)</AccessKeyId><SecretAccessKey>([^<]+)</SecretAccessKey>"
                      rb"<SessionToken>([^<]+)</SessionToken>", sts.body)
    assert creds, sts.body
    key, secret, token = (g.decode() for g in creds.groups())
    containment(key)
    for call in CALLS:
        method, path, headers, body = _session_request(call)
        reply = door.send(method, path, creds=(key, secret), body=body,
                          service="sts" if call.api == "sts" else "s3",
                          headers={"x-amz-security-token": token, **headers})
        assert (reply.status, error_code(reply)) == (403, "AccessDenied"), (call.api, reply.body)


def _session_request(call: Call) -> tuple[str, str, dict[str, str], bytes]:
    if call.api == "s3":
        return "GET", "/", {}, b""
    if call.api == "admin":
        return "POST", "/-/admin/v1/ListUsers", {"content-type": "application/json"}, b"{}"
    if call.api == "sts":
        return "POST", "/", {"content-type": "application/x-www-form-urlencoded"}, \
            b"Action=GetCallerIdentity&Version=2011-06-15"
    return "GET", "/-/jobs/v1/jobs", {}, b""


# ------------------------------------------------------------------ one audit shape

def test_every_api_is_audited_with_the_shape_and_attribution_of_s3(door):
    t = tenant(door)
    replies = {
        "s3": door.send("GET", f"/{t.bucket}", creds=t.key),
        "admin": door.admin(t.key, "ListUsers"),
        "sts": door.sts(t.key, Action="GetCallerIdentity"),
        "compute": door.send("GET", "/-/jobs/v1/jobs", creds=t.key),
    }
    records = {api: door.audit(reply) for api, reply in replies.items()}
    shape = set(records["s3"])
    for api, rec in records.items():
        assert replies[api].status == 200, (api, replies[api].body)
        assert set(rec) == shape, api
        assert (rec["principal"], rec["principal_claimed"], rec["account"], rec["decision"]) == \
            (t.key[0], False, t.id, "allow"), (api, rec)
        assert rec["action"] and rec["rule"] and rec["source_ip"] == "10.20.30.40", (api, rec)
    assert records["admin"]["action"] == "iam:ListUsers"
    assert records["sts"]["action"] == "sts:GetCallerIdentity"
    assert records["compute"]["action"] == "vallum:ListJobs"


def test_health_goes_through_the_front_door_unauthenticated(door):
    reply = door.send("GET", "/-/health/ready")
    assert reply.status == 200 and reply.request_id
    rec = door.audit(reply)
    assert (rec["operation"], rec["principal"], rec["status"]) == ("reserved", None, 200)


# ------------------------------------------------------------------ the simulator

def simulate(door: FrontDoor, creds, account: str, user: str, action: str, resource: str) -> dict:
    reply = door.admin(creds, "Simulate", account=account, user=user, action=action,
                       resource=resource)
    assert reply.status == 200, reply.body
    return reply.json()


def user(door: FrontDoor, t: Tenant, name: str, statement: dict) -> tuple[str, str]:
    assert door.admin(t.key, "CreateUser", user=name).status == 200
    doc = {"Version": "2012-10-17", "Statement": [statement]}
    assert door.admin(t.key, "PutInlinePolicy", kind="user", target=name, name="p",
                      document=doc).status == 200
    key = door.admin(t.key, "CreateAccessKey", user=name).json()
    return key["access_key_id"], key["secret_access_key"]


def test_simulator_equals_the_gateway_for_a_mac_hidden_object(door):
    t = tenant(door)
    reader = user(door, t, "reader", {"Effect": "Allow", "Action": "s3:GetObject",
                                      "Resource": f"arn:aws:s3:::{t.bucket}/*"})
    for key, label in (("open", "UNCLASSIFIED"), ("hidden", "SECRET")):
        put = door.send("PUT", f"/{t.bucket}/{key}", creds=door.root, body=b"x",
                        headers={"x-vallum-classification": label})
        assert put.status == 200, put.body
    for key, live_status in (("open", 200), ("hidden", 404)):
        live = door.send("GET", f"/{t.bucket}/{key}", creds=reader)
        assert live.status == live_status
        rec = door.audit(live)
        sim = simulate(door, door.root, t.id, "reader", "s3:GetObject",
                       f"arn:aws:s3:::{t.bucket}/{key}")
        assert sim["decision"] == rec["decision"], (sim, rec)
    assert (sim["policy"], sim["statement"]) == ("mac", "no-read-up")
    assert sim["reason"].startswith("mac: ") and rec["rule"].startswith("mac: ")


def test_simulator_equals_the_gateway_for_a_public_policy_set_aside_by_the_block(door):
    owner, other = tenant(door), tenant(door)
    arn = f"arn:aws:s3:::{owner.bucket}/doc"
    assert door.send("PUT", f"/{owner.bucket}/doc", creds=owner.key, body=b"x").status == 200
    public = {"Version": "2012-10-17", "Statement": [{"Sid": "Public", "Effect": "Allow",
                                                      "Principal": "*", "Action": "s3:GetObject",
                                                      "Resource": arn}]}
    assert door.send("PUT", f"/{owner.bucket}", query={"policy": ""}, creds=owner.key,
                     body=json.dumps(public).encode()).status == 204
    outsider = user(door, other, "outsider", {"Effect": "Allow", "Action": "s3:GetObject",
                                              "Resource": "*"})

    def both() -> tuple[dict, dict, int]:
        live = door.send("GET", f"/{owner.bucket}/doc", creds=outsider)
        sim = simulate(door, other.key, other.id, "outsider", "s3:GetObject", arn)
        return door.audit(live), sim, live.status

    rec, sim, status = both()            # cross-account: the public policy and the identity allow
    assert (status, rec["decision"], sim["decision"]) == (200, "allow", "allow")
    block = (b'<PublicAccessBlockConfiguration><RestrictPublicBuckets>true</RestrictPublicBuckets>'
             b"</PublicAccessBlockConfiguration>")
    assert door.send("PUT", f"/{owner.bucket}", query={"publicAccessBlock": ""}, creds=owner.key,
                     body=block).status == 200
    rec, sim, status = both()
    assert (status, rec["decision"], sim["decision"]) == (403, "deny", "deny")
    assert (sim["policy"], sim["statement"]) == ("public-access-block", "RestrictPublicBuckets")
    assert rec["rule"] == sim["reason"]


# ------------------------------------------------------------------ one set of condition keys

def test_every_api_decides_on_the_same_global_condition_keys(door):
    """A deny on plain HTTP holds for every API (compute and label downgrade used to see no
    aws:SecureTransport, so a condition on it could not match there and the deny did not
    apply)."""
    t = tenant(door)
    assert door.send("PUT", f"/{t.bucket}/doc", creds=t.key, body=b"x").status == 200
    allow = {"Effect": "Allow", "Action": ["s3:ListBucket", "vallum:ListJobs", "iam:ListUsers",
                                           "vallum:DowngradeLabel"], "Resource": "*"}
    plain = user(door, t, "plain", allow)
    tls_only = user(door, t, "tls-only", allow)
    deny = {"Effect": "Deny", "Action": "*", "Resource": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    assert door.admin(t.key, "PutInlinePolicy", kind="user", target="tls-only", name="tls",
                      document={"Version": "2012-10-17", "Statement": [deny]}).status == 200
    for who, status in ((plain, 200), (tls_only, 403)):
        replies = {"s3": door.send("GET", f"/{t.bucket}", creds=who),
                   "compute": door.send("GET", "/-/jobs/v1/jobs", creds=who),
                   "admin": door.admin(who, "ListUsers"),
                   "downgrade": door.admin(who, "DowngradeLabel", bucket=t.bucket, key="doc",
                                           label="UNCLASSIFIED")}
        for api, reply in replies.items():
            assert reply.status == status, (api, reply.body)
            rec = door.audit(reply)
            assert rec["decision"] == ("allow" if status == 200 else "deny"), (api, rec)
