"""`vallum audit verify`: prove a log authentic against a key pinned OUTSIDE the log.

Three outcomes (errors as data, the CLI maps them to exit codes):
- ``ok``: every record is covered by a signed checkpoint and the log ends in a signed
  shutdown seal (or at the head anchored by ``expect_seq``/``expect_hash``);
- ``broken``: something was edited, removed, inserted, reordered, re-signed or a
  checkpoint is missing; the first such record is named;
- ``unverified``: the chain is intact but its end is not signed: records after the last
  checkpoint of a log that is not sealed (a running or crashed server, or a forged
  append), or a log that ends at a checkpoint without a seal (its tail may be cut).
  Anchor it with the latest witnessed checkpoint.

Whoever can write the data directory can rewrite the chain and every hash, so the hash
chain alone proves nothing; only signatures under the pinned key (and anchors from the
witness) do. Cutting the log back to an earlier seal is detected only by an anchor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vallum.security.audit.checkpoint import (
    GENESIS,
    MAX_GAP,
    fingerprint,
    line_hash,
    same_hex,
    signature_ok,
)


@dataclass
class VerifyResult:
    status: str                      # "ok" | "broken" | "unverified"
    records: int                     # records read (valid ones, up to the first break)
    checkpoints: int
    broken_line: int | None = None   # 1-based line number of the first broken record
    broken_seq: int | None = None
    reason: str = ""
    head_seq: int = 0
    head_hash: str = GENESIS
    sealed: bool = False
    head_time: str = ""              # when the head was written (an operator compares it)
    broken_file: str = ""            # which segment holds the broken record (several files)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def __str__(self) -> str:
        if self.status == "ok":
            how = "sealed" if self.sealed else "anchored"
            return (f"OK: {self.records} records, {self.checkpoints} signed checkpoints, "
                    f"{how} at seq {self.head_seq}, {self.head_time or 'time unknown'} (hash {self.head_hash})")
        if self.status == "unverified":
            return f"UNVERIFIED: {self.reason}"
        where = f"{self.broken_file} " if self.broken_file else ""
        return f"BROKEN at {where}line {self.broken_line} (seq {self.broken_seq}): {self.reason}"


class _Pin:
    """The pinned key: given whole, or as a fingerprint matched by the first checkpoint."""

    def __init__(self, public_key: bytes | None, fp: str | None) -> None:
        if public_key is None and not fp:
            raise ValueError("a pinned public key or fingerprint is required")
        self.key = public_key
        self.fp = fp

    def check(self, rec: dict[str, Any]) -> str:
        """Why this checkpoint's key is not the pinned one ("" if it is)."""
        try:
            claimed = bytes.fromhex(str(rec.get("key", "")))
        except ValueError:
            claimed = b""
        if self.key is None:
            if not same_hex(fingerprint(claimed), self.fp or ""):
                return f"checkpoint signed by a key that is not the pinned one (fingerprint {fingerprint(claimed)})"
            self.key = claimed
        elif claimed != self.key:
            return f"checkpoint names a key that is not the pinned one (fingerprint {fingerprint(claimed)})"
        if not signature_ok(self.key, rec):
            return "checkpoint signature is invalid under the pinned key"
        return ""


def verify(path: Path, public_key: bytes | None = None, *, fp: str | None = None,
           expect_seq: int | None = None, expect_hash: str | None = None,
           max_gap: int = MAX_GAP) -> VerifyResult:
    """Walk the chain and the checkpoint chain of one log file from its genesis; see the
    module docstring for the outcomes."""
    return verify_files([path], public_key, fp=fp, expect_seq=expect_seq,
                        expect_hash=expect_hash, max_gap=max_gap)


