"""Crash consistency: kill -9 the server in the middle of concurrent writes, restart, audit.

What must hold after the restart (DESIGN.md, durability rules):
- every PUT that was acknowledged reads back byte-identical;
- every listed object is one that was attempted, complete, with the right ETag (no torn objects);
- no leftovers: tmp/ is empty and every blob file under blobs/ is referenced by a metadata row,
  and every referenced blob exists.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

try:
    from functional.conftest import Server, start_server, stop_server
except ImportError:  # tests/ became a package
    from tests.support.server import Server, start_server, stop_server

KiB, MiB = 1024, 1024 * 1024
THREADS = 12
WRITE_SECONDS = 2.5


@dataclass
class Attempt:
    key: str
    sha256: str
    size: int
    etag: str                  # quoted, as S3 returns it
    acked: bool = False


@dataclass
class Ledger:
    """Every write attempted, in per-key order; appended to by the writer threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    by_key: dict[str, list[Attempt]] = field(default_factory=dict)
    killing: threading.Event = field(default_factory=threading.Event)
    errors: list[str] = field(default_factory=list)      # failures seen before the kill

    def attempt(self, a: Attempt) -> None:
        with self.lock:
            self.by_key.setdefault(a.key, []).append(a)

    def acceptable(self, key: str) -> list[Attempt]:
        """Versions a key may show after the crash: the last acked write or any later attempt."""
        attempts = self.by_key[key]
        last_ack = max((i for i, a in enumerate(attempts) if a.acked), default=0)
        return attempts[last_ack:]


def client(srv: Server):
    return srv.client(connect_timeout=2, read_timeout=20)


def _etag_single(body: bytes) -> str:
    return f'"{hashlib.md5(body).hexdigest()}"'


def _etag_multi(parts: list[bytes]) -> str:
    d = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    return f'"{d}-{len(parts)}"'


def writer(srv: Server, bucket: str, ledger: Ledger, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    s3 = client(srv)
    own_keys: list[str] = []
    while not stop.is_set():
        # A fifth of the writes overwrite one of this thread's earlier keys.
        key = rng.choice(own_keys) if own_keys and rng.random() < 0.2 else f"w{seed}/{uuid.uuid4().hex}"
        try:
            if rng.random() < 0.2:
                # Multipart: one small part, or a 5 MiB part plus a small last part.
                sizes = [rng.randint(KiB, 3 * MiB)] if rng.random() < 0.6 else [5 * MiB, rng.randint(KiB, MiB)]
                parts = [rng.randbytes(n) for n in sizes]
                body = b"".join(parts)
                a = Attempt(key, hashlib.sha256(body).hexdigest(), len(body), _etag_multi(parts))
                ledger.attempt(a)
                uid = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
                done = []
                for n, p in enumerate(parts, start=1):
                    r = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=n, Body=p)
                    done.append({"PartNumber": n, "ETag": r["ETag"]})
                r = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid,
                                                 MultipartUpload={"Parts": done})
            else:
                body = rng.randbytes(rng.randint(KiB, 3 * MiB))
                a = Attempt(key, hashlib.sha256(body).hexdigest(), len(body), _etag_single(body))
                ledger.attempt(a)
                r = s3.put_object(Bucket=bucket, Key=key, Body=body)
            assert r["ETag"] == a.etag
            a.acked = True
            if key not in own_keys:
                own_keys.append(key)
        except Exception as exc:  # noqa: BLE001 - after the kill every request fails; stop
            if not ledger.killing.is_set():
                ledger.errors.append(f"{key}: {exc!r}")
            return


def blob_files(data_dir: Path) -> dict[str, Path]:
    root = data_dir / "blobs"
    return {p.name: p for p in root.glob("*/*/*") if p.is_file()}


def referenced_blob_ids(data_dir: Path) -> set[str]:
    """Blob ids named by metadata rows: object versions (single or manifest) and pending parts."""
    db = sqlite3.connect(f"file:{data_dir / 'meta.sqlite3'}?mode=ro", uri=True)
    try:
        ids: set[str] = set()
        for blob_id, manifest in db.execute("SELECT blob_id, parts FROM versions"):
            if blob_id:
                ids.add(blob_id)
            for part in json.loads(manifest) if manifest else []:
                ids.add(part[3])
        ids.update(r[0] for r in db.execute("SELECT blob_id FROM parts"))
        return ids
    finally:
        db.close()


@pytest.mark.slow
def test_kill_9_during_concurrent_writes(tmp_path):
    data_dir = tmp_path / "data"
    srv = start_server(data_dir)
    ledger, stop = Ledger(), threading.Event()
    try:
        bucket = "crash-" + uuid.uuid4().hex[:12]
        client(srv).create_bucket(Bucket=bucket)
        threads = [threading.Thread(target=writer, args=(srv, bucket, ledger, stop, i), daemon=True)
                   for i in range(THREADS)]
        for t in threads:
            t.start()
        time.sleep(WRITE_SECONDS)
        ledger.killing.set()
        stop_server(srv, "kill")
        stop.set()
        for t in threads:
            t.join(timeout=25)
        assert not any(t.is_alive() for t in threads)
    finally:
        stop.set()
        stop_server(srv, "kill")

    assert ledger.errors == [], "writes failed before the kill"
    attempts = [a for lst in ledger.by_key.values() for a in lst]
    acked = [a for a in attempts if a.acked]
    assert len(acked) >= 5, f"too few writes acknowledged before the kill ({len(acked)})"
    assert len(acked) < len(attempts), "the kill interrupted no write; nothing was tested"

    srv = start_server(data_dir)
    try:
        s3 = client(srv)
        listed: dict[str, dict] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            listed.update({o["Key"]: o for o in page.get("Contents", [])})

        # Every listed object was attempted and is one complete, acceptable version.
        for key, obj in listed.items():
            assert key in ledger.by_key, f"listed key {key!r} was never written"
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            digest = hashlib.sha256(body).hexdigest()
            ok = [a for a in ledger.acceptable(key) if a.sha256 == digest]
            assert ok, f"{key}: {len(body)} bytes match no acceptable write (torn or stale object)"
            assert obj["ETag"] == ok[0].etag and obj["Size"] == ok[0].size == len(body)

        # Every acknowledged write survived (as itself or a later attempt at the same key).
        for key, lst in ledger.by_key.items():
            if any(a.acked for a in lst):
                assert key in listed, f"acknowledged object {key} lost after kill -9"

        # Pending uploads left by the kill are still consistent (their parts are readable).
        for up in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            s3.list_parts(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
    finally:
        stop_server(srv)

    # No leftovers of interrupted writes, no orphan blobs, no dangling references.
    tmp_dir = data_dir / "tmp"
    leftovers = [p for p in tmp_dir.rglob("*") if p.is_file()] if tmp_dir.exists() else []
    assert leftovers == [], f"{len(leftovers)} temp files survived the restart sweep"
    files = blob_files(data_dir)
    referenced = referenced_blob_ids(data_dir)
    orphans = set(files) - referenced
    assert not orphans, f"{len(orphans)} blob files are referenced by no metadata row"
    missing = referenced - set(files)
    assert not missing, f"{len(missing)} metadata rows point to missing blobs"
