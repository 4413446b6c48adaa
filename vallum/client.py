"""Python client for Vallum's compute API (jobs, functions, triggers) and the few S3 calls
tasks need, signed with SigV4 (vallum.s3.sigv4, the signer the gateway verifies against).
No dependency beyond defusedxml, so it also runs inside sandboxes and Ray workers.

    from vallum.client import Client
    c = Client("http://127.0.0.1:9000", access_key, secret_key)
    job = c.submit({"runtime": "python", "code": "print(1)", "output": "s3://b/out/"})
    c.wait(job["id"])

HTTPS: ``Client("https://host:9443", ..., verify="/path/ca.pem")``. ``verify`` works as in
requests and boto3: True checks the server against the system's CA store, a path names a
CA bundle file (or a directory of hashed certificates) to trust instead, False skips the
check (only for throw-away test servers). ``from_env`` reads VALLUM_CA_BUNDLE or AWS_CA_BUNDLE.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

from defusedxml import ElementTree

from vallum.s3.sigv4 import sign_headers

_S3NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT")


class VallumError(Exception):
    """A non-2xx answer: ``status``, ``code`` and ``message`` from the server."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.status, self.code, self.message = status, code, message


def _enc(s: str, safe: str = "") -> str:
    return quote(s, safe="-_.~" + safe)


def _target(path: str, query: dict[str, str]) -> str:
    """The request target as sent (and signed): the path and sorted query, URI-encoded."""
    url = _enc(path, "/")
    if query:
        url += "?" + "&".join(f"{_enc(k)}={_enc(v)}" for k, v in sorted(query.items()))
    return url


