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
and fsynced. Concurrent appends share one write + fsync (group commit): the
records queued in one event-loop iteration are written and synced together, on the
loop itself while syncs are fast and on a dedicated writer thread when the disk is
slow (vallum/batching.py), so throughput does not fall to one fsync per request. Several gateway processes may share the file: each batch
is written under ``flock``, re-reading the tail if another process appended.

Preallocation: the file is extended PREALLOC bytes at a time with written (not
sparse) zeros and fsynced, and records overwrite that padding in place. An append
then changes neither the file size nor its block map, so its ``fdatasync`` flushes
the data blocks alone, without an ext4 journal commit: 17 us less CPU per record
(``python -m bench.threadcpu vallum GET``, audit writer thread, 64-70 -> 46-58 us).
Readers stop at the first NUL byte (JSON lines never contain one); ``verify`` also
checks that nothing but NULs follows.
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
PREALLOC = 4 * 1024 * 1024      # zero-filled ahead of the records, fsynced once per step
_ZEROS = bytes(1024 * 1024)


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


def _data_end(fd: int, known: int | None = None) -> int:
    """Where the records end and the NUL padding begins (the file size for an unpadded log).

    ``known``: a position inside or at the end of the records (this process's last tail):
    scan forward from there, reading only what other processes appended since. Without
    it (at open), scan back from the end of the file, so that even a torn write with a
    hole of zeros in it (a machine crash before the sync) is found whole."""
    if known is not None:
        pos = known
        while True:
            block = os.pread(fd, 65536, pos)
            cut = block.find(b"\0")
            if cut >= 0 or not block:
                return pos + (cut if cut >= 0 else 0)
            pos += len(block)
    pos = os.fstat(fd).st_size
    while pos > 0:
        step = min(65536, pos)
        block = os.pread(fd, step, pos - step).rstrip(b"\0")
        if block:
            return pos - step + len(block)
        pos -= step
    return 0


def _read_tail(fd: int, known: int | None = None) -> tuple[int, int, int, str, int]:
    """(end of the last complete record, end of the data before the padding, last seq,
    hash of the last line, records since the last checkpoint) of an open log. The two
    ends differ only after a crash tore a write that was never acknowledged."""
    data_end = _data_end(fd, known)
    block = b""
    pos = data_end
    while pos > 0 and block.count(b"\n") < 2:
        step = min(65536, pos)
        pos -= step
        block = os.pread(fd, step, pos) + block
    cut = block.rfind(b"\n") + 1          # bytes after the last newline: a torn write
    end = pos + cut
    lines = block[:cut].rstrip(b"\n").split(b"\n")
    if not lines[-1]:
        return end, data_end, 0, GENESIS, 0
    last = lines[-1]
    rec = json.loads(last)
    since = 0 if rec.get("type") == "checkpoint" else rec.get("since_checkpoint", 0)
    return end, data_end, int(rec["seq"]), _line_hash(last), since


def _pwrite_all(fd: int, data: bytes | memoryview, pos: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, pos)
        view, pos = view[n:], pos + n


def _zero(fd: int, start: int, end: int) -> None:
    while start < end:
        n = min(len(_ZEROS), end - start)
        _pwrite_all(fd, _ZEROS[:n] if n < len(_ZEROS) else _ZEROS, start)
        start += n


# Batches are written and synced on the event loop while that takes under 0.5 ms on
# average (vallum/batching.py says why), on the writer thread otherwise.
INLINE_BELOW = 0.0005


class AuditLog:
    """Appends chained records with group commit (vallum/batching.py): each batch is
    encoded, written and fdatasynced at once, on the event loop while that is fast and on
    one writer thread per process when the disk is slow."""

    def __init__(self, data_dir: Path, *, checkpoint_every: int = 1000, fsync: bool = True) -> None:
        self.dir = Path(data_dir) / AUDIT_DIR
        self.path = self.dir / LOG_FILE
        self.checkpoint_every = checkpoint_every
        self.fsync = fsync
        self._fd: int | None = None
        self._key: bytes = b""
        self._public_hex = ""
        self._writer = BatchThread("vallum-audit", self._commit, closed_message="audit log is not open",
                                   closed_error=AuditError, inline_below=INLINE_BELOW)
        # (end of our last record, seq, prev hash, since checkpoint): the tail we wrote
        # last; re-read from the file only if another process appended since.
        self._tail: tuple[int, int, str, int] | None = None
        self._allocated = 0       # the file size we last saw (records + padding)
        self._encoder = json.JSONEncoder(separators=(",", ":"), default=str)
        self.batches = 0          # how many write+fsync rounds (for measurements)
        self.records = 0

    async def open(self) -> None:
        self._key = await asyncio.to_thread(load_or_create_signing_key, self.dir)
        self._public_hex = crypto.ed25519_public(self._key).hex()
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
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
            tail = self._tail
            if tail is not None and os.pread(fd, 1, tail[0]) in (b"", b"\0"):
                pos, seq, prev, since = tail         # nobody wrote after our last record
            else:                                   # first batch, or another process appended
                pos, torn_end, seq, prev, since = _read_tail(fd, tail[0] if tail else None)
                _zero(fd, pos, torn_end)            # never acknowledged: overwritten below
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
            end = pos + len(data)
            if end > self._allocated:
                self._allocated = os.fstat(fd).st_size   # another process may have extended it
                if end > self._allocated:
                    self._extend(fd, end)
            _pwrite_all(fd, data, pos)
            if self.fsync:
                # The blocks were allocated, zeroed and fsynced ahead and the size does not
                # change, so fdatasync flushes just these data blocks.
                os.fdatasync(fd)
            self._tail = (end, seq, prev, since)
            self.batches += 1
            self.records += len(records)
        except BaseException:
            self._tail = None                       # unknown state: re-read before the next batch
            raise
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _extend(self, fd: int, end: int) -> None:
        """Grow the padding so ``end`` fits with PREALLOC to spare; durable before use."""
        target = (end // PREALLOC + 2) * PREALLOC
        _zero(fd, self._allocated, target)
        if self.fsync:
            os.fsync(fd)                            # the new size and blocks, once per step
        self._allocated = target

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
            if raw[:1] == b"\0":                    # the padding: it must run to the end
                if raw.strip(b"\0") or any(rest.strip(b"\0") for rest in f):
                    return VerifyResult(False, count, checkpoints, lineno, None,
                                        "bytes after the end of the log (NUL padding)")
                break
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
            if raw[:1] == b"\0":
                break                               # the preallocated padding
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
