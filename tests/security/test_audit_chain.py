"""Audit log: every edit, deletion or reordering is named by verify; group commit; queries."""

from __future__ import annotations

import asyncio
import io
import json
import time

import pytest

from vallum.security.audit import log as audit
from vallum.security.audit.checkpoint import line_hash
from vallum.security.crypto import primitives as crypto


def write_log(tmp_path, n=20, checkpoint_every=5):
    async def main():
        log = audit.AuditLog(tmp_path, checkpoint_every=checkpoint_every)
        await log.open()
        for i in range(n):
            await log.append({"principal": f"user{i % 3}", "bucket": "b" if i % 2 else "c",
                              "decision": "deny" if i % 4 == 0 else "allow", "status": 200, "key": f"k{i}"})
        await log.close()
        return log

    asyncio.run(main())
    return audit.log_path(tmp_path)


def reopen_and_append(tmp_path, record):
    """Open the existing log as a restarted gateway would, append ``record``, close."""
    async def main():
        log = audit.AuditLog(tmp_path)
        await log.open()
        await log.append(record)
        await log.close()

    asyncio.run(main())


def pin(tmp_path):
    """The public key an operator pinned at first start (derived from the private key)."""
    return crypto.ed25519_public((tmp_path / "audit" / "audit-signing.key").read_bytes())


def lines(path):
    """The record lines, without the preallocated NUL padding after them."""
    return path.read_bytes().rstrip(b"\0").splitlines(keepends=True)


def test_intact_log_verifies(tmp_path):
    path = write_log(tmp_path)
    result = audit.verify(path, pin(tmp_path))
    assert result.ok and result.records == 20 + 4 + 1 and result.checkpoints == 4 + 1, result
    assert (tmp_path / "audit" / "audit-signing.key").stat().st_mode & 0o777 == 0o600
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("victim", [0, 3, 10, 17])
def test_edited_record_is_named(tmp_path, victim):
    path = write_log(tmp_path)
    ls = lines(path)
    ls[victim] = ls[victim].replace(b'"status":200', b'"status":201').replace(b'"allow"', b'"deny!"')
    if b'"status":201' not in ls[victim] and b"deny!" not in ls[victim]:
        ls[victim] = ls[victim].replace(b'"ts":', b'"ts":1')
    path.write_bytes(b"".join(ls))
    result = audit.verify(path, pin(tmp_path))
    assert not result.ok and result.broken_line == victim + 1, result


@pytest.mark.parametrize("victim", [0, 4, 11])
def test_deleted_record_is_named(tmp_path, victim):
    path = write_log(tmp_path)
    ls = lines(path)
    del ls[victim]
    path.write_bytes(b"".join(ls))
    result = audit.verify(path, pin(tmp_path))
    assert not result.ok and result.broken_line == victim + 1, result


@pytest.mark.parametrize("victim", [0, 7, 15])
def test_reordered_records_are_named(tmp_path, victim):
    path = write_log(tmp_path)
    ls = lines(path)
    ls[victim], ls[victim + 1] = ls[victim + 1], ls[victim]
    path.write_bytes(b"".join(ls))
    result = audit.verify(path, pin(tmp_path))
    assert not result.ok and result.broken_line == victim + 1, result


def test_rewritten_chain_is_caught_by_checkpoint_signature(tmp_path):
    """An attacker who edits a record and recomputes every later hash still fails at the checkpoint."""
    path = write_log(tmp_path)
    recs = [json.loads(x) for x in lines(path)]
    recs[1]["status"] = 500
    prev = audit.GENESIS
    out = []
    for r in recs:
        r["prev"] = prev
        line = json.dumps(r, separators=(",", ":"), sort_keys=True).encode()
        prev = line_hash(line)
        out.append(line + b"\n")
    path.write_bytes(b"".join(out))
    result = audit.verify(path, pin(tmp_path))
    assert not result.ok and "signature" in result.reason, result


def test_query_and_export(tmp_path):
    path = write_log(tmp_path)
    assert len(list(audit.query(path))) == 20
    assert all(r["principal"] == "user1" for r in audit.query(path, principal="user1"))
    assert len(list(audit.query(path, principal="user1"))) == 7
    assert len(list(audit.query(path, bucket="b", decision="deny"))) == 0
    assert len(list(audit.query(path, decision="deny"))) == 5
    assert list(audit.query(path, since=time.time() + 60)) == []
    assert len(list(audit.query(path, until="2999-01-01T00:00:00Z"))) == 20
    out = io.StringIO()
    assert audit.export(audit.query(path, bucket="c"), out) == 10
    assert all(json.loads(x)["bucket"] == "c" for x in out.getvalue().splitlines())


