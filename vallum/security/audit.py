"""Tamper-evident audit log: hash-chained JSON lines with Ed25519-signed checkpoints.

File ``<data_dir>/audit/audit.log``, one JSON object per line. Every record has
``seq`` (1, 2, ...) and ``prev``: the SHA-256 (hex) of the previous line's exact
bytes (``GENESIS`` for the first). Editing a record breaks its successor's
``prev``; deleting or reordering records breaks ``seq``/``prev`` where it happened.
Every ``checkpoint_every`` records (and when the log closes) a ``checkpoint``
record signs ``seq || prev`` with an Ed25519 key kept 0600 in the audit
directory (public half in ``audit-signing.pub``), so rewriting the whole chain
consistently is detected at the first checkpoint — unless the signing key
leaked, which is why checkpoints should also be shipped to a SIEM. Records after
the last checkpoint are protected by the chain only: cutting the tail is
detectable only by comparing with a previously exported head.

Durability: ``await log.append(record)`` returns only after the line is written
and fsynced. Concurrent appends share one write + fsync (group commit) on a
dedicated writer thread: while one batch is being synced the next accumulates,
so throughput does not fall to one fsync per request. Several gateway processes may share the file: each batch
is written under ``flock``, re-reading the tail if another process appended.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from vallum.batching import BatchThread
from vallum.security import crypto

AUDIT_DIR = "audit"
LOG_FILE = "audit.log"
KEY_FILE = "audit-signing.key"
PUB_FILE = "audit-signing.pub"
GENESIS = "0" * 64


class AuditError(Exception):
    """The audit record could not be made durable: the request must fail (fail closed)."""


def _line_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def _checkpoint_message(seq: int, prev: str) -> bytes:
    return f"vallum-audit-checkpoint:{seq}:{prev}".encode()


def load_or_create_signing_key(directory: Path) -> bytes:
    """The Ed25519 private key (0600, created once) and its public half beside it."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(100):
            key = path.read_bytes()
            if len(key) == 32:
                return key
            time.sleep(0.01)
        raise AuditError(f"{path}: signing key must be 32 bytes") from None
    key = crypto.ed25519_new_private()
    with os.fdopen(fd, "wb") as f:
        f.write(key)
        f.flush()
        os.fsync(f.fileno())
    (directory / PUB_FILE).write_text(crypto.ed25519_public(key).hex() + "\n")
    return key


def _read_tail(fd: int) -> tuple[int, str, int]:
    """(last seq, hash of the last line, records since the last checkpoint) of an open log."""
    size = os.fstat(fd).st_size
    if size == 0:
        return 0, GENESIS, 0
    block = b""
    pos = size
    while pos > 0 and block.count(b"\n") < 2:
        step = min(65536, pos)
        pos -= step
        block = os.pread(fd, step, pos) + block
    lines = block.rstrip(b"\n").split(b"\n")
    last = lines[-1]
    rec = json.loads(last)
    since = 0 if rec.get("type") == "checkpoint" else rec.get("since_checkpoint", 0)
    return int(rec["seq"]), _line_hash(last), since


class AuditLog:
    """Appends chained records with group commit on one writer thread per process
    (vallum/batching.py): the thread encodes, writes and fdatasyncs each batch, so
    encoding, hashing and the sync never run on the event loop."""

    def __init__(self, data_dir: Path, *, checkpoint_every: int = 1000, fsync: bool = True) -> None:
        self.dir = Path(data_dir) / AUDIT_DIR
        self.path = self.dir / LOG_FILE
        self.checkpoint_every = checkpoint_every
        self.fsync = fsync
        self._fd: int | None = None
        self._key: bytes = b""
        self._public_hex = ""
        self._writer = BatchThread("vallum-audit", self._commit, closed_message="audit log is not open",
                                   closed_error=AuditError)
        # (file size after our last write, seq, prev hash, since checkpoint): the tail we
        # wrote last; re-read from the file only if another process appended since.
        self._tail: tuple[int, int, str, int] | None = None
        self._encoder = json.JSONEncoder(separators=(",", ":"), default=str)
        self.batches = 0          # how many write+fsync rounds (for measurements)
        self.records = 0

    async def open(self) -> None:
        self._key = await asyncio.to_thread(load_or_create_signing_key, self.dir)
        self._public_hex = crypto.ed25519_public(self._key).hex()
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
                           0o600)
        self._tail = None
        self._writer.start()

    async def close(self) -> None:
        if self._writer.running:
            await self.append({"type": "checkpoint"})
            await asyncio.to_thread(self._writer.stop)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    async def append(self, record: dict[str, Any]) -> None:
        """Add a record; returns once it is durable. Raises AuditError otherwise."""
        await self._writer.submit(record)

    def _commit(self, records: list[dict[str, Any]]) -> list[tuple[bool, Any]]:
        """Writer thread: one write + sync for the batch; every record shares its outcome."""
        try:
            self._write_batch(records)
        except BaseException as e:  # noqa: BLE001 - handed to every waiter of the batch
            return [(False, AuditError(f"audit write failed: {e!r}"))] * len(records)
        return [(True, None)] * len(records)

    def _write_batch(self, records: list[dict[str, Any]]) -> None:
        fd = self._fd
        assert fd is not None
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            size = os.fstat(fd).st_size
            tail = self._tail
            if tail is not None and tail[0] == size:
                _, seq, prev, since = tail
            else:                                   # first batch, or another process appended
                seq, prev, since = _read_tail(fd)
            out = []
            now = time.time()
            stamp = dt.datetime.fromtimestamp(now, dt.timezone.utc).isoformat(timespec="milliseconds")
            for rec in records:
                forced = rec.get("type") == "checkpoint"
                if forced and since == 0:
                    continue                      # nothing new to sign
                line, seq, prev, since = self._encode(rec, seq, prev, since, now, stamp)
                out.append(line)
                if not forced and since >= self.checkpoint_every:
                    line, seq, prev, since = self._encode({"type": "checkpoint"}, seq, prev, since,
                                                          now, stamp)
                    out.append(line)
            data = b"".join(out)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if self.fsync:
                # fdatasync flushes the data and the size a reader needs (about 20% cheaper
                # than fsync here); the timestamps it skips carry no audit information.
                os.fdatasync(fd)
            self._tail = (size + len(data), seq, prev, since)
            self.batches += 1
            self.records += len(records)
        except BaseException:
            self._tail = None                       # unknown state: re-read before the next batch
            raise
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _encode(self, rec: dict[str, Any], seq: int, prev: str, since: int,
                now: float, stamp: str) -> tuple[bytes, int, str, int]:
        seq += 1
        full: dict[str, Any] = {"ts": now, "type": "request"}
        full.update(rec)
        full["seq"], full["prev"], full["time"] = seq, prev, stamp
        if full["type"] == "checkpoint":
            full["sig"] = crypto.ed25519_sign(self._key, _checkpoint_message(seq, prev)).hex()
            full["key"] = self._public_hex
            since = 0
        else:
            since += 1
            full["since_checkpoint"] = since
        line = self._encoder.encode(full).encode()
        return line + b"\n", seq, _line_hash(line), since




