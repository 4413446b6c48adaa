"""SSE-C test helpers: a TLS server of its own, customer-key headers, header rewriting."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from tests.support.server import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    dev_certs,
    server_log,
    start_server,
    stop_server,
)

CHUNK = 64 * 1024            # envelope.DEFAULT_CHUNK: the encryption chunk size
KEY_A = os.urandom(32)
KEY_B = os.urandom(32)


class TlsServer:
    """A `vallum serve --tls-cert/--tls-key` process of its own (data dir and log visible)."""

    def __init__(self, base: Path, env: dict | None = None) -> None:
        self.base = base
        self.certs = dev_certs(base / "certs")
        self.data_dir = base / "data"
        self.log_path = server_log(self.data_dir)
        self._server = start_server(self.data_dir, env=env, tls_certs=self.certs)
        self.endpoint = self._server.endpoint

    def client(self):
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name=REGION,
                            verify=str(self.certs / "ca.pem"),
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))

    def stop(self) -> None:
        stop_server(self._server)


def tls_server_fixture(tmp_path_factory, name: str, env: dict | None = None):
    if os.environ.get("VALLUM_TEST_ENDPOINT"):
        pytest.skip("starts its own TLS server")
    srv = TlsServer(tmp_path_factory.mktemp(name), env)
    try:
        yield srv
    finally:
        srv.stop()


def ssec(key: bytes) -> dict:
    return {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key}


def copy_ssec(key: bytes) -> dict:
    return {"CopySourceSSECustomerAlgorithm": "AES256", "CopySourceSSECustomerKey": key}


def key_md5(key: bytes) -> str:
    return base64.b64encode(hashlib.md5(key).digest()).decode()


def error(exc: pytest.ExceptionInfo) -> tuple[int, str, str]:
    r = exc.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"].get("Code", ""), r["Error"].get("Message", "")


def with_headers(client, event: str, set_: dict | None = None, drop: tuple = ()):
    """Rewrite the headers of the next request(s) for ``event`` (e.g. 'PutObject') before signing."""

    def hook(request, **_):
        for name in drop:
            if name in request.headers:
                del request.headers[name]
        for name, value in (set_ or {}).items():
            if name in request.headers:
                del request.headers[name]
            request.headers[name] = value

    client.meta.events.register_first(f"before-sign.s3.{event}", hook, unique_id=f"sse-test-{event}")
    return lambda: client.meta.events.unregister(f"before-sign.s3.{event}", unique_id=f"sse-test-{event}")
