"""In-memory twin of the blob store, for unit tests of the services above it.

Same contract and the same error behaviour as LocalBlobStore (id validation,
visibility only after commit, BlobMissing on first iteration), minus the disk.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from vallum.storage.base import (
    CHUNK,
    BlobMissing,
    BlobStore,
    BlobWriter,
    StorageError,
    check_blob_id,
    check_range,
    check_size,
    new_blob_id,
)


class MemoryBlobWriter(BlobWriter):
    def __init__(self, store: MemoryBlobStore, blob_id: str) -> None:
        self.blob_id = blob_id
        self._store = store
        self._buf = bytearray()
        self._state = "open"  # open -> committed | aborted

    async def write(self, data: bytes) -> None:
        if self._state != "open":
            raise StorageError(f"writer for {self.blob_id} is {self._state}")
        self._buf += data

    async def commit(self) -> int:
        if self._state != "open":
            raise StorageError(f"writer for {self.blob_id} is {self._state}")
        self._state = "committed"
        self._store._blobs[self.blob_id] = bytes(self._buf)
        self._buf = bytearray()
        return len(self._store._blobs[self.blob_id])

    async def abort(self) -> None:
        if self._state == "open":
            self._state = "aborted"
            self._buf = bytearray()


class MemoryBlobStore(BlobStore):
    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def writer(self) -> MemoryBlobWriter:
        return MemoryBlobWriter(self, new_blob_id())

    def writer_as(self, blob_id: str) -> MemoryBlobWriter:
        return MemoryBlobWriter(self, check_blob_id(blob_id))

    async def put(self, data: bytes) -> str:
        blob_id = new_blob_id()
        self._blobs[blob_id] = bytes(data)
        return blob_id

    def read(self, blob_id: str, start: int = 0, end: int | None = None,
             chunk_size: int = CHUNK, *, expect_size: int | None = None) -> AsyncIterator[bytes]:
        check_blob_id(blob_id)
        check_range(start, end, chunk_size)
        return self._stream(blob_id, start, end, chunk_size, expect_size)

    async def _stream(self, blob_id: str, start: int, end: int | None,
                      chunk_size: int, expect_size: int | None) -> AsyncIterator[bytes]:
        data = self._blobs.get(blob_id)  # a delete mid-stream leaves this reader whole, as on disk
        if data is None:
            raise BlobMissing(blob_id)
        check_size(blob_id, len(data), expect_size)
        stop = len(data) if end is None else min(end, len(data))
        for pos in range(start, stop, chunk_size):
            yield data[pos:min(pos + chunk_size, stop)]

    async def size(self, blob_id: str) -> int:
        try:
            return len(self._blobs[check_blob_id(blob_id)])
        except KeyError:
            raise BlobMissing(blob_id) from None

    async def delete(self, blob_ids: list[str]) -> None:
        for b in blob_ids:
            check_blob_id(b)
        for b in blob_ids:
            self._blobs.pop(b, None)

    async def sweep(self, is_referenced: Callable[[str], bool]) -> int:
        """Drops unreferenced blobs; abandoned writers hold nothing shared, so
        unlike the disk backend there are no temp leftovers to count."""
        dead = [b for b in self._blobs if not is_referenced(b)]
        for b in dead:
            del self._blobs[b]
        return len(dead)
