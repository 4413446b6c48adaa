"""Where a small request's server CPU goes: a sampling profile split by request stage.

Why a sampling profiler (py-spy, from PyPI) rather than timers in the server: it needs no
code in the request path, so the measured path is the one that serves, and a change to
any stage shows up without anyone remembering to time it. Each sample's Python stack is
read from the leaf towards the root; the first frame whose file (and, for a few, function)
names a stage decides. Samples with no such frame are the event loop's own C code
(uvloop, httptools parsing, socket calls): "runtime". The stage's share of samples times
the server CPU per request (measured over the same batch) is its CPU budget.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

STAGES = ("parse", "authenticate", "authorize", "metadata", "body", "spill scan", "audit",
          "operator", "handler", "send", "runtime", "other")

# (file prefix, function substring or "") -> stage; checked in order for each frame.
_RULES: tuple[tuple[str, str, str], ...] = (
    ("vallum/security/audit/", "", "audit"),
    ("vallum/security/spill/", "", "spill scan"),
    ("vallum/operator/", "", "operator"),
    ("vallum/s3/sigv4", "", "authenticate"),
    ("vallum/s3/sigv2", "", "authenticate"),
    ("vallum/iam/identity", "", "authenticate"),
    ("vallum/iam/gate", "", "authenticate"),
    ("vallum/iam/auth_failures", "", "authenticate"),
    ("vallum/iam/lockouts", "", "authenticate"),
    ("vallum/iam/sqlstore", "", "authenticate"),
    ("vallum/iam/", "", "authorize"),
    ("vallum/authz", "", "authorize"),
    ("vallum/security/mac/", "", "authorize"),
    ("vallum/s3/handlers/visibility", "", "authorize"),
    ("vallum/meta/", "", "metadata"),
    ("vallum/storage/", "", "body"),
    ("vallum/security/crypto/", "", "body"),
    ("vallum/s3/body", "", "body"),
    ("vallum/s3/chunked", "", "body"),
    ("vallum/service/", "", "body"),
    ("vallum/server/app.py", "send_response", "send"),
    ("uvicorn/protocols/http/", "RequestResponseCycle.send", "send"),
    ("vallum/server/protocol", "_HeadHolder", "send"),
    ("uvicorn/protocols/http/", "", "parse"),
    ("vallum/server/protocol", "", "parse"),
    ("vallum/server/connection_limits", "", "parse"),
    ("uvicorn/middleware/", "", "parse"),
    ("vallum/s3/", "", "handler"),
    ("vallum/server/", "", "handler"),
    ("vallum/batching", "", ""),           # the group-commit thread: decided by what it commits
    ("vallum/cli/", "", ""),
    ("vallum/", "", "other"),
)
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^:()]+):\d+\)$")


def available() -> str | None:
    """The py-spy binary next to this interpreter or on PATH, or None."""
    here = Path(os.sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def stage_of(stack: list[str]) -> str:
    """The stage of one sample; ``stack`` is root-first "func (file:line)" frames."""
    for frame in reversed(stack):
        m = _FRAME.match(frame)
        if not m:
            continue
        file, func = m["file"], m["func"]
        for prefix, fn, stage in _RULES:
            if file.startswith(prefix) and (not fn or fn in func):
                if stage:
                    return stage
                break
    return "runtime"


def classify(raw: str) -> Counter[str]:
    """Samples per stage from py-spy's ``--format raw`` output (collapsed stacks)."""
    out: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if frames and frames[0].startswith("process "):
            frames = frames[1:]
        out[stage_of(frames)] += int(count)
    return out


def budget(samples: Counter[str], cpu_per_request_s: float) -> dict[str, float]:
    """Microseconds of server CPU per request, by stage (the shares of ``samples``)."""
    total = sum(samples.values())
    if total == 0:
        return {}
    return {s: 1e6 * cpu_per_request_s * samples[s] / total for s in STAGES if samples[s]}


class Profile:
    """py-spy recording one process tree (all worker processes) while a batch runs."""

    def __init__(self, pid: int, rate: int = 200) -> None:
        binary = available()
        if binary is None:
            raise RuntimeError("py-spy not found (pip install py-spy: the bench extra has it)")
        self._dir = tempfile.mkdtemp(prefix="vallum-stages-")
        self._out = Path(self._dir) / "samples.txt"
        self._proc = subprocess.Popen(
            [binary, "record", "--pid", str(pid), "--subprocesses", "--nonblocking",
             "--rate", str(rate), "--format", "raw", "--output", str(self._out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)

    def stop(self) -> Counter[str]:
        """End the recording (SIGINT makes py-spy write its file) and classify it."""
        try:
            self._proc.send_signal(signal.SIGINT)
            _, err = self._proc.communicate(timeout=60)
            if not self._out.exists():
                raise RuntimeError(f"py-spy wrote no samples: {err.decode(errors='replace')[-300:]}")
            return classify(self._out.read_text())
        finally:
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
            shutil.rmtree(self._dir, ignore_errors=True)
