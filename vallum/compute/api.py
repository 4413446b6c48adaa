"""The compute JSON API under /-/jobs/ and /-/functions/ (SigV4-signed, service "s3").

    POST   /-/jobs/v1/jobs                      submit one job, or {"jobs": {ref: spec}}
    GET    /-/jobs/v1/jobs[?state=&limit=]      list
    GET    /-/jobs/v1/jobs/{id}                 status
    GET    /-/jobs/v1/jobs/{id}/tasks           per-task status
    GET    /-/jobs/v1/jobs/{id}/logs?task=&offset=   log text from offset (live while running)
    POST   /-/jobs/v1/jobs/{id}/cancel
    POST   /-/jobs/v1/triggers, GET /-/jobs/v1/triggers, DELETE /-/jobs/v1/triggers/{id}
    GET    /-/jobs/v1/quotas/{account}          platform limits, account quota, effective
    PUT    /-/jobs/v1/quotas/{account}          {knob: value} (the platform root only)
    PUT    /-/functions/v1/functions/{name}     create or update
    GET    /-/functions/v1/functions[/{name}], DELETE /-/functions/v1/functions/{name}
    POST   /-/functions/v1/functions/{name}/invoke[?async=1]   {"payload": ...}
    GET    /-/jobs/openapi.json (also /-/functions/openapi.json), unsigned

Errors are {"error": {"code", "message"}} with a 4xx/5xx status.

Every call needs its IAM permission, ``vallum:<Action>`` on
``arn:vallum:compute::ACCOUNT:{job|function|trigger}/NAME`` (SubmitJob, ListJobs,
GetJob, GetJobLogs, CancelJob, CreateFunction, GetFunction, ListFunctions,
DeleteFunction, InvokeFunction, CreateTrigger, ListTriggers, DeleteTrigger, GetQuota,
PutQuota): the
root and account admins hold them through their policies; other users need a grant,
and a task's scoped credentials hold none (a job cannot submit jobs).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from vallum import authz
from vallum.compute.functions import FunctionError
from vallum.compute.levels import SESSION_HEADER
from vallum.compute.openapi import DOCUMENT
from vallum.compute.spec import SpecError
from vallum.iam import gate
from vallum.s3 import errors
from vallum.server.http import Response

log = logging.getLogger("vallum.compute.api")
MAX_BODY = 4 * 1024 * 1024


def _json(status: int, doc: Any) -> Response:
    return Response(status, {"content-type": "application/json"},
                    json.dumps(doc, default=str).encode())


def _error(status: int, code: str, message: str, **extra: Any) -> Response:
    return _json(status, {"error": {"code": code, "message": message, **extra}})


async def _body(receive) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise SpecError("request body too large (4 MiB at most)", "EntityTooLarge", 413)
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def _principal(services: Any, scope: dict[str, Any], body: bytes, path: str) -> Any:
    headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
    digest = hashlib.sha256(body).hexdigest()
    sent = [v for k, v in headers if k == "x-amz-content-sha256"]
    if sent and sent[0] != digest:
        raise errors.XAmzContentSHA256Mismatch()
    query = scope.get("query_string", b"").decode("latin-1")
    client = scope.get("client") or ("", 0)
    auth, principal = await gate.authenticate(services, scope["method"], path, query, headers,
                                              client[0])
    if auth is None or principal.anonymous:
        raise errors.AccessDenied("The compute API requires a SigV4-signed request.")
    return principal


async def handle(services: Any, scope: dict[str, Any], receive, raw_path: str) -> Response:
    path = raw_path.split("?", 1)[0]
    method = scope["method"]
    try:
        if path in ("/-/jobs/openapi.json", "/-/functions/openapi.json") and method == "GET":
            return _json(200, DOCUMENT)
        compute = getattr(services, "compute", None)
        if compute is None:
            return _error(503, "ComputeUnavailable", "compute is not running on this gateway")
        body = await _body(receive)
        principal = await _principal(services, scope, body, path)
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        doc = json.loads(body) if body.strip() else None
        call = Call(compute, principal, method, path.strip("/").split("/"), query, doc,
                    _header(scope, SESSION_HEADER), (scope.get("client") or ("", 0))[0])
        return await _route(call)
    except SpecError as exc:
        return _error(exc.status, exc.code, exc.message)
    except FunctionError as exc:
        return _error(422, "FunctionError", str(exc), detail=exc.error)
    except errors.S3Error as exc:
        return _error(exc.status, exc.code, exc.message)
    except json.JSONDecodeError as exc:
        return _error(400, "MalformedJSON", f"the body is not JSON: {exc}")
    except ValueError as exc:
        return _error(400, "InvalidRequest", str(exc))


def _header(scope: dict[str, Any], name: str) -> str | None:
    raw = name.encode()
    for k, v in scope["headers"]:
        if k.lower() == raw:
            return v.decode("latin-1")
    return None


@dataclass
class Call:
    """One compute API request, authenticated."""

    compute: Any
    who: Any
    method: str
    parts: list[str]
    query: dict[str, str]
    doc: Any
    level: str | None          # x-vallum-session-level of the request
    source_ip: str

    def allow(self, action: str, kind: str, name: str = "*") -> None:
        """AccessDenied unless the caller may do ``vallum:<action>`` (IAM decides: the root
        and account admins are allowed by their policies, users need a grant)."""
        arn = resource_arn(self.who.account, kind, name)
        ctx = authz.Context(keys={"aws:sourceip": self.source_ip})
        decision = authz.decide(self.who, "vallum:" + action, arn, ctx)
        if not decision.allowed:
            log.info("compute: %s denied vallum:%s on %s (%s)", self.who.arn, action, arn,
                     decision.reason)
            raise SpecError(f"not authorized to perform vallum:{action} on {arn}",
                            "AccessDenied", 403)


def resource_arn(account: str, kind: str, name: str = "*") -> str:
    """``arn:vallum:compute::ACCOUNT:job/ID`` (also function/NAME, trigger/ID)."""
    return f"arn:vallum:compute::{account}:{kind}/{name}"


async def _route(c: Call) -> Response:
    # parts: ["-", "jobs"|"functions", "v1", ...]
    compute, who, method, parts, query, doc = c.compute, c.who, c.method, c.parts, c.query, c.doc
    if len(parts) < 4 or parts[2] != "v1":
        return _error(404, "NotFound", "see /-/jobs/openapi.json")
    area, rest = parts[1], parts[3:]
    if area == "jobs" and rest[0] == "jobs":
        if len(rest) == 1 and method == "POST":
            c.allow("SubmitJob", "job")
            return _json(201, await compute.submit(who, doc, c.level))
        if len(rest) == 1 and method == "GET":
            c.allow("ListJobs", "job")
            return _json(200, {"jobs": compute.list_jobs(who, query.get("state"),
                                                         int(query.get("limit", "100")),
                                                         c.level)})
        if len(rest) == 2 and method == "GET":
            c.allow("GetJob", "job", rest[1])
            return _json(200, compute.job(who, rest[1], c.level))
        if len(rest) == 3 and rest[2] == "tasks" and method == "GET":
            c.allow("GetJob", "job", rest[1])
            return _json(200, {"tasks": compute.tasks(who, rest[1], c.level)})
        if len(rest) == 3 and rest[2] == "logs" and method == "GET":
            c.allow("GetJobLogs", "job", rest[1])
            return _json(200, await compute.logs(who, rest[1], int(query.get("task", "0")),
                                                 max(0, int(query.get("offset", "0"))), c.level))
        if len(rest) == 3 and rest[2] == "cancel" and method == "POST":
            c.allow("CancelJob", "job", rest[1])
            return _json(200, await compute.cancel(who, rest[1], c.level))
    if area == "jobs" and rest[0] == "quotas" and len(rest) == 2:
        if method == "GET":
            c.allow("GetQuota", "quota", rest[1])
            return _json(200, compute.quota_doc(who, rest[1]))
        if method == "PUT":
            c.allow("PutQuota", "quota", rest[1])
            return _json(200, await compute.put_quota(who, rest[1], doc))
    if area == "jobs" and rest[0] == "triggers":
        if len(rest) == 1 and method == "POST":
            c.allow("CreateTrigger", "trigger")
            return _json(201, await compute.add_trigger(who, doc, c.level))
        if len(rest) == 1 and method == "GET":
            c.allow("ListTriggers", "trigger")
            return _json(200, {"triggers": compute.list_triggers(who, c.level)})
        if len(rest) == 2 and method == "DELETE":
            c.allow("DeleteTrigger", "trigger", rest[1])
            await compute.delete_trigger(who, rest[1], c.level)
            return _json(200, {"deleted": rest[1]})
    if area == "functions" and rest[0] == "functions":
        if len(rest) == 1 and method == "GET":
            c.allow("ListFunctions", "function")
            return _json(200, {"functions": compute.list_functions(who, c.level)})
        if len(rest) == 2 and method == "PUT":
            c.allow("CreateFunction", "function", rest[1])
            return _json(200, await compute.put_function(who, rest[1], doc, c.level))
        if len(rest) == 2 and method == "GET":
            c.allow("GetFunction", "function", rest[1])
            return _json(200, compute.function(who, rest[1], c.level))
        if len(rest) == 2 and method == "DELETE":
            c.allow("DeleteFunction", "function", rest[1])
            gone = await compute.delete_function(who, rest[1], c.level)
            return _json(200, {"deleted": rest[1], "triggers_deleted": gone})
        if len(rest) == 3 and rest[2] == "invoke" and method == "POST":
            c.allow("InvokeFunction", "function", rest[1])
            payload = (doc or {}).get("payload") if isinstance(doc, dict) else None
            if query.get("async") in ("1", "true"):
                key = (doc or {}).get("idempotency_key") if isinstance(doc, dict) else None
                return _json(202, await compute.invoke_async(who, rest[1], payload, key, c.level))
            return _json(200, {"result": await compute.invoke(who, rest[1], payload, c.level)})
    return _error(404, "NotFound", f"no {method} {'/'.join(parts)}; see /-/jobs/openapi.json")
