"""ingest.store hashes and writes large bodies on worker threads, one batch behind the
receiver: the digests and the stored bytes must be exactly a serial pass's, and a
failure anywhere must leave no blob and no temp file behind."""

import asyncio
import base64
import hashlib
import os
import zlib

import pytest

from vallum.s3 import errors
from vallum.service import ingest
from vallum.storage.headroom import StorageFull
from vallum.storage.localfs import LocalBlobStore


async def _chunks(data: bytes, sizes: list[int], fail_at: int | None = None):
    pos, i = 0, 0
    while pos < len(data):
        if fail_at is not None and pos >= fail_at:
            raise ConnectionResetError("client went away")
        step = sizes[i % len(sizes)]
        yield data[pos:pos + step]
        pos += step
        i += 1
        await asyncio.sleep(0)


def _files(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _run(coro):
    return asyncio.run(coro)


async def _with_store(root, body):
    store = LocalBlobStore(root)
    await store.open()
    try:
        return await body(store)
    finally:
        await store.close()


@pytest.mark.parametrize("sizes", [[65536], [1], [7, 300_001, 4096, 2_000_000], [3 * 1024 * 1024]])
def test_large_body_digests_and_bytes_match_a_serial_pass(tmp_path, sizes):
    data = os.urandom(5 * 1024 * 1024 + 123) if sizes != [1] else os.urandom(200_000)

    async def body(store):
        got = await ingest.store(store, _chunks(data, sizes), ["CRC32", "SHA256"])
        read = b"".join([c async for c in store.read(got.blob_id)])
        return got, read

    got, read = _run(_with_store(tmp_path, body))
    assert read == data
    assert got.size == len(data)
    assert got.md5_hex == hashlib.md5(data).hexdigest()
    assert got.checksums["SHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert got.checksums["CRC32"] == base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def test_body_failing_midway_leaves_nothing(tmp_path):
    data = os.urandom(6 * 1024 * 1024)

    async def body(store):
        with pytest.raises(ConnectionResetError):
            await ingest.store(store, _chunks(data, [65536], fail_at=4 * 1024 * 1024), [])

    _run(_with_store(tmp_path, body))
    assert _files(tmp_path) == []


def test_digest_mismatch_on_large_body_commits_nothing(tmp_path):
    data = os.urandom(3 * 1024 * 1024)

    def verify(hasher):
        if hasher.md5_hex != "0" * 32:
            raise errors.BadDigest()

    async def body(store):
        with pytest.raises(errors.BadDigest):
            await ingest.store(store, _chunks(data, [65536]), [], verify=verify)

    _run(_with_store(tmp_path, body))
    assert _files(tmp_path) == []


def test_writer_failure_propagates_and_aborts(tmp_path):
    data = os.urandom(4 * 1024 * 1024)

    class FailingStore(LocalBlobStore):
        def writer(self):
            w = super().writer()
            real = w._write_chunks
            calls = []

            def failing(chunks):
                calls.append(1)
                if len(calls) == 2:
                    raise OSError(28, "No space left on device")
                real(chunks)
            w._write_chunks = failing
            return w

    async def body(store):
        with pytest.raises(StorageFull, match="No space"):     # ENOSPC answers 507, not 500
            await ingest.store(store, _chunks(data, [65536]), [])

    async def run():
        store = FailingStore(tmp_path)
        await store.open()
        try:
            await body(store)
        finally:
            await store.close()

    _run(run())
    assert _files(tmp_path) == []
