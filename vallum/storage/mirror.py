"""A blob store that keeps every blob on two (or more) independent stores under one id.

A write is acknowledged only when every copy committed (each one fsynced, or acknowledged
by its upstream): one copy that cannot be written fails the write and nothing is kept.
A read uses the first copy that answers; a copy that is missing, has the wrong length or
cannot be read (an I/O error, an upstream that is away) is passed over, also mid-stream
(the next copy continues at the same offset: the copies hold the same bytes). Failed
authentication is found above, by the encryption layer, which reads copy by copy through
``replicas()`` for the same reason. Each damaged copy a reader passed over is recorded
(``note_damage``: a journal file and a counter) for the scrub, which heals it from a
good copy (``repair``). A copy with I/O errors is read last for a while.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import Counter

from vallum.metrics import REGISTRY
from vallum.storage.base import (
    CHUNK,
    BlobCorrupt,
    BlobMissing,
    BlobStore,
    BlobWriter,
    StorageError,
    StorageUnavailable,
    check_blob_id,
    check_range,
    new_blob_id,
)

SUSPECT_SECONDS = 30.0       # a copy that failed with an I/O error is read last this long
READ_FAILURES = (BlobMissing, BlobCorrupt, StorageUnavailable, OSError)
JOURNAL_FILE = "mirror-damage.jsonl"
NOTED_MAX = 65536            # (blob, copy) pairs remembered as already recorded
DAMAGE = Counter("vallum_blob_copy_damage_total", "Damaged copies of mirrored blobs that readers "
                 "passed over (each blob and copy once per process), by problem", ["problem"],
                 registry=REGISTRY)


def worst(failures: Sequence[BaseException]) -> BaseException:
    """The error a reader gets when no copy could serve it: unavailable (a retry may
    succeed) before corrupt before missing (only when every copy is missing)."""
    for kind in (StorageUnavailable, OSError, BlobCorrupt):
        for exc in failures:
            if isinstance(exc, kind):
                return exc
    return failures[0]


def _problem(exc: BaseException) -> str:
    if isinstance(exc, BlobMissing):
        return "missing"
    if isinstance(exc, BlobCorrupt):
        return "corrupt"
    return "unreadable"


class MirrorBlobStore(BlobStore):
    """Copies ``copies`` (name, store) of every blob; see the module docstring."""

    def __init__(self, copies: list[tuple[str, BlobStore]], journal: Path | None = None) -> None:
        if len(copies) < 2 or len({name for name, _ in copies}) != len(copies):
            raise ValueError("a mirror needs at least two distinct copies")
        self.copies = copies
        self.journal = journal
        self.damage_seen = 0                    # damaged copies passed over by readers
        self._noted: set[tuple[str, str]] = set()
        self._suspect_until = dict.fromkeys((name for name, _ in copies), 0.0)

    def _store(self, name: str) -> BlobStore:
        for n, store in self.copies:
            if n == name:
                return store
        raise StorageError(f"no copy named {name!r}")

    # --- lifecycle -----------------------------------------------------------------------
    async def open(self) -> None:
        for _, store in self.copies:
            await store.open()

    async def close(self) -> None:
        for _, store in self.copies:
            await store.close()

    # --- copies ----------------------------------------------------------------------------
    def replicas(self) -> list[tuple[str, BlobStore]]:
        now = time.monotonic()
        return sorted(self.copies, key=lambda c: self._suspect_until[c[0]] > now)

    def note_damage(self, blob_id: str, copy: str, exc: BaseException) -> None:
        if isinstance(exc, (StorageUnavailable, OSError)) and not isinstance(exc, BlobMissing):
            self._suspect_until[copy] = time.monotonic() + SUSPECT_SECONDS
        if (blob_id, copy) in self._noted:
            return
        if len(self._noted) >= NOTED_MAX:        # a lost disk: every blob would be noted
            self._noted.clear()
        self._noted.add((blob_id, copy))
        self.damage_seen += 1
        DAMAGE.labels(_problem(exc)).inc()
        if self.journal is not None:
            line = json.dumps({"at": datetime.now(UTC).isoformat(timespec="seconds"),
                               "blob_id": blob_id, "copy": copy, "problem": _problem(exc)})
            try:
                fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line.encode() + b"\n")
                finally:
                    os.close(fd)
            except OSError:
                pass                  # the journal is a hint for the scrub, which finds it anyway

    async def repair(self, blob_id: str, source: str, targets: list[str]) -> None:
        """Copy the stored bytes of ``source`` over each target (atomically replaced)."""
        check_blob_id(blob_id)
        good = self._store(source)
        for name in targets:
            w = self._store(name).writer_as(blob_id)
            try:
                async for chunk in good.read(blob_id):
                    await w.write(chunk)
                await w.commit()
            except BaseException:
                await w.abort()
                raise
            self._noted.discard((blob_id, name))

    # --- writing ---------------------------------------------------------------------------
    def writer(self) -> MirrorBlobWriter:
        return self.writer_as(new_blob_id())

    def writer_as(self, blob_id: str) -> MirrorBlobWriter:
        check_blob_id(blob_id)
        return MirrorBlobWriter(blob_id, [(store, store.writer_as(blob_id)) for _, store in self.copies])

    async def put(self, data: bytes) -> str:
        w = self.writer()
        try:
            await w.write(data)
            await w.commit()
        except BaseException:
            await w.abort()
            raise
        return w.blob_id

    # --- reading ---------------------------------------------------------------------------
    async def size(self, blob_id: str) -> int:
        failures: list[BaseException] = []
        for name, store in self.replicas():
            try:
                return await store.size(blob_id)
            except READ_FAILURES as exc:
                self.note_damage(blob_id, name, exc)
                failures.append(exc)
        raise worst(failures)

    def read(self, blob_id: str, start: int = 0, end: int | None = None,
             chunk_size: int = CHUNK, *, expect_size: int | None = None) -> AsyncIterator[bytes]:
        check_blob_id(blob_id)
        check_range(start, end, chunk_size)
        return self._read(blob_id, start, end, chunk_size, expect_size)

    async def _read(self, blob_id: str, start: int, end: int | None, chunk_size: int,
                    expect_size: int | None) -> AsyncIterator[bytes]:
        pos, failures = start, []
        for name, store in self.replicas():
            try:
                async for data in store.read(blob_id, pos, end, chunk_size, expect_size=expect_size):
                    pos += len(data)
                    yield data
                return
            except READ_FAILURES as exc:
                self.note_damage(blob_id, name, exc)
                failures.append(exc)
        raise worst(failures)

    # --- removal ---------------------------------------------------------------------------
    async def delete(self, blob_ids: list[str]) -> None:
        """From every copy; the first failure is raised once all were tried (the start-up
        sweep removes what a failed delete left)."""
        results = await asyncio.gather(*(store.delete(blob_ids) for _, store in self.copies),
                                       return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r

    async def sweep(self, is_referenced: Callable[[str], bool]) -> int:
        """Each copy swept; counts blobs, not copies (the most any copy removed)."""
        counts = [await store.sweep(is_referenced) for _, store in self.copies]
        return max(counts)


class MirrorBlobWriter(BlobWriter):
    """One writer per copy, fed the same bytes; committed only when all committed."""

    def __init__(self, blob_id: str, writers: list[tuple[BlobStore, BlobWriter]]) -> None:
        self.blob_id = blob_id
        self._writers = writers
        self._committed: list[BlobStore] = []     # copies already whole (removed on abort)
        self._done = False

    @staticmethod
    async def _all(calls: list) -> list:
        """Run the calls together; if one fails, wait for the others, then raise its error."""
        results = await asyncio.gather(*calls, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return results

    async def write(self, data: bytes) -> None:
        data = bytes(data)          # every copy gets the same bytes, whatever the caller reuses
        await self._all([w.write(data) for _, w in self._writers])

    async def _commit_one(self, store: BlobStore, w: BlobWriter) -> int:
        size = await w.commit()
        self._committed.append(store)
        return size

    async def commit(self) -> int:
        sizes = await self._all([self._commit_one(s, w) for s, w in self._writers])
        if len(set(sizes)) != 1:
            raise StorageError(f"copies of {self.blob_id} committed different lengths {sizes}")
        self._done = True
        return int(sizes[0])

    async def abort(self) -> None:
        """Abort every copy and remove the copies a failed commit completed (best effort:
        the start-up sweep removes what this cannot)."""
        if self._done:
            return
        await asyncio.gather(*(w.abort() for _, w in self._writers), return_exceptions=True)
        committed, self._committed = self._committed, []
        await asyncio.gather(*(s.delete([self.blob_id]) for s in committed), return_exceptions=True)