# --- verification, query, export -----------------------------------------------------------
@dataclass
class VerifyResult:
    ok: bool
    records: int                 # records read (valid ones, up to the first break)
    checkpoints: int
    broken_line: int | None = None   # 1-based line number of the first broken record
    broken_seq: int | None = None
    reason: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"OK: {self.records} records, {self.checkpoints} signed checkpoints, chain intact"
        return f"BROKEN at line {self.broken_line} (seq {self.broken_seq}): {self.reason}"


def verify(path: Path, public_key: bytes | None = None) -> VerifyResult:
    """Walk the chain; name the first record that was edited, removed, inserted or moved."""
    path = Path(path)
    if public_key is None:
        pub_file = path.parent / PUB_FILE
        public_key = bytes.fromhex(pub_file.read_text().strip()) if pub_file.exists() else None
    prev_hash, prev_seq, count, checkpoints = GENESIS, 0, 0, 0
    prev_rec: dict[str, Any] | None = None
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.rstrip(b"\n")

            def broken(reason: str, at_line: int = lineno, seq: Any = None,
                       _count: int = count, _checkpoints: int = checkpoints) -> VerifyResult:
                return VerifyResult(False, _count, _checkpoints, at_line, seq, reason)

            try:
                rec = json.loads(line)
                seq = int(rec["seq"])
            except (ValueError, KeyError, TypeError):
                return broken("not a valid audit record")
            if seq != prev_seq + 1:
                if seq <= prev_seq:
                    return broken(f"out of order: seq {seq} after {prev_seq}", seq=seq)
                return broken(f"records {prev_seq + 1}..{seq - 1} are missing", seq=seq)
            if rec.get("prev") != prev_hash:
                # Sequence numbers agree, so the previous line's content changed.
                if prev_rec is not None:
                    return broken("record was altered (its hash no longer matches the next record)",
                                  lineno - 1, prev_seq)
                return broken("first record does not start the chain", seq=seq)
            if rec.get("type") == "checkpoint":
                if public_key is None:
                    return broken("checkpoint present but no public key to check it", seq=seq)
                try:
                    sig = bytes.fromhex(rec.get("sig", ""))
                except ValueError:
                    sig = b""
                if not crypto.ed25519_verify(public_key, sig, _checkpoint_message(seq, prev_hash)):
                    return broken("checkpoint signature is invalid", seq=seq)
                checkpoints += 1
            prev_hash, prev_seq, prev_rec = _line_hash(line), seq, rec
            count += 1
    return VerifyResult(True, count, checkpoints)


def _ts(value: float | str | dt.datetime | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.timestamp()


def query(path: Path, *, principal: str | None = None, bucket: str | None = None,
          since: float | str | dt.datetime | None = None, until: float | str | dt.datetime | None = None,
          decision: str | None = None, include_checkpoints: bool = False) -> Iterator[dict[str, Any]]:
    """Records matching every given filter, in log order (streams; no whole-file load)."""
    lo, hi = _ts(since), _ts(until)
    with open(path, "rb") as f:
        for raw in f:
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            if rec.get("type") == "checkpoint" and not include_checkpoints:
                continue
            if principal is not None and rec.get("principal") != principal:
                continue
            if bucket is not None and rec.get("bucket") != bucket:
                continue
            if decision is not None and rec.get("decision") != decision:
                continue
            ts = rec.get("ts", 0.0)
            if (lo is not None and ts < lo) or (hi is not None and ts >= hi):
                continue
            yield rec


def export(records: Iterable[dict[str, Any]], out: TextIO) -> int:
    """Write records as JSON lines (for a SIEM); returns the count."""
    n = 0
    for rec in records:
        out.write(json.dumps(rec, separators=(",", ":"), sort_keys=True) + "\n")
        n += 1
    return n


def log_path(data_dir: Path) -> Path:
    return Path(data_dir) / AUDIT_DIR / LOG_FILE
