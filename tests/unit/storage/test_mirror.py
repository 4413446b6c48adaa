"""The mirrored blob store on two real directories, with and without encryption above it:
both copies written before the ack, reads that survive a missing, truncated, corrupted
or unreadable copy (also mid-stream), damage recorded, healing, and the --blobs grammar."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from vallum.security.crypto.encrypted_store import EncryptedBlobStore
from vallum.security.crypto.keytable import Keyring, KeyTable
from vallum.security.crypto.primitives import new_key
from vallum.storage import blobspec
from vallum.storage.base import BlobCorrupt, BlobMissing, StorageError
from vallum.storage.headroom import Headroom, parse_reserve
from vallum.storage.localfs import LocalBlobStore
from vallum.storage.mirror import JOURNAL_FILE, MirrorBlobStore

CHUNK = 4096


def mirror(tmp_path: Path) -> MirrorBlobStore:
    return MirrorBlobStore([("local:/a", LocalBlobStore(tmp_path / "a")),
                            ("local:/b", LocalBlobStore(tmp_path / "b"))],
                           journal=tmp_path / JOURNAL_FILE)


def encrypted(tmp_path: Path) -> EncryptedBlobStore:
    return EncryptedBlobStore(mirror(tmp_path), KeyTable(tmp_path / "keys.sqlite3"),
                              Keyring.single(new_key()), CHUNK)


def run(store, body):
    async def main():
        await store.open()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def copy_path(tmp_path: Path, disk: str, blob_id: str) -> Path:
    return tmp_path / disk / "blobs" / blob_id[:2] / blob_id[2:4] / blob_id


async def collect(store, blob_id, start=0, end=None, **kw) -> bytes:
    return b"".join([c async for c in store.read(blob_id, start, end, **kw)])


def journal(tmp_path: Path) -> list[dict]:
    path = tmp_path / JOURNAL_FILE
    if not path.exists():
        return []
    assert path.stat().st_mode & 0o777 == 0o600
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_committed_blob_is_whole_on_both_disks(tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 5)

    async def body(store):
        w = store.writer()
        for i in range(0, len(data), 700_000):
            await w.write(data[i:i + 700_000])
        assert not copy_path(tmp_path, "a", w.blob_id).exists()     # nothing before commit
        await w.commit()
        return w.blob_id

    blob_id = run(mirror(tmp_path), body)
    assert copy_path(tmp_path, "a", blob_id).read_bytes() == data
    assert copy_path(tmp_path, "b", blob_id).read_bytes() == data


@pytest.mark.parametrize("damage", ["delete", "truncate", "unreadable"])
def test_reads_use_the_other_copy_and_record_the_damage(tmp_path, damage):
    data = os.urandom(100_000)

    async def body(store):
        blob_id = await store.put(data)
        path = copy_path(tmp_path, "a", blob_id)
        if damage == "delete":
            path.unlink()
        elif damage == "truncate":
            path.write_bytes(data[:5000])
        else:
            path.unlink()
            path.symlink_to(path)       # open() fails with ELOOP: an I/O error, not a missing blob
        assert await collect(store, blob_id, expect_size=len(data)) == data
        assert await collect(store, blob_id, 90_000, 90_010, expect_size=len(data)) == data[90_000:90_010]
        assert store.damage_seen == 1            # recorded once per blob and copy
        return blob_id

    blob_id = run(mirror(tmp_path), body)
    entries = journal(tmp_path)
    assert [(e["blob_id"], e["copy"]) for e in entries] == [(blob_id, "local:/a")]
    assert entries[0]["problem"] == {"delete": "missing", "truncate": "corrupt", "unreadable": "unreadable"}[damage]


def test_both_copies_gone_is_missing_and_one_corrupt_one_gone_is_corrupt(tmp_path):
    async def body(store):
        blob_id = await store.put(b"x" * 1000)
        copy_path(tmp_path, "a", blob_id).unlink()
        copy_path(tmp_path, "b", blob_id).write_bytes(b"x" * 10)
        with pytest.raises(BlobCorrupt):
            await collect(store, blob_id, expect_size=1000)
        copy_path(tmp_path, "b", blob_id).unlink()
        with pytest.raises(BlobMissing):
            await collect(store, blob_id)
        with pytest.raises(BlobMissing):
            await store.size(blob_id)

    run(mirror(tmp_path), body)


def test_a_flipped_byte_fails_authentication_and_the_read_continues_from_the_other_copy(tmp_path):
    """Encrypted above the mirror: the bad chunk is found after earlier chunks were sent;
    the rest comes from the other copy at the same offset, byte for byte."""
    data = os.urandom(40 * CHUNK + 17)

    async def body(store):
        blob_id = await store.put(data)
        path = copy_path(tmp_path, "a", blob_id)
        raw = bytearray(path.read_bytes())
        raw[len(raw) - 100] ^= 0x01                 # in the last sealed chunk
        path.write_bytes(bytes(raw))
        got = await collect(store, blob_id, chunk_size=CHUNK, expect_size=len(data))
        assert got == data
        assert await collect(store, blob_id, 39 * CHUNK, None) == data[39 * CHUNK:]
        return blob_id

    blob_id = run(encrypted(tmp_path), body)
    assert [(e["blob_id"], e["copy"], e["problem"]) for e in journal(tmp_path)] == [
        (blob_id, "local:/a", "corrupt")]


def test_both_copies_corrupt_is_an_error_never_wrong_bytes(tmp_path):
    data = os.urandom(10 * CHUNK)

    async def body(store):
        blob_id = await store.put(data)
        for disk, at in (("a", 50), ("b", 3 * CHUNK)):
            path = copy_path(tmp_path, disk, blob_id)
            raw = bytearray(path.read_bytes())
            raw[at] ^= 0x80
            path.write_bytes(bytes(raw))
        with pytest.raises(BlobCorrupt):
            await collect(store, blob_id)

    run(encrypted(tmp_path), body)


def test_a_copy_that_cannot_be_written_fails_the_write_and_leaves_nothing(tmp_path):
    async def body(store):
        tmp_b = tmp_path / "b" / "tmp"
        os.rmdir(tmp_b)
        tmp_b.write_bytes(b"not a directory")     # disk b refuses every new blob
        with pytest.raises(OSError):
            await store.put(b"y" * 5000)
        w = store.writer()
        with pytest.raises(OSError):
            await w.write(b"z" * (2 << 20))
            await w.commit()
        await w.abort()
        left = [p for p in (tmp_path / "a").rglob("*") if p.is_file()]
        assert left == []

    run(mirror(tmp_path), body)


def test_repair_rewrites_the_damaged_copy_from_the_good_one(tmp_path):
    data = os.urandom(50 * CHUNK)

    async def body(store):
        blob_id = await store.put(data)
        copy_path(tmp_path, "b", blob_id).write_bytes(b"rot")
        views = dict(store.replicas())
        with pytest.raises(BlobCorrupt):
            await collect(views["local:/b"], blob_id)
        await store.repair(blob_id, "local:/a", ["local:/b"])
        assert await collect(views["local:/b"], blob_id) == data
        assert await collect(views["local:/a"], blob_id) == data
        with pytest.raises(StorageError):
            await store.repair(blob_id, "local:/nowhere", ["local:/b"])

    run(encrypted(tmp_path), body)
    assert not list((tmp_path / "b" / "tmp").iterdir())


def test_delete_and_sweep_reach_both_copies(tmp_path):
    async def body(store):
        keep, drop, gone = await store.put(b"k" * 10), await store.put(b"d" * 10), await store.put(b"g" * 10)
        await store.delete([gone])
        assert await store.sweep(lambda b: b == keep) == 1
        for disk in "ab":
            assert copy_path(tmp_path, disk, keep).exists()
            assert not copy_path(tmp_path, disk, drop).exists()
            assert not copy_path(tmp_path, disk, gone).exists()

    run(mirror(tmp_path), body)


def test_blobs_grammar():
    assert blobspec.parse("local:/d1/,local:/d2") == ["local:/d1", "local:/d2"]
    assert blobspec.parse(" local:/d1 ") == ["local:/d1"]
    assert blobspec.parse("local:/d1,s3://bkt/p@http://127.0.0.1:9") == [
        "local:/d1", "s3://bkt/p/@http://127.0.0.1:9"]
    assert blobspec.local_roots("local:/d1,s3://bkt/p@http://127.0.0.1:9") == [Path("/d1")]
    assert blobspec.local_roots(None) == []
    for bad, why in [("", "expected local:"), ("local:relative", "absolute path"),
                     ("local:/a,local:/a/", "different places"), ("local:/a,local:/a/b", "inside"),
                     ("local:/a,local:/b,local:/c", "at most 2"), ("file:/a", "expected local:"),
                     ("local:/a,s3://bkt/p@http://AK:SECRET@h:1", "credentials do not belong")]:
        with pytest.raises(ValueError, match=why):
            blobspec.parse(bad)


def test_headroom_counts_the_fullest_of_several_disks(tmp_path):
    """Two filesystems (the test disk and /dev/shm): the sample is the one with the least
    room above its reserve, whichever is listed first."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm as a second filesystem")
    reserve = parse_reserve("10%")
    one, two = Headroom(tmp_path, reserve).sample(), Headroom(shm, reserve).sample()
    tightest = min(one, two, key=lambda s: s[0] - s[1])
    for paths in ((tmp_path, shm), (shm, tmp_path)):
        free, res = Headroom(paths[0], reserve, also=[paths[1]]).sample()
        assert abs(free - tightest[0]) < 64 << 20 and res == tightest[1]
