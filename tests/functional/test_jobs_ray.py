"""The job suite on the Ray executor: `vallum serve --compute ray://127.0.0.1:PORT` against a
Ray head this module starts on loopback (and stops) itself."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.functional.compute_util import client_of, put_many, read
from tests.functional.conftest import free_port, start_server, stop_server

ray = pytest.importorskip("ray")
RAY = str(Path(sys.executable).parent / "ray")


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    if not os.path.exists(RAY):
        pytest.skip("the ray CLI is not installed")
    port, client_port = free_port(), free_port()
    lo = 20000 + (os.getpid() % 200) * 200
    tmp = Path(tempfile.mkdtemp(prefix="vray", dir="/tmp"))   # short: Ray's socket paths
    log = open(tmp / "ray.log", "wb")
    proc = subprocess.Popen(
        [RAY, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
         f"--ray-client-server-port={client_port}", "--include-dashboard=false",
         f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
         f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}",
         f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
         "--num-cpus=2", "--disable-usage-stats", f"--min-worker-port={lo}",
         f"--max-worker-port={lo + 150}", f"--temp-dir={tmp / 'r'}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0"))
    deadline = time.monotonic() + 90
    while b"Ray runtime started" not in (tmp / "ray.log").read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            _kill(proc)
            pytest.skip("ray start --head failed: " + (tmp / "ray.log").read_text()[-500:])
        time.sleep(0.5)
    yield f"127.0.0.1:{port}"
    try:
        os.killpg(proc.pid, signal.SIGTERM)      # `ray start --block` stops what it started
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    _kill(proc)
    shutil.rmtree(tmp, ignore_errors=True)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


@pytest.fixture(scope="module")
def ray_server(ray_head, tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("vray") / "data", "--compute", f"ray://{ray_head}")
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


def test_job_runs_on_ray_with_inputs_outputs_and_logs(api, rbucket):
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


def test_array_job_on_ray(api, rbucket):
    s3, bucket = rbucket
    put_many(s3, bucket, {f"docs/{i:03d}.txt": b"w " * (i + 1) for i in range(20)})
    job = api.submit({"runtime": "command", "array": f"s3://{bucket}/docs/",
                      "output": f"s3://{bucket}/counts/", "parallelism": 4,
                      "command": ["sh", "-c", 'cat "$VALLUM_INPUT"/* | wc -w > "$VALLUM_OUTPUT/n"']})
    done = api.wait(job["id"], timeout=240)
    assert done["state"] == "SUCCEEDED", done
    for i in (0, 7, 19):
        assert int(read(s3, bucket, f"counts/{i:03d}.txt/n")) == i + 1


def test_failure_retry_timeout_and_cancel_on_ray(api, rbucket):
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


def test_sandbox_holds_on_ray(api, rbucket):
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
