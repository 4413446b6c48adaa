"""Sandbox escapes through the real server: each attempt must fail, and the job must say so.

Network, writing outside the scratch directory, reading another job's scratch,
forking past the process limit, a memory bomb, and reading root-only files.
"""

from __future__ import annotations

import time

import pytest

from tests.support import fixtures as functional
from tests.support.compute import client_of
from vallum.compute import sandbox

pytestmark = pytest.mark.skipif(sandbox.detect_mode() != "bwrap",
                                reason="bubblewrap cannot create namespaces here")


# The functional suite's fixtures (a real server on loopback, a client, a fresh bucket).
server, s3, bucket = functional.server, functional.s3, functional.bucket


@pytest.fixture(scope="module")
def api(server):
    return client_of(server)


def run(api, bucket, code, **extra):
    job = api.submit({"runtime": "python", "code": code, "output": f"s3://{bucket}/o/", **extra})
    done = api.wait(job["id"], timeout=60)
    return done, api.logs(job["id"])["data"]


def test_no_network(api, bucket, server):
    port = int(server.endpoint.rsplit(":", 1)[1])
    done, log = run(api, bucket, f"""
import socket
for host, port in (("127.0.0.1", {port}), ("1.1.1.1", 53), ("::1", {port})):
    try:
        socket.create_connection((host, port), timeout=2)
        print("CONNECTED", host)
    except OSError as exc:
        print("refused", host, type(exc).__name__)
""")
    assert done["state"] == "SUCCEEDED", log
    assert "CONNECTED" not in log and log.count("refused") == 3


def test_network_when_asked_reaches_only_the_gateway_with_scoped_credentials(api, s3, bucket):
    s3.put_object(Bucket=bucket, Key="in/x.txt", Body=b"payload")
    done, log = run(api, bucket, """
import os, socket
from vallum_probe import probe
""".replace("from vallum_probe import probe", """
import urllib.request
ep = os.environ["AWS_ENDPOINT_URL"]
print("endpoint", ep.startswith("http://127.0.0.1:"))
print("has creds", bool(os.environ["AWS_ACCESS_KEY_ID"]) and bool(os.environ["AWS_SESSION_TOKEN"]))
print("secret", os.environ["AWS_SECRET_ACCESS_KEY"])
with urllib.request.urlopen(ep + "/-/health/live", timeout=5) as r:
    print("gateway", r.read().decode().strip())
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2)
    print("OUTSIDE")
except OSError:
    print("outside refused")
"""), network=True, inputs=[f"s3://{bucket}/in/x.txt"])
    assert done["state"] == "SUCCEEDED", log
    assert "endpoint True" in log and "has creds True" in log and "gateway ok" in log
    assert "outside refused" in log and "OUTSIDE" not in log
    assert "secret [REDACTED]" in log                  # secrets never reach logs


def test_cannot_write_outside_scratch(api, bucket):
    done, log = run(api, bucket, """
import os
for path in ("/etc/vallum-pwned", "/usr/pwned", "/job/in/pwned", "/job/code/pwned", "/pwned",
             "/opt/vallum/pwned"):
    try:
        open(path, "w").write("x")
        print("WROTE", path)
    except OSError as exc:
        print("denied", path)
open("/tmp/fine", "w").write("private tmp is writable")
open(os.environ["VALLUM_OUTPUT"] + "/ok", "w").write("ok")
""")
    assert done["state"] == "SUCCEEDED", log
    assert "WROTE" not in log and log.count("denied") == 6


def test_cannot_read_another_jobs_scratch_or_the_data_dir(api, bucket, server):
    victim = api.submit({"runtime": "python", "output": f"s3://{bucket}/v/",
                         "code": "import os, time\nopen(os.environ['HOME'] + '/secret', 'w')"
                                 ".write('TOPSECRET')\ntime.sleep(8)"})
    deadline = time.monotonic() + 20
    while api.job(victim["id"])["state"] != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    done, log = run(api, bucket, f"""
import os
hits = []
for root in ("/", "/tmp", "/job", {str(server.data_dir)!r}, {str(server.data_dir.parent)!r}):
    for dirpath, dirs, files in os.walk(root, onerror=lambda e: None):
        if dirpath.startswith(("/proc", "/sys", "/dev", "/usr")):
            dirs[:] = []
            continue
        for f in files:
            p = os.path.join(dirpath, f)
            try:
                if b"TOP" + b"SECRET" in open(p, "rb").read(1 << 16):
                    hits.append(p)
            except OSError:
                pass
print("HITS", hits)
print("datadir visible", os.path.exists({str(server.data_dir)!r}))
try:
    open("/etc/shadow").read()
    print("SHADOW READ")
except OSError:
    print("shadow denied")
""")
    api.cancel(victim["id"])
    assert done["state"] == "SUCCEEDED", log
    assert "HITS []" in log and "datadir visible False" in log and "shadow denied" in log


