"""An in-process gateway over the in-memory stores, driven through ASGI with real SigV4.

Why: property tests send thousands of requests; a server process per example (or even
per test) costs seconds, while a call into ``Gateway`` costs well under a millisecond.
Everything between the socket and the stores is the production code: routing, SigV4
authentication, authorization, MAC, handlers, rendering and the audit hook (off here).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from vallum.iam import service as iam_service
from vallum.iam.root import RootCredentials
from vallum.meta.memory import MemoryMetaStore
from vallum.server.app import Gateway
from vallum.server.config import Config
from vallum.server.state import Services
from vallum.storage.memory import MemoryBlobStore

ROOT = RootCredentials("VALLUMINPROCROOT0000", "vallum-inprocess-root-secret-0000000000000")
HOST = "127.0.0.1:9000"


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)


@dataclass
class InProcess:
    """One gateway with its own in-memory world; ``call`` sends one signed S3 request."""

    services: Services
    gateway: Gateway
    loop: asyncio.AbstractEventLoop
    creds: Credentials = field(default_factory=lambda: Credentials(ROOT.access_key, ROOT.secret_key))

    @classmethod
    def open(cls, loop: asyncio.AbstractEventLoop, data_dir: Path = Path("/nonexistent")) -> InProcess:
        meta, blobs = MemoryMetaStore(), MemoryBlobStore()
        loop.run_until_complete(meta.open())
        loop.run_until_complete(blobs.open())
        services = Services(Config(data_dir=data_dir), meta, blobs, ROOT)
        services.iam = iam_service.open_memory(ROOT, services.owner_id)
        return cls(services, Gateway(services), loop)

    def close(self) -> None:
        self.services.iam.close()

    def as_user(self, access_key: str, secret_key: str) -> InProcess:
        """The same gateway, called with another access key."""
        return InProcess(self.services, self.gateway, self.loop, Credentials(access_key, secret_key))

    def admin(self, action: str, /, **args) -> tuple[int, dict]:
        """One admin API call (JSON), as ``vallum admin`` sends it."""
        body = json.dumps(args).encode()
        reply = self.call("POST", f"/-/admin/v1/{action}", headers={"content-type": "application/json"},
                          body=body)
        return reply.status, json.loads(reply.body or b"{}")

    def call(self, method: str, path: str, query: dict[str, str] | None = None,
             headers: dict[str, str] | None = None, body: bytes = b"", *,
             service: str = "s3") -> Reply:
        """``path`` is unencoded ("/bucket/key"); it is percent-encoded as boto3 does."""
        qs = urlencode(sorted((query or {}).items()), quote_via=quote, safe="-_.~")
        raw_path = quote(path, safe="/-_.~")
        url = f"http://{HOST}{raw_path}" + (f"?{qs}" if qs else "")
        req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
        signer = S3SigV4Auth if service == "s3" else SigV4Auth
        signer(self.creds, service, "us-east-1").add_auth(req)
        sent = [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in req.headers.items()]
        sent.append((b"host", HOST.encode()))
        if body or method in ("PUT", "POST"):
            sent.append((b"content-length", str(len(body)).encode()))
        scope = {"type": "http", "method": method, "path": path, "raw_path": raw_path.encode(),
                 "query_string": qs.encode(), "headers": sent, "client": ("127.0.0.1", 5000),
                 "scheme": "http"}
        return self.loop.run_until_complete(_run(self.gateway, scope, body))


async def _run(gateway: Gateway, scope: dict, body: bytes) -> Reply:
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    out: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        out.append(message)

    await gateway(scope, receive, send)
    start = out[0]
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start["headers"]]
    return Reply(start["status"], headers, b"".join(m.get("body", b"") for m in out[1:]))
