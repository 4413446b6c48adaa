"""Every admin and STS answer says who did what to which resource, and how it was decided,
refusals included: the handlers' attribution (``Request.audit``) reaches the audit record.

In process, on the real stores of a fresh data directory: requests are SigV4-signed as a
client signs them and sent through the gateway's front door; records are read back from
the audit log.
"""

from __future__ import annotations

import pytest

from tests.support.frontdoor import FrontDoor

ATTRIBUTION = ("principal", "account", "action", "target", "decision", "rule")


@pytest.fixture
def door(tmp_path):
    d = FrontDoor(tmp_path / "data")
    yield d
    d.close()


def attribution(door: FrontDoor, reply) -> dict:
    rec = door.audit(reply)
    return {k: rec[k] for k in ATTRIBUTION}


def test_admin_calls_are_attributed_allowed_and_refused(door):
    root = door.root
    out = door.admin(root, "CreateAccount", name="attrib")
    audit = attribution(door, out)
    assert audit["decision"] == "allow" and audit["principal"] == root[0]
    assert audit["action"] == "vallum:CreateAccount"
    doc = out.json()
    acct, k = doc["account"]["id"], doc["admin_key"]
    adm = (k["access_key_id"], k["secret_access_key"])
    out = door.admin(adm, "CreateUser", user="bob")
    audit = attribution(door, out)
    assert out.status == 200
    assert audit == {"principal": adm[0], "account": acct, "action": "iam:CreateUser",
                     "target": f"arn:aws:iam::{acct}:user/bob", "decision": "allow",
                     "rule": audit["rule"]} and audit["rule"]
    out = door.admin(adm, "CreateAccessKey", user="bob")
    bob = (out.json()["access_key_id"], out.json()["secret_access_key"])
    assert attribution(door, out)["action"] == "iam:CreateAccessKey"
    out = door.admin(bob, "DeleteUser", user="admin")             # no policy: refused
    audit = attribution(door, out)
    assert out.status == 403
    assert audit["decision"] == "deny" and audit["principal"] == bob[0]
    assert audit["action"] == "iam:DeleteUser"
    assert audit["target"] == f"arn:aws:iam::{acct}:user/admin"
    assert audit["rule"]
    out = door.admin(adm, "SetClearance", user="bob", clearance="SECRET")   # root only
    audit = attribution(door, out)
    assert out.status == 403 and audit["decision"] == "deny"
    assert audit["action"] == "vallum:SetClearance" and audit["rule"] == "root only"
    door.admin(root, "SetClearance", account=acct, user="bob", clearance="SECRET")
    out = door.admin(adm, "CreateAccessKey", user="bob")          # clearance refusal
    audit = attribution(door, out)
    assert out.status == 403 and audit["decision"] == "deny"
    assert audit["rule"].startswith("clearance:")


def test_sts_calls_are_attributed_allowed_and_refused(door):
    acct, adm = door.account("attrib-sts")
    out = door.sts(adm, Action="GetCallerIdentity")
    audit = attribution(door, out)
    assert out.status == 200 and audit["action"] == "sts:GetCallerIdentity"
    assert audit["principal"] == adm[0] and audit["decision"] == "allow"
    arn = f"arn:aws:iam::{acct}:role/absent"
    out = door.sts(adm, Action="AssumeRole", RoleArn=arn, RoleSessionName="s1")
    assert out.status == 403
    assert attribution(door, out) == {"principal": adm[0], "account": acct,
                                      "action": "sts:AssumeRole", "target": arn,
                                      "decision": "deny", "rule": "sts: no such role"}