def verify_files(paths: list[Path], public_key: bytes | None = None, *, fp: str | None = None,
                 start: tuple[int, str] = (0, GENESIS), expect_seq: int | None = None,
                 expect_hash: str | None = None, max_gap: int = MAX_GAP) -> VerifyResult:
    """Verify consecutive segments of one chain as one log (audit_segments.py). ``start``:
    the (seq, hash) of the signed checkpoint the first file follows (GENESIS for a chain
    from its beginning; a pruned prefix's last checkpoint, from the signed manifest). Every
    file but the last must end at a signed checkpoint (segments are cut at one)."""
    pin = _Pin(public_key, fp)
    if (expect_seq is None) != (expect_hash is None):
        raise ValueError("expect_seq and expect_hash go together")
    prev_seq, prev_hash = start
    count, checkpoints = 0, 0
    cp_hash, cp_seq = prev_hash, prev_seq
    sealed, head_time = False, ""
    entries = 0                     # records that are not checkpoints
    for index, path in enumerate(paths):
        if index and cp_seq != prev_seq:
            return VerifyResult("broken", count, checkpoints, None, prev_seq,
                                f"segment {paths[index - 1].name} does not end at a signed checkpoint",
                                broken_file=str(paths[index - 1]))
        with open(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                def broken(reason: str, at_line: int = lineno, seq: Any = None, _count: int = count,
                           _checkpoints: int = checkpoints, _path: Path = path) -> VerifyResult:
                    return VerifyResult("broken", _count, _checkpoints, at_line, seq, reason,
                                        broken_file=str(_path) if len(paths) > 1 else "")

                if raw[:1] == b"\0":                    # the padding: it must run to the end
                    if raw.strip(b"\0") or any(rest.strip(b"\0") for rest in f):
                        return broken("bytes after the end of the log (NUL padding)")
                    break
                line = raw.rstrip(b"\n")
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
                    if count and lineno > 1:
                        return broken("record was altered (its hash no longer matches the next record)",
                                      lineno - 1, prev_seq)
                    if count:
                        return broken("segment does not continue the previous one", seq=seq)
                    return broken("first record does not start the chain" if start[0] == 0 else
                                  f"first record does not follow the anchored checkpoint {start[0]}", seq=seq)
                this_hash = line_hash(line)
                if expect_seq == seq and not same_hex(this_hash, expect_hash or ""):
                    return broken(f"record {seq} is not the anchored one (expected hash {expect_hash})", seq=seq)
                if rec.get("type") == "checkpoint":
                    why = pin.check(rec)
                    if not why and (rec.get("prev_checkpoint") != cp_hash or rec.get("prev_checkpoint_seq") != cp_seq):
                        why = "checkpoint does not chain to the previous checkpoint"
                    if not why and rec.get("records") != seq - cp_seq - 1:
                        why = "checkpoint's record count does not match the records it covers"
                    if why:
                        return broken(why, seq=seq)
                    checkpoints += 1
                    cp_hash, cp_seq, sealed = this_hash, seq, rec.get("seal") is True
                else:
                    sealed = False
                    entries += 1
                    if seq - cp_seq > max_gap:
                        return broken(f"more than {max_gap} records without a signed checkpoint", seq=seq)
                prev_hash, prev_seq, head_time = this_hash, seq, str(rec.get("time", ""))
                count += 1
    result = _conclude(count, checkpoints, prev_seq, prev_hash, cp_seq, sealed, expect_seq)
    if result.status == "ok" and sealed and start[0] == 0 and not entries and expect_seq is None:
        # Every start writes a seal at once, so a log cut back to its first line is a sealed
        # log too: one with no records proves nothing about what it held.
        result = VerifyResult("unverified", count, checkpoints, None, None,
                              "the log holds only checkpoints, no records: it may have been cut "
                              "back to its first seal; anchor it with --expect-seq/--expect-hash "
                              "or --witness", prev_seq, prev_hash, sealed)
    result.head_time = head_time
    return result


def _conclude(count: int, checkpoints: int, head: int, head_hash: str, cp_seq: int,
              sealed: bool, expect_seq: int | None) -> VerifyResult:
    def result(status: str, reason: str = "") -> VerifyResult:
        return VerifyResult(status, count, checkpoints, None, None, reason, head, head_hash, sealed)

    anchor = expect_seq or 0
    if anchor > head:
        return VerifyResult("broken", count, checkpoints, None, head,
                            f"the log ends at seq {head}, before the anchored seq {anchor}: its tail was cut",
                            head, head_hash)
    if sealed or (anchor and anchor == head):
        return result("ok")
    covered = max(cp_seq, anchor)
    if head == 0:
        return result("unverified", "the log is empty: nothing is signed")
    if head > covered:
        return result("unverified", f"records {covered + 1}..{head} follow the last signed checkpoint "
                      f"(seq {cp_seq}) and the log is not sealed: they may be forged appends "
                      "(or the server is running or crashed); anchor them with --expect-seq/--expect-hash")
    return result("unverified", f"the log ends at checkpoint seq {head} without a shutdown seal: "
                  "records after it may have been cut (or the server is running or crashed)")
