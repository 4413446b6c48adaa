"""Network jobs against a gateway that serves HTTPS: the job gets an https endpoint and a CA
bundle it can read, so boto3 inside the sandbox verifies the gateway's certificate; the
bundle holds certificates only, never the server's private key.

boto3 is staged into the job as code (the sandbox's interpreter may not have it): the
pure-Python packages from this interpreter, with botocore's models trimmed to S3.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
from pathlib import Path

import boto3
import botocore
import dateutil
import jmespath
import pytest
import s3transfer
import six
import urllib3
from botocore.config import Config

from tests.support.compute import put_many, read
from tests.support.server import dev_certs, start_server, stop_server
from vallum.client import Client
from vallum.compute import gateway_ca

pytestmark = pytest.mark.skipif(bool(os.environ.get("VALLUM_TEST_ENDPOINT")),
                                reason="starts its own TLS gateway")

JOB = r'''
import json, os, sys
sys.path.insert(0, os.environ["VALLUM_CODE"])
import boto3
from botocore.config import Config
E = os.environ
report = {k: E.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE",
                                "SSL_CERT_FILE")}
bundle = open(E["AWS_CA_BUNDLE"], "rb").read()
report["bundle"] = bundle.decode()
report["bundle_mode"] = oct(os.stat(E["AWS_CA_BUNDLE"]).st_mode & 0o777)
report["env_values"] = sorted(E.values())
try:
    open(E["KEY_PATH"], "rb").read()
    report["key_readable"] = True
except OSError:
    report["key_readable"] = False
s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"},
                                      retries={"max_attempts": 1}))
bucket = E["BUCKET"]
# Its credentials write the output prefix and read the inputs: PUT there, GET one of these.
s3.put_object(Bucket=bucket, Key=E["PUT_KEY"], Body=b"over https")
report["got"] = s3.get_object(Bucket=bucket, Key=E["GET_KEY"])["Body"].read().decode()
# Verification really happens: with botocore's public CAs instead, the same call fails.
try:
    boto3.client("s3", verify=True, config=Config(s3={"addressing_style": "path"},
                 retries={"max_attempts": 1})).head_object(Bucket=bucket, Key=E["GET_KEY"])
    report["unverified"] = "worked"
except Exception as exc:
    report["unverified"] = type(exc).__name__
open(os.path.join(E["VALLUM_OUTPUT"], "report.json"), "w").write(json.dumps(report))
print("ok", report["got"])
'''

_PACKAGES = (boto3, botocore, s3transfer, jmespath, dateutil, urllib3)


def boto3_tree() -> dict[str, bytes]:
    """{relative path: bytes} of boto3 and its dependencies, botocore data for S3 only."""
    files: dict[str, bytes] = {"six.py": Path(six.__file__).read_bytes()}
    for pkg in _PACKAGES:
        root = Path(pkg.__file__).parent
        for dirpath, dirnames, filenames in os.walk(root):
            rel = Path(dirpath).relative_to(root.parent)
            dirnames[:] = [d for d in dirnames if d != "__pycache__"
                           and not (rel.parts[1:] == ("data",) and d != "s3")]
            for name in filenames:
                if name.endswith(".pyc") or name.startswith("examples-"):
                    continue
                files[f"{rel.as_posix()}/{name}"] = (Path(dirpath) / name).read_bytes()
    return files


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    return dev_certs(tmp_path_factory.mktemp("certs") / "dev")


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory, certs):
    srv = start_server(tmp_path_factory.mktemp("tls-jobs") / "data", tls_certs=certs)
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def s3(tls_server, certs):
    cfg = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                 max_pool_connections=16)
    return boto3.client("s3", endpoint_url=tls_server.endpoint, verify=str(certs / "ca.pem"),
                        aws_access_key_id=tls_server.access_key, config=cfg,
                        aws_secret_access_key=tls_server.secret_key, region_name=tls_server.region)


@pytest.fixture(scope="module")
def api(tls_server, certs):
    return Client(tls_server.endpoint, tls_server.access_key, tls_server.secret_key,
                  region=tls_server.region, verify=str(certs / "ca.pem"))


def test_network_job_uses_boto3_over_https_and_never_sees_the_key(api, s3, certs):
    bucket = "tls-jobs"
    s3.create_bucket(Bucket=bucket)
    put_many(s3, bucket, {f"py/{k}": v for k, v in boto3_tree().items()})
    s3.put_object(Bucket=bucket, Key="data/hello.txt", Body=b"hello from the gateway")
    key_path = certs / "server.key"
    job = api.submit({"runtime": "python", "name": "tls", "network": True, "code": JOB,
                      "code_uri": f"s3://{bucket}/py/", "output": f"s3://{bucket}/out/",
                      "inputs": [f"s3://{bucket}/data/hello.txt"],
                      "env": {"BUCKET": bucket, "KEY_PATH": str(key_path),
                              "PUT_KEY": "out/via-https", "GET_KEY": "data/hello.txt"}})
    done = api.wait(job["id"], timeout=150)
    logs = api.logs(job["id"])["data"]
    assert done["state"] == "SUCCEEDED", (done, logs)
    assert logs.endswith("ok hello from the gateway\n"), logs

    # The object is really there, written through the job's HTTPS connection.
    assert read(s3, bucket, "out/via-https") == b"over https"

    report = json.loads(read(s3, bucket, "out/report.json"))
    port = tls_server_port(api.endpoint)
    assert report["AWS_ENDPOINT_URL"] == f"https://127.0.0.1:{port}"
    assert report["got"] == "hello from the gateway"
    assert report["unverified"] == "SSLError"        # public CAs alone do not verify it
    assert report["bundle_mode"] == "0o644"
    bundle = report["bundle"].encode()
    assert (certs / "ca.pem").read_bytes().strip() in bundle
    assert (certs / "server.pem").read_bytes().strip() in bundle
    key = key_path.read_bytes()
    assert b"PRIVATE KEY" not in bundle and key.strip() not in bundle
    key_body = b"".join(key.splitlines()[1:-1]).decode()
    assert not any("PRIVATE KEY" in v or key_body[:32] in v.replace("\n", "")
                   for v in report["env_values"])
    assert report["key_readable"] is False
    if report["REQUESTS_CA_BUNDLE"] is not None:     # bwrap: the gateway is all it can reach
        assert report["REQUESTS_CA_BUNDLE"] == report["SSL_CERT_FILE"] == report["AWS_CA_BUNDLE"]


def tls_server_port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def test_bundle_drops_a_private_key_kept_in_the_certificate_file(tmp_path, certs):
    """A combined PEM (certificate + key) as --tls-cert: the task gets the certificates only,
    plus the dev CA beside it; without a CA beside it, the system's CAs anchor the chain."""
    combined = tmp_path / "server.pem"
    combined.write_bytes((certs / "server.key").read_bytes() + (certs / "server.pem").read_bytes())
    shutil.copy(certs / "ca.pem", tmp_path / "ca.pem")
    data = gateway_ca.bundle_for(combined)
    assert b"PRIVATE KEY" not in data
    assert data == (certs / "server.pem").read_bytes() + (certs / "ca.pem").read_bytes()

    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "server.pem").write_bytes(combined.read_bytes())
    data = gateway_ca.bundle_for(alone / "server.pem")
    assert data.startswith((certs / "server.pem").read_bytes())
    assert b"PRIVATE KEY" not in data and (certs / "ca.pem").read_bytes() not in data



