"""Audit forgeries by someone who can write the data directory (issue 13, High 4).

Each test is one forgery `vallum audit verify` must report. The attacker may rewrite
every byte of the log and of ``audit-signing.pub``; only the public key the operator
pinned at first start (and checkpoints already sent to a witness) are out of reach.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass

from typer.testing import CliRunner

from vallum.cli.main import app
from vallum.security.audit import log as audit
from vallum.security.audit.checkpoint import fingerprint, line_hash
from vallum.security.crypto import primitives as crypto


def make_log(data_dir, n=12, every=5, sessions=1):
    """A log as a gateway writes it: ``sessions`` open/append/close (seal) rounds."""
    async def main():
        for s in range(sessions):
            log = audit.AuditLog(data_dir, checkpoint_every=every)
            await log.open()
            for i in range(n):
                await log.append({"principal": "AKIDUSER", "action": "s3:GetObject",
                                  "target": f"arn:aws:s3:::b/k{s}-{i}", "decision": "allow", "status": 200})
            await log.close()

    asyncio.run(main())
    return audit.log_path(data_dir)


def pinned(data_dir):
    return crypto.ed25519_public((data_dir / "audit" / "audit-signing.key").read_bytes())


def records(path):
    return [json.loads(x) for x in path.read_bytes().rstrip(b"\0").splitlines()]


def write_chain(path, recs, start_prev=audit.GENESIS):
    """The attacker's rewrite: re-link every record so the hash chain itself is intact."""
    prev, out = start_prev, []
    for r in recs:
        r["prev"] = prev
        line = json.dumps(r, separators=(",", ":")).encode()
        prev = line_hash(line)
        out.append(line + b"\n")
    path.write_bytes(b"".join(out))


@dataclass
class Run:
    returncode: int
    stdout: str            # stdout and stderr, as CliRunner mixes them
    stderr: str


def cli(*args):
    """`vallum audit verify ARGS`, the real command, in-process (a subprocess costs ~2 s here)."""
    r = CliRunner().invoke(app, ["audit", "verify", *args])
    return Run(r.exit_code, r.output, r.output)


def test_intact_sealed_log_is_ok_against_the_pin(tmp_path):
    path = make_log(tmp_path)
    result = audit.verify(path, pinned(tmp_path))
    assert result.ok and result.sealed, result
    out = cli("--log", str(path), "--fingerprint", fingerprint(pinned(tmp_path)))
    assert out.returncode == 0 and out.stdout.startswith("OK"), out.stdout + out.stderr


def test_verify_without_a_pin_refuses(tmp_path):
    """The .pub beside the log is the attacker's to replace: no pin, no verdict (exit 2)."""
    path = make_log(tmp_path)
    out = cli("--log", str(path))
    assert out.returncode == 2 and "no pinned key" in out.stderr, out.stdout + out.stderr


def test_full_rewrite_without_checkpoints_is_reported(tmp_path):
    path = make_log(tmp_path)
    forged = [r for r in records(path) if r["type"] != "checkpoint"]
    for i, r in enumerate(forged, 1):
        r["seq"], r["decision"] = i, "allow"
    write_chain(path, forged)
    result = audit.verify(path, pinned(tmp_path))
    assert not result.ok and result.checkpoints == 0, result
    out = cli("--log", str(path), "--public-key", pinned(tmp_path).hex())
    assert out.returncode != 0 and not out.stdout.startswith("OK"), out.stdout


def test_long_rewrite_without_checkpoints_is_broken(tmp_path):
    """More records than the mandatory checkpoint interval and no signature: tampered."""
    path = make_log(tmp_path)
    template = records(path)[0]
    forged = [dict(template, seq=i, since_checkpoint=i) for i in range(1, audit.MAX_GAP + 2)]
    write_chain(path, forged)
    result = audit.verify(path, pinned(tmp_path))
    assert not result.ok and result.status == "broken" and "without a signed checkpoint" in result.reason, result


