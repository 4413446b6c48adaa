"""The OpenAPI 3.0 description of the compute API, served at /-/jobs/openapi.json."""

from __future__ import annotations

from typing import Any


def _op(summary: str, *, body: str | None = None, params: list[dict[str, Any]] | None = None,
        ok: str = "200", schema: str = "Object") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "security": [{"sigv4": []}],
                          "responses": {ok: {"description": "OK", "content": {"application/json": {
                              "schema": {"$ref": f"#/components/schemas/{schema}"}}}},
                                        "4XX": {"description": "Error", "content": {
                                            "application/json": {"schema": {
                                                "$ref": "#/components/schemas/Error"}}}}}}
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{body}"}}}}
    if params:
        op["parameters"] = params
    return op


def _p(name: str, where: str = "path", kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "schema": {"type": kind}}


JOB_SPEC = {
    "type": "object", "required": ["runtime", "output"],
    "properties": {
        "runtime": {"type": "string", "enum": ["python", "command"]},
        "name": {"type": "string"}, "code": {"type": "string", "description": "inline Python"},
        "script": {"type": "string", "description": "s3:// URI of a Python script"},
        "module": {"type": "string"}, "code_uri": {"type": "string"},
        "command": {"type": "array", "items": {"type": "string"}},
        "args": {"type": "array", "items": {"type": "string"}},
        "inputs": {"type": "array", "items": {"type": "string"},
                   "description": "s3:// objects or prefixes (ending in /) staged into $VALLUM_INPUT"},
        "array": {"type": "string", "description": "s3:// prefix: one task per object"},
        "parallelism": {"type": "integer", "minimum": 0},
        "output": {"type": "string", "description": "s3:// prefix receiving $VALLUM_OUTPUT and _logs/"},
        "env": {"type": "object", "additionalProperties": {"type": "string"}},
        "resources": {"type": "object", "properties": {
            "cpu": {"type": "number"}, "memory_mb": {"type": "integer"},
            "wall_time_s": {"type": "number"}, "cpu_time_s": {"type": "number"},
            "max_files": {"type": "integer"}, "max_procs": {"type": "integer"},
            "max_file_mb": {"type": "integer"}}},
        "retries": {"type": "integer"}, "backoff_s": {"type": "number"},
        "idempotency_key": {"type": "string"},
        "depends_on": {"type": "array", "items": {"type": "string"}},
        "network": {"type": "boolean"}, "level": {"type": "string"},
        "venv": {"type": "string", "description": "a named runtime (GET /-/jobs/v1/runtimes)"}}}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Vallum compute API", "version": "1",
             "description": "Jobs, functions and triggers next to the data. Requests are "
                            "signed with AWS SigV4 (service s3, the gateway's region)."},
    "paths": {
        "/-/jobs/v1/jobs": {
            "post": _op("Submit a job (or {\"jobs\": {ref: spec}} with depends_on by ref)",
                        body="JobSpec", ok="201", schema="Job"),
            "get": _op("List jobs", params=[_p("state", "query"), _p("limit", "query", "integer")])},
        "/-/jobs/v1/jobs/{id}": {"get": _op("Job status", params=[_p("id")], schema="Job")},
        "/-/jobs/v1/jobs/{id}/tasks": {"get": _op("Per-task status", params=[_p("id")])},
        "/-/jobs/v1/jobs/{id}/logs": {"get": _op(
            "One attempt's log from offset (default the latest); live while it runs",
            params=[_p("id"), _p("task", "query", "integer"), _p("attempt", "query", "integer"),
                    _p("offset", "query", "integer")])},
        "/-/jobs/v1/quotas/{account}": {
            "get": _op("Platform limits, the account's quota, the effective limits",
                       params=[_p("account")]),
            "put": _op("Set the account's quota (the platform root only)", body="Object",
                       params=[_p("account")])},
        "/-/jobs/v1/jobs/{id}/cancel": {"post": _op("Cancel", params=[_p("id")], schema="Job")},
        "/-/jobs/v1/runtimes": {"get": _op("Names of the runtimes a spec's venv may give")},
        "/-/jobs/v1/triggers": {"post": _op("Add an object or cron trigger", body="Trigger",
                                            ok="201"),
                                "get": _op("List triggers")},
        "/-/jobs/v1/triggers/{id}": {"delete": _op("Remove a trigger", params=[_p("id")])},
        "/-/functions/v1/functions": {"get": _op("List functions")},
        "/-/functions/v1/functions/{name}": {
            "put": _op("Create or update", body="FunctionSpec", params=[_p("name")]),
            "get": _op("Describe", params=[_p("name")]),
            "delete": _op("Delete", params=[_p("name")])},
        "/-/functions/v1/functions/{name}/invoke": {"post": _op(
            "Invoke synchronously ({\"result\"}, with ?log=tail also \"log\") or with "
            "?async=1 (the invocation job)",
            body="Invocation", params=[_p("name"), _p("async", "query"), _p("log", "query")])},
    },
    "components": {
        "securitySchemes": {"sigv4": {"type": "apiKey", "in": "header", "name": "Authorization",
                                      "description": "AWS Signature Version 4"}},
        "schemas": {
            "Object": {"type": "object"},
            "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                "code": {"type": "string"}, "message": {"type": "string"}}}}},
            "JobSpec": JOB_SPEC,
            "Job": {"type": "object", "properties": {
                "id": {"type": "string"},
                "state": {"type": "string", "enum": ["QUEUED", "RUNNING", "SUCCEEDED", "FAILED",
                                                     "CANCELLED", "TIMED_OUT"]},
                "created": {"type": "number"}, "started": {"type": "number", "nullable": True},
                "finished": {"type": "number", "nullable": True},
                "exit_code": {"type": "integer", "nullable": True},
                "reason": {"type": "string", "nullable": True},
                "tasks": {"type": "object"}, "result": {}}},
            "FunctionSpec": {"type": "object", "required": ["handler"], "properties": {
                "handler": {"type": "string", "description": "module.func(event, context)"},
                "code": {"type": "string"}, "code_uri": {"type": "string"},
                "env": {"type": "object"}, "resources": {"type": "object"},
                "network": {"type": "boolean"}, "timeout_s": {"type": "number"},
                "max_workers": {"type": "integer"}, "idle_s": {"type": "number"},
                "venv": {"type": "string"}}},
            "Invocation": {"type": "object", "properties": {"payload": {},
                                                            "idempotency_key": {"type": "string"}}},
            "Trigger": {"type": "object", "properties": {
                "kind": {"type": "string", "enum": ["object", "cron"]},
                "bucket": {"type": "string"}, "prefix": {"type": "string"},
                "suffix": {"type": "string"},
                "events": {"type": "array", "items": {"type": "string"}},
                "function": {"type": "string"}, "schedule": {"type": "string"},
                "job": {"$ref": "#/components/schemas/JobSpec"}}},
        },
    },
}
