"""Off-box witnesses of the audit log: every signed checkpoint is also sent elsewhere.

Why: whoever can write the data directory can cut the log back to an earlier seal, and
whoever can read it can take the signing key. A checkpoint already sent to a place that
attacker cannot reach anchors the head: `vallum audit verify --witness FILE` (or
``--expect-seq/--expect-hash``) then detects any rewrite or truncation before it.

``--audit-witness`` takes one target:
- ``file:/path`` (or an absolute path): append one JSON line per checkpoint, fsynced;
  refused inside the data directory;
- ``syslog:unix:/dev/log`` or ``syslog:udp:HOST:PORT``: one RFC 5424 message
  (facility authpriv) per checkpoint;
- ``http://...`` / ``https://...``: POST the JSON line (from a background thread).
Sending is best effort: a failed send is logged and never fails a request.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
import urllib.request
from pathlib import Path
from typing import Any

from vallum.security.audit.checkpoint import fingerprint, line_hash

log = logging.getLogger("vallum.audit.witness")
_SYSLOG_PRI = 10 * 8 + 5                   # authpriv.notice


def message(line: bytes) -> bytes:
    """What a witness keeps of one checkpoint line: its seq and hash (the anchor for
    `verify --expect-seq/--expect-hash`) and the signed checkpoint itself."""
    rec = json.loads(line)
    try:
        fp = fingerprint(bytes.fromhex(rec.get("key", "")))
    except ValueError:
        fp = ""
    return json.dumps({"seq": rec["seq"], "hash": line_hash(line), "seal": rec.get("seal") is True,
                       "time": rec.get("time"), "key_fingerprint": fp, "checkpoint": rec},
                      separators=(",", ":"), sort_keys=True).encode()


class Witness:
    """One configured target; ``send_all`` is called by the writer after each batch
    that signed checkpoints."""

    def __init__(self, spec: str, data_dir: Path | None = None) -> None:
        self.spec = spec
        self._send = _target(spec, data_dir)

    def send_all(self, lines: list[bytes]) -> None:
        for line in lines:
            try:
                self._send(message(line))
            except Exception:  # noqa: BLE001 - a witness never fails a request
                log.exception("audit witness %s: send failed", self.spec)


def _target(spec: str, data_dir: Path | None) -> Any:
    if spec.startswith(("http://", "https://")):
        return _http(spec)
    if spec.startswith("syslog:"):
        return _syslog(spec[len("syslog:"):])
    path = spec[len("file:"):] if spec.startswith("file:") else spec
    if not os.path.isabs(path):
        raise ValueError(f"audit witness {spec!r}: use file:/absolute/path, syslog:unix:PATH, "
                         "syslog:udp:HOST:PORT or an http(s) URL")
    resolved = Path(path).resolve()
    if data_dir is not None and resolved.is_relative_to(Path(data_dir).resolve()):
        raise ValueError(f"audit witness {path}: must be outside the data directory "
                         "(whoever can write the data directory could rewrite it too)")
    return _file(resolved)


def _file(path: Path) -> Any:
    def send(msg: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            os.write(fd, msg + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
    return send


def _syslog(address: str) -> Any:
    kind, _, where = address.partition(":")
    target: str | tuple[str, int]
    if kind == "unix" and where:
        family, target = socket.AF_UNIX, where
    elif kind == "udp" and where.rpartition(":")[2].isdigit():
        host, _, port = where.rpartition(":")
        family, target = socket.AF_INET6 if ":" in host else socket.AF_INET, (host.strip("[]"), int(port))
    else:
        raise ValueError(f"audit witness syslog:{address}: use syslog:unix:PATH or syslog:udp:HOST:PORT")
    host = socket.gethostname() or "-"

    def send(msg: bytes) -> None:
        stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
        head = f"<{_SYSLOG_PRI}>1 {stamp} {host} vallum-audit {os.getpid()} checkpoint - ".encode()
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2)
            sock.sendto(head + msg, target)
    return send


def _http(url: str) -> Any:
    def post(msg: bytes) -> None:
        req = urllib.request.Request(url, data=msg, method="POST",  # noqa: S310 - http(s) only
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - operator's URL
                resp.read()
        except Exception:  # noqa: BLE001 - best effort, logged
            log.exception("audit witness %s: POST failed", url)

    def send(msg: bytes) -> None:
        threading.Thread(target=post, args=(msg,), name="vallum-audit-witness", daemon=True).start()
    return send


def anchor(path: Path) -> tuple[int, str]:
    """(seq, hash) of the last checkpoint a witness file holds; ValueError if none."""
    last = b""
    with open(path, "rb") as f:
        for raw in f:
            if raw.strip():
                last = raw
    if not last:
        raise ValueError(f"{path}: the witness holds no checkpoint")
    rec = json.loads(last)
    return int(rec["seq"]), str(rec["hash"])
