"""Audit retention: rotated segments form one chain, exports verify offline, pruning keeps
the rest verifiable (anchored by the signed manifest), and every way of cutting, editing
or forging segments, the manifest or the archive is named by verify."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import time

import pytest

from vallum.security.audit import log as audit
from vallum.security.audit import segments as audit_segments
from vallum.security.crypto import primitives as crypto


def key(tmp_path) -> bytes:
    return (tmp_path / "audit" / "audit-signing.key").read_bytes()


def pin(tmp_path) -> bytes:
    return crypto.ed25519_public(key(tmp_path))


def write(tmp_path, n: int, *, segment_bytes=4096, segment_seconds=3600.0, logs=1, close=True):
    """Append n records through ``logs`` writers sharing the directory (as gateway processes
    do), rotating every ``segment_bytes``."""
    async def main():
        writers = [audit.AuditLog(tmp_path, checkpoint_every=7, checkpoint_seconds=0, fsync=False,
                                  segment_bytes=segment_bytes, segment_seconds=segment_seconds)
                   for _ in range(logs)]
        for w in writers:
            await w.open()
        for i in range(n):
            await writers[i % logs].append({"principal": f"u{i}", "bucket": "b", "status": 200, "pad": "x" * 60})
        if close:
            for w in writers:
                await w.close()

    asyncio.run(main())


def verify(tmp_path):
    return audit_segments.verify_retained(tmp_path / "audit", pin(tmp_path))


def test_rotation_by_size_keeps_one_chain(tmp_path):
    write(tmp_path, 200)
    segs = audit_segments.segments(tmp_path / "audit")
    assert len(segs) >= 3
    assert segs[0].first == 1
    for a, b in zip(segs, segs[1:]):
        assert b.first == a.last + 1
        assert a.path.stat().st_size < 4096 + 1024      # cut near the limit, padding dropped
        assert json.loads(audit_segments.last_line(a.path))["reason"] == "rotate"
    result = verify(tmp_path)
    assert result.ok and result.sealed and result.records == segs[-1].last + len(
        (tmp_path / "audit" / "audit.log").read_bytes().rstrip(b"\0").splitlines()), result
    # The active file alone no longer starts the chain: only the set verifies.
    assert audit.verify(audit.log_path(tmp_path), pin(tmp_path)).status == "broken"


def test_rotation_by_age(tmp_path):
    async def main():
        log = audit.AuditLog(tmp_path, checkpoint_seconds=0, segment_seconds=0.05)
        await log.open()
        for i in range(5):
            await log.append({"n": i})
            await asyncio.sleep(0.06)
        await log.close()

    asyncio.run(main())
    assert len(audit_segments.segments(tmp_path / "audit")) >= 2
    assert verify(tmp_path).ok


def test_two_writers_follow_each_others_rotations(tmp_path):
    write(tmp_path, 150, logs=2)
    assert len(audit_segments.segments(tmp_path / "audit")) >= 3
    assert verify(tmp_path).ok


def test_restart_after_rotation_continues_the_chain(tmp_path):
    write(tmp_path, 60)
    write(tmp_path, 60)
    assert verify(tmp_path).ok


def test_export_prune_and_verify(tmp_path):
    write(tmp_path, 200)
    audit_dir, archive = tmp_path / "audit", tmp_path / "archive"
    segs = audit_segments.segments(audit_dir)
    # Nothing is removed before it is exported, nor before the retention period ends.
    assert audit_segments.prune(audit_dir, key(tmp_path), retain_days=0, archive=None) == []
    written = audit_segments.export(audit_dir, archive, key(tmp_path))
    assert len(written) == len(segs) and audit_segments.export(audit_dir, archive, key(tmp_path)) == []
    assert audit_segments.prune(audit_dir, key(tmp_path), retain_days=1, archive=archive) == []
    pruned = audit_segments.prune(audit_dir, key(tmp_path), retain_days=0, archive=archive,
                                  now=time.time() + 1)
    assert [p.path.name for p in pruned] == [s.path.name for s in segs]
    assert audit_segments.segments(audit_dir) == []
    assert (audit_dir / "segments" / "manifest.json").stat().st_mode & 0o777 == 0o600
    result = verify(tmp_path)
    assert result.ok, result
    archived = audit_segments.verify_archive(archive, pin(tmp_path))
    assert archived.ok and archived.head_seq == segs[-1].last, archived
    # More records, another rotation and prune: the anchor moves on.
    write(tmp_path, 100)
    audit_segments.export(audit_dir, archive, key(tmp_path))
    assert audit_segments.prune(audit_dir, key(tmp_path), retain_days=0, archive=archive, now=time.time() + 1)
    assert verify(tmp_path).ok
    assert audit_segments.verify_archive(archive, pin(tmp_path)).ok


def pruned_once(tmp_path):
    write(tmp_path, 200)
    audit_dir, archive = tmp_path / "audit", tmp_path / "archive"
    audit_segments.export(audit_dir, archive, key(tmp_path))
    # Keep the newest closed segments: prune only those older than the last two.
    segs = audit_segments.segments(audit_dir)
    cutoff = json.loads(audit_segments.last_line(segs[-3].path))["ts"]
    audit_segments.prune(audit_dir, key(tmp_path), retain_days=0, archive=archive, now=cutoff + 1e-3)
    assert len(audit_segments.segments(audit_dir)) == 2
    assert verify(tmp_path).ok
    return audit_dir, archive


def test_deleting_the_oldest_retained_segment_is_detected(tmp_path):
    audit_dir, _ = pruned_once(tmp_path)
    audit_segments.segments(audit_dir)[0].path.unlink()
    result = verify(tmp_path)
    assert result.status == "broken" and "missing" in result.reason, result


def test_deleting_the_manifest_is_detected(tmp_path):
    audit_dir, _ = pruned_once(tmp_path)
    (audit_dir / "segments" / "manifest.json").unlink()
    result = verify(tmp_path)
    assert result.status == "broken", result


@pytest.mark.parametrize("field", ["hash", "pruned_through_seq"])
def test_an_edited_manifest_is_detected(tmp_path, field):
    audit_dir, _ = pruned_once(tmp_path)
    path = audit_dir / "segments" / "manifest.json"
    doc = json.loads(path.read_text())
    doc[field] = "0" * 64 if field == "hash" else doc[field] + 1
    path.write_text(json.dumps(doc))
    result = verify(tmp_path)
    assert result.status == "broken" and "manifest" in result.reason, result


def test_a_manifest_signed_by_another_key_is_refused(tmp_path):
    audit_dir, _ = pruned_once(tmp_path)
    path = audit_dir / "segments" / "manifest.json"
    doc = json.loads(path.read_text())
    forged = audit_segments._sign(crypto.ed25519_new_private(), audit_segments._MANIFEST_DOMAIN,
                                  {k: v for k, v in doc.items() if k not in ("sig", "key")})
    path.write_text(json.dumps(forged))
    assert verify(tmp_path).status == "broken"


def test_an_edited_record_in_a_closed_segment_is_named(tmp_path):
    write(tmp_path, 200)
    seg = audit_segments.segments(tmp_path / "audit")[1]
    raw = seg.path.read_bytes().replace(b'"principal":"u', b'"principal":"X', 1)
    seg.path.write_bytes(raw)
    result = verify(tmp_path)
    assert result.status == "broken" and result.broken_file == str(seg.path), result


def test_a_segment_cut_before_its_rotate_checkpoint_is_detected(tmp_path):
    write(tmp_path, 200)
    seg = audit_segments.segments(tmp_path / "audit")[0]
    lines = seg.path.read_bytes().splitlines(keepends=True)
    seg.path.write_bytes(b"".join(lines[:-1]))
    assert verify(tmp_path).status == "broken"


def test_a_tampered_export_is_detected(tmp_path):
    _, archive = pruned_once(tmp_path)
    gz = sorted(archive.glob("*.gz"))[1]
    text = gzip.decompress(gz.read_bytes()).replace(b'"principal":"u', b'"principal":"X', 1)
    gz.write_bytes(gzip.compress(text))
    result = audit_segments.verify_archive(archive, pin(tmp_path))
    assert result.status == "broken" and gz.name in result.reason, result
    # Re-signing the statement needs the private key: with another key it is refused.
    sig = gz.with_name(gz.name.removesuffix(".gz") + ".sig.json")
    doc = json.loads(sig.read_text())
    doc["sha256"] = __import__("hashlib").sha256(gz.read_bytes()).hexdigest()
    forged = audit_segments._sign(crypto.ed25519_new_private(), audit_segments._EXPORT_DOMAIN,
                                  {k: v for k, v in doc.items() if k not in ("sig", "key")})
    sig.write_text(json.dumps(forged))
    assert audit_segments.verify_archive(archive, pin(tmp_path)).status == "broken"


def test_a_gap_in_the_archive_is_detected(tmp_path):
    _, archive = pruned_once(tmp_path)
    middle = sorted(archive.glob("*.gz"))[1]
    middle.unlink()
    middle.with_name(middle.name.removesuffix(".gz") + ".sig.json").unlink()
    result = audit_segments.verify_archive(archive, pin(tmp_path))
    assert result.status == "broken" and "missing" in result.reason, result


def test_a_crash_between_closing_a_segment_and_opening_the_next_loses_nothing(tmp_path):
    """The rename is durable before the fresh file exists: a restart that finds no
    audit.log continues the chain from the last segment."""
    async def crash_right_after_a_rotation():
        log = audit.AuditLog(tmp_path, checkpoint_seconds=0, segment_bytes=1)
        await log.open()
        for i in range(3):
            await log.append({"n": i})              # every batch ends in a rotation
        await asyncio.to_thread(log._writer.stop)   # die without a seal
        os.close(log._fd)

    asyncio.run(crash_right_after_a_rotation())
    active = audit.log_path(tmp_path)
    assert active.read_bytes().strip(b"\0") == b""
    active.unlink()                                 # the crash came before it was created
    last = audit_segments.segments(tmp_path / "audit")[-1].last
    write(tmp_path, 4, segment_bytes=1 << 20)
    result = verify(tmp_path)
    assert result.ok and result.head_seq > last + 4, result


def test_prune_removes_only_what_the_archive_really_holds(tmp_path):
    """A statement for another log's segment of the same name, or a damaged export, does
    not count as exported: nothing is pruned."""
    write(tmp_path / "other", 200)
    write(tmp_path, 200)
    audit_dir, archive = tmp_path / "audit", tmp_path / "archive"
    audit_segments.export(tmp_path / "other" / "audit", archive, key(tmp_path / "other"))
    later = time.time() + 1
    assert audit_segments.prune(audit_dir, key(tmp_path), retain_days=0, archive=archive, now=later) == []
    for f in archive.iterdir():
        f.unlink()
    audit_segments.export(audit_dir, archive, key(tmp_path))
    first_gz = sorted(archive.glob("*.gz"))[0]
    first_gz.write_bytes(first_gz.read_bytes()[:-1])
    assert audit_segments.prune(audit_dir, key(tmp_path), retain_days=0, archive=archive, now=later) == []
    first_gz.unlink()
    assert audit_segments.verify_archive(archive, pin(tmp_path)).status == "broken"
