"""The system-call filter: a task cannot open a nested user namespace, ptrace, use the
kernel keyring, eBPF, mount or perf, in a warm sandbox or a cold one."""

from __future__ import annotations

import pytest

from tests.support import fixtures as functional
from tests.support.compute import client_of
from vallum.compute import sandbox

pytestmark = pytest.mark.skipif(sandbox.detect_mode() != "bwrap",
                                reason="bubblewrap cannot create namespaces here")

server, s3, bucket = functional.server, functional.s3, functional.bucket

PROBE = r"""
import ctypes, os, signal, time
libc = ctypes.CDLL(None, use_errno=True)
NR = {"keyctl": 250, "add_key": 248, "bpf": 321, "perf_event_open": 298, "ptrace": 101,
      "mount": 165, "unshare": 272, "userfaultfd": 323, "clone3": 435}

def call(name, *args):
    r = libc.syscall(NR[name], *args)
    return "refused" if r == -1 else "ALLOWED"

child = os.fork()
if child == 0:
    time.sleep(30)
    os._exit(0)
results = {
    "unshare_user": call("unshare", 0x10000000),
    "ptrace_attach": call("ptrace", 16, child, 0, 0),
    "add_key": call("add_key", b"user", b"k", b"v", 1, -2 & 0xFFFFFFFF),
    "keyctl": call("keyctl", 0, -3 & 0xFFFFFFFF, 0),
    "bpf": call("bpf", 0, ctypes.create_string_buffer(128), 128),
    "perf": call("perf_event_open", ctypes.create_string_buffer(128), 0, -1, -1, 0),
    "mount": call("mount", b"none", b"/tmp", b"tmpfs", 0, None),
    "userfaultfd": call("userfaultfd", 0),
}
os.kill(child, signal.SIGKILL)
try:
    with open("/proc/self/status") as f:
        print([line for line in f if line.startswith("Seccomp:")][0].strip())
except OSError:
    pass
for k, v in sorted(results.items()):
    print("CALL", k, v)
print("fork still works", os.fork() == 0 or os.wait()[0] > 0)
"""


@pytest.fixture(scope="module")
def api(server):
    return client_of(server)


@pytest.mark.parametrize("network", [False, True], ids=["warm", "cold"])
def test_dangerous_system_calls_are_refused(api, bucket, network):
    job = api.submit({"runtime": "python", "code": PROBE, "network": network,
                      "output": f"s3://{bucket}/o/"})
    done = api.wait(job["id"], timeout=60)
    log = api.logs(job["id"])["data"]
    assert done["state"] == "SUCCEEDED", log
    calls = [line for line in log.splitlines() if line.startswith("CALL")]
    assert len(calls) == 8, log
    assert all(line.endswith("refused") for line in calls), log
    assert "Seccomp:\t2" in log or "Seccomp: 2" in log, log
    assert "not enforced" not in log, log
