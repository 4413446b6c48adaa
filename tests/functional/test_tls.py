"""TLS: `vallum certs dev` + `vallum serve --tls-cert/--tls-key`, used by boto3 over https."""

from __future__ import annotations

import os
import socket
import ssl
import urllib.request

import boto3
import pytest
from botocore.config import Config

from tests.support.server import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    dev_certs,
    start_server,
    stop_server,
)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    if os.environ.get("VALLUM_TEST_ENDPOINT"):
        pytest.skip("starts its own server")
    base = tmp_path_factory.mktemp("tls")
    certs = dev_certs(base / "certs")
    assert (certs / "server.key").stat().st_mode & 0o777 == 0o600
    srv = start_server(base / "data", tls_certs=certs)
    try:
        yield srv.endpoint, int(srv.endpoint.rsplit(":", 1)[1]), certs
    finally:
        stop_server(srv)


def client(endpoint, verify):
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY,
                        aws_secret_access_key=SECRET_KEY, region_name=REGION, verify=verify,
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def test_boto3_over_https_with_dev_ca(tls_server):
    endpoint, _, certs = tls_server
    s3 = client(endpoint, str(certs / "ca.pem"))
    s3.create_bucket(Bucket="tls-bucket")
    s3.put_object(Bucket="tls-bucket", Key="k", Body=b"over tls")
    assert s3.get_object(Bucket="tls-bucket", Key="k")["Body"].read() == b"over tls"
    localhost = client(endpoint.replace("127.0.0.1", "localhost"), str(certs / "ca.pem"))
    assert localhost.head_object(Bucket="tls-bucket", Key="k")["ContentLength"] == 8
    s3.delete_object(Bucket="tls-bucket", Key="k")
    s3.delete_bucket(Bucket="tls-bucket")


def test_untrusted_certificate_is_rejected(tls_server):
    endpoint, _, _ = tls_server
    from botocore.exceptions import SSLError

    with pytest.raises(SSLError):
        client(endpoint, True).list_buckets()


def test_tls_below_1_2_is_refused(tls_server):
    _, port, certs = tls_server
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(certs / "ca.pem"))
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            with ctx.wrap_socket(sock, server_hostname="127.0.0.1"):
                pass
    ok = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with ok.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_plain_http_is_not_served(tls_server):
    _, port, _ = tls_server
    with pytest.raises(Exception):  # noqa: B017 - any failure: no HTTP answer on the TLS port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/health/live", timeout=3) as r:
            r.read()


def test_sigterm_with_an_idle_tls_client_exits_promptly(tmp_path):
    """A pooled HTTPS client that keeps its connection open and idle (as boto3 does) must not
    hold a SIGTERM'd server for the whole graceful-shutdown timeout."""
    if os.environ.get("VALLUM_TEST_ENDPOINT"):
        pytest.skip("starts its own server")
    import http.client
    import time

    certs = dev_certs(tmp_path / "certs")
    srv = start_server(tmp_path / "data", tls_certs=certs)
    try:
        port = int(srv.endpoint.rsplit(":", 1)[1])
        ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
        conn.request("GET", "/-/health/live")
        resp = conn.getresponse()
        assert resp.status == 200
        resp.read()                              # keep-alive: the connection stays open, idle
        started = time.monotonic()
        srv.proc.terminate()
        code = srv.proc.wait(timeout=20)
        took = time.monotonic() - started
        conn.close()
        # uvicorn re-raises the SIGTERM after its graceful shutdown: exit by that signal or 0.
        assert code in (0, -15) and took < 5, (code, took)
    finally:
        stop_server(srv)
