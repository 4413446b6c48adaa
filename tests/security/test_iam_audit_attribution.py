"""Every admin and STS answer says who did what to which resource, and how it was decided,
refusals included (``Response.audit``; the audit helper merges it into the record).

In process, on the real stores of a fresh data directory: requests are SigV4-signed as a
client signs them and handed to the admin / STS handlers the gateway calls.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from urllib.parse import urlencode

import pytest

from vallum.s3.sigv4 import sign_headers
from vallum.server import admin
from vallum.server.config import Config
from vallum.server.lifecycle import close_services, open_services

HOST = "http://127.0.0.1:9000"


def _scope(path: str, body: bytes, key: str, secret: str, service: str, ctype: str) -> dict:
    headers = sign_headers("POST", HOST + path, {"content-type": ctype},
                           hashlib.sha256(body).hexdigest(), key, secret, "us-east-1",
                           time.time(), service=service)
    headers["host"] = "127.0.0.1:9000"
    return {"type": "http", "method": "POST", "path": path, "query_string": b"",
            "scheme": "http", "client": ("127.0.0.1", 5555),
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}


def _receive(body: bytes):
    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}
    return receive


class Gateway:
    def __init__(self, services) -> None:
        self.services = services

    async def admin(self, creds: tuple[str, str], action: str, **args):
        body = json.dumps(args).encode()
        path = f"/-/admin/v1/{action}"
        return await admin.handle(self.services, _scope(path, body, *creds, "s3", "application/json"),
                                  _receive(body), path)

    async def sts(self, creds: tuple[str, str], **params):
        body = urlencode({"Version": "2011-06-15", **params}).encode()
        scope = _scope("/", body, *creds, "sts", "application/x-www-form-urlencoded")
        return await admin.handle_sts(self.services, scope, _receive(body), "req-1")


@pytest.fixture
def run(tmp_path):
    async def go(test):
        services = await open_services(Config(data_dir=tmp_path / "data"))
        try:
            await test(Gateway(services), (services.root.access_key, services.root.secret_key))
        finally:
            await close_services(services)
    return lambda test: asyncio.run(go(test))


def test_admin_calls_are_attributed_allowed_and_refused(run):
    async def test(gw, root):
        out = await gw.admin(root, "CreateAccount", name="attrib")
        assert out.audit["decision"] == "allow" and out.audit["principal"] == root[0]
        assert out.audit["action"] == "vallum:CreateAccount"
        doc = json.loads(out.body)
        acct, k = doc["account"]["id"], doc["admin_key"]
        adm = (k["access_key_id"], k["secret_access_key"])
        out = await gw.admin(adm, "CreateUser", user="bob")
        assert out.status == 200
        assert out.audit == {"principal": adm[0], "account": acct, "action": "iam:CreateUser",
                             "target": f"arn:aws:iam::{acct}:user/bob", "decision": "allow",
                             "rule": out.audit["rule"]} and out.audit["rule"]
        out = await gw.admin(adm, "CreateAccessKey", user="bob")
        bob = (json.loads(out.body)["access_key_id"], json.loads(out.body)["secret_access_key"])
        assert out.audit["action"] == "iam:CreateAccessKey"
        out = await gw.admin(bob, "DeleteUser", user="admin")             # no policy: refused
        assert out.status == 403
        assert out.audit["decision"] == "deny" and out.audit["principal"] == bob[0]
        assert out.audit["action"] == "iam:DeleteUser"
        assert out.audit["target"] == f"arn:aws:iam::{acct}:user/admin"
        assert out.audit["rule"]
        out = await gw.admin(adm, "SetClearance", user="bob", clearance="SECRET")   # root only
        assert out.status == 403 and out.audit["decision"] == "deny"
        assert out.audit["action"] == "vallum:SetClearance" and out.audit["rule"] == "root only"
        await gw.admin(root, "SetClearance", account=acct, user="bob", clearance="SECRET")
        out = await gw.admin(adm, "CreateAccessKey", user="bob")          # clearance refusal
        assert out.status == 403 and out.audit["decision"] == "deny"
        assert out.audit["rule"].startswith("clearance:")
    run(test)


def test_sts_calls_are_attributed_allowed_and_refused(run):
    async def test(gw, root):
        doc = json.loads((await gw.admin(root, "CreateAccount", name="attrib-sts")).body)
        acct, k = doc["account"]["id"], doc["admin_key"]
        adm = (k["access_key_id"], k["secret_access_key"])
        out = await gw.sts(adm, Action="GetCallerIdentity")
        assert out.status == 200 and out.audit["action"] == "sts:GetCallerIdentity"
        assert out.audit["principal"] == adm[0] and out.audit["decision"] == "allow"
        arn = f"arn:aws:iam::{acct}:role/absent"
        out = await gw.sts(adm, Action="AssumeRole", RoleArn=arn, RoleSessionName="s1")
        assert out.status == 403
        assert out.audit == {"principal": adm[0], "account": acct, "action": "sts:AssumeRole",
                             "target": arn, "decision": "deny", "rule": "sts: no such role"}
    run(test)
