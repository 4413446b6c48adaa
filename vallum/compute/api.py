"""The compute JSON API under /-/jobs/ and /-/functions/ (SigV4-signed, service "s3").

    POST   /-/jobs/v1/jobs                      submit one job, or {"jobs": {ref: spec}}
    GET    /-/jobs/v1/jobs[?state=&limit=]      list
    GET    /-/jobs/v1/jobs/{id}                 status
    GET    /-/jobs/v1/jobs/{id}/tasks           per-task status
    GET    /-/jobs/v1/jobs/{id}/logs?task=&attempt=&offset=   one attempt's log from offset
                                                (default the latest; live while running)
    POST   /-/jobs/v1/jobs/{id}/cancel
    POST   /-/jobs/v1/triggers, GET /-/jobs/v1/triggers, DELETE /-/jobs/v1/triggers/{id}
    GET    /-/jobs/v1/quotas/{account}          platform limits, account quota, effective
    PUT    /-/jobs/v1/quotas/{account}          {knob: value} (the platform root only)
    PUT    /-/functions/v1/functions/{name}     create or update
    GET    /-/functions/v1/functions[/{name}], DELETE /-/functions/v1/functions/{name}
    POST   /-/functions/v1/functions/{name}/invoke[?async=1|?log=tail]   {"payload": ...}
    GET    /-/jobs/openapi.json (also /-/functions/openapi.json), unsigned

Errors are {"error": {"code", "message"}} with a 4xx/5xx status.

Every call needs its IAM permission, ``vallum:<Action>`` on
``arn:vallum:compute::ACCOUNT:{job|function|trigger}/NAME`` (SubmitJob, ListJobs,
GetJob, GetJobLogs, CancelJob, CreateFunction, GetFunction, ListFunctions,
DeleteFunction, InvokeFunction, CreateTrigger, ListTriggers, DeleteTrigger, GetQuota,
PutQuota, ListRuntimes): the
root and account admins hold them through their policies; other users need a grant,
and a task's scoped credentials hold none (a job cannot submit jobs).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from vallum import authz
from vallum.compute.functions import FunctionError
from vallum.compute.levels import SESSION_HEADER
from vallum.compute.openapi import DOCUMENT
from vallum.compute.spec import Hidden, SpecError
from vallum.http import Headers, Request, Response
from vallum.s3 import errors
from vallum.s3.router import Endpoint

log = logging.getLogger("vallum.compute.api")
MAX_BODY = 4 * 1024 * 1024


def _json(status: int, doc: Any) -> Response:
    return Response(status, {"content-type": "application/json"},
                    json.dumps(doc, default=str).encode())


def _error(status: int, code: str, message: str, **extra: Any) -> Response:
    return _json(status, {"error": {"code": code, "message": message, **extra}})


_OPENAPI = ("/-/jobs/openapi.json", "/-/functions/openapi.json")


class ComputeApi:
    """The compute JSON API behind the front door (server/app.py)."""

    name = "compute"
    body_limit: int | None = MAX_BODY
    service = "s3"
    signed_only = True
    tenant_view = False

    def match(self, method: str, path: str, headers: Headers) -> bool:
        return path.startswith(("/-/jobs/", "/-/functions/"))

    def public(self, method: str, path: str) -> bool:
        return method == "GET" and path in _OPENAPI

    def endpoint(self, services: Any, method: str, path: str, query: str,
                 headers: Headers) -> Endpoint:
        return Endpoint(self.name, None, None, dict(parse_qsl(query)))

    def attribution(self, method: str, path: str, query: str) -> dict[str, Any]:
        op = operation(method, path.strip("/").split("/"))
        return {"action": f"vallum:{op[0]}" if op else None}

    async def handle(self, request: Request) -> Response:
        return await handle(request)

    def render_error(self, err: errors.S3Error, request_id: str, path: str) -> Response:
        return _error(err.status, err.code, err.message)


async def handle(request: Request) -> Response:
    """Answer one compute API request; ``request.audit`` says what was asked on which
    resource and what decided it (the audit record takes it from there)."""
    path, method = request.path, request.method
    audit = request.audit
    if method == "GET" and path in _OPENAPI:
        audit.update(action="vallum:GetOpenAPI", decision="allow", rule="public document")
        return _json(200, DOCUMENT)
    op = operation(method, path.strip("/").split("/"))
    audit["action"] = f"vallum:{op[0]}" if op else None
    response = await _handle(request, op, audit)
    if audit.get("decision") is None:
        audit["decision"] = "allow" if response.status < 400 else "deny"
    return response


async def _handle(request: Request, op: tuple[str, str, str] | None,
                  audit: dict[str, Any]) -> Response:
    method, path = request.method, request.path
    try:
        compute = request.services.compute
        if compute is None:
            return _error(503, "ComputeUnavailable", "compute is not running on this gateway")
        if op is None:
            return _error(404, "NotFound", f"no {method} {path}; see /-/jobs/openapi.json")
        body = request.payload
        doc = json.loads(body) if body.strip() else None
        call = Call(compute, request.caller, method, path.strip("/").split("/"), request.query,
                    doc, request.headers.get(SESSION_HEADER), request.source_ip, audit,
                    request.secure)
        call.allow(*op)
        return await _HANDLERS[op[0]](call, op[2])
    except Hidden as exc:                   # MAC: answered as missing, audited as denied
        audit.update(decision="deny", rule=exc.rule)
        return _error(exc.status, exc.code, exc.message)
    except SpecError as exc:
        if exc.status == 403:
            audit.update(decision="deny", rule=f"{exc.code}: {exc.message}")
        return _error(exc.status, exc.code, exc.message)
    except FunctionError as exc:
        return _error(422, "FunctionError", str(exc), detail=exc.error)
    except errors.S3Error as exc:
        return _error(exc.status, exc.code, exc.message)
    except json.JSONDecodeError as exc:
        return _error(400, "MalformedJSON", f"the body is not JSON: {exc}")
    except ValueError as exc:
        return _error(400, "InvalidRequest", str(exc))


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
    audit: dict[str, Any] = field(default_factory=dict)
    secure: bool = False

    def allow(self, action: str, kind: str, name: str = "*") -> None:
        """AccessDenied unless the caller may do ``vallum:<action>`` (IAM decides: the root
        and account admins are allowed by their policies, users need a grant)."""
        arn = resource_arn(self.who.account, kind, name)
        ctx = authz.context_for(authz.global_keys(self.source_ip, self.secure, time.time()))
        decision = authz.decide(self.who, "vallum:" + action, arn, ctx)
        rule = " ".join(x for x in (decision.reason, decision.policy, decision.statement) if x)
        self.audit.update(target=arn, decision="allow" if decision.allowed else "deny",
                          rule=rule)
        if not decision.allowed:
            log.info("compute: %s denied vallum:%s on %s (%s)", self.who.arn, action, arn,
                     decision.reason)
            raise SpecError(f"not authorized to perform vallum:{action} on {arn}",
                            "AccessDenied", 403)


def resource_arn(account: str, kind: str, name: str = "*") -> str:
    """``arn:vallum:compute::ACCOUNT:job/ID`` (also function/NAME, trigger/ID)."""
    return f"arn:vallum:compute::{account}:{kind}/{name}"


def operation(method: str, parts: list[str]) -> tuple[str, str, str] | None:
    """(action, resource kind, resource name) of a request path split on "/" (["-",
    "jobs"|"functions", "v1", ...]); None when no endpoint matches. The one table both
    authorization and the audit record read."""
    if len(parts) < 4 or parts[0] != "-" or parts[2] != "v1":
        return None
    area, rest = parts[1], parts[3:]
    n = len(rest)
    if area == "jobs" and rest[0] == "jobs":
        if n == 1:
            return {"POST": ("SubmitJob", "job", "*"), "GET": ("ListJobs", "job", "*")}.get(method)
        if n == 2 and method == "GET":
            return ("GetJob", "job", rest[1])
        if n == 3 and method == "GET" and rest[2] in ("tasks", "logs"):
            return ("GetJob" if rest[2] == "tasks" else "GetJobLogs", "job", rest[1])
        if n == 3 and method == "POST" and rest[2] == "cancel":
            return ("CancelJob", "job", rest[1])
    if area == "jobs" and rest[0] == "quotas" and n == 2:
        return {"GET": ("GetQuota", "quota", rest[1]),
                "PUT": ("PutQuota", "quota", rest[1])}.get(method)
    if area == "jobs" and rest[0] == "runtimes" and n == 1 and method == "GET":
        return ("ListRuntimes", "runtime", "*")
    if area == "jobs" and rest[0] == "triggers":
        if n == 1:
            return {"POST": ("CreateTrigger", "trigger", "*"),
                    "GET": ("ListTriggers", "trigger", "*")}.get(method)
        if n == 2 and method == "DELETE":
            return ("DeleteTrigger", "trigger", rest[1])
    if area == "functions" and rest[0] == "functions":
        if n == 1 and method == "GET":
            return ("ListFunctions", "function", "*")
        if n == 2:
            return {"PUT": ("CreateFunction", "function", rest[1]),
                    "GET": ("GetFunction", "function", rest[1]),
                    "DELETE": ("DeleteFunction", "function", rest[1])}.get(method)
        if n == 3 and rest[2] == "invoke" and method == "POST":
            return ("InvokeFunction", "function", rest[1])
    return None


async def _submit(c: Call, _: str) -> Response:
    return _json(201, await c.compute.submit(c.who, c.doc, c.level))


async def _list_jobs(c: Call, _: str) -> Response:
    return _json(200, {"jobs": c.compute.list_jobs(c.who, c.query.get("state"),
                                                   int(c.query.get("limit", "100")), c.level)})


async def _get_job(c: Call, job_id: str) -> Response:
    if c.parts[-1] == "tasks":
        return _json(200, {"tasks": c.compute.tasks(c.who, job_id, c.level)})
    return _json(200, c.compute.job(c.who, job_id, c.level))


async def _logs(c: Call, job_id: str) -> Response:
    attempt = c.query.get("attempt")
    return _json(200, await c.compute.logs(c.who, job_id, int(c.query.get("task", "0")),
                                           max(0, int(c.query.get("offset", "0"))), c.level,
                                           int(attempt) if attempt else None))


async def _cancel(c: Call, job_id: str) -> Response:
    return _json(200, await c.compute.cancel(c.who, job_id, c.level))


async def _get_quota(c: Call, account: str) -> Response:
    return _json(200, c.compute.quota_doc(c.who, account))


async def _put_quota(c: Call, account: str) -> Response:
    return _json(200, await c.compute.put_quota(c.who, account, c.doc))


async def _list_runtimes(c: Call, _: str) -> Response:
    """The names a spec's ``venv`` may give (never their host paths)."""
    return _json(200, {"runtimes": c.compute.runtimes.names()})


