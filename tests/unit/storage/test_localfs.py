"""Disk-specific behaviour of LocalBlobStore: layout, permissions, temp files,
crash leftovers, failure cleanup, bounded memory."""

from __future__ import annotations

import asyncio
import os
import stat
import tracemalloc
from pathlib import Path

import pytest

from vallum.storage.base import BlobMissing, StorageError
from vallum.storage.localfs import WRITE_BUFFER, LocalBlobStore

MiB = 1024 * 1024


def run(coro):
    return asyncio.run(coro)


async def opened(root: Path, **kw) -> LocalBlobStore:
    store = LocalBlobStore(root, **kw)
    await store.open()
    return store


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_layout_and_permissions(tmp_path):
    async def main():
        store = await opened(tmp_path)
        blob_id = await store.put(b"hello")
        path = tmp_path / "blobs" / blob_id[:2] / blob_id[2:4] / blob_id
        assert path.read_bytes() == b"hello"
        assert mode(path) & 0o077 == 0
        for d in (tmp_path / "blobs", tmp_path / "tmp", path.parent, path.parent.parent):
            assert mode(d) & 0o077 == 0
        assert list((tmp_path / "tmp").iterdir()) == []
        await store.close()

    run(main())


def test_writer_uses_private_temp_file_until_commit(tmp_path):
    async def main():
        store = await opened(tmp_path)
        w = store.writer()
        await w.write(b"a" * 10)
        assert not (tmp_path / "tmp" / w.blob_id).exists()  # still buffered
        await w.write(b"b" * WRITE_BUFFER)
        tmp = tmp_path / "tmp" / w.blob_id
        assert tmp.stat().st_size == WRITE_BUFFER + 10
        assert mode(tmp) == 0o600
        await w.write(b"c" * 5)
        assert await w.commit() == WRITE_BUFFER + 15
        assert not tmp.exists()
        w2 = store.writer()
        await w2.write(b"x" * (2 * MiB))
        assert (tmp_path / "tmp" / w2.blob_id).exists()
        await w2.abort()
        assert list((tmp_path / "tmp").iterdir()) == []
        await store.close()

    run(main())


def test_temp_file_is_never_reused_or_followed(tmp_path):
    async def main():
        store = await opened(tmp_path)
        w = store.writer()
        victim = tmp_path / "victim"
        victim.write_bytes(b"precious")
        (tmp_path / "tmp" / w.blob_id).symlink_to(victim)
        with pytest.raises(FileExistsError):
            await w.write(b"z" * (2 * MiB))
        with pytest.raises(StorageError):
            await w.write(b"z")
        await w.abort()
        assert victim.read_bytes() == b"precious"
        await store.close()

    run(main())


def test_blobs_survive_reopen(tmp_path):
    async def main():
        store = await opened(tmp_path)
        ids = [await store.put(os.urandom(100)) for _ in range(5)]
        w = store.writer()
        await w.write(b"big" * MiB)
        await w.commit()
        await store.close()
        again = await opened(tmp_path)
        for b in ids:
            assert await again.size(b) == 100
        assert await again.size(w.blob_id) == 3 * MiB
        await again.close()

    run(main())


def test_sweep_clears_temp_leftovers_and_ignores_foreign_files(tmp_path):
    async def main():
        store = await opened(tmp_path)
        keep = await store.put(b"keep")
        drop = await store.put(b"drop")
        w = store.writer()
        await w.write(b"x" * (2 * MiB))  # a write interrupted by a "crash"
        (tmp_path / "tmp" / "stray-dir").mkdir()
        (tmp_path / "tmp" / "stray-dir" / "f").write_bytes(b"1")
        foreign = tmp_path / "blobs" / keep[:2] / "README"
        foreign.write_text("not a blob")
        misplaced = tmp_path / "blobs" / keep[:2] / keep[2:4] / ("0" * 32)
        misplaced.write_bytes(b"wrong directory for this id")
        await w.abort()
        w2 = store.writer()
        await w2.write(b"y" * (2 * MiB))

        count = await store.sweep(lambda b: b == keep)
        assert count == 3  # w2's temp file, stray-dir, the unreferenced blob
        assert list((tmp_path / "tmp").iterdir()) == []
        with pytest.raises(BlobMissing):
            await store.size(drop)
        assert await store.size(keep) == 4
        assert foreign.exists() and misplaced.exists()
        await store.close()

    run(main())