def test_group_commit_shares_fsyncs_and_reopen_continues_chain(tmp_path):
    async def main():
        log = audit.AuditLog(tmp_path, checkpoint_every=1000)
        await log.open()
        await asyncio.gather(*(log.append({"n": i}) for i in range(500)))
        batches = log.batches
        await log.close()
        log2 = audit.AuditLog(tmp_path)
        await log2.open()
        await log2.append({"n": "after restart"})
        await log2.close()
        return batches

    batches = asyncio.run(main())
    assert batches < 50, batches              # 500 concurrent appends, few fsyncs
    result = audit.verify(audit.log_path(tmp_path), pin(tmp_path))
    assert result.ok and result.records == 500 + 1 + 1 + 1, result


def test_two_processes_share_one_chain(tmp_path):
    """Two logs (as two gateway processes would) appending to the same file keep one chain."""
    async def main():
        a = audit.AuditLog(tmp_path)
        b = audit.AuditLog(tmp_path)
        await a.open()
        await b.open()
        for i in range(30):
            await asyncio.gather(a.append({"who": "a", "i": i}), b.append({"who": "b", "i": i}))
        await a.close()
        await b.close()

    asyncio.run(main())
    assert audit.verify(audit.log_path(tmp_path), pin(tmp_path)).ok


def test_append_cost(tmp_path):
    """Report (not assert tightly) the cost of durable appends, sequential vs concurrent."""
    async def main():
        log = audit.AuditLog(tmp_path, checkpoint_every=1000)
        await log.open()
        t = time.perf_counter()
        for i in range(200):
            await log.append({"i": i})
        seq = (time.perf_counter() - t) / 200
        t = time.perf_counter()
        await asyncio.gather(*(log.append({"i": i}) for i in range(2000)))
        conc = (time.perf_counter() - t) / 2000
        await log.close()
        return seq, conc

    seq, conc = asyncio.run(main())
    print(f"audit append: sequential {seq * 1e6:.0f} us/record, 2000 concurrent {conc * 1e6:.1f} us/record")
    assert conc < seq


def test_log_is_preallocated_and_padding_must_stay_empty(tmp_path):
    path = write_log(tmp_path)
    raw = path.read_bytes()
    records = raw.rstrip(b"\0")
    assert len(raw) % audit.PREALLOC == 0 and len(raw) > len(records)
    assert audit.verify(path, pin(tmp_path)).ok
    # Records hidden past a NUL (or written into the padding) are refused, not skipped.
    path.write_bytes(records + b"\0" * 10 + b'{"seq":99}\n' + b"\0" * 100)
    result = audit.verify(path, pin(tmp_path))
    assert not result.ok and "after the end" in result.reason, result


def test_log_grows_in_preallocated_steps(tmp_path, monkeypatch):
    monkeypatch.setattr(audit, "PREALLOC", 4096)
    path = write_log(tmp_path, n=200, checkpoint_every=50)
    assert path.stat().st_size % 4096 == 0 and path.stat().st_size > 3 * 4096
    result = audit.verify(path, pin(tmp_path))
    assert result.ok and result.records == 200 + 4 + 1, result


def test_torn_unacknowledged_write_is_overwritten_on_reopen(tmp_path):
    path = write_log(tmp_path, n=5)
    records = path.read_bytes().rstrip(b"\0")
    with open(path, "r+b") as f:                 # a crash mid-write: half a line, never synced
        f.seek(len(records))
        f.write(b'{"ts":1,"type":"request","seq":99,"prev":"abc')

    reopen_and_append(tmp_path, {"after": "crash"})
    result = audit.verify(path, pin(tmp_path))
    assert result.ok and result.records == 5 + 1 + 1 + 1 + 1, result
    assert b'"seq":99' not in path.read_bytes()


def test_unpadded_log_is_continued(tmp_path):
    """A log written before preallocation (no padding) is continued where it ends."""
    path = write_log(tmp_path, n=5)
    path.write_bytes(path.read_bytes().rstrip(b"\0"))

    reopen_and_append(tmp_path, {"n": "next"})
    result = audit.verify(path, pin(tmp_path))
    assert result.ok and result.records == 5 + 1 + 1 + 1 + 1, result