def test_bundle_verifies_the_live_gateway_with_default_checks(tmp_path, tls_server, certs):
    """OpenSSL defaults (full chain, host name 127.0.0.1), as the task's clients use them."""
    (tmp_path / "bundle.pem").write_bytes(gateway_ca.bundle_for(certs / "server.pem"))
    ctx = ssl.create_default_context(cafile=str(tmp_path / "bundle.pem"))
    port = tls_server_port(tls_server.endpoint)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
    # The leaf alone is no anchor for OpenSSL: the CA beside it is what makes this work.
    (tmp_path / "leaf.pem").write_bytes((certs / "server.pem").read_bytes())
    leaf_only = ssl.create_default_context(cafile=str(tmp_path / "leaf.pem"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            leaf_only.wrap_socket(raw, server_hostname="127.0.0.1")


def test_task_file_is_written_once_without_following_links(tmp_path):
    (tmp_path / "elsewhere").write_bytes(b"x")
    os.symlink(tmp_path / "elsewhere", tmp_path / gateway_ca.TASK_FILE)
    with pytest.raises(OSError):
        gateway_ca.write_task_bundle(tmp_path, b"cert")
    assert (tmp_path / "elsewhere").read_bytes() == b"x"
    os.unlink(tmp_path / gateway_ca.TASK_FILE)
    path = gateway_ca.write_task_bundle(tmp_path, b"cert")
    assert path.read_bytes() == b"cert" and path.stat().st_mode & 0o777 == 0o644
