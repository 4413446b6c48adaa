"""audit_http.record: attribution and the decision order, on a real audit log."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

from vallum.compute import api as compute_api
from vallum.http import Response
from vallum.security.audit import log as audit
from vallum.security.audit import request_record as audit_http
from vallum.server import admin
from vallum.server.config import Config


def recorded(tmp_path, scope, response, operation="unknown", error="", attribution=None):
    async def main():
        log = audit.AuditLog(tmp_path, checkpoint_seconds=0)
        await log.open()
        services = SimpleNamespace(audit=log, config=Config())   # what record() reads of Services
        await audit_http.record(services, scope, None, "RID", operation, response, error,
                                attribution=attribution)
        await log.close()

    asyncio.run(main())
    return json.loads(audit.log_path(tmp_path).read_bytes().rstrip(b"\0").splitlines()[0])


def scope(path="/b/k", method="GET", query=b"", headers=()):
    return {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": query,
            "headers": [(k.encode(), v.encode()) for k, v in (("host", "127.0.0.1:9000"), *headers)],
            "client": ("127.0.0.1", 5000), "scheme": "http"}


def test_sigv2_header_claim_is_recorded_when_authentication_failed(tmp_path):
    rec = recorded(tmp_path, scope(headers=(("authorization", "AWS AKIASIGV2CLAIM:bm90YXNpZw=="),)),
                   Response(403), error="SignatureDoesNotMatch")
    assert (rec["principal"], rec["principal_claimed"], rec["decision"], rec["rule"]) == \
        ("AKIASIGV2CLAIM", True, "deny", "authentication: SignatureDoesNotMatch")
    assert rec["action"] == "s3:GetObject" and rec["target"] == "arn:aws:s3:::b/k"


def test_sigv2_query_claim(tmp_path):
    rec = recorded(tmp_path, scope(method="DELETE", query=b"AWSAccessKeyId=AKIAQUERYCLAIM&Signature=x&Expires=1"),
                   Response(403), error="AccessDenied")
    assert rec["principal"] == "AKIAQUERYCLAIM" and rec["action"] == "s3:DeleteObject"


def test_handler_attribution_wins_over_the_status_and_the_request_names_the_principal(tmp_path):
    from vallum.iam.principal import Principal
    from vallum.s3.router import Endpoint

    req = request_for(api="admin", endpoint=Endpoint("admin", None, None), principal="AKIAADMIN",
                      caller=Principal("AKIAADMIN", "123456789012"),
                      audit={"action": "iam:CreateAccessKey", "target": "arn:aws:iam::123456789012:user/u",
                             "decision": "deny", "rule": "mac: clearance above the caller's"})
    rec = recorded_request(tmp_path, req, Response(200))
    assert (rec["principal"], rec["principal_claimed"], rec["account"], rec["action"], rec["target"],
            rec["decision"], rec["rule"]) == ("AKIAADMIN", False, "123456789012", "iam:CreateAccessKey",
                                              "arn:aws:iam::123456789012:user/u", "deny",
                                              "mac: clearance above the caller's")


def test_attribution_of_a_request_refused_before_authentication(tmp_path):
    rec = recorded(tmp_path, scope("/-/jobs/v1/jobs", "POST"), Response(403), "compute", "SignatureDoesNotMatch",
                   attribution=compute_api.API.attribution("POST", "/-/jobs/v1/jobs", ""))
    assert (rec["action"], rec["decision"], rec["rule"]) == \
        ("vallum:SubmitJob", "deny", "authentication: SignatureDoesNotMatch")


def test_unsigned_admin_call_with_the_apis_attribution(tmp_path):
    rec = recorded(tmp_path, scope("/-/admin/v1/ListUsers", "POST"), Response(403), "admin", "AccessDenied",
                   attribution=admin.ADMIN.attribution("POST", "/-/admin/v1/ListUsers", ""))
    assert rec["principal"] is None and rec["action"] == "vallum:ListUsers" and rec["decision"] == "deny"
    assert rec["rule"] == "authentication: AccessDenied"


def request_for(path="/b/k", **fields):
    from vallum.http import Headers, Request
    from vallum.s3.router import route

    caller = SimpleNamespace(account="210987654321")
    req = Request(method="PUT", endpoint=route("PUT", "127.0.0.1:9000", path, "", domain=None), headers=Headers([]),
                  body=None, request_id="RID", auth=None, principal="AKIAUSER", source_ip="127.0.0.1",
                  secure=False, services=SimpleNamespace(caller=caller, tenant="210987654321"))
    for k, v in fields.items():
        setattr(req, k, v)
    return req


def recorded_request(tmp_path, request, response, error=""):
    async def main():
        log = audit.AuditLog(tmp_path, checkpoint_seconds=0)
        await log.open()
        await audit_http.record(SimpleNamespace(audit=log, config=Config()), scope(method="PUT"), request,
                                "RID", request.endpoint.name, response, error)
        await log.close()

    asyncio.run(main())
    return json.loads(audit.log_path(tmp_path).read_bytes().rstrip(b"\0").splitlines()[0])


def test_refusal_after_iam_allowed_names_itself(tmp_path):
    """A spill refusal is not decided by the IAM statement that let the request in."""
    rec = recorded_request(tmp_path, request_for(decision_reason="allowed (identity p s1)"), Response(403),
                           "SpillDetected")
    assert (rec["decision"], rec["rule"], rec["authz_rule"]) == \
        ("deny", "refused: SpillDetected", "allowed (identity p s1)")
    assert (rec["principal"], rec["account"], rec["action"], rec["target"]) == \
        ("AKIAUSER", "210987654321", "s3:PutObject", "arn:aws:s3:::b/k")


def test_hidden_answers_with_a_mac_rule_are_deny(tmp_path):
    for status in (404, 503, 204):
        d = tmp_path / str(status)
        rec = recorded_request(d, request_for(decision_reason="mac: no read up: label SECRET above ..."),
                               Response(status))
        assert rec["decision"] == "deny" and rec["rule"].startswith("mac: "), rec


def test_gate_denial_keeps_its_rule(tmp_path):
    rec = recorded_request(tmp_path, request_for(decision="deny", decision_reason="explicitly denied by p s2"),
                           Response(403), "AccessDenied")
    assert (rec["decision"], rec["rule"], rec["authz_rule"]) == ("deny", "explicitly denied by p s2", None)
