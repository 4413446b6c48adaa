"""Every compute API answer says who asked for what on which resource and what decided it.

The audit record of a compute call used to carry no principal, action or target; a
failed authentication lost the key id that was tried, and a job hidden by MAC was
recorded as allowed. The real gateway, on real services in a temporary data directory,
is driven with signed requests and each answer's record is read from the audit log.
"""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest

from vallum.client import Client
from vallum.compute import api, jobstore
from vallum.compute.service import ComputeService
from vallum.compute.spec import JobSpec
from vallum.security.audit import log as audit
from vallum.server.app import Gateway
from vallum.server.config import from_env_and_flags
from vallum.server.lifespan import close_services, open_services

ACCOUNT_ARN = "arn:aws:iam::000000000000:root"


def _scope(client: Client, method: str, path: str, body: bytes, level: str | None = None):
    client.session_level = level
    headers = client.sign(method, path, {}, {}, hashlib.sha256(body).hexdigest())
    return {"type": "http", "method": method, "scheme": "http", "query_string": b"",
            "client": ("127.0.0.1", 5000), "path": path, "raw_path": path.encode(),
            "headers": [(k.encode(), v.encode()) for k, v in (*headers.items(),
                                                              ("content-length", str(len(body))))]}


async def _call(services, client, method, path, doc=None, level=None):
    body = json.dumps(doc).encode() if doc is not None else b""
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    await Gateway(services)(_scope(client, method, path, body, level), receive, send)
    headers = dict(sent[0]["headers"])
    request_id = headers[b"x-amz-request-id"].decode()
    lines = audit.log_path(services.config.data_dir).read_bytes().rstrip(b"\0").splitlines()
    (record,) = [r for r in map(json.loads, lines) if r["request_id"] == request_id]
    return sent[0]["status"], record


async def _scenario(tmp_path) -> list:
    services = await open_services(from_env_and_flags(str(tmp_path / "data"), "127.0.0.1:1",
                                                      None, None, None))
    services.compute = ComputeService(services)
    await asyncio.to_thread(services.compute.db.open)
    try:
        root = Client("http://127.0.0.1:1", services.root.access_key, services.root.secret_key)
        spec = JobSpec(runtime="command", command=["true"], output="s3://b/o/",
                       level="TOP SECRET")
        ids = await services.compute.db.write(lambda c: jobstore.insert_jobs(
            c, services.owner_id, ACCOUNT_ARN, [jobstore.NewJob("j", spec, "job", [("", None)])],
            1.0, {}))
        job = ids["j"]
        forged = Client("http://127.0.0.1:1", "AKIATRIEDBUTWRONG000", "not-the-secret")
        return [
            await _call(services, root, "GET", "/-/jobs/v1/jobs"),
            await _call(services, root, "GET", f"/-/jobs/v1/jobs/{job}"),
            await _call(services, root, "GET", f"/-/jobs/v1/jobs/{job}", level="UNCLASSIFIED"),
            await _call(services, root, "GET", "/-/jobs/v1/jobs/j-nonexistent"),
            await _call(services, forged, "POST", "/-/jobs/v1/jobs", {"runtime": "command"}),
        ]
    finally:
        services.compute.db.close()
        await close_services(services)


def test_compute_calls_carry_principal_action_target_decision_and_rule(tmp_path, monkeypatch):
    monkeypatch.delenv("VALLUM_ROOT_ACCESS_KEY", raising=False)
    monkeypatch.delenv("VALLUM_ROOT_SECRET_KEY", raising=False)
    listed, got, hidden, missing, forged = asyncio.run(_scenario(tmp_path))
    status, audit = listed
    assert status == 200 and audit["action"] == "vallum:ListJobs"
    assert audit["principal"] and audit["account"] and audit["decision"] == "allow"
    assert audit["target"].endswith(":job/*") and audit["rule"]
    status, audit = got
    assert status == 200 and audit["action"] == "vallum:GetJob"
    assert audit["target"].startswith("arn:vallum:compute::") and "/j-" in audit["target"]
    # Hidden by MAC: answered as missing, recorded as a MAC denial.
    status, audit = hidden
    assert (status, audit["decision"], audit["rule"]) == (404, "deny", "mac: no read up")
    status, audit = missing          # really missing: authorized, not found
    assert (status, audit["decision"]) == (404, "allow")
    status, audit = forged           # the key id that was tried, and why it failed
    assert status == 403 and audit["principal"] == "AKIATRIEDBUTWRONG000"
    assert audit["action"] == "vallum:SubmitJob" and audit["decision"] == "deny"
    assert audit["rule"].startswith("authentication: ")


@pytest.mark.parametrize("method, path, action", [
    ("POST", "/-/jobs/v1/jobs/j-1/cancel", ("CancelJob", "job", "j-1")),
    ("GET", "/-/jobs/v1/jobs/j-1/logs", ("GetJobLogs", "job", "j-1")),
    ("POST", "/-/functions/v1/functions/f/invoke", ("InvokeFunction", "function", "f")),
    ("PUT", "/-/jobs/v1/quotas/123", ("PutQuota", "quota", "123")),
    ("DELETE", "/-/jobs/v1/jobs/j-1", None),
])
def test_one_operation_table(method, path, action):
    assert api.operation(method, path.strip("/").split("/")) == action
