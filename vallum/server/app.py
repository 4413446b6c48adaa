"""The gateway: one front door for every API (S3, STS, IAM, admin, compute, health/metrics).

Every request runs the same chain, whichever API answers it:
request id -> pick the API -> build one Request (headers decoded once; the body read once,
bounded, for the APIs that read it whole; authenticated once by ``gate.authenticate``) ->
operator admission -> the API's handler (which authorizes through ``authz.decide``) ->
the API's own error format -> one audit record (``audit_http.record``) -> metrics ->
operator observe. An API is a small object (``vallum.http.Api``) listed in ``APIS``.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from vallum import metrics
from vallum.compute import api as compute_api
from vallum.http import Api, Headers, Request, Response
from vallum.iam import certauth, gate
from vallum.iam.principal import ANONYMOUS
from vallum.operator import gateway as operator_hook
from vallum.s3 import errors
from vallum.s3.body import Body
from vallum.s3.handlers import cors, registry
from vallum.s3.router import Endpoint, route
from vallum.s3.xml import render_error
from vallum.security.audit import request_record as audit_http
from vallum.security.audit.log import AuditError
from vallum.server import admin, diskguard, lifespan, rate_limits
from vallum.server.iam_query.api import API as IAM_QUERY
from vallum.server.state import Services
from vallum.service import integrity
from vallum.service.usage import METER, Sent
from vallum.storage.base import StorageError, StorageUnavailable
from vallum.storage.headroom import StorageFull

log = logging.getLogger("vallum.gateway")


_ID_PREFIX = os.urandom(4).hex().upper()     # per process: ids stay unique across workers
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """16 hex digits like AWS's; not a secret, so a counter (a getrandom call per request
    showed up at 4% of a GET's time)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFF:08X}"


class S3Api:
    """The S3 REST API: everything no other API claims."""

    name = "s3"
    body_limit: int | None = None
    service = "s3"
    signed_only = False       # anonymous requests are decided by the bucket's policy
    tenant_view = True

    def match(self, method: str, path: str, headers: Headers) -> bool:
        return True

    def public(self, method: str, path: str) -> bool:
        return False

    def endpoint(self, services: Any, method: str, path: str, query: str,
                 headers: Headers) -> Endpoint:
        return route(method, headers.get("host", ""), path, query, domain=services.config.domain,
                     copy_source="x-amz-copy-source" in headers)

    def attribution(self, method: str, path: str, query: str) -> dict[str, Any]:
        return {}             # audit_http routes the refused request itself

    async def handle(self, request: Request) -> Response:
        endpoint = request.endpoint
        if endpoint.name == "OptionsObject":
            return await cors.preflight(request)     # browsers send preflights unauthenticated
        handler = registry.HANDLERS.get(endpoint.name)
        if endpoint.name in registry.SELF_AUTHORIZED and handler is not None:
            diskguard.admit(request)
            return await handler(request)            # PostObject: the form says who signed
        resource = registry.resource_arn(endpoint.bucket, endpoint.key)
        await gate.authorize(request, registry.action_of(endpoint.name), resource)
        diskguard.admit(request)                     # 507 for writes inside the disk reserve
        if handler is None:
            raise errors.NotImplemented_(f"{endpoint.name} is not implemented by Vallum.")
        return await handler(request)

    def render_error(self, err: errors.S3Error, request_id: str, path: str) -> Response:
        return error_response(err, request_id, path)


class ReservedApi:
    """/-/health, /-/metrics and the other reserved paths: unauthenticated by design."""

    name = "reserved"
    body_limit: int | None = None
    service = "s3"
    signed_only = False
    tenant_view = False

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def match(self, method: str, path: str, headers: Headers) -> bool:
        return path.startswith("/-/")

    def public(self, method: str, path: str) -> bool:
        return True

    def endpoint(self, services: Any, method: str, path: str, query: str,
                 headers: Headers) -> Endpoint:
        return Endpoint(self.name, None, None)

    def attribution(self, method: str, path: str, query: str) -> dict[str, Any]:
        return {}

    async def handle(self, request: Request) -> Response:
        return await lifespan.reserved(self.gateway, request.method, request.path)

    def render_error(self, err: errors.S3Error, request_id: str, path: str) -> Response:
        return error_response(err, request_id, path)


