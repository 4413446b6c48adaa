"""The real gateway in process on the real stores of a fresh data directory (SQLite, audit
log on), called through its ASGI front door with requests signed as clients sign them, for
every API; each answer's audit record is read back from the audit log.

Why: the front-door tests compare how every API answers the same hostile request and how it
is audited; a server process per case would cost seconds, this costs milliseconds.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from vallum.compute.service import ComputeService
from vallum.security.audit import log as audit
from vallum.server.app import Gateway
from vallum.server.config import Config
from vallum.server.lifespan import close_services, open_services

HOST = "127.0.0.1:9000"
CLIENT = ("10.20.30.40", 5000)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def request_id(self) -> str:
        return self.headers["x-amz-request-id"]

    def json(self) -> dict:
        return json.loads(self.body)


class FrontDoor:
    """One gateway over its own data directory; ``root`` is its platform root's key pair."""

    def __init__(self, data_dir: Path, *, compute: bool = False) -> None:
        self.data_dir = data_dir
        self.loop = asyncio.new_event_loop()
        self.services = self.loop.run_until_complete(open_services(Config(data_dir=data_dir)))
        if compute:         # the compute API's store, without workers (no job runs)
            self.services.compute = ComputeService(self.services)
            self.services.compute.db.open()
        self.gateway = Gateway(self.services)
        self.root = (self.services.root.access_key, self.services.root.secret_key)

    def close(self) -> None:
        if self.services.compute is not None:
            self.services.compute.db.close()
        self.loop.run_until_complete(close_services(self.services))
        self.loop.close()

    def send(self, method: str, path: str, *, creds: tuple[str, str] | None = None,
             body: bytes = b"", headers: dict[str, str] | None = None,
             query: dict[str, str] | None = None, service: str = "s3",
             declared_length: int | None = None) -> Reply:
        """One request; signed with ``creds`` (None: unsigned) for ``service``."""
        qs = urlencode(sorted((query or {}).items()), quote_via=quote, safe="-_.~")
        raw_path = quote(path, safe="/-_.~")
        req = AWSRequest(method=method, url=f"http://{HOST}{raw_path}" + (f"?{qs}" if qs else ""),
                         data=body, headers=dict(headers or {}))
        if creds is not None:
            signer = S3SigV4Auth if service == "s3" else SigV4Auth
            signer(Credentials(*creds), service, "us-east-1").add_auth(req)
        sent = [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in req.headers.items()]
        sent.append((b"host", HOST.encode()))
        length = len(body) if declared_length is None else declared_length
        if body or method in ("PUT", "POST"):
            sent.append((b"content-length", str(length).encode()))
        scope = {"type": "http", "method": method, "path": path, "raw_path": raw_path.encode(),
                 "query_string": qs.encode(), "headers": sent, "client": CLIENT, "scheme": "http"}
        return self.loop.run_until_complete(_run(self.gateway, scope, body))

    def admin(self, creds: tuple[str, str] | None, action: str, /, **args) -> Reply:
        return self.send("POST", f"/-/admin/v1/{action}", creds=creds, body=json.dumps(args).encode(),
                         headers={"content-type": "application/json"})

    def sts(self, creds: tuple[str, str] | None, /, **params) -> Reply:
        body = urlencode({"Version": "2011-06-15", **params}).encode()
        return self.send("POST", "/", creds=creds, body=body, service="sts",
                         headers={"content-type": "application/x-www-form-urlencoded"})

    def iam(self, creds: tuple[str, str] | None, /, **params) -> Reply:
        """One IAM query API call (form POST to /, signed for service iam)."""
        body = urlencode({"Version": "2010-05-08", **params}).encode()
        return self.send("POST", "/", creds=creds, body=body, service="iam",
                         headers={"content-type": "application/x-www-form-urlencoded"})

    def audit(self, reply: Reply) -> dict:
        """The audit record of ``reply`` (by its request id)."""
        lines = audit.log_path(self.data_dir).read_bytes().rstrip(b"\0").splitlines()
        found = [rec for rec in map(json.loads, lines) if rec.get("request_id") == reply.request_id]
        assert len(found) == 1, f"{len(found)} audit records for {reply.request_id}"
        return found[0]

    def account(self, name: str) -> tuple[str, tuple[str, str]]:
        """A new account: (its id, its admin's key pair)."""
        out = self.admin(self.root, "CreateAccount", name=name).json()
        key = out["admin_key"]
        return out["account"]["id"], (key["access_key_id"], key["secret_access_key"])


async def _run(gateway: Gateway, scope: dict, body: bytes) -> Reply:
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    out: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        out.append(message)

    await gateway(scope, receive, send)
    start = out[0]
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in start["headers"]}
    return Reply(start["status"], headers, b"".join(m.get("body", b"") for m in out[1:]))