def test_resign_with_attacker_key_and_replaced_pub_is_broken(tmp_path):
    """The attacker writes a whole new log under its own key and replaces the .pub too."""
    real = make_log(tmp_path / "real")
    pin = pinned(tmp_path / "real")
    fake = make_log(tmp_path / "attacker", n=20)
    shutil.copy(fake, real)
    shutil.copy(fake.parent / audit.PUB_FILE, real.parent / audit.PUB_FILE)
    out = cli("--log", str(real))                    # the replaced .pub is never trusted
    assert out.returncode == 2, out.stdout
    out = cli("--log", str(real), "--fingerprint", fingerprint(pin))
    assert out.returncode == 1 and "BROKEN" in out.stdout, out.stdout + out.stderr
    result = audit.verify(real, pin)
    assert not result.ok and result.status == "broken" and "not the pinned one" in result.reason, result


def test_truncated_tail_is_reported(tmp_path):
    path = make_log(tmp_path)
    recs = path.read_bytes().rstrip(b"\0").splitlines(keepends=True)
    for cut in (1, 2, 4):                            # the seal; the seal and a record; more
        path.write_bytes(b"".join(recs[:-cut]))
        result = audit.verify(path, pinned(tmp_path))
        assert not result.ok, (cut, result)
    out = cli("--log", str(path), "--public-key", pinned(tmp_path).hex())
    assert out.returncode == 3 and out.stdout.startswith("UNVERIFIED"), out.stdout


def test_a_log_cut_back_to_its_first_seal_is_not_ok(tmp_path):
    """A gateway's first start seals an empty log at once; a log cut back to that line must
    not verify as OK (red team: the whole history erased, exit 0)."""
    async def first_start():
        log = audit.AuditLog(tmp_path, checkpoint_every=5)
        await log.open()
        await log.close()
    asyncio.run(first_start())
    path = audit.log_path(tmp_path)
    first = path.read_bytes().rstrip(b"\0").splitlines(keepends=True)
    assert len(first) == 1 and records(path)[0].get("seal") is True
    make_log(tmp_path)                                   # the history that follows
    path.write_bytes(b"".join(first))                    # ... erased back to the first seal
    result = audit.verify(path, pinned(tmp_path))
    assert not result.ok and result.status == "unverified", result
    out = cli("--log", str(path), "--public-key", pinned(tmp_path).hex())
    assert out.returncode == 3, out.stdout


def test_forged_record_appended_after_the_seal_is_unverified(tmp_path):
    path = make_log(tmp_path)
    recs = records(path)
    data = path.read_bytes().rstrip(b"\0")
    forged = dict(recs[-2], seq=recs[-1]["seq"] + 1, since_checkpoint=1, principal="AKIDSCAPEGOAT")
    forged["prev"] = line_hash(data.splitlines()[-1])
    path.write_bytes(data + json.dumps(forged, separators=(",", ":")).encode() + b"\n")
    result = audit.verify(path, pinned(tmp_path))
    assert not result.ok and result.status == "unverified" and "follow the last signed checkpoint" in result.reason, result
    out = cli("--log", str(path), "--public-key", pinned(tmp_path).hex())
    assert out.returncode == 3, out.stdout


def test_edit_of_the_last_record_is_broken(tmp_path):
    """The seal signs the head hash: neither the seal nor the last request record can change."""
    path = make_log(tmp_path)
    recs = records(path)
    recs[-1]["time"] = "2020-01-01T00:00:00.000+00:00"   # the last record: the seal itself
    write_chain(path, recs)
    result = audit.verify(path, pinned(tmp_path))
    assert not result.ok and result.status == "broken" and "signature" in result.reason, result
    path2 = make_log(tmp_path / "two")
    recs = records(path2)
    recs[-2]["decision"] = "deny"                    # the last request record
    write_chain(path2, recs)
    result = audit.verify(path2, pinned(tmp_path / "two"))
    assert not result.ok and result.status == "broken", result


