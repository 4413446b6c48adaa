"""`vallum serve` as operators see it: health, file modes, graceful SIGTERM, flags."""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.support.server import (
    ACCESS_KEY,
    SECRET_KEY,
    free_port,
    start_server,
    stop_server,
    wait_ready,
)


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


# --- settings from a file, JSON logs, the root secret shown once ----------------------------
def _bare_env(**extra: str) -> dict[str, str]:
    """The environment without root credentials (so the server generates its own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALLUM_")}
    env.update(extra)
    return env


class Serving:
    """`vallum serve` with stdout and stderr kept apart; stopped by close()."""

    def __init__(self, tmp_path, *args: str, env: dict[str, str] | None = None, name: str = "run") -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.out, self.err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vallum", "serve", "--address", f"127.0.0.1:{self.port}", *args],
                env=env if env is not None else _bare_env(), stdout=out, stderr=err,
                start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.err.read_text()
            try:
                with urllib.request.urlopen(self.endpoint + "/-/health/live", timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        self.close()
        raise AssertionError("vallum serve did not come up")

    def close(self) -> tuple[str, str]:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.out.read_text(), self.err.read_text()


def test_config_file_sets_the_server_and_flags_override_it(tmp_path):
    conf = tmp_path / "vallum.toml"
    conf.write_text(f'data_dir = "{tmp_path / "from-file"}"\nregion = "file-region"\n'
                    'address = "127.0.0.1:1"\n')
    srv = Serving(tmp_path, "--config", str(conf), env=_bare_env(VALLUM_REGION="env-region"))
    out, _ = srv.close()
    assert f"Data directory:     {tmp_path / 'from-file'}" in out
    assert "(region env-region)" in out                        # the environment beats the file
    assert f"127.0.0.1:{srv.port}" in out                      # the flag beats the file
    assert f"Config file:        {conf} (data_dir)" in out


@pytest.mark.parametrize("text, word", [('colour = "red"\n', "unknown setting 'colour'"),
                                        ('workers = "two"\n', "workers in")],
                         ids=["unknown", "type"])
def test_bad_config_file_exits_2_naming_the_key(tmp_path, text, word):
    conf = tmp_path / "vallum.toml"
    conf.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "vallum", "serve", "--config", str(conf)],
                          capture_output=True, text=True, timeout=60, env=_bare_env())
    assert proc.returncode == 2
    assert word in proc.stderr and str(conf) in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_json_logs_are_one_object_per_line(tmp_path):
    srv = Serving(tmp_path, "--data-dir", str(tmp_path / "d"), "--log-format", "json",
                  "--disk-reserve", "1000000TiB",      # every write refused: a warning to log
                  env=_bare_env(VALLUM_ROOT_ACCESS_KEY=ACCESS_KEY, VALLUM_ROOT_SECRET_KEY=SECRET_KEY))
    try:
        s3 = boto3.client("s3", endpoint_url=srv.endpoint, aws_access_key_id=ACCESS_KEY,
                          aws_secret_access_key=SECRET_KEY, region_name="us-east-1")
        with pytest.raises(ClientError) as err:
            s3.create_bucket(Bucket="refused")
        assert err.value.response["Error"]["Code"] == "XMinioStorageFull"
    finally:
        _, logs = srv.close()
    records = [json.loads(line) for line in logs.splitlines() if line.strip()]
    refused = [r for r in records if r["logger"] == "vallum.disk" and "CreateBucket" in r["message"]]
    assert refused and refused[0]["level"] == "warning"
    assert all({"time", "level", "logger", "message", "pid"} <= set(r) for r in records)


def test_root_secret_is_shown_once_then_never_again_and_rotate_replaces_it(tmp_path):
    data = tmp_path / "data"
    first = Serving(tmp_path, "--data-dir", str(data), name="first")
    out1, err1 = first.close()
    old = json.loads((data / "root-credentials.json").read_text())
    assert f"Root secret key:    {old['secret_key']}" in out1 and old["secret_key"] not in err1

    second = Serving(tmp_path, "--data-dir", str(data), name="second")
    try:
        s3 = boto3.client("s3", endpoint_url=second.endpoint, region_name="us-east-1",
                          aws_access_key_id=old["access_key"], aws_secret_access_key=old["secret_key"])
        s3.create_bucket(Bucket="still-works")
    finally:
        out2, err2 = second.close()
    assert old["secret_key"] not in out2 + err2
    assert "not shown again" in out2 and "vallum admin root rotate" in out2

    rotate = [sys.executable, "-m", "vallum", "admin", "root", "rotate", "--data-dir", str(data)]
    done = subprocess.run(rotate, capture_output=True, text=True, timeout=60, env=_bare_env())
    assert done.returncode == 0, done.stderr
    new = json.loads((data / "root-credentials.json").read_text())
    assert new["access_key"] == old["access_key"] and new["secret_key"] != old["secret_key"]
    assert f"Root secret key:    {new['secret_key']}" in done.stdout
    assert stat.S_IMODE(os.stat(data / "root-credentials.json").st_mode) == 0o600
    third = Serving(tmp_path, "--data-dir", str(data), name="third")
    try:
        def client(secret: str):
            return boto3.client("s3", endpoint_url=third.endpoint, region_name="us-east-1",
                                aws_access_key_id=new["access_key"], aws_secret_access_key=secret)
        assert [b["Name"] for b in client(new["secret_key"]).list_buckets()["Buckets"]] == ["still-works"]
        with pytest.raises(ClientError) as err:
            client(old["secret_key"]).list_buckets()
        assert err.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    finally:
        out3, err3 = third.close()
    assert new["secret_key"] not in out3 + err3
    # Credentials from the environment are changed there, not rotated.
    refused = subprocess.run(rotate, capture_output=True, text=True, timeout=60,
                             env=_bare_env(VALLUM_ROOT_ACCESS_KEY="A" * 20, VALLUM_ROOT_SECRET_KEY="s" * 40))
    assert refused.returncode == 1 and "VALLUM_ROOT_SECRET_KEY" in refused.stderr


def _limit_files(soft: int, hard: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return apply


def test_open_files_below_the_minimum_refuse_to_start(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "vallum", "serve", "--data-dir", str(tmp_path / "d"),
                           "--address", f"127.0.0.1:{free_port()}"], capture_output=True, text=True,
                          timeout=60, env=_bare_env(), preexec_fn=_limit_files(512, 512))
    assert proc.returncode == 1
    assert "open-files limit is 512" in proc.stderr and "LimitNOFILE" in proc.stderr


def test_soft_open_files_limit_is_raised_and_the_connection_cap_fits_the_hard_one(tmp_path):
    port = free_port()
    out = tmp_path / "out"
    with open(out, "wb") as f:
        proc = subprocess.Popen([sys.executable, "-m", "vallum", "serve", "--data-dir", str(tmp_path / "d"),
                                 "--address", f"127.0.0.1:{port}"], stdout=f, stderr=subprocess.STDOUT,
                                env=_bare_env(), preexec_fn=_limit_files(256, 2048), start_new_session=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
        assert re.search(r"Max open files\s+2048\s+2048", limits), limits
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "serving at most 1536 connections" in out.read_text()
