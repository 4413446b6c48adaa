"""`vallum serve` as operators see it: health, file modes, graceful SIGTERM, flags."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from tests.support.server import start_server, stop_server


def test_health_endpoints_need_no_credentials(server):
    for path in ("/-/health/live", "/-/health/ready"):
        with urllib.request.urlopen(server.endpoint + path, timeout=5) as r:
            assert r.status == 200


def test_data_files_are_private(server, s3, bucket):
    if server.data_dir is None:
        pytest.skip("external server")
    s3.put_object(Bucket=bucket, Key="big", Body=os.urandom(300 * 1024))
    s3.put_object(Bucket=bucket, Key="small", Body=b"x")
    for root, dirs, files in os.walk(server.data_dir):
        for name in files + dirs:
            mode = os.stat(os.path.join(root, name)).st_mode
            assert mode & (stat.S_IRWXG | stat.S_IRWXO) == 0, (os.path.join(root, name), oct(mode))


def test_sigterm_lets_an_inflight_upload_finish(tmp_path):
    srv = start_server(tmp_path / "data")
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="graceful")
        payload = os.urandom(4 * 1024 * 1024)
        chunks = [payload[i:i + 256 * 1024] for i in range(0, len(payload), 256 * 1024)]
        started = threading.Event()

        def slow_body():
            for i, chunk in enumerate(chunks):
                if i == 2:
                    started.set()
                    time.sleep(0.5)       # SIGTERM arrives while the body is still coming
                yield chunk

        result: dict = {}

        def upload():
            import http.client

            from botocore.auth import S3SigV4Auth
            from botocore.awsrequest import AWSRequest
            from botocore.credentials import Credentials

            url = f"{srv.endpoint}/graceful/obj"
            req = AWSRequest("PUT", url, data=payload, headers={"Content-Length": str(len(payload))})
            S3SigV4Auth(Credentials(srv.access_key, srv.secret_key), "s3", srv.region).add_auth(req)
            host = srv.endpoint.removeprefix("http://")
            conn = http.client.HTTPConnection(host, timeout=30)
            conn.putrequest("PUT", "/graceful/obj", skip_accept_encoding=True)
            for k, v in req.headers.items():
                conn.putheader(k, v)
            conn.endheaders()
            for chunk in slow_body():
                conn.send(chunk)
            resp = conn.getresponse()
            result["status"] = resp.status
            resp.read()
            conn.close()

        t = threading.Thread(target=upload)
        t.start()
        assert started.wait(10)
        srv.proc.terminate()
        t.join(30)
        assert result.get("status") == 200
        # uvicorn re-raises the SIGTERM after its graceful shutdown: exit by that signal or 0.
        assert srv.proc.wait(timeout=30) in (0, -15)
    finally:
        stop_server(srv)
    again = start_server(tmp_path / "data")
    try:
        body = again.client().get_object(Bucket="graceful", Key="obj")["Body"].read()
        assert hashlib.sha256(body).digest() == hashlib.sha256(payload).digest()
    finally:
        stop_server(again)


@pytest.mark.parametrize("args", [["--address", "nonsense"], ["--address", "127.0.0.1:99999"]])
def test_bad_flags_exit_2_with_one_line(tmp_path, args):
    proc = subprocess.run([sys.executable, "-m", "vallum", "serve", "--data-dir", str(tmp_path / "d"), *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "address" in proc.stderr.lower()