def test_failed_commit_leaves_nothing_and_abort_is_safe(tmp_path):
    async def main():
        store = await opened(tmp_path)
        w = store.writer()
        # A file where the blob's directory should be makes the rename fail.
        (tmp_path / "blobs" / w.blob_id[:2]).write_bytes(b"")
        await w.write(b"q" * 100)
        with pytest.raises(OSError):
            await w.commit()
        await w.abort()
        await w.abort()
        assert list((tmp_path / "tmp").iterdir()) == []
        with pytest.raises(BlobMissing):
            await store.size(w.blob_id)
        await store.close()

    run(main())


def test_cancelled_write_then_abort_cleans_up(tmp_path):
    async def main():
        store = await opened(tmp_path)
        w = store.writer()

        async def upload():
            while True:
                await w.write(os.urandom(4 * MiB))

        task = asyncio.create_task(upload())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await w.abort()
        assert list((tmp_path / "tmp").iterdir()) == []
        await store.close()

    run(main())


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_abandoned_reader_closes_its_file(tmp_path):
    async def main():
        store = await opened(tmp_path)
        blob_id = await store.put(os.urandom(4 * MiB))
        before = _open_fds()
        for _ in range(20):
            it = store.read(blob_id)
            await it.__anext__()
            await it.aclose()
        await asyncio.sleep(0.05)
        assert _open_fds() <= before
        await store.close()

    run(main())


def test_memory_does_not_grow_with_blob_size(tmp_path):
    """64 MiB through a writer and back through a reader with ~2 MiB peak."""

    async def main():
        store = await opened(tmp_path)
        chunk = os.urandom(MiB)
        small = chunk[:1000]
        tracemalloc.start()
        try:
            w = store.writer()
            for _ in range(32):
                await w.write(chunk)
            for _ in range(32 * 1024):
                await w.write(small)
            size = await w.commit()
            total = 0
            async for piece in store.read(w.blob_id):
                total += len(piece)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert size == total == 32 * MiB + 32 * 1024 * 1000
        assert peak < 6 * MiB, peak
        await store.close()

    run(main())


def test_abort_racing_commit_leaves_no_blob(tmp_path):
    async def main():
        store = await opened(tmp_path)
        for _ in range(20):
            w = store.writer()
            await w.write(os.urandom(3 * MiB))
            commit = asyncio.create_task(w.commit())
            await asyncio.sleep(0)
            await w.abort()
            try:
                await commit
            except StorageError:
                pass
            else:
                raise AssertionError("commit succeeded although abort ran")
            with pytest.raises(BlobMissing):
                await store.size(w.blob_id)
        assert list((tmp_path / "tmp").iterdir()) == []
        await store.close()

    run(main())


def test_cancelled_commit_then_abort_removes_everything(tmp_path):
    async def main():
        store = await opened(tmp_path)
        w = store.writer()
        await w.write(os.urandom(3 * MiB))
        commit = asyncio.create_task(w.commit())
        await asyncio.sleep(0)
        commit.cancel()
        with pytest.raises(asyncio.CancelledError):
            await commit
        await w.abort()  # waits for the commit thread, then removes what it placed
        with pytest.raises(BlobMissing):
            await store.size(w.blob_id)
        assert list((tmp_path / "tmp").iterdir()) == []
        assert await store.sweep(lambda _b: False) == 0
        await store.close()

    run(main())
