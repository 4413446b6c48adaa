"""The job suite on the Ray executor: `vallum serve --compute ray://127.0.0.1:PORT` against a
Ray head this module starts on loopback (and stops) itself.

Loopback only: ``--node-ip-address=127.0.0.1`` alone is not enough, because Ray swaps a
loopback node address for the machine's routable one (and then binds its gRPC servers
on all interfaces); RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 keeps 127.0.0.1, which makes the
GCS, raylet, agents and workers listen on 127.0.0.1 only. A test checks every listening
socket of the head's processes (and the gateway's) is on loopback while jobs run.
"""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest

from bench import rayhead
from tests.support import procs
from tests.support.compute import client_of, put_many, read
from tests.support.server import start_server, stop_server

# Keep the node address 127.0.0.1 (see above); no usage reporting.
RAY_ENV = dict(os.environ, **rayhead.RAY_ENV)


@pytest.fixture(scope="module")
def ray_head():
    # A real engine: a head that cannot start fails the tests, it does not skip them.
    assert rayhead.RAY.exists(), "the ray CLI is not installed (make test installs it)"
    try:
        head = rayhead.RayHead(2, dashboard=False).__enter__()
    except RuntimeError as exc:
        pytest.fail(f"the Ray head did not start: {exc}")
    try:
        yield head.gcs, head.proc.pid
    finally:
        head.__exit__()


def _listening(pids: set[int]) -> list[str]:
    """``ip:port`` of every TCP socket in LISTEN state owned by one of ``pids``."""
    inodes: dict[str, int] = {}
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes[link[8:-1]] = pid
        except OSError:
            continue
    found = []
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] != "0A" or f[9] not in inodes:          # 0A: LISTEN
                continue
            addr, port = f[1].split(":")
            found.append(f"{_ip(addr, v6)}:{int(port, 16)}")
    return found


def _ip(hexaddr: str, v6: bool) -> str:
    import ipaddress
    raw = bytes.fromhex(hexaddr)
    if not v6:
        return str(ipaddress.IPv4Address(raw[::-1]))
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    ip6 = ipaddress.IPv6Address(words)
    return str(ip6.ipv4_mapped or ip6)


def _loopback(addr: str) -> bool:
    import ipaddress
    return ipaddress.ip_address(addr.rsplit(":", 1)[0].strip("[]")).is_loopback


@pytest.fixture(scope="module")
def ray_server(ray_head, tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("vray") / "data", "--compute", f"ray://{ray_head[0]}",
                       env=RAY_ENV)
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def api(ray_server):
    return client_of(ray_server)


@pytest.fixture
def rbucket(ray_server):
    s3 = ray_server.client()
    name = "ray-" + os.urandom(6).hex()
    s3.create_bucket(Bucket=name)
    return s3, name


def _job_runs_on_ray_with_inputs_outputs_and_logs(api, rbucket):
    s3, bucket = rbucket
    s3.put_object(Bucket=bucket, Key="in/a.txt", Body=b"one two three")
    job = api.submit({"runtime": "python", "inputs": [f"s3://{bucket}/in/a.txt"],
                      "output": f"s3://{bucket}/out/",
                      "code": "import os\nn = len(open(os.environ['VALLUM_INPUT'] + '/a.txt')"
                              ".read().split())\nprint('words', n)\n"
                              "open(os.environ['VALLUM_OUTPUT'] + '/n', 'w').write(str(n))\n"})
    done = api.wait(job["id"], timeout=120)
    assert done["state"] == "SUCCEEDED", (done, api.logs(job["id"]))
    assert read(s3, bucket, "out/n") == b"3"
    assert api.logs(job["id"])["data"] == "words 3\n"


def _array_job_on_ray(api, rbucket):
    s3, bucket = rbucket
    put_many(s3, bucket, {f"docs/{i:03d}.txt": b"w " * (i + 1) for i in range(20)})
    job = api.submit({"runtime": "command", "array": f"s3://{bucket}/docs/",
                      "output": f"s3://{bucket}/counts/", "parallelism": 4,
                      "command": ["sh", "-c", 'cat "$VALLUM_INPUT"/* | wc -w > "$VALLUM_OUTPUT/n"']})
    done = api.wait(job["id"], timeout=240)
    assert done["state"] == "SUCCEEDED", done
    for i in (0, 7, 19):
        assert int(read(s3, bucket, f"counts/{i:03d}.txt/n")) == i + 1