def tls_context(verify: bool | str | ssl.SSLContext = True) -> ssl.SSLContext:
    """The client TLS context for ``verify`` (see the module docstring).

    Why the stdlib default context: it already requires a valid chain and a matching host
    name; we only add a floor of TLS 1.2, as the server does."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify is True:
        ctx = ssl.create_default_context()
    elif verify is False:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif isinstance(verify, str | os.PathLike):
        path = os.fspath(verify)
        if os.path.isdir(path):
            ctx = ssl.create_default_context(capath=path)
        elif os.path.isfile(path):
            ctx = ssl.create_default_context(cafile=path)
        else:
            raise VallumError(0, "InvalidCABundle", f"no CA bundle at {path!r}")
    else:
        raise TypeError("verify must be a bool, a path or an ssl.SSLContext")
    ctx.minimum_version = max(ctx.minimum_version, ssl.TLSVersion.TLSv1_2)
    return ctx


class Client:
    def __init__(self, endpoint: str, access_key: str, secret_key: str, *,
                 session_token: str | None = None, region: str = "us-east-1",
                 timeout: float = 60.0, session_level: str | None = None,
                 verify: bool | str | ssl.SSLContext = True) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https"):
            raise VallumError(0, "InvalidEndpoint",
                              f"endpoint must start with http:// or https://, got {endpoint!r}")
        self.endpoint = endpoint.rstrip("/")
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.https else 80)
        self.host_header = parts.netloc
        self._origin = f"{parts.scheme}://{parts.netloc}"   # what is signed: no endpoint path
        self.verify = verify
        # Built once: loading a CA bundle costs milliseconds, a handshake reuses the context.
        self._tls = tls_context(verify) if self.https else None
        self.access_key, self.secret_key, self.token = access_key, secret_key, session_token
        self.region, self.timeout = region, timeout
        self.session_level = session_level     # sent as x-vallum-session-level when set
        self._local = threading.local()
        self._open: list[http.client.HTTPConnection] = []     # every thread's, for close()
        self._open_lock = threading.Lock()

    @classmethod
    def from_env(cls) -> Client:
        """VALLUM_ENDPOINT (or AWS_ENDPOINT_URL) and the AWS_* credentials variables."""
        env = os.environ
        endpoint = env.get("VALLUM_ENDPOINT") or env.get("AWS_ENDPOINT_URL") or "http://127.0.0.1:9000"
        key = env.get("VALLUM_ACCESS_KEY") or env.get("AWS_ACCESS_KEY_ID") or env.get("VALLUM_ROOT_ACCESS_KEY")
        secret = (env.get("VALLUM_SECRET_KEY") or env.get("AWS_SECRET_ACCESS_KEY")
                  or env.get("VALLUM_ROOT_SECRET_KEY"))
        if not key or not secret:
            raise VallumError(0, "NoCredentials", "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                                                  "(or VALLUM_ACCESS_KEY / VALLUM_SECRET_KEY)")
        bundle = env.get("VALLUM_CA_BUNDLE") or env.get("AWS_CA_BUNDLE")
        return cls(endpoint, key, secret, session_token=env.get("AWS_SESSION_TOKEN"),
                   region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
                   verify=bundle or True)

    # ------------------------------------------------------------ transport
    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._tls is not None:
                conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                                   context=self._tls)
            else:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._local.conn = conn
            with self._open_lock:
                self._open = [c for c in self._open if c.sock is not None]
                self._open.append(conn)
        return conn

    def close(self) -> None:
        """Close the keep-alive connections every thread opened (a server counts them)."""
        with self._open_lock:
            conns, self._open = self._open, []
        for conn in conns:
            conn.close()

    def sign(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
             payload_hash: str) -> dict[str, str]:
        """The headers to send, SigV4-signed by the same code the gateway verifies with."""
        h = {k.lower(): str(v).strip() for k, v in headers.items()}
        h["host"] = self.host_header
        if self.token:
            h["x-amz-security-token"] = self.token
        if self.session_level:
            h.setdefault("x-vallum-session-level", self.session_level)
        signed = sign_headers(method, self._origin + _target(path, query), h, payload_hash,
                              self.access_key, self.secret_key, self.region, time.time())
        return {k.lower(): v for k, v in signed.items()}

    def request(self, method: str, path: str, *, query: dict[str, str] | None = None,
                body: bytes = b"", headers: dict[str, str] | None = None, stream_to=None
                ) -> tuple[int, dict[str, str], bytes]:
        query = query or {}
        h = self.sign(method, path, query, dict(headers or {}), hashlib.sha256(body).hexdigest())
        url = _target(path, query)
        for attempt in (0, 1):
            conn = self._conn()
            try:
                conn.request(method, url, body=body or None, headers=h)
                resp = conn.getresponse()
                rh = {k.lower(): v for k, v in resp.getheaders()}
                if stream_to is not None and 200 <= resp.status < 300:
                    while chunk := resp.read(1 << 20):
                        stream_to.write(chunk)
                    data = b""
                else:
                    data = resp.read()
                return resp.status, rh, data
            except (http.client.HTTPException, ConnectionError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
                # A keep-alive connection the server closed meanwhile: reconnect once.
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    # ------------------------------------------------------------ S3 (what tasks need)
    def get_object(self, bucket: str, key: str) -> bytes:
        status, _, data = self.request("GET", f"/{bucket}/{key}")
        _check_s3(status, data)
        return data

    def download(self, bucket: str, key: str, dest: str) -> None:
        with open(dest, "wb") as f:
            status, _, data = self.request("GET", f"/{bucket}/{key}", stream_to=f)
        _check_s3(status, data)

    def put_object(self, bucket: str, key: str, data: bytes,
                   content_type: str = "application/octet-stream",
                   label: str | None = None) -> None:
        """PUT one object; ``label`` sets its classification (x-vallum-classification)."""
        headers = {"content-type": content_type}
        if label:
            headers["x-vallum-classification"] = label
        status, _, body = self.request("PUT", f"/{bucket}/{key}", body=data, headers=headers)
        _check_s3(status, body)

    def list_objects(self, bucket: str, prefix: str = "") -> Iterator[tuple[str, int]]:
        token = None
        while True:
            q = {"list-type": "2", "prefix": prefix}
            if token:
                q["continuation-token"] = token
            status, _, data = self.request("GET", f"/{bucket}", query=q)
            _check_s3(status, data)
            root = ElementTree.fromstring(data)
            for c in root.iter(_S3NS + "Contents"):
                yield c.findtext(_S3NS + "Key") or "", int(c.findtext(_S3NS + "Size") or 0)
            if root.findtext(_S3NS + "IsTruncated") != "true":
                return
            token = root.findtext(_S3NS + "NextContinuationToken")

    # ------------------------------------------------------------ compute API
    def call(self, method: str, path: str, doc: Any = None, query: dict[str, str] | None = None) -> Any:
        body = json.dumps(doc).encode() if doc is not None else b""
        headers = {"content-type": "application/json"} if doc is not None else {}
        status, _, data = self.request(method, path, query=query, body=body, headers=headers)
        try:
            out = json.loads(data or b"null")
        except ValueError:
            out = None
        if status >= 300:
            err = (out or {}).get("error", {}) if isinstance(out, dict) else {}
            raise VallumError(status, err.get("code", str(status)),
                              err.get("message", data[:200].decode("utf-8", "replace")))
        return out

    def submit(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", "/-/jobs/v1/jobs", spec)

    def submit_batch(self, jobs: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Several jobs at once; ``depends_on`` may name other keys of ``jobs``."""
        return self.call("POST", "/-/jobs/v1/jobs", {"jobs": jobs})

    def jobs(self, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        q = {"limit": str(limit), **({"state": state} if state else {})}
        return self.call("GET", "/-/jobs/v1/jobs", query=q)["jobs"]

    def job(self, job_id: str) -> dict[str, Any]:
        return self.call("GET", f"/-/jobs/v1/jobs/{job_id}")

    def tasks(self, job_id: str) -> list[dict[str, Any]]:
        return self.call("GET", f"/-/jobs/v1/jobs/{job_id}/tasks")["tasks"]

    def logs(self, job_id: str, task: int = 0, offset: int = 0) -> dict[str, Any]:
        """{"data": text, "offset": next offset, "done": bool}"""
        return self.call("GET", f"/-/jobs/v1/jobs/{job_id}/logs",
                         query={"task": str(task), "offset": str(offset)})

    def follow_logs(self, job_id: str, task: int = 0, poll: float = 0.3) -> Iterator[str]:
        offset = 0
        while True:
            page = self.logs(job_id, task, offset)
            if page["data"]:
                yield page["data"]
            offset = page["offset"]
            if page["done"]:
                return
            time.sleep(poll)

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self.call("POST", f"/-/jobs/v1/jobs/{job_id}/cancel", {})

    def wait(self, job_id: str, timeout: float = 600.0, poll: float = 0.05) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["state"] in TERMINAL:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['state']} after {timeout:g}s")
            time.sleep(poll)
            poll = min(poll * 1.5, 1.0)

    def create_function(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return self.call("PUT", f"/-/functions/v1/functions/{name}", spec)

    def functions(self) -> list[dict[str, Any]]:
        return self.call("GET", "/-/functions/v1/functions")["functions"]

    def function(self, name: str) -> dict[str, Any]:
        return self.call("GET", f"/-/functions/v1/functions/{name}")

    def delete_function(self, name: str) -> dict[str, Any]:
        """Delete a function with its triggers and the bucket-notification entries
        targeting it (one transaction): {"deleted": name, "triggers_deleted": [ids]}."""
        return self.call("DELETE", f"/-/functions/v1/functions/{name}")

    def invoke(self, name: str, payload: Any = None, *, asynchronous: bool = False) -> Any:
        """Synchronous: the function's JSON result (VallumError FunctionError on failure).
        Asynchronous: the invocation job ({"id": ...})."""
        q = {"async": "1"} if asynchronous else None
        return self.call("POST", f"/-/functions/v1/functions/{name}/invoke",
                         {"payload": payload}, query=q)

    def runtimes(self) -> list[str]:
        """Names of the named runtimes a spec's ``venv`` may give."""
        return self.call("GET", "/-/jobs/v1/runtimes")["runtimes"]

    def add_trigger(self, trigger: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", "/-/jobs/v1/triggers", trigger)

    def triggers(self) -> list[dict[str, Any]]:
        return self.call("GET", "/-/jobs/v1/triggers")["triggers"]

    def delete_trigger(self, trigger_id: str) -> None:
        self.call("DELETE", f"/-/jobs/v1/triggers/{trigger_id}")


def _check_s3(status: int, data: bytes) -> None:
    if status >= 300:
        code = message = ""
        try:
            root = ElementTree.fromstring(data)
            code, message = root.findtext("Code") or "", root.findtext("Message") or ""
        except Exception:  # noqa: BLE001, S110 - not XML: report the status alone
            pass
        raise VallumError(status, code or str(status), message)
