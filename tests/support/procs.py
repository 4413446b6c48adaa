"""Which processes are still alive, read from /proc: the check that a test leaves nothing
behind (a sandbox, a task, a bubblewrap waiting on a pipe)."""

from __future__ import annotations

import os
import time


def table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every live (not zombie) process."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if fields[0] != "Z":
            out[int(entry)] = (int(fields[1]), cmd)
    return out


def matching(*needles: str) -> dict[int, str]:
    """Live processes whose command line contains any of ``needles``."""
    return {pid: cmd for pid, (_, cmd) in table().items() if any(n in cmd for n in needles)}


def gone(*needles: str, timeout: float = 10.0) -> dict[int, str]:
    """Wait until no live process matches ``needles``; what still matches at the deadline."""
    deadline = time.monotonic() + timeout
    while (left := matching(*needles)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def wait_for(*needles: str, timeout: float = 60.0, poll: float = 0.1) -> dict[int, str]:
    """Wait until some live process matches ``needles``; the matches ({} at the deadline).
    ``poll=0`` catches a process within milliseconds of its start."""
    deadline = time.monotonic() + timeout
    while not (found := matching(*needles)) and time.monotonic() < deadline:
        time.sleep(poll)
    return found


def ancestors(pid: int) -> list[tuple[int, str]]:
    """``pid``'s parents up to init, nearest first."""
    procs = table()
    chain = []
    while pid in procs and pid > 1:
        pid = procs[pid][0]
        if pid in procs:
            chain.append((pid, procs[pid][1]))
    return chain


def left_behind(patterns: list[tuple[str, ...]], timeout: float = 10.0) -> dict[int, str]:
    """Processes other than this one and its ancestors whose command line holds every
    string of one of ``patterns`` (a session's temp dir; a server's scratch folder) after
    ``timeout``: what the tests failed to stop."""
    mine = {os.getpid(), *(pid for pid, _ in ancestors(os.getpid()))}
    deadline = time.monotonic() + timeout
    while True:
        left = {pid: cmd for pid, (_, cmd) in table().items() if pid not in mine
                and any(all(n in cmd for n in p) for p in patterns)}
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.2)


def sandbox_patterns(server_pids: list[int]) -> list[tuple[str, ...]]:
    """What the sandboxes of these gateways carry in their command lines: their scratch
    folders, <temp>/vallum-scratch-<tag>/<gateway pid>/ (a Ray worker's too)."""
    return [("/vallum-scratch-", f"/{pid}/") for pid in server_pids]