def _failure_retry_timeout_and_cancel_on_ray(api, rbucket):
    _, bucket = rbucket
    out = f"s3://{bucket}/o/"
    retried = api.submit({"runtime": "python", "output": out, "retries": 1, "backoff_s": 0,
                          "code": "import os, sys; sys.exit(0 if os.environ['VALLUM_ATTEMPT'] == '2' else 5)"})
    failed = api.submit({"runtime": "python", "output": out, "code": "raise SystemExit(9)"})
    slow = api.submit({"runtime": "python", "output": out, "resources": {"wall_time_s": 1},
                       "code": "import time; time.sleep(60)"})
    assert api.wait(retried["id"], timeout=120)["state"] == "SUCCEEDED"
    assert api.tasks(retried["id"])[0]["attempts"] == 2
    f = api.wait(failed["id"], timeout=120)
    assert f["state"] == "FAILED" and f["exit_code"] == 9
    assert api.wait(slow["id"], timeout=120)["state"] == "TIMED_OUT"
    long = api.submit({"runtime": "python", "output": out, "code": "import time; time.sleep(120)"})
    deadline = time.monotonic() + 60
    while api.job(long["id"])["state"] != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.1)
    api.cancel(long["id"])
    deadline = time.monotonic() + 60
    while api.tasks(long["id"])[0]["state"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert api.tasks(long["id"])[0]["state"] == "CANCELLED"


def _sandbox_holds_on_ray(api, rbucket):
    _, bucket = rbucket
    job = api.submit({"runtime": "python", "output": f"s3://{bucket}/o/", "code": """
import socket
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2); print("NET")
except OSError:
    print("no network")
try:
    open("/etc/pwned", "w"); print("WROTE")
except OSError:
    print("read-only")
"""})
    assert api.wait(job["id"], timeout=120)["state"] == "SUCCEEDED"
    assert api.logs(job["id"])["data"] == "no network\nread-only\n"


def _descendants(roots: set[int]) -> set[int]:
    """``roots`` and every process below them."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    found, frontier = set(roots), set(roots)
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier and p not in found}
        found |= frontier
    return found


def _ray_and_the_gateway_listen_on_loopback_only(api, rbucket, ray_head, ray_server):
    _, bucket = rbucket
    job = api.submit({"runtime": "python", "output": f"s3://{bucket}/o/",
                      "code": "import time; time.sleep(4)"})
    deadline = time.monotonic() + 60
    while api.job(job["id"])["state"] != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)                                  # a Ray worker is up and running the task
    pids = _descendants({ray_head[1], ray_server.proc.pid}) | rayhead.family(ray_head[1])
    sockets = _listening(pids)
    assert len(sockets) >= 5, sockets                # GCS, raylet x2, agents, gateway, ...
    assert [s for s in sockets if not _loopback(s)] == [], sockets
    assert api.wait(job["id"], timeout=60)["state"] == "SUCCEEDED"


def _nothing_outlives_a_job_a_cancel_or_a_killed_worker(api, rbucket):
    """No bubblewrap and no task process of a job remains after it ends, after it is
    cancelled, or after the Ray worker running it is killed mid-task (the sandbox's
    watchdog kills its cgroup; bubblewrap alone could be left waiting or running)."""
    _, bucket = rbucket
    out = f"s3://{bucket}/o/"

    def job(seconds: int) -> tuple[dict, str]:
        marker = f"vallum-test-{uuid.uuid4().hex}"
        return api.submit({"runtime": "command", "output": out,
                           "command": ["sh", "-c", f"sleep {seconds}; true {marker}"]}), marker

    done, marker = job(0)
    assert api.wait(done["id"], timeout=120)["state"] == "SUCCEEDED"
    assert procs.gone(marker) == {}

    cancelled, marker = job(300)
    assert procs.wait_for(marker), "the task never started"
    api.cancel(cancelled["id"])
    assert procs.gone(marker, timeout=30) == {}

    for moment in ("starting", "running"):   # killed as its sandbox starts, and mid-task
        orphaned, marker = job(300)
        running = procs.wait_for(marker, poll=0 if moment == "starting" else 0.1)
        assert running, "the task never started"
        if moment == "running":
            time.sleep(1)
        workers = {pid for p in running for pid, cmd in procs.ancestors(p)
                   if cmd.startswith("ray::")}
        assert len(workers) == 1, (moment, running, workers)
        os.kill(workers.pop(), signal.SIGKILL)
        assert procs.gone(marker, timeout=30) == {}, moment
        ended = api.wait(orphaned["id"], timeout=120)
        # Told as such, without Ray's text (node addresses, worker pids, host paths).
        assert (ended["state"], ended["reason"]) == \
            ("FAILED", "ray: the worker running the task died"), ended


def test_job_suite_on_ray(api, rbucket, ray_head, ray_server):
    """One test, so that pytest-xdist never starts a second Ray head on another worker."""
    _job_runs_on_ray_with_inputs_outputs_and_logs(api, rbucket)
    _ray_and_the_gateway_listen_on_loopback_only(api, rbucket, ray_head, ray_server)
    _array_job_on_ray(api, rbucket)
    _failure_retry_timeout_and_cancel_on_ray(api, rbucket)
    _sandbox_holds_on_ray(api, rbucket)
    _nothing_outlives_a_job_a_cancel_or_a_killed_worker(api, rbucket)
