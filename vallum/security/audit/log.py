"""Tamper-evident audit log: hash-chained JSON lines with signed, chained checkpoints.

File ``<data_dir>/audit/audit.log``, one JSON object per line. Every record has
``seq`` (1, 2, ...) and ``prev``: the SHA-256 (hex) of the previous line's exact
bytes (``GENESIS`` for the first). Editing a record breaks its successor's
``prev``; deleting or reordering records breaks ``seq``/``prev`` where it happened.
The chain alone proves nothing to someone who can rewrite the whole file, so at least
every ``checkpoint_every`` records, every ``checkpoint_seconds`` and at a clean close
(a ``seal``) a ``checkpoint`` record is signed with an Ed25519 key over its whole content
(checkpoint.py), chained to the previous checkpoint. The public key is printed at
first start and pinned by the operator; `vallum audit verify` checks against the pin
(verify.py). Each checkpoint can also be sent off-box to a witness
(witness.py), which anchors the head against truncation.

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

Segments (audit_segments.py): when the active file outgrows ``segment_bytes`` or its first
record is older than ``segment_seconds``, the batch ends with a signed ``rotate``
checkpoint and the file is closed as ``segments/audit-<first>-<last>.log``; the chain and
the checkpoint chain continue in a fresh ``audit.log``. Other processes notice (the path
names another inode once they hold the lock) and reopen; an empty active file continues
from the last segment (or the retention manifest after a prune).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from vallum.batching import BatchThread
from vallum.security.audit import segments as audit_segments
from vallum.security.audit.checkpoint import GENESIS, MAX_GAP, line_hash, sign
from vallum.security.audit.verify import VerifyResult, verify
from vallum.security.crypto import primitives as crypto

__all__ = ["AuditError", "AuditLog", "GENESIS", "VerifyResult", "export", "log_path", "query", "verify"]
log = logging.getLogger("vallum.audit")

AUDIT_DIR = "audit"
LOG_FILE = "audit.log"
KEY_FILE = "audit-signing.key"
PUB_FILE = "audit-signing.pub"
PREALLOC = 4 * 1024 * 1024      # zero-filled ahead of the records, fsynced once per step
SEGMENT_MB = 256                # default rotation size [env VALLUM_AUDIT_SEGMENT_MB]
SEGMENT_HOURS = 24.0            # default rotation age [env VALLUM_AUDIT_SEGMENT_HOURS]
_ZEROS = bytes(1024 * 1024)


class AuditError(Exception):
    """The audit record could not be made durable: the request must fail (fail closed)."""


def ensure_signing_key(directory: Path) -> tuple[bytes, bool]:
    """(the Ed25519 private key, whether it was created now). Kept 0600 and created once;
    its public half is written beside it for convenience only (verify never trusts it)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(100):
            key = path.read_bytes()
            if len(key) == 32:
                return key, False
            time.sleep(0.01)
        raise AuditError(f"{path}: signing key must be 32 bytes") from None
    key = crypto.ed25519_new_private()
    with os.fdopen(fd, "wb") as f:
        f.write(key)
        f.flush()
        os.fsync(f.fileno())
    (directory / PUB_FILE).write_text(crypto.ed25519_public(key).hex() + "\n")
    return key, True


def load_or_create_signing_key(directory: Path) -> bytes:
    return ensure_signing_key(directory)[0]


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


@dataclass
class _Tail:
    """Where the chain ends: the next record's position, seq and prev hash, records since
    the last checkpoint, that checkpoint's hash and seq (None: not known, look back), and
    whether the last record is a seal."""
    end: int
    seq: int
    prev: str
    since: int
    cp_hash: str | None
    cp_seq: int
    sealed: bool


def _read_tail(fd: int, known: int | None = None) -> tuple[_Tail, int]:
    """The tail of an open log and the end of the data before the padding. The two ends
    differ only after a crash tore a write that was never acknowledged."""
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
        return _Tail(end, 0, GENESIS, 0, GENESIS, 0, False), data_end
    last = lines[-1]
    rec = json.loads(last)
    seq, h = int(rec["seq"]), line_hash(last)
    if rec.get("type") == "checkpoint":
        return _Tail(end, seq, h, 0, h, seq, rec.get("seal") is True), data_end
    return _Tail(end, seq, h, int(rec.get("since_checkpoint", 0)), None, 0, False), data_end