class Gateway:
    def __init__(self, services: Services | None = None) -> None:
        self.services = services
        # First match wins; S3 takes what no other API claims.
        self.apis: tuple[Api, ...] = (admin.ADMIN, compute_api.API, ReservedApi(self),
                                      IAM_QUERY, admin.STS, S3Api())

    async def __call__(self, scope: dict[str, Any], receive, send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.http(scope, receive, send)
        elif kind == "lifespan":
            await lifespan.lifespan(self, receive, send)

    def pick(self, method: str, path: str, headers: Headers) -> Api:
        return next(api for api in self.apis if api.match(method, path, headers))

    async def http(self, scope: dict[str, Any], receive, send) -> None:
        request_id = new_request_id()
        started = time.perf_counter()
        raw_path = scope.get("raw_path") or scope["path"].encode()
        path = raw_path.decode("latin-1")
        method = scope["method"]
        headers = Headers([(k.decode("latin-1").lower(), v.decode("latin-1"))
                           for k, v in scope["headers"]])
        api = self.pick(method, path, headers)
        # The operation counted and audited: the API's, until S3 routing names its own
        # ("unknown" for an S3 request refused before that).
        operation = "unknown" if api.name == "s3" else api.name
        request: Request | None = None
        error_code = ""
        try:
            request = await self.build_request(api, scope, receive, request_id, path, headers)
            operation = request.endpoint.name
            if not api.public(method, path):
                operator_hook.admit(self.services, request)     # refuse contained callers
                await rate_limits.admit(self.services, request)   # 503 SlowDown over the account's rate
            response = await api.handle(request)
        except errors.S3Error as err:
            error_code = err.code
            response = api.render_error(err, request_id, path)
        except StorageFull as exc:         # the disk reserve was reached while writing
            error_code = "XMinioStorageFull"
            response = api.render_error(diskguard.storage_full(request_id, exc), request_id, path)
        except StorageUnavailable as exc:  # the upstream blob store is away: retry later
            log.warning("request %s: %s", request_id, exc)
            error_code = exc.code
            response = api.render_error(errors.by_code(exc.code)(), request_id, path)
        except StorageError as exc:        # a stored body failed its integrity check, or is gone
            error_code = "InternalError"
            response = api.render_error(integrity.failed(request, request_id, exc), request_id, path)
        except Exception:
            log.exception("internal error in request %s", request_id)
            error_code = "InternalError"
            response = api.render_error(errors.InternalError(), request_id, path)
        if request is not None and operation != "OptionsObject" and "origin" in request.headers \
                and request.api == "s3":
            await cors.decorate(request, response)   # Access-Control-* per the bucket's CORS rules
        if unread_body(scope, request):
            # The client may still be sending (or waiting on 100-continue to send) a body we
            # did not read: closing is the only way to keep the next request in sync.
            response.headers["connection"] = "close"
        try:   # the audit record is durable before the answer leaves, or the request fails
            attribution = None if request is not None else api.attribution(
                method, path, scope.get("query_string", b"").decode("latin-1"))
            await audit_http.record(self.services, scope, request, request_id, operation, response,
                                    error_code, attribution=attribution, headers=headers.raw)
        except AuditError:
            log.exception("audit write failed for request %s", request_id)
            response = api.render_error(errors.InternalError(), request_id, path)
        sent = Sent(send)          # counts the body bytes that leave (usage accounting)
        try:
            await send_response(sent, response, request_id, head=method == "HEAD")
        except Exception:   # the body failed after the status line (integrity.checked_body)
            response.status, error_code = 500, "InternalError"
            raise
        finally:            # counted and seen by the operator either way
            metrics.observe(operation, response.status, time.perf_counter() - started)
            METER.observe(self.services.meta if self.services else None, request, operation,
                          sent.bytes)
            operator_hook.observe(self.services, scope,
                                  None if api.public(method, path) else request,
                                  operation, response, error_code)

    async def build_request(self, api: Api, scope: dict[str, Any], receive, request_id: str,
                            path: str, headers: Headers) -> Request:
        """The one Request of any API: routed, its body bounded, its caller authenticated."""
        services = self.services
        assert services is not None
        method = scope["method"]
        query = scope.get("query_string", b"").decode("latin-1")
        endpoint = api.endpoint(services, method, path, query, headers)
        client = scope.get("client") or ("", 0)
        secure = scope.get("scheme") == "https"
        if api.public(method, path):
            return Request(method=method, endpoint=endpoint, headers=headers,
                           body=Body(receive, headers, None), request_id=request_id, auth=None,
                           principal=None, source_ip=client[0], secure=secure, services=services,
                           caller=ANONYMOUS, api=api.name, path=path)
        payload = b""
        body: Body | None = None
        if api.body_limit is not None:
            body = Body(receive, headers, None)
            if body.streaming:
                raise errors.InvalidRequest("This API does not accept aws-chunked bodies.")
            payload = await body.read(api.body_limit)
            headers = signed_payload(headers, payload)
        cfg = services.config
        certificate = certauth.of_connection(   # the connection's client certificate, verified
            scope.get("extensions", {}).get(certauth.TLS_EXTENSION),
            certauth.authority(getattr(cfg, "tls_client_ca", None), getattr(cfg, "tls_crl", None)),
            time.time())
        auth, principal = await gate.authenticate(
            services, method, path, query, headers.raw, client[0], service=api.service,
            client_cert=certificate.fingerprint
            if isinstance(certificate, certauth.ClientCertificate) else None)
        if api.signed_only and (auth is None or principal.anonymous):
            raise errors.AccessDenied("This endpoint requires a signed request.")
        if body is None:
            body = Body(receive, headers, auth)
        return Request(
            method=method, endpoint=endpoint, headers=headers, body=body, request_id=request_id,
            auth=auth, principal=auth.access_key if auth else None, source_ip=client[0],
            secure=secure, services=services.for_caller(principal) if api.tenant_view else services,
            caller=principal, payload=payload, api=api.name, path=path,
            client_certificate=certificate)


def signed_payload(headers: Headers, payload: bytes) -> Headers:
    """Check a whole body against the SHA-256 its request declares (and signs). Query-protocol
    signers (STS) hash the body without sending the header: it is added, so the signature
    check covers the body all the same."""
    digest = hashlib.sha256(payload).hexdigest()
    sent = headers.get("x-amz-content-sha256")
    if sent is None:
        out = Headers([*headers.raw, ("x-amz-content-sha256", digest)])
        return out
    if sent != digest:
        raise errors.XAmzContentSHA256Mismatch()
    return headers


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
