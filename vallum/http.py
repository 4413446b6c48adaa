"""The request and response every API handler sees (S3, STS, admin, compute, health).

A neutral low module: handlers at any layer import it, and no ASGI detail leaks past it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from vallum.iam.principal import Principal
    from vallum.s3.body import Body
    from vallum.s3.errors import S3Error
    from vallum.s3.router import Endpoint
    from vallum.s3.sigv4 import AuthResult


class Headers:
    """Case-insensitive request headers; repeated names are joined with ','."""

    __slots__ = ("_d", "raw")

    def __init__(self, raw: list[tuple[str, str]]) -> None:
        self.raw = raw
        d: dict[str, str] = {}
        for k, v in raw:
            d[k] = f"{d[k]},{v}" if k in d else v
        self._d = d

    def get(self, name: str, default: Any = None) -> Any:
        return self._d.get(name, default)

    def __contains__(self, name: str) -> bool:
        return name in self._d

    def __getitem__(self, name: str) -> str:
        return self._d[name]

    def items(self):
        return self._d.items()

    def mapping(self) -> dict[str, str]:
        return self._d


@dataclass
class Request:
    method: str
    endpoint: Endpoint
    headers: Headers
    body: Body
    request_id: str
    auth: AuthResult | None
    principal: str | None          # access key id of the caller (None = anonymous)
    source_ip: str
    secure: bool
    services: Any = None           # vallum.server.state.Services
    decision_reason: str | None = None   # the rule that decided (audited)
    audit_label: str | None = None       # the object label read or written (audited, never sent)
    decision: str | None = None          # "allow"/"deny" as decided (audited); None: from the status
    caller: Principal | None = None      # the authenticated principal (ANONYMOUS when unsigned)
    payload: bytes = b""                 # the whole body, for APIs that read it up front
    api: str = "s3"                      # the API that answers (server/app.py's front door)
    path: str = ""                       # the request path as received (percent-encoded)
    # The connection's client certificate (iam/certauth.py): a ClientCertificate, the
    # CertificateError that refused it, or None (none presented, or mutual TLS is off).
    client_certificate: Any = None
    # Attribution a handler adds for the audit record, refusals included: any of
    # "action", "target", "decision", "rule". Never sent.
    audit: dict[str, Any] = field(default_factory=dict)

    @property
    def bucket(self) -> str:
        assert self.endpoint.bucket is not None
        return self.endpoint.bucket

    @property
    def key(self) -> str:
        assert self.endpoint.key is not None
        return self.endpoint.key

    @property
    def query(self) -> dict[str, str]:
        return self.endpoint.query


@dataclass
class Response:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | AsyncIterator[bytes] = b""
    # Length of a streamed body (sent as Content-Length); None means chunked.
    length: int | None = None


def xml_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    h = {"content-type": "application/xml"}
    if headers:
        h.update(headers)
    return Response(status, h, body)


class Api(Protocol):
    """One API behind the front door (server/app.py): the door reads, authenticates,
    admits, audits and counts; the API names its operation, authorizes and answers
    (through ``authz.decide``), and renders errors in its own format."""

    name: str                 # the operation name of requests refused before routing
    body_limit: int | None    # read the whole body (at most this) before authenticating;
    #                           None: the handler streams it (S3)
    service: str              # the SigV4 service name callers sign for
    signed_only: bool         # refuse unsigned requests (AccessDenied) before the handler
    tenant_view: bool         # handlers see the caller's account view of the stores

    def match(self, method: str, path: str, headers: Headers) -> bool: ...

    def public(self, method: str, path: str) -> bool:
        """Answered without authentication or operator admission (health, metrics)."""
        ...

    def endpoint(self, services: Any, method: str, path: str, query: str,
                 headers: Headers) -> Endpoint: ...

    def attribution(self, method: str, path: str, query: str) -> dict[str, Any]:
        """What a request refused before it was authenticated asked for (audit)."""
        ...

    async def handle(self, request: Request) -> Response: ...

    def render_error(self, err: S3Error, request_id: str, path: str) -> Response: ...
