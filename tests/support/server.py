"""Run the real `vallum serve` process on a free loopback port, and small helpers around it."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

ACCESS_KEY = "VALLUMTESTROOTKEY000"
SECRET_KEY = "vallum-test-root-secret-key-0000000000000"
REGION = "us-east-1"
STARTED: list[int] = []       # pids of the servers this process started (tests/conftest.py)


@dataclass
class Server:
    endpoint: str
    access_key: str
    secret_key: str
    region: str
    data_dir: Path | None
    proc: subprocess.Popen | None

    def client(self, service: str = "s3", **config):
        cfg = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **config)
        return boto3.client(service, endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name=self.region, config=cfg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(endpoint: str, proc: subprocess.Popen | None, timeout: float = 30.0, *,
               context: ssl.SSLContext | None = None, log_path: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            log = log_path.read_text(errors="replace") if log_path is not None else ""
            raise RuntimeError(f"vallum serve exited with {proc.returncode}\n{log}")
        try:
            with urllib.request.urlopen(endpoint + "/-/health/ready", timeout=1, context=context) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("vallum serve did not become ready")


def server_log(data_dir: Path) -> Path:
    """Where start_server sends the server's output."""
    return data_dir.parent / f"{data_dir.name}-server.log"


def dev_certs(out: Path) -> Path:
    """`vallum certs dev --out OUT` (a CA and a server certificate for 127.0.0.1/localhost)."""
    made = subprocess.run([sys.executable, "-m", "vallum", "certs", "dev", "--out", str(out)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        raise RuntimeError(f"vallum certs dev failed: {made.stderr}")
    return out


def start_server(data_dir: Path, *extra: str, env: dict | None = None,
                 tls_certs: Path | None = None, launcher: list[str] | None = None,
                 client_cert: tuple[str, str] | None = None) -> Server:
    """Start `vallum serve` on a free port; the caller stops it (stop_server). With
    ``tls_certs`` (a `vallum certs dev` directory) it serves HTTPS with that certificate;
    ``launcher`` replaces ``[sys.executable]`` (e.g. setpriv ... python, another user);
    ``client_cert`` (cert, key) is what the readiness probe presents."""
    port = free_port()
    full_env = dict(os.environ, VALLUM_ROOT_ACCESS_KEY=ACCESS_KEY, VALLUM_ROOT_SECRET_KEY=SECRET_KEY)
    if os.geteuid() == 0:        # CI runs as root: tenant compute from root, said explicitly
        full_env["VALLUM_ALLOW_ROOT_COMPUTE"] = "1"
    full_env.update(env or {})
    scheme, context = "http", None
    if tls_certs is not None:
        extra = (*extra, "--tls-cert", str(tls_certs / "server.pem"),
                 "--tls-key", str(tls_certs / "server.key"))
        scheme, context = "https", ssl.create_default_context(cafile=str(tls_certs / "ca.pem"))
        if client_cert is not None:      # a server requiring client certificates
            context.load_cert_chain(*client_cert)
    log_path = server_log(data_dir)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [*(launcher or [sys.executable]), "-m", "vallum", "serve", "--data-dir", str(data_dir),
             "--address", f"127.0.0.1:{port}", *extra],
            env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    STARTED.append(proc.pid)
    endpoint = f"{scheme}://127.0.0.1:{port}"
    server = Server(endpoint, ACCESS_KEY, SECRET_KEY, REGION, data_dir, proc)
    try:
        wait_ready(endpoint, proc, context=context, log_path=log_path)
        # Readiness means one process is up: with --workers N wait for all of them, so a
        # test about several workers never runs on one (plain HTTP; a TLS test waits itself).
        workers = int(extra[extra.index("--workers") + 1]) if "--workers" in extra else 1
        if workers > 1 and tls_certs is None:
            wait_all_workers(server, workers)
    except Exception:
        proc.kill()
        proc.wait()
        raise
    return server


def stop_server(server: Server, sig: str = "term") -> None:
    if server.proc is None or server.proc.poll() is not None:
        return
    if sig == "kill":
        server.proc.kill()
    else:
        server.proc.terminate()
    try:
        server.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


def code(exc: pytest.ExceptionInfo) -> str:
    """The S3 error code of a ClientError caught by pytest.raises."""
    return exc.value.response["Error"]["Code"]


def empty_and_delete(s3, name: str) -> None:
    try:
        for up in s3.list_multipart_uploads(Bucket=name).get("Uploads", []):
            s3.abort_multipart_upload(Bucket=name, Key=up["Key"], UploadId=up["UploadId"])
        paginator = s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=name):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
        s3.delete_bucket(Bucket=name)
    except Exception:  # noqa: BLE001 - cleanup must not mask the test's own failure
        pass


def wait_all_workers(server: Server, workers: int, timeout: float = 60.0) -> None:
    """Until each of ``workers`` gateway processes has answered a health check (readiness
    means one is up; the others may still be starting). Checks go 8 at a time on fresh
    connections, which the kernel spreads over the processes accepting them; each process
    has its own request-id prefix (its first 8 hex digits)."""
    from concurrent.futures import ThreadPoolExecutor

    def check(_: int) -> str:
        req = urllib.request.Request(server.endpoint + "/-/health/live",
                                     headers={"connection": "close"})
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
            return resp.headers["x-amz-request-id"][:8]

    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    with ThreadPoolExecutor(8) as pool:
        while len(seen) < workers:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(seen)} of {workers} workers answered")
            seen.update(pool.map(check, range(8)))


def kill_amid_writes(server: Server, bucket: str, at_least: int, growth: int) -> dict[str, bytes]:
    """PUTs from 3 threads into ``bucket`` until ``at_least`` are acknowledged, then SIGKILL of
    the gateway; returns what was acknowledged (key -> body). Bodies run from ~70 KB up to
    ``growth`` times that, so some are large enough to be in flight when the kill lands."""
    acked: dict[str, bytes] = {}
    stop = threading.Event()

    def writer(n: int) -> None:
        s3 = server.client()
        i = 0
        while not stop.is_set():
            key, body = f"w{n}-{i}", os.urandom(70_000 + 4096 * (i % 8)) * (1 + (i % 3) * growth)
            try:
                s3.put_object(Bucket=bucket, Key=key, Body=body)
            except Exception:
                return                                  # the gateway is gone: not acknowledged
            acked[key] = body
            i += 1

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acked) < at_least and time.monotonic() < deadline:
        time.sleep(0.05)
    stop_server(server, sig="kill")
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) >= at_least, f"only {len(acked)} writes acknowledged before the kill"
    return acked
