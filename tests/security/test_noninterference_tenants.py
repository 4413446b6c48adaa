"""Noninterference between tenants, tested as a property.

Two worlds hold the same tenant T; one also holds another tenant O (its users, roles,
bucket, objects and uploads). T's account admin sends the same generated sequence of
S3, admin and STS requests to both and must get identical answers apart from request
ids, timestamps and generated ids (account, user and key ids, numbered in order of first
appearance). Runs the gateway in process (tests/support/inprocess.py).

Excluded by construction, a residual channel (docs/security.md): bucket names are one
global namespace, so T never names O's bucket.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.inprocess import InProcess, Reply

EXAMPLES = int(os.environ.get("VALLUM_NI_EXAMPLES", "200")) // 3
NAMES = ["u1", "ou", "admin", "orole", "dev"]
ALLOW_S3 = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


def trust(account: str) -> dict:
    """A role trusted by its own account only (another tenant may not assume it)."""
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"AWS": f"arn:aws:iam::{account}:root"}}]}
_GENERATED = re.compile(rb"\b\d{12}\b|\b(?:AIDA|AROA|AKIA|ASIA|ANPA|AGPA)[A-Z0-9]{12,20}\b|"
                        rb"\b\d{10}\.\d+\b")
_VOLATILE = re.compile(rb"<(RequestId|HostId|CreationDate|LastModified)>[^<]*</")
IGNORED_HEADERS = {"x-amz-request-id", "x-amz-id-2", "last-modified", "date", "content-length"}


@dataclass
class World:
    gw: InProcess          # as tenant T's account admin
    other: str = "000000000000"     # O's account id (world with O), guessed by T in both
    ids: dict[bytes, bytes] = field(default_factory=dict)

    def normalise(self, reply: Reply) -> tuple:
        body = _VOLATILE.sub(lambda m: b"<" + m.group(1) + b">T</", reply.body)
        body = _GENERATED.sub(lambda m: self.ids.setdefault(m.group(0), b"G%d" % len(self.ids)), body)
        headers = sorted((k, v) for k, v in reply.headers if k not in IGNORED_HEADERS)
        return reply.status, headers, body


def _ok(reply: tuple[int, dict]) -> dict:
    assert reply[0] == 200, reply
    return reply[1]


def new_world(loop, *, other: bool) -> World:
    root = InProcess.open(loop)
    key = _ok(root.admin("CreateAccount", name="tenant-t"))["admin_key"]
    t = root.as_user(key["access_key_id"], key["secret_access_key"])
    assert t.call("PUT", "/t-bucket").status == 200
    assert t.call("PUT", "/t-bucket/shared-name", body=b"t").status == 200
    if other:
        made = _ok(root.admin("CreateAccount", name="tenant-o"))
        key, other_id = made["admin_key"], made["account"]["id"]
        o = root.as_user(key["access_key_id"], key["secret_access_key"])
        for user in ("ou", "u1", "dev"):
            _ok(o.admin("CreateUser", user=user))
            _ok(o.admin("PutInlinePolicy", kind="user", target=user, name="p", document=ALLOW_S3))
            _ok(o.admin("CreateAccessKey", user=user))
        _ok(o.admin("CreateRole", role="orole", trust_policy=trust(other_id)))
        assert o.call("PUT", "/o-bucket").status == 200
        for k in ("shared-name", "a/b", "zz"):
            assert o.call("PUT", f"/o-bucket/{k}", body=b"o").status == 200
        assert o.call("POST", "/o-bucket/up", {"uploads": ""}).status == 200
        return World(t, other_id)
    return World(t)


names = st.sampled_from(NAMES)


@st.composite
def requests(draw):
    kind = draw(st.sampled_from(["ListBuckets", "ListObjects", "Put", "Get", "ListUsers", "ListRoles",
                                 "ListGroups", "ListPolicies", "GetAccount", "ListAccessKeys",
                                 "GetUser", "GetRole", "CreateUser", "ListAccounts",
                                 "GetCallerIdentity", "AssumeRole"]))
    return kind, draw(names), draw(st.sampled_from(["shared-name", "a/b", "new"]))


def send(world: World, request: tuple, other: str) -> Reply:
    kind, name, key = request
    gw = world.gw
    if kind == "ListBuckets":
        return gw.call("GET", "/")
    if kind == "ListObjects":
        return gw.call("GET", "/t-bucket", {"list-type": "2"})
    if kind == "Put":
        return gw.call("PUT", f"/t-bucket/{key}", body=b"x")
    if kind == "Get":
        return gw.call("GET", f"/t-bucket/{key}")
    if kind in ("GetCallerIdentity", "AssumeRole"):
        form = f"Action={kind}&Version=2011-06-15"
        if kind == "AssumeRole":      # another account's role, by the id T learnt elsewhere
            form += f"&RoleArn=arn%3Aaws%3Aiam%3A%3A{other}%3Arole%2F{name}&RoleSessionName=probe"
        return gw.call("POST", "/", headers={"content-type": "application/x-www-form-urlencoded"},
                       body=form.encode(), service="sts")
    args = {"GetUser": {"user": name}, "GetRole": {"role": name}, "CreateUser": {"user": name},
            "ListAccessKeys": {"user": name}}.get(kind, {})
    body = json.dumps(args).encode()
    return gw.call("POST", f"/-/admin/v1/{kind}", headers={"content-type": "application/json"}, body=body)


@pytest.fixture(scope="module")
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(sequence=st.lists(requests(), min_size=1, max_size=15))
def test_tenant_cannot_tell_whether_another_tenant_exists(loop, sequence):
    with_other, alone = new_world(loop, other=True), new_world(loop, other=False)
    try:
        for i, request in enumerate(sequence):
            a = with_other.normalise(send(with_other, request, with_other.other))
            b = alone.normalise(send(alone, request, with_other.other))
            assert a == b, f"request {i} {request} differs:\n with O: {a}\n without: {b}"
    finally:
        with_other.gw.close()
        alone.gw.close()
