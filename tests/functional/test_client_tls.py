"""vallum.client over HTTPS: a real `vallum serve --tls-cert/--tls-key` with the dev CA of
`vallum certs dev`, trusted through ``verify=`` (a CA bundle), the environment
(VALLUM_CA_BUNDLE / AWS_CA_BUNDLE) and the CLI; untrusted certificates are refused."""

from __future__ import annotations

import http.client
import os
import ssl
import subprocess
import sys
import uuid

import pytest

from tests.support.server import ACCESS_KEY, SECRET_KEY, dev_certs, start_server, stop_server
from vallum.client import Client, VallumError

ADDER = "def handler(event, context):\n    return {'sum': event['a'] + event['b']}\n"


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    if os.environ.get("VALLUM_TEST_ENDPOINT"):
        pytest.skip("starts its own server")
    base = tmp_path_factory.mktemp("client-tls")
    certs, other = dev_certs(base / "certs"), dev_certs(base / "other-ca")
    # (the second, unrelated CA must not be trusted for this server)
    srv = start_server(base / "data", tls_certs=certs)
    try:
        yield srv.endpoint, certs, other
    finally:
        stop_server(srv)


def test_s3_and_compute_calls_over_https_with_a_ca_bundle(tls):
    endpoint, certs, _ = tls
    c = Client(endpoint, ACCESS_KEY, SECRET_KEY, verify=str(certs / "ca.pem"))
    assert c.https and c.port == int(endpoint.rsplit(":", 1)[1])
    bucket = "tls-" + uuid.uuid4().hex[:12]
    status, _, _ = c.request("PUT", f"/{bucket}")
    assert status == 200
    c.put_object(bucket, "dir/a.txt", b"over tls")
    assert c.get_object(bucket, "dir/a.txt") == b"over tls"
    assert list(c.list_objects(bucket, "dir/")) == [("dir/a.txt", 8)]
    # The JSON compute API through the same TLS connection (kept alive between calls).
    c.create_function("adder", {"handler": "main.handler", "code": ADDER})
    assert [f["name"] for f in c.functions()] == ["adder"]
    assert c.invoke("adder", {"a": 2, "b": 40}) == {"result": {"sum": 42}}
    c.delete_function("adder")
    with pytest.raises(VallumError) as exc:
        c.function("adder")
    assert exc.value.status == 404
    # The certificate names localhost too: the host name is checked, and it matches.
    by_name = Client(endpoint.replace("127.0.0.1", "localhost"), ACCESS_KEY, SECRET_KEY,
                     verify=certs / "ca.pem")     # a path object works as well
    assert by_name.get_object(bucket, "dir/a.txt") == b"over tls"


def test_untrusted_certificates_are_refused(tls):
    endpoint, _, other = tls
    for verify in (True, str(other / "ca.pem")):     # system CAs; an unrelated private CA
        c = Client(endpoint, ACCESS_KEY, SECRET_KEY, verify=verify)
        with pytest.raises(ssl.SSLCertVerificationError):
            c.functions()
    insecure = Client(endpoint, ACCESS_KEY, SECRET_KEY, verify=False)   # explicit opt-out
    assert isinstance(insecure.functions(), list)


def test_plain_http_client_gets_no_answer_from_the_tls_port(tls):
    endpoint, _, _ = tls
    c = Client(endpoint.replace("https://", "http://"), ACCESS_KEY, SECRET_KEY, timeout=5)
    with pytest.raises((OSError, http.client.HTTPException)):   # never a silent downgrade
        c.functions()


def test_from_env_and_the_cli_use_the_ca_bundle(tls, monkeypatch):
    endpoint, certs, _ = tls
    monkeypatch.setenv("VALLUM_ENDPOINT", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.delenv("VALLUM_CA_BUNDLE", raising=False)
    monkeypatch.setenv("AWS_CA_BUNDLE", str(certs / "ca.pem"))
    assert isinstance(Client.from_env().functions(), list)
    env = dict(os.environ)
    ok = subprocess.run([sys.executable, "-m", "vallum", "fn", "ls"], env=env,
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    env.pop("AWS_CA_BUNDLE")
    refused = subprocess.run([sys.executable, "-m", "vallum", "fn", "ls"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr
    env["VALLUM_CA_BUNDLE"] = str(certs / "missing.pem")
    usage = subprocess.run([sys.executable, "-m", "vallum", "fn", "ls"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "no CA bundle" in usage.stderr


def test_bad_endpoints_and_bundles_are_refused_up_front():
    with pytest.raises(VallumError) as exc:
        Client("ftp://127.0.0.1:21", "k", "s")
    assert exc.value.code == "InvalidEndpoint"
    with pytest.raises(VallumError) as exc:
        Client("https://127.0.0.1:1", "k", "s", verify="/nonexistent/ca.pem")
    assert exc.value.code == "InvalidCABundle"
    with pytest.raises(TypeError):
        Client("https://127.0.0.1:1", "k", "s", verify=3)     # type: ignore[arg-type]
    assert Client("https://example.test", "k", "s").port == 443
    assert Client("http://example.test", "k", "s").port == 80