def _last_checkpoint(fd: int, end: int) -> tuple[str, int] | None:
    """(hash, seq) of the last checkpoint before ``end``, reading back (a checkpoint is at
    most MAX_GAP lines back; None when this file has none: it follows a segment's)."""
    pos, carry = end, b""
    while pos > 0:
        step = min(65536, pos)
        pos -= step
        lines = (os.pread(fd, step, pos) + carry).split(b"\n")
        carry = lines[0]                        # may be the end of an earlier line
        for line in reversed(lines[1:]):
            found = _checkpoint_at(line)
            if found:
                return found
    return _checkpoint_at(carry)


def _chain_before(audit_dir: Path) -> tuple[str, int]:
    """(hash, seq) of the signed checkpoint the active file follows: the last closed
    segment's last line, else the retention manifest's anchor, else GENESIS."""
    segs = audit_segments.segments(audit_dir)
    if segs:
        line = audit_segments.last_line(segs[-1].path)
        return line_hash(line), int(json.loads(line)["seq"])
    manifest = audit_segments.read_manifest(audit_dir)
    if manifest is not None:
        return str(manifest["hash"]), int(manifest["pruned_through_seq"])
    return GENESIS, 0


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def _checkpoint_at(line: bytes) -> tuple[str, int] | None:
    if b'"type":"checkpoint"' not in line:
        return None
    rec = json.loads(line)
    return (line_hash(line), int(rec["seq"])) if rec.get("type") == "checkpoint" else None


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
    one writer thread per process when the disk is slow. Signs a checkpoint every
    ``checkpoint_every`` records and every ``checkpoint_seconds``, and a seal at close."""

    def __init__(self, data_dir: Path, *, checkpoint_every: int = MAX_GAP, fsync: bool = True,
                 checkpoint_seconds: float = 60.0, witness: Any = None,
                 segment_bytes: int | None = None, segment_seconds: float | None = None) -> None:
        if not 0 < checkpoint_every <= MAX_GAP:
            raise ValueError(f"checkpoint_every must be 1..{MAX_GAP} (verify refuses longer gaps)")
        self.dir = Path(data_dir) / AUDIT_DIR
        self.path = self.dir / LOG_FILE
        self.checkpoint_every = checkpoint_every
        self.checkpoint_seconds = checkpoint_seconds
        self.segment_bytes = segment_bytes if segment_bytes is not None else int(
            _env_float("VALLUM_AUDIT_SEGMENT_MB", SEGMENT_MB) * 1024 * 1024)
        self.segment_seconds = segment_seconds if segment_seconds is not None else (
            _env_float("VALLUM_AUDIT_SEGMENT_HOURS", SEGMENT_HOURS) * 3600)
        self._segment_started: float | None = None     # ts of the active file's first record
        self._inode: int | None = None                  # of the file self._fd is open on
        self.witness = witness          # audit_witness.Witness: gets every checkpoint line
        self.fsync = fsync
        self._fd: int | None = None
        self._key: bytes = b""
        self._public_hex = ""
        self._writer = BatchThread("vallum-audit", self._commit, closed_message="audit log is not open",
                                   closed_error=AuditError, inline_below=INLINE_BELOW)
        # The tail we wrote last; re-read from the file only if another process appended since.
        self._tail: _Tail | None = None
        self._allocated = 0       # the file size we last saw (records + padding)
        self._encoder = json.JSONEncoder(separators=(",", ":"), default=str)
        self._timer: asyncio.Task[None] | None = None
        self.batches = 0          # how many write+fsync rounds (for measurements)
        self.records = 0

    async def open(self) -> None:
        self._key = await asyncio.to_thread(load_or_create_signing_key, self.dir)
        self._public_hex = crypto.ed25519_public(self._key).hex()
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        self._tail, self._inode, self._segment_started, self._allocated = None, None, None, 0
        self._writer.start()
        if self.checkpoint_seconds > 0:
            self._timer = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        """Sign what accumulated, on a timer: a quiet log's tail is not left unsigned."""
        while True:
            await asyncio.sleep(self.checkpoint_seconds)
            try:
                await self.checkpoint()
            except AuditError:
                log.exception("timed audit checkpoint failed")

    async def checkpoint(self) -> None:
        """Sign the records since the last checkpoint (nothing if there are none)."""
        await self._writer.submit({"type": "checkpoint", "reason": "timer"})

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._writer.running:
            await self.append({"type": "checkpoint", "reason": "seal", "seal": True})
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
            signed = self._write_batch(records)
        except BaseException as e:  # noqa: BLE001 - handed to every waiter of the batch
            return [(False, AuditError(f"audit write failed: {e!r}"))] * len(records)
        if signed and self.witness is not None:
            self.witness.send_all(signed)
        return [(True, None)] * len(records)

    def _write_batch(self, records: list[dict[str, Any]]) -> list[bytes]:
        """Write and sync the batch; returns the checkpoint lines it wrote (for the witness)."""
        fd = self._lock_current()
        try:
            tail = self._tail
            if tail is not None and os.pread(fd, 1, tail.end) in (b"", b"\0"):
                pos = tail.end                       # nobody wrote after our last record
            else:                                   # first batch, or another process appended
                tail, torn_end = _read_tail(fd, tail.end if tail else None)
                if tail.seq == 0:                   # a fresh active file: continue the chain
                    tail.prev, tail.seq = _chain_before(self.dir)
                    tail.cp_hash, tail.cp_seq = tail.prev, tail.seq
                pos = tail.end
                _zero(fd, pos, torn_end)            # never acknowledged: overwritten below
            out: list[bytes] = []
            signed: list[bytes] = []
            now = time.time()
            stamp = dt.datetime.fromtimestamp(now, dt.timezone.utc).isoformat(timespec="milliseconds")
            for rec in records:
                if rec.get("type") == "checkpoint":
                    seal = rec.get("seal") is True
                    if (tail.since == 0 and not seal) or (seal and tail.sealed):
                        continue                  # nothing new to sign
                    self._add_checkpoint(fd, pos, out, signed, tail, now, stamp, rec.get("reason"), seal)
                    continue
                out.append(self._encode(rec, tail, now, stamp))
                if tail.since >= self.checkpoint_every:
                    self._add_checkpoint(fd, pos, out, signed, tail, now, stamp, "interval", False)
            # Never after a seal: a clean shutdown's log ends sealed (rotate at the next start).
            rotate = not tail.sealed and self._rotation_due(fd, pos + sum(map(len, out)), now)
            if rotate:
                self._add_checkpoint(fd, pos, out, signed, tail, now, stamp, "rotate", False)
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
            tail.end = end
            if rotate:
                self._rotate(fd, end, tail.seq)
                tail.end = 0
            self._tail = tail
            self.batches += 1
            self.records += len(records)
            return signed
        except BaseException:
            self._tail = None                       # unknown state: re-read before the next batch
            raise
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            if fd != self._fd:
                os.close(fd)                        # the segment just closed

    def _lock_current(self) -> int:
        """Lock the active file; if another process rotated it meanwhile (the path names
        another inode), reopen the new one first."""
        while True:
            fd = self._fd
            assert fd is not None
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if self._inode is None:
                    self._inode = os.fstat(fd).st_ino
                if os.stat(self.path).st_ino == self._inode:      # one stat per batch
                    return fd
            except FileNotFoundError:
                pass
            except BaseException:
                fcntl.flock(fd, fcntl.LOCK_UN)
                raise
            fcntl.flock(fd, fcntl.LOCK_UN)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
            os.close(fd)
            self._tail, self._allocated, self._segment_started, self._inode = None, 0, None, None

    def _rotation_due(self, fd: int, end: int, now: float) -> bool:
        if end == 0:
            return False
        if end >= self.segment_bytes:
            return True
        if self._segment_started is None:
            first = os.pread(fd, 65536, 0).split(b"\n", 1)[0]
            try:
                self._segment_started = float(json.loads(first)["ts"])
            except (ValueError, KeyError, TypeError):
                self._segment_started = now         # this batch starts the file
        return now - self._segment_started >= self.segment_seconds

    def _rotate(self, fd: int, end: int, last_seq: int) -> None:
        """Close the active file (it ends at the rotate checkpoint just synced) as a
        segment and open a fresh one; the caller still holds the old file's lock, so no
        other process writes in between."""
        first = json.loads(audit_segments.first_line(self.path))["seq"]
        os.ftruncate(fd, end)                       # drop the padding
        if self.fsync:
            os.fsync(fd)
        folder = self.dir / audit_segments.SEGMENTS_DIR
        folder.mkdir(mode=0o700, exist_ok=True)
        os.rename(self.path, folder / audit_segments.segment_name(int(first), last_seq))
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        if self.fsync:
            for d in (folder, self.dir):
                dfd = os.open(d, os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
        self._allocated, self._segment_started, self._inode = 0, None, None

    def _extend(self, fd: int, end: int) -> None:
        """Grow the padding so ``end`` fits with PREALLOC to spare; durable before use."""
        target = (end // PREALLOC + 2) * PREALLOC
        _zero(fd, self._allocated, target)
        if self.fsync:
            os.fsync(fd)                            # the new size and blocks, once per step
        self._allocated = target

    def _encode(self, rec: dict[str, Any], tail: _Tail, now: float, stamp: str) -> bytes:
        full: dict[str, Any] = {"ts": now, "type": "request"}
        full.update(rec)
        if full["type"] == "checkpoint":
            full["type"] = "request"                # only the writer signs checkpoints
        tail.seq += 1
        tail.since += 1
        full["seq"], full["prev"], full["time"] = tail.seq, tail.prev, stamp
        full["since_checkpoint"] = tail.since
        line = self._encoder.encode(full).encode()
        tail.prev, tail.sealed = line_hash(line), False
        return line + b"\n"

    def _add_checkpoint(self, fd: int, pos: int, out: list[bytes], signed: list[bytes], tail: _Tail,
                        now: float, stamp: str, reason: Any, seal: bool) -> None:
        """Sign everything about the head: seq, head hash, time, count, the previous
        checkpoint (hash and seq) and the key; append it to ``out`` and ``signed``."""
        if tail.cp_hash is None:                    # not seen since we re-read the tail
            tail.cp_hash, tail.cp_seq = _last_checkpoint(fd, pos) or _chain_before(self.dir)
        tail.seq += 1
        full: dict[str, Any] = {
            "ts": now, "type": "checkpoint", "seq": tail.seq, "prev": tail.prev, "time": stamp,
            "records": tail.seq - tail.cp_seq - 1, "prev_checkpoint": tail.cp_hash,
            "prev_checkpoint_seq": tail.cp_seq, "reason": str(reason or "interval"),
            "seal": seal, "key": self._public_hex}
        full["sig"] = sign(self._key, full)
        line = self._encoder.encode(full).encode()
        h = line_hash(line)
        tail.prev, tail.since, tail.cp_hash, tail.cp_seq, tail.sealed = h, 0, h, tail.seq, seal
        out.append(line + b"\n")
        signed.append(line)


# --- query, export (verify: verify.py) ----------------------------------------------
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


def query(path: Path | list[Path], *, principal: str | None = None, bucket: str | None = None,
          since: float | str | dt.datetime | None = None, until: float | str | dt.datetime | None = None,
          decision: str | None = None, include_checkpoints: bool = False) -> Iterator[dict[str, Any]]:
    """Records matching every given filter, in log order (streams; no whole-file load);
    ``path`` may be a list of segments, read in order."""
    lo, hi = _ts(since), _ts(until)
    for rec in _records(path if isinstance(path, list) else [path]):
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


def _records(paths: list[Path]) -> Iterator[dict[str, Any]]:
    for path in paths:
        with open(path, "rb") as f:
            for raw in f:
                if raw[:1] == b"\0":
                    break                           # the preallocated padding
                try:
                    yield json.loads(raw)
                except ValueError:
                    continue


def export(records: Iterable[dict[str, Any]], out: TextIO) -> int:
    """Write records as JSON lines (for a SIEM); returns the count."""
    n = 0
    for rec in records:
        out.write(json.dumps(rec, separators=(",", ":"), sort_keys=True) + "\n")
        n += 1
    return n


def log_path(data_dir: Path) -> Path:
    return Path(data_dir) / AUDIT_DIR / LOG_FILE
