"""The operator's files in ``<data_dir>/operator/``: alerts, actions and account modes.

Why plain JSON lines shared by every gateway process: the action log is also how
a suspension or release decided by one gateway (or by `vallum operator release`)
reaches every other gateway within a second, without a new service to run.
Appends are single ``write`` calls on an O_APPEND descriptor, so lines from
several processes never interleave.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ALERTS = "alerts.jsonl"
ACTIONS = "actions.jsonl"
MODES = "modes.json"
MODES_ALLOWED = ("off", "observe", "contain")
GATEWAY = "gateway-{pid}.json"     # one per gateway process running the operator


def directory(data_dir: Path) -> Path:
    d = Path(data_dir) / "operator"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return d


def append(path: Path, record: dict[str, Any]) -> None:
    line = (json.dumps(record, sort_keys=True, default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Complete lines from ``offset`` on, and the offset after the last complete line."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    out = []
    for line in data[:end].splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out, offset + end


def load_modes(data_dir: Path) -> dict[str, Any]:
    path = directory(data_dir) / MODES
    try:
        doc = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        doc = {}
    return {"default": doc.get("default"), "accounts": dict(doc.get("accounts") or {})}


def save_modes(data_dir: Path, modes: dict[str, Any]) -> None:
    path = directory(data_dir) / MODES
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(modes, indent=1, sort_keys=True))
    os.replace(tmp, path)


def announce(data_dir: Path, pid: int, mode: str) -> None:
    """Record that process ``pid`` runs the operator with ``mode`` as its default (from
    VALLUM_OPERATOR), so `vallum operator status` can say what the gateway really does;
    the files of processes no longer running are removed."""
    d = directory(data_dir)
    for old in d.glob(GATEWAY.format(pid="*")):
        other = _pid_of(old)
        if other is not None and other != pid and not alive(other):
            old.unlink(missing_ok=True)
    path = d / GATEWAY.format(pid=pid)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"pid": pid, "mode": mode}, f)
    os.replace(tmp, path)


def running_gateways(data_dir: Path) -> dict[int, str]:
    """pid -> default mode of every live gateway process running the operator."""
    out: dict[int, str] = {}
    for path in directory(data_dir).glob(GATEWAY.format(pid="*")):
        pid = _pid_of(path)
        if pid is None or not alive(pid):
            continue
        try:
            out[pid] = str(json.loads(path.read_text())["mode"])
        except (OSError, ValueError, KeyError):
            continue
    return out


def _pid_of(path: Path) -> int | None:
    try:
        return int(path.stem.split("-", 1)[1])
    except (IndexError, ValueError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def alerts_for(data_dir: Path, account: str | None, args: Mapping[str, Any]) -> dict[str, Any]:
    """The /-/admin/v1/OperatorAlerts answer: alerts newest last, filtered, at most ``limit``.

    ``account`` None (the platform root without an ``account`` argument) means every
    account; otherwise only that account's alerts: address alerts (credential
    stuffing) carry no account, so only the root sees them."""
    alerts, _ = read(directory(data_dir) / ALERTS)
    kind = args.get("kind")
    since = float(args.get("since", 0) or 0)
    limit = max(1, min(int(args.get("limit", 100) or 100), 1000))
    out = [a for a in alerts
           if (account is None or a.get("account") == account)
           and (not kind or a.get("kind") == kind) and float(a.get("ts", 0)) >= since]
    return {"alerts": out[-limit:], "count": len(out)}
