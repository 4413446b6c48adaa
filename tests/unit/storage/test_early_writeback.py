"""LocalBlobWriter starts the kernel's writeback of what it wrote every EARLY_WRITEBACK
bytes (contiguous ranges, nothing twice), and the blob still reads back exactly."""

import asyncio
import os

import pytest

from vallum.storage import localfs
from vallum.storage.localfs import LocalBlobStore


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise here")
def test_writeback_is_started_in_contiguous_steps(tmp_path, monkeypatch):
    calls: list[tuple[int, int]] = []
    real = os.posix_fadvise

    def spy(fd, offset, length, advice):
        assert advice == os.POSIX_FADV_DONTNEED
        calls.append((offset, length))
        return real(fd, offset, length, advice)

    monkeypatch.setattr(localfs.os, "posix_fadvise", spy)
    data = os.urandom(3 * localfs.EARLY_WRITEBACK + 12345)

    async def main():
        store = LocalBlobStore(tmp_path)
        await store.open()
        w = store.writer()
        for i in range(0, len(data), 300_000):
            await w.write(data[i:i + 300_000])
        await w.commit()
        got = b"".join([c async for c in store.read(w.blob_id)])
        await store.close()
        return got

    assert asyncio.run(main()) == data
    assert calls[0][0] == 0 and all(a + n == b for (a, n), (b, _) in zip(calls, calls[1:]))
    assert all(n >= localfs.EARLY_WRITEBACK for _, n in calls)
    covered = calls[-1][0] + calls[-1][1]
    # all but the last < EARLY_WRITEBACK (+ one write buffer) is already on its way to disk
    assert len(data) - localfs.EARLY_WRITEBACK - localfs.WRITE_BUFFER <= covered <= len(data)
