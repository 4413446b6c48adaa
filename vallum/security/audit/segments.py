"""Audit retention: the log as a chain of sealed segments, exported and pruned by policy.

The writer (audit.py) cuts the active ``audit/audit.log`` when it outgrows its size or age
limit: it signs a ``rotate`` checkpoint, trims the padding and renames the file to
``audit/segments/audit-<first seq>-<last seq>.log``; the next record continues the same
chain (seq and ``prev``) and the same checkpoint chain in a fresh ``audit.log``. So every
segment starts right after a signed checkpoint and ends at one.

``export`` writes each closed segment to an archive directory gzip-compressed, beside a
signed statement (``.sig.json``: its seq range, the hash of the checkpoint it follows, the
hash of its last line, the gzip's SHA-256, signed under the audit key). ``prune`` removes
closed segments older than the retention period, oldest first, only once exported; before
any file goes it writes the signed manifest (``segments/manifest.json``) naming the last
pruned checkpoint, which anchors the first retained segment. ``verify_retained`` walks
manifest anchor -> segments -> active log; ``verify_archive`` checks exported segments
offline (signatures, digests and the chain across them). All signatures are checked
against the pinned key, never the one beside the log.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vallum.security.audit.checkpoint import GENESIS, fingerprint, line_hash, same_hex
from vallum.security.audit.verify import VerifyResult, verify_files
from vallum.security.crypto import primitives as crypto

SEGMENTS_DIR = "segments"
MANIFEST = "manifest.json"
_NAME = re.compile(r"audit-(\d{12})-(\d{12})\.log")
_MANIFEST_DOMAIN = b"vallum-audit-manifest-v1\n"
_EXPORT_DOMAIN = b"vallum-audit-export-v1\n"


@dataclass
class Segment:
    path: Path
    first: int
    last: int


def segment_name(first: int, last: int) -> str:
    return f"audit-{first:012d}-{last:012d}.log"


def segments(audit_dir: Path) -> list[Segment]:
    """Closed segments in chain order."""
    folder = Path(audit_dir) / SEGMENTS_DIR
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    out = [Segment(folder / n, int(m[1]), int(m[2])) for n in names if (m := _NAME.fullmatch(n))]
    return sorted(out, key=lambda s: s.first)


def last_line(path: Path) -> bytes:
    """The last record line of a closed segment (a checkpoint)."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 65536))
        tail = f.read().rstrip(b"\0").rstrip(b"\n")
    return tail.rsplit(b"\n", 1)[-1]


