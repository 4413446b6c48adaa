"""The gateway: an ASGI app that runs every request through one explicit chain.

request id -> reserved paths (/-/) -> route -> authenticate -> authorize ->
handler -> render (result or S3 error). Each stage is a plain function; errors
are S3Error instances rendered once, here, with the request id in body and header.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from vallum import metrics
from vallum.compute import api as compute_api
from vallum.iam import gate
from vallum.operator import gateway as operator_hook
from vallum.s3 import errors
from vallum.s3.body import Body
from vallum.s3.handlers import cors, registry
from vallum.s3.router import route
from vallum.s3.xml import render_error
from vallum.security import audit_http
from vallum.security.audit import AuditError
from vallum.server import admin, lifecycle
from vallum.http import Headers, Request, Response
from vallum.server.state import Services
from vallum.service import integrity
from vallum.storage.base import StorageError

log = logging.getLogger("vallum.gateway")


_ID_PREFIX = os.urandom(4).hex().upper()     # per process: ids stay unique across workers
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """16 hex digits like AWS's; not a secret, so a counter (a getrandom call per request
    showed up at 4% of a GET's time)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFF:08X}"


class Gateway:
    def __init__(self, services: Services | None = None) -> None:
        self.services = services

    async def __call__(self, scope: dict[str, Any], receive, send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.http(scope, receive, send)
        elif kind == "lifespan":
            await lifecycle.lifespan(self, receive, send)

    async def http(self, scope: dict[str, Any], receive, send) -> None:
        request_id = new_request_id()
        started = time.perf_counter()
        raw_path = scope.get("raw_path") or scope["path"].encode()
        path = raw_path.decode("latin-1")
        method = scope["method"]
        operation = "unknown"
        request: Request | None = None
        error_code = ""
        try:
            if path.startswith("/-/admin/"):
                response = await admin.handle(self.services, scope, receive, path)
                operation = "admin"
            elif path.startswith(("/-/jobs/", "/-/functions/")):
                response = await compute_api.handle(self.services, scope, receive, path)
                operation = "compute"
            elif path.startswith("/-/"):
                response = await lifecycle.reserved(self, method, path)
                operation = "reserved"
            elif admin.is_sts(scope, path):
                response = await admin.handle_sts(self.services, scope, receive, request_id)
                operation = "sts"
            else:
                request = await self.build_request(scope, receive, request_id, path)
                operation = request.endpoint.name
                operator_hook.admit(self.services, request)     # refuse contained callers
                response = await self.dispatch(request)
        except errors.S3Error as err:
            error_code = err.code
            response = error_response(err, request_id, path)
        except StorageError as exc:        # a stored body failed its integrity check, or is gone
            error_code = "InternalError"
            response = error_response(integrity.failed(request, request_id, exc), request_id, path)
        except Exception:
            log.exception("internal error in request %s", request_id)
            response = error_response(errors.InternalError(), request_id, path)
        if request is not None and operation != "OptionsObject" and "origin" in request.headers:
            await cors.decorate(request, response)   # Access-Control-* per the bucket's CORS rules
        if unread_body(scope, request):
            # The client may still be sending (or waiting on 100-continue to send) a body we
            # did not read: closing is the only way to keep the next request in sync.
            response.headers["connection"] = "close"
        try:   # the audit record is durable before the answer leaves, or the request fails
            await audit_http.record(self.services, scope, request, request_id, operation, response, error_code)
        except AuditError:
            log.exception("audit write failed for request %s", request_id)
            response = error_response(errors.InternalError(), request_id, path)
        try:
            await send_response(send, response, request_id, head=method == "HEAD")
        except Exception:   # the body failed after the status line (integrity.checked_body)
            response.status, error_code = 500, "InternalError"
            raise
        finally:            # counted and seen by the operator either way
            metrics.observe(operation, response.status, time.perf_counter() - started)
            operator_hook.observe(self.services, scope, request, operation, response, error_code)

    async def build_request(self, scope: dict[str, Any], receive, request_id: str, path: str) -> Request:
        services = self.services
        assert services is not None
        raw_headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        headers = Headers(raw_headers)
        query = scope.get("query_string", b"").decode("latin-1")
        endpoint = route(scope["method"], headers.get("host", ""), path, query,
                         domain=services.config.domain, copy_source="x-amz-copy-source" in headers)
        client = scope.get("client") or ("", 0)
        auth, principal = await gate.authenticate(services, scope["method"], path, query,
                                                  raw_headers, client[0])
        services = services.for_caller(principal)
        return Request(
            method=scope["method"], endpoint=endpoint, headers=headers,
            body=Body(receive, headers, auth), request_id=request_id, auth=auth,
            principal=auth.access_key if auth else None, source_ip=client[0],
            secure=scope.get("scheme") == "https", services=services)

    async def dispatch(self, request: Request) -> Response:
        endpoint = request.endpoint
        handler = registry.HANDLERS.get(endpoint.name)
        if endpoint.name == "OptionsObject":
            return await cors.preflight(request)     # browsers send preflights unauthenticated
        resource = registry.resource_arn(endpoint.bucket, endpoint.key)
        await gate.authorize(request, registry.action_of(endpoint.name), resource)
        if handler is None:
            raise errors.NotImplemented_(f"{endpoint.name} is not implemented by Vallum.")
        return await handler(request)


def unread_body(scope: dict[str, Any], request: Request | None) -> bool:
    if request is not None:
        return request.body.has_body and not request.body.done
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() not in (b"0", b"")):
            return True
    return False


def error_response(err: errors.S3Error, request_id: str, resource: str) -> Response:
    if err.resource is None:
        err.resource = resource.split("?", 1)[0]
    headers = {"content-type": "application/xml", **err.headers}
    if err.status == 304:
        return Response(304, headers={k: v for k, v in err.headers.items()})
    return Response(err.status, headers, render_error(err, request_id))


async def send_response(send, response: Response, request_id: str, *, head: bool) -> None:
    headers = [(b"x-amz-request-id", request_id.encode()), (b"x-amz-id-2", request_id.encode()),
               (b"server", b"Vallum")]
    body = response.body
    for k, v in response.headers.items():
        headers.append((k.encode("latin-1"), v.encode("latin-1", "replace")))
    if isinstance(body, bytes):
        if "content-length" not in response.headers:
            headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else body})
        return
    if response.length is not None and "content-length" not in response.headers:
        headers.append((b"content-length", str(response.length).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    if head:
        await send({"type": "http.response.body", "body": b""})
        return
    await stream_body(send, body)


async def stream_body(send, body: AsyncIterator[bytes]) -> None:
    try:
        async for chunk in body:
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except Exception:
        # Headers are gone: the only honest signal left is to cut the connection.
        log.exception("error while streaming a response body")
        raise
    await send({"type": "http.response.body", "body": b""})