def test_edited_checkpoint_fields_are_broken(tmp_path):
    """Every field of the last checkpoint (nothing after it re-checks it) is signed,
    not just seq and prev."""
    for field, value in (("time", "1999-01-01T00:00:00.000+00:00"), ("ts", 1.0), ("records", 1),
                         ("seal", False), ("prev_checkpoint", "ab" * 32), ("reason", "timer")):
        d = tmp_path / field
        path = make_log(d)
        recs = records(path)
        cp = [r for r in recs if r["type"] == "checkpoint"][-1]
        cp[field] = value
        write_chain(path, recs)
        result = audit.verify(path, pinned(d))
        assert not result.ok and result.status == "broken", (field, result)


def test_dropped_checkpoint_breaks_the_checkpoint_chain(tmp_path):
    """Checkpoints chain: removing one (and re-linking records) fails at the next one."""
    path = make_log(tmp_path, n=12, every=5)
    recs = records(path)
    first = next(i for i, r in enumerate(recs) if r["type"] == "checkpoint")
    del recs[first]
    for i, r in enumerate(recs, 1):
        r["seq"] = i
    write_chain(path, recs)
    assert not audit.verify(path, pinned(tmp_path)).ok


def test_expect_anchor_detects_a_cut_back_to_an_earlier_seal(tmp_path):
    """Two sessions, two seals: cutting the second session away leaves a sealed log;
    only an anchor from outside (--expect-seq/--expect-hash) tells."""
    path = make_log(tmp_path, n=3, sessions=2)
    lines = path.read_bytes().rstrip(b"\0").splitlines(keepends=True)
    head = json.loads(lines[-1])["seq"], line_hash(lines[-1].rstrip(b"\n"))
    first_seal = next(i for i, x in enumerate(lines) if json.loads(x).get("seal"))
    assert audit.verify(path, pinned(tmp_path), expect_seq=head[0], expect_hash=head[1]).ok
    path.write_bytes(b"".join(lines[:first_seal + 1]))
    assert audit.verify(path, pinned(tmp_path)).ok          # indistinguishable without an anchor
    result = audit.verify(path, pinned(tmp_path), expect_seq=head[0], expect_hash=head[1])
    assert not result.ok and result.status == "broken" and "cut" in result.reason, result
    out = cli("--log", str(path), "--public-key", pinned(tmp_path).hex(),
              "--expect-seq", str(head[0]), "--expect-hash", head[1])
    assert out.returncode == 1, out.stdout + out.stderr


def test_expect_anchor_with_a_wrong_hash_is_broken(tmp_path):
    path = make_log(tmp_path)
    result = audit.verify(path, pinned(tmp_path), expect_seq=3, expect_hash="00" * 32)
    assert not result.ok and result.status == "broken" and "anchored" in result.reason, result


CRASH = """
import asyncio, os, sys
from vallum.security.audit import log as audit
async def main():
    log = audit.AuditLog(sys.argv[1], checkpoint_every=5, checkpoint_seconds=0)
    await log.open()
    for i in range(7):
        await log.append({"i": i})
    os._exit(0)          # killed: no seal
asyncio.run(main())
"""


def test_unsealed_tail_of_a_crashed_gateway_is_unverified_not_ok(tmp_path):
    subprocess.run([sys.executable, "-c", CRASH, str(tmp_path)], check=True, timeout=60)
    result = audit.verify(audit.log_path(tmp_path), pinned(tmp_path))
    assert not result.ok and result.status == "unverified" and "7..8" in result.reason, result


def test_audit_key_prints_the_fingerprint_from_the_private_key(tmp_path):
    make_log(tmp_path, n=1)
    (tmp_path / "audit" / audit.PUB_FILE).write_text("00" * 32 + "\n")     # replaced: ignored
    r = CliRunner().invoke(app, ["audit", "key", "--data-dir", str(tmp_path)])
    assert r.exit_code == 0 and fingerprint(pinned(tmp_path)) in r.output, r.output