def first_line(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.readline().rstrip(b"\n")


# --- signed documents ---------------------------------------------------------------
def _message(domain: bytes, doc: dict[str, Any]) -> bytes:
    body = {k: v for k, v in doc.items() if k != "sig"}
    return domain + json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _sign(private: bytes, domain: bytes, doc: dict[str, Any]) -> dict[str, Any]:
    doc = dict(doc, key=crypto.ed25519_public(private).hex())
    doc["sig"] = crypto.ed25519_sign(private, _message(domain, doc)).hex()
    return doc


def _check(domain: bytes, doc: dict[str, Any], public: bytes | None, fp: str | None) -> str:
    """Why ``doc`` is not signed under the pinned key ("" when it is)."""
    try:
        claimed, sig = bytes.fromhex(str(doc.get("key", ""))), bytes.fromhex(str(doc.get("sig", "")))
    except ValueError:
        return "malformed key or signature"
    if public is not None and claimed != public:
        return "signed by a key that is not the pinned one"
    if public is None and not same_hex(fingerprint(claimed), fp or ""):
        return "signed by a key that is not the pinned one"
    if not crypto.ed25519_verify(claimed, sig, _message(domain, doc)):
        return "signature is invalid under the pinned key"
    return ""


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    """Atomically and durably (temp, fsync, rename, directory fsync), 0600."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_manifest(audit_dir: Path) -> dict[str, Any] | None:
    path = Path(audit_dir) / SEGMENTS_DIR / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


# --- export ---------------------------------------------------------------------------
def export(audit_dir: Path, archive: Path, private: bytes) -> list[Path]:
    """Write every closed segment not yet in ``archive`` as ``<name>.gz`` plus its signed
    ``<name>.sig.json``; returns what was written. Idempotent."""
    archive.mkdir(mode=0o700, parents=True, exist_ok=True)
    written = []
    for seg in segments(audit_dir):
        gz = archive / (seg.path.name + ".gz")
        sig = archive / (seg.path.name + ".sig.json")
        if sig.exists():
            continue
        tmp = gz.with_name(gz.name + ".tmp")
        with open(seg.path, "rb") as src, open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out:
                while block := src.read(1 << 20):
                    out.write(block)
            raw.flush()
            os.fsync(raw.fileno())
        digest = _sha256(tmp)
        os.replace(tmp, gz)
        first = json.loads(first_line(seg.path))
        _write_json(sig, _sign(private, _EXPORT_DOMAIN, {
            "file": gz.name, "sha256": digest, "first_seq": seg.first, "last_seq": seg.last,
            "follows": first["prev"], "last_hash": line_hash(last_line(seg.path)),
            "exported": time.time()}))
        written.append(gz)
    return written


def exported(archive: Path | None, seg: Segment) -> bool:
    """Whether ``archive`` holds this very segment: a statement for its seq range and last
    line, and a gzip with the stated digest (a same-named file from elsewhere is not it)."""
    if archive is None:
        return False
    try:
        doc = json.loads((archive / (seg.path.name + ".sig.json")).read_text())
        if (int(doc["first_seq"]), int(doc["last_seq"])) != (seg.first, seg.last) or not same_hex(
                str(doc["last_hash"]), line_hash(last_line(seg.path))):
            return False
        return same_hex(_sha256(archive / Path(str(doc["file"])).name), str(doc["sha256"]))
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


# --- prune ----------------------------------------------------------------------------
def prune(audit_dir: Path, private: bytes, *, retain_days: float, archive: Path | None,
          now: float | None = None) -> list[Segment]:
    """Remove closed segments whose last record is older than ``retain_days``, oldest first,
    stopping at the first that is too young or not exported to ``archive``. The signed
    manifest naming the last pruned checkpoint is durable before any file is removed."""
    if retain_days < 0:
        raise ValueError("the retention period is >= 0 days")
    now = time.time() if now is None else now
    doomed: list[Segment] = []
    for seg in segments(audit_dir):
        last = json.loads(last_line(seg.path))
        if float(last.get("ts", now)) > now - retain_days * 86400 or not exported(archive, seg):
            break
        doomed.append(seg)
    if not doomed:
        return []
    old = read_manifest(audit_dir) or {}
    _write_json(Path(audit_dir) / SEGMENTS_DIR / MANIFEST, _sign(private, _MANIFEST_DOMAIN, {
        "pruned_through_seq": doomed[-1].last, "hash": line_hash(last_line(doomed[-1].path)),
        "pruned": old.get("pruned", []) + [seg.path.name for seg in doomed],
        "retain_days": retain_days, "time": now}))
    for seg in doomed:
        os.unlink(seg.path)
    _fsync_dir(Path(audit_dir) / SEGMENTS_DIR)
    return doomed


# --- verify -----------------------------------------------------------------------------
def verify_retained(audit_dir: Path, public: bytes | None, *, fp: str | None = None,
                    expect_seq: int | None = None, expect_hash: str | None = None) -> VerifyResult:
    """The retained set as one chain: from GENESIS, or from the signed manifest's anchor
    when older segments were pruned, through every closed segment and the active log."""
    start = (0, GENESIS)
    manifest = read_manifest(audit_dir)
    if manifest is not None:
        why = _check(_MANIFEST_DOMAIN, manifest, public, fp)
        if why:
            return VerifyResult("broken", 0, 0, None, None, f"retention manifest: {why}")
        start = (int(manifest["pruned_through_seq"]), str(manifest["hash"]))
    # Segments the manifest already covers (a prune stopped between manifest and unlink).
    files = [s.path for s in segments(audit_dir) if s.last > start[0]]
    files.append(Path(audit_dir) / "audit.log")
    return verify_files(files, public, fp=fp, start=start, expect_seq=expect_seq, expect_hash=expect_hash)


def verify_archive(archive: Path, public: bytes | None, *, fp: str | None = None) -> VerifyResult:
    """Exported segments, offline: each statement signed under the pinned key, each gzip
    matching its digest, and the chain continuous from the first exported segment (which
    is anchored by its signed statement) to the last; the last must end at a checkpoint."""
    statements = []
    for sig in sorted(archive.glob("audit-*.log.sig.json")):
        doc = json.loads(sig.read_text())
        why = _check(_EXPORT_DOMAIN, doc, public, fp)
        if why:
            return VerifyResult("broken", 0, 0, None, None, f"{sig.name}: {why}")
        statements.append(doc)
    if not statements:
        return VerifyResult("unverified", 0, 0, reason=f"no exported segments in {archive}")
    statements.sort(key=lambda d: int(d["first_seq"]))
    plain = []
    tmp_dir = archive / ".verify"
    tmp_dir.mkdir(mode=0o700, exist_ok=True)
    try:
        for doc in statements:
            gz = archive / Path(str(doc["file"])).name
            if not gz.is_file():
                return VerifyResult("broken", 0, 0, None, None, f"{gz.name}: exported segment is missing")
            if not same_hex(_sha256(gz), str(doc["sha256"])):
                return VerifyResult("broken", 0, 0, None, None, f"{gz.name}: not the file that was exported")
            out = tmp_dir / gz.name.removesuffix(".gz")
            with gzip.open(gz, "rb") as src, open(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
            plain.append(out)
        first = statements[0]
        result = verify_files(plain, public, fp=fp, start=(int(first["first_seq"]) - 1, str(first["follows"])))
        last = statements[-1]
        if result.status != "broken" and (result.head_seq != int(last["last_seq"])
                                          or not same_hex(result.head_hash, str(last["last_hash"]))):
            return VerifyResult("broken", result.records, result.checkpoints, None, result.head_seq,
                                "the exported segments do not end where their statement says")
        if result.status == "unverified" and result.head_seq == int(last["last_seq"]):
            result.status, result.reason = "ok", ""        # ends at a signed rotate checkpoint
        return result
    finally:
        for p in plain:
            p.unlink(missing_ok=True)
        tmp_dir.rmdir()
