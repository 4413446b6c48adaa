"""Where a small request's server CPU goes: a sampling profile split by request stage.

Why a sampling profiler (py-spy, from PyPI) rather than timers in the server: it needs no
code in the request path, so the measured path is the one that serves, and a change to
any stage shows up without anyone remembering to time it. Each sample's Python stack is
read from the leaf towards the root; the first frame whose file (and, for a few, function)
names a stage decides. Samples with no such frame are the event loop's own C code
(uvloop, httptools parsing, socket calls): "runtime". "commit hand-over" is the
group-commit machinery (vallum/batching.py) outside the commit itself.

Samples are not CPU: without ``--gil`` py-spy counts a thread waiting for the GIL or in a
disk sync as active (seen here: a thread syncing in a loop got 6x more samples than its
CPU share). So only GIL-holding samples are taken (``--gil``), and each thread's CPU time
over the same window, read from /proc per thread, is split by that thread's samples. What
a thread does without the GIL (SQLite steps, a sync's kernel time, hashing large buffers)
is thus spread over the stages of its GIL-holding samples; a thread with CPU but no such
sample is "no GIL samples". Samples whose leaf is a Vallum line calling
``os.fsync``/``os.fdatasync`` weigh nothing when the thread has other samples. The sum
over threads divided by the batch's requests is the budget in microseconds.
"""

from __future__ import annotations

import linecache
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

STAGES = ("parse", "authenticate", "authorize", "metadata", "body", "spill scan", "audit",
          "commit hand-over", "operator", "handler", "send", "runtime", "other",
          "no GIL samples")

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
    ("vallum/batching", "", "commit hand-over"),   # queueing to / waking the group-commit thread
    ("vallum/cli/", "", ""),                       # the process's root frames: no stage
    ("vallum/__main__", "", ""),
    ("vallum/", "", "other"),
)
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^:()]+):(?P<line>\d+)\)$")
_ROOT = Path(__file__).resolve().parents[1]


def _blocking(file: str, line: str) -> bool:
    """A Vallum source line that waits for the disk (fsync / fdatasync)."""
    if not file.startswith("vallum/"):
        return False
    text = linecache.getline(str(_ROOT / file), int(line))
    return "fdatasync(" in text or "fsync(" in text


def available() -> str | None:
    """The py-spy binary next to this interpreter or on PATH, or None."""
    here = Path(os.sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def stage_of(stack: list[str]) -> tuple[str, bool]:
    """The stage of one sample, and whether it waits in a disk sync; ``stack`` is
    root-first "func (file:line)" frames."""
    sync = False
    leaf = True
    for frame in reversed(stack):
        m = _FRAME.match(frame)
        if not m:
            continue
        if leaf and _blocking(m["file"], m["line"]):
            sync = True
        leaf = False
        file, func = m["file"], m["func"]
        for prefix, fn, stage in _RULES:
            if file.startswith(prefix) and (not fn or fn in func):
                if stage:
                    return stage, sync
                break
    return "runtime", sync


_THREAD = re.compile(r"^thread \((?:0x)?(?P<tid>[0-9a-f]+)\)")


def classify(raw: str) -> dict[int, tuple[Counter[str], Counter[str]]]:
    """Per thread id: (samples per stage, samples per stage that wait in a sync), from
    py-spy's ``--format raw --threads`` output (collapsed stacks)."""
    out: dict[int, tuple[Counter[str], Counter[str]]] = {}
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        tid = 0
        while frames and not _FRAME.match(frames[0]):
            m = _THREAD.match(frames[0])
            if m:
                tid = int(m["tid"])
            frames = frames[1:]
        stage, sync = stage_of(frames)
        busy, waiting = out.setdefault(tid, (Counter(), Counter()))
        (waiting if sync else busy)[stage] += int(count)
    return out


def budget(samples: dict[int, tuple[Counter[str], Counter[str]]], cpu: dict[int, float],
           requests: int) -> dict[str, float]:
    """Microseconds of server CPU per request by stage: each thread's CPU seconds
    (``cpu``) split by its samples' stages; a thread with CPU but no samples is
    "no GIL samples"."""
    if requests <= 0:
        return {}
    total: Counter[str] = Counter()
    for tid, seconds in cpu.items():
        busy, waiting = samples.get(tid, (Counter(), Counter()))
        weights = busy if busy else waiting
        n = sum(weights.values())
        if n == 0:
            total["no GIL samples"] += seconds
            continue
        for stage, k in weights.items():
            total[stage] += seconds * k / n
    return {s: 1e6 * total[s] / requests for s in STAGES if total[s] > 0}


def thread_cpu(pids: list[int]) -> dict[int, float]:
    """User+system CPU seconds per thread id of the given processes (/proc/PID/task)."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                out[int(tid)] = (int(fields[11]) + int(fields[12])) / ticks
            except (OSError, IndexError, ValueError):
                continue
    return out


class Profile:
    """py-spy recording one process tree (all worker processes) while a batch runs, and
    the CPU each of its threads used meanwhile."""

    def __init__(self, pid: int, tree: list[int], rate: int = 200) -> None:
        binary = available()
        if binary is None:
            raise RuntimeError("py-spy not found (pip install py-spy: the bench extra has it)")
        self._tree = tree
        self._cpu0 = thread_cpu(tree)
        self._dir = tempfile.mkdtemp(prefix="vallum-stages-")
        self._out = Path(self._dir) / "samples.txt"
        # Not --nonblocking: only a paused process gives its thread ids to --threads.
        # --gil: a sample is taken only from the thread holding the GIL.
        self._proc = subprocess.Popen(
            [binary, "record", "--pid", str(pid), "--subprocesses", "--threads", "--gil",
             "--rate", str(rate), "--format", "raw", "--output", str(self._out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)

    def stop(self, requests: int) -> dict[str, float]:
        """End the recording (SIGINT makes py-spy write its file) and return the budget."""
        cpu1 = thread_cpu(self._tree)
        try:
            self._proc.send_signal(signal.SIGINT)
            _, err = self._proc.communicate(timeout=60)
            if not self._out.exists():
                raise RuntimeError(f"py-spy wrote no samples: {err.decode(errors='replace')[-300:]}")
            samples = classify(self._out.read_text())
        finally:
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
            shutil.rmtree(self._dir, ignore_errors=True)
        cpu = {tid: cpu1[tid] - self._cpu0.get(tid, 0.0) for tid in cpu1}
        return budget(samples, {t: c for t, c in cpu.items() if c > 0}, requests)