def test_fork_bomb_is_stopped_by_the_process_limit(api, bucket):
    done, log = run(api, bucket, """
import os, time
n = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        n += 1
except OSError as exc:
    print("fork refused after", n)
    raise SystemExit(3)
""", resources={"max_procs": 20, "wall_time_s": 20})
    assert done["state"] == "FAILED" and done["exit_code"] == 3, log
    n = int(log.split("fork refused after ")[1].split()[0])
    assert n < 20
    # The leftover sleepers were killed with the task's group: the next job runs normally.
    assert run(api, bucket, "print('fine')")[0]["state"] == "SUCCEEDED"


def test_memory_bomb_fails(api, bucket):
    done, log = run(api, bucket, """
blocks = []
while True:
    blocks.append(bytearray(50 * 1024 * 1024))
""", resources={"memory_mb": 200})
    assert done["state"] == "FAILED"
    assert "MemoryError" in log or "killed" in (done["reason"] or "")


@pytest.mark.parametrize("network", [False, True], ids=["warm", "cold"])
def test_cpu_time_limit(api, bucket, network):
    done, log = run(api, bucket, "while True: pass", network=network,
                    resources={"cpu_time_s": 1, "wall_time_s": 30})
    assert done["state"] == "FAILED" and done["reason"] == "CPU-time limit exceeded", (done, log)


WARM_PROBE = """
import os, subprocess
init = open("/proc/1/stat").read().rsplit(")", 1)[1].split()[19]     # sandbox start time
me = {os.getpid(), os.getppid(), 1}
others = sorted(int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in me)
print("sandbox", init)
print("others", others)
print("tmp", sorted(os.listdir("/tmp")))
print("work", sorted(os.listdir("/job/work")))
if os.environ.get("PLANT"):
    open("/tmp/leak", "w").write("x")
    open("/job/work/leak", "w").write("x")
    subprocess.Popen(["sleep", "60"], start_new_session=True)    # outlives its task's group
"""


def _warm(api, bucket, plant=False, client=None):
    job = (client or api).submit({"runtime": "python", "code": WARM_PROBE,
                                  "output": f"s3://{bucket}/o/", "env": {"PLANT": "1" if plant else ""},
                                  "resources": {"memory_mb": 333}})    # a shape of its own
    done = (client or api).wait(job["id"], timeout=60)
    log = (client or api).logs(job["id"])["data"]
    assert done["state"] == "SUCCEEDED", log
    return dict(line.split(" ", 1) for line in log.splitlines())


def test_warm_sandboxes_are_reused_only_by_their_owner_and_start_clean(api, bucket, server):
    """Tiny jobs reuse a warm sandbox, but only the same owner's, and nothing a task left
    (files in /tmp or /job/work, a daemonised process) survives into the next one."""
    import uuid

    import boto3
    from botocore.config import Config

    from vallum.cli.admin import AdminClient
    from vallum.client import Client

    first = _warm(api, bucket, plant=True)
    second = _warm(api, bucket)
    assert second["sandbox"] == first["sandbox"]             # the same warm sandbox ...
    assert second["others"] == "[]"                          # ... without the planted process
    assert second["tmp"] == "[]"
    assert "leak" not in second["work"] and second["work"].count("'t") == 1
    # Another account's job never runs in it (nor in any sandbox of the root's).
    root = AdminClient(server.endpoint, server.access_key, server.secret_key, server.region)
    out = root.call("CreateAccount", name="warm-" + uuid.uuid4().hex[:8])
    key = out["admin_key"]
    other = Client(server.endpoint, key["access_key_id"], key["secret_access_key"],
                   region=server.region)
    theirs = "warm-" + uuid.uuid4().hex[:10]
    boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id=key["access_key_id"],
                 aws_secret_access_key=key["secret_access_key"], region_name=server.region,
                 config=Config(s3={"addressing_style": "path"})).create_bucket(Bucket=theirs)
    foreign = _warm(api, theirs, client=other)
    assert foreign["sandbox"] not in (first["sandbox"],)
    assert _warm(api, bucket)["sandbox"] == first["sandbox"]  # the root's is still there