async def _add_trigger(c: Call, _: str) -> Response:
    return _json(201, await c.compute.add_trigger(c.who, c.doc, c.level))


async def _list_triggers(c: Call, _: str) -> Response:
    return _json(200, {"triggers": c.compute.list_triggers(c.who, c.level)})


async def _delete_trigger(c: Call, trigger_id: str) -> Response:
    await c.compute.delete_trigger(c.who, trigger_id, c.level)
    return _json(200, {"deleted": trigger_id})


async def _list_functions(c: Call, _: str) -> Response:
    return _json(200, {"functions": c.compute.list_functions(c.who, c.level)})


async def _put_function(c: Call, name: str) -> Response:
    return _json(200, await c.compute.put_function(c.who, name, c.doc, c.level))


async def _get_function(c: Call, name: str) -> Response:
    return _json(200, c.compute.function(c.who, name, c.level))


async def _delete_function(c: Call, name: str) -> Response:
    gone = await c.compute.delete_function(c.who, name, c.level)
    return _json(200, {"deleted": name, "triggers_deleted": gone})


async def _invoke(c: Call, name: str) -> Response:
    doc = c.doc if isinstance(c.doc, dict) else {}
    payload = doc.get("payload")
    if c.query.get("async") in ("1", "true"):
        return _json(202, await c.compute.invoke_async(c.who, name, payload,
                                                       doc.get("idempotency_key"), c.level))
    result, log = await c.compute.invoke(c.who, name, payload, c.level)
    if c.query.get("log") == "tail":        # as Lambda's LogType=Tail: the call's own output
        return _json(200, {"result": result, "log": log[-4096:]})
    return _json(200, {"result": result})


_HANDLERS = {"SubmitJob": _submit, "ListJobs": _list_jobs, "GetJob": _get_job,
             "GetJobLogs": _logs, "CancelJob": _cancel, "GetQuota": _get_quota,
             "PutQuota": _put_quota, "ListRuntimes": _list_runtimes,
             "CreateTrigger": _add_trigger,
             "ListTriggers": _list_triggers, "DeleteTrigger": _delete_trigger,
             "ListFunctions": _list_functions, "CreateFunction": _put_function,
             "GetFunction": _get_function, "DeleteFunction": _delete_function,
             "InvokeFunction": _invoke}


API = ComputeApi()
