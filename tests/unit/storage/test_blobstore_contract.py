"""The BlobStore contract, run against the disk backend, its in-memory twin, the
upstream S3 backend on a real SeaweedFS (one per module, a fresh prefix per test) and
mirrors of two disks and of a disk and the upstream."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.support.seaweed import seaweed
from vallum.storage.base import BlobCorrupt, BlobMissing, BlobStore, StorageError
from vallum.storage.localfs import LocalBlobStore
from vallum.storage.memory import MemoryBlobStore
from vallum.storage.mirror import MirrorBlobStore

BACKENDS = ["local", "memory", "s3upstream", "mirror-local", "mirror-s3"]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    with seaweed(tmp_path_factory.mktemp("seaweed")) as up:
        yield up


def make_store(kind: str, tmp_path: Path, request) -> BlobStore:
    if kind == "memory":
        return MemoryBlobStore()
    if kind in ("s3upstream", "mirror-s3"):
        up = request.getfixturevalue("upstream")
        remote = up.store(prefix=f"t{secrets.token_hex(4)}/", sweep_grace=0)
        if kind == "s3upstream":
            return remote
        return MirrorBlobStore([("local", LocalBlobStore(tmp_path / "a")), ("s3", remote)])
    if kind == "mirror-local":
        return MirrorBlobStore([("a", LocalBlobStore(tmp_path / "a")), ("b", LocalBlobStore(tmp_path / "b"))])
    return LocalBlobStore(tmp_path / "data")


@pytest.fixture(params=BACKENDS)
def run(request, tmp_path) -> Callable[[Callable[[BlobStore], Awaitable[None]]], None]:
    """Run an async test body against an opened store of each backend."""

    def runner(body: Callable[[BlobStore], Awaitable[None]]) -> None:
        async def main() -> None:
            store = make_store(request.param, tmp_path, request)
            await store.open()
            try:
                await body(store)
            finally:
                await store.close()

        asyncio.run(main())

    return runner


async def collect(store: BlobStore, blob_id: str, *args, **kw) -> bytes:
    return b"".join([c async for c in store.read(blob_id, *args, **kw)])


def test_put_then_read_round_trip(run):
    async def body(store):
        data = os.urandom(10_000)
        blob_id = await store.put(data)
        assert re.fullmatch(r"[0-9a-f]{32}", blob_id)
        assert await collect(store, blob_id) == data
        assert await store.size(blob_id) == len(data)
        assert await collect(store, await store.put(b"")) == b""

    run(body)


def test_writer_streams_many_small_and_large_chunks(run):
    async def body(store):
        chunks = [os.urandom(n) for n in (1, 0, 4096, 3 * 1024 * 1024, 17, 1024 * 1024 - 5, 9)]
        chunks += [os.urandom(100)] * 20_000  # ~2 MiB of tiny writes
        w = store.writer()
        for c in chunks:
            await w.write(c)
        expected = b"".join(chunks)
        assert await w.commit() == len(expected)
        assert await collect(store, w.blob_id) == expected

    run(body)


def test_writer_accepts_bytearray_and_memoryview(run):
    async def body(store):
        w = store.writer()
        buf = bytearray(b"abc")
        await w.write(buf)
        buf[:] = b"xyz"  # the writer must have taken its own copy
        await w.write(memoryview(b"0123456789")[2:5])
        await w.write(bytearray(2 * 1024 * 1024))
        await w.commit()
        got = await collect(store, w.blob_id)
        assert got[:6] == b"abc234" and len(got) == 6 + 2 * 1024 * 1024

    run(body)


def test_blob_invisible_until_commit_and_abort_discards(run):
    async def body(store):
        w = store.writer()
        await w.write(b"x" * (2 * 1024 * 1024))
        with pytest.raises(BlobMissing):
            await store.size(w.blob_id)
        with pytest.raises(BlobMissing):
            await collect(store, w.blob_id)
        await w.abort()
        await w.abort()  # twice is fine
        with pytest.raises(BlobMissing):
            await store.size(w.blob_id)
        with pytest.raises(StorageError):
            await w.write(b"more")
        with pytest.raises(StorageError):
            await w.commit()

    run(body)


def test_abort_after_commit_keeps_the_blob(run):
    async def body(store):
        w = store.writer()
        await w.write(b"keep me")
        await w.commit()
        await w.abort()
        assert await collect(store, w.blob_id) == b"keep me"
        with pytest.raises(StorageError):
            await w.commit()

    run(body)


@pytest.mark.parametrize("start,end", [(0, None), (0, 0), (5, 5), (3, 10), (0, 1), (99, 100),
                                       (99, None), (100, None), (150, None), (90, 500)])
def test_ranges(run, start, end):
    async def body(store):
        data = bytes(range(100))
        blob_id = await store.put(data)
        assert await collect(store, blob_id, start, end) == data[start:end]
        pieces = [c async for c in store.read(blob_id, start, end, chunk_size=7)]
        assert b"".join(pieces) == data[start:end]
        assert all(len(p) <= 7 for p in pieces)
        assert all(len(p) == 7 for p in pieces[:-1])

    run(body)


def test_read_yields_chunk_size_pieces(run):
    async def body(store):
        data = os.urandom(5 * 1024 * 1024 + 3)
        blob_id = await store.put(data)
        sizes = [len(c) async for c in store.read(blob_id)]
        assert sizes == [1024 * 1024] * 5 + [3]

    run(body)


def test_missing_blob_raises_on_first_iteration(run):
    async def body(store):
        missing = "0" * 32
        it = store.read(missing)  # creating the iterator must not raise
        with pytest.raises(BlobMissing):
            await it.__anext__()
        with pytest.raises(BlobMissing):
            await store.size(missing)
        await store.delete([missing])  # ignored

    run(body)


def test_a_blob_of_another_length_than_expected_fails_before_any_byte(run):
    """expect_size (the length the metadata recorded): a truncated or grown blob is
    corrupt even for a range it still covers, and fails on the first iteration."""
    async def body(store):
        data = os.urandom(300_000)
        blob_id = await store.put(data)
        assert await collect(store, blob_id, expect_size=len(data)) == data
        assert await collect(store, blob_id, 10, 20, expect_size=len(data)) == data[10:20]
        for wrong in (len(data) - 1, len(data) + 1, 0):
            it = store.read(blob_id, 0, 10, expect_size=wrong)
            with pytest.raises(BlobCorrupt):
                await it.__anext__()

    run(body)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "0" * 31, "0" * 33, "A" * 32, "g" * 32,
                                 "", "/" + "0" * 31, "0" * 32 + "\n", "00/00" + "0" * 27])
def test_invalid_ids_are_rejected(run, bad):
    async def body(store):
        with pytest.raises(ValueError):
            store.read(bad)
        with pytest.raises(ValueError):
            await store.size(bad)
        with pytest.raises(ValueError):
            await store.delete(["0" * 32, bad])

    run(body)


def test_invalid_ranges_are_rejected(run):
    async def body(store):
        blob_id = await store.put(b"abc")
        for args in [(-1, None), (5, 2)]:
            with pytest.raises(ValueError):
                store.read(blob_id, *args)
        with pytest.raises(ValueError):
            store.read(blob_id, 0, None, 0)

    run(body)


def test_delete(run):
    async def body(store):
        a, b, c = [await store.put(bytes([i]) * 10) for i in range(3)]
        await store.delete([a, c, "f" * 32])
        for gone in (a, c):
            with pytest.raises(BlobMissing):
                await store.size(gone)
        assert await collect(store, b) == bytes([1]) * 10
        await store.delete([])

    run(body)


def test_sweep_removes_unreferenced_and_keeps_referenced(run):
    async def body(store):
        kept = {await store.put(b"k%d" % i): b"k%d" % i for i in range(20)}
        keep = set(kept)
        drop = {await store.put(b"d%d" % i) for i in range(30)}
        seen: list[str] = []

        def is_referenced(blob_id: str) -> bool:
            seen.append(blob_id)
            return blob_id in keep

        assert await store.sweep(is_referenced) == len(drop)
        assert set(seen) == keep | drop
        for b, data in kept.items():
            assert await collect(store, b) == data
        for b in drop:
            with pytest.raises(BlobMissing):
                await store.size(b)
        assert await store.sweep(lambda _b: True) == 0

    run(body)


def test_concurrent_puts_and_writers(run):
    async def body(store):
        async def one(i: int) -> tuple[str, bytes]:
            data = os.urandom(i * 97 % 5000)
            if i % 2:
                return await store.put(data), data
            w = store.writer()
            await w.write(data[: len(data) // 2])
            await w.write(data[len(data) // 2:])
            await w.commit()
            return w.blob_id, data

        results = await asyncio.gather(*(one(i) for i in range(200)))
        assert len({b for b, _ in results}) == 200
        for blob_id, data in results:
            assert await collect(store, blob_id) == data

    run(body)


def test_reader_survives_delete_mid_stream(run):
    async def body(store):
        data = os.urandom(3 * 1024 * 1024)
        blob_id = await store.put(data)
        it = store.read(blob_id)
        first = await it.__anext__()
        await store.delete([blob_id])
        rest = b"".join([c async for c in it])
        assert first + rest == data

    run(body)
