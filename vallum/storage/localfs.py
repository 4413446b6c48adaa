"""Blob store on a local (or shared POSIX) filesystem.

Layout: ``root/blobs/<id[0:2]>/<id[2:4]>/<id>`` for committed blobs and
``root/tmp/<id>`` for writes in progress. A blob appears under ``blobs/`` only
by an atomic rename after its data is fsynced, and the rename is acknowledged
only after the destination directory (and any directory created for it) is
fsynced, so a crash leaves either the whole blob or a temp file for `sweep`.

Slow system calls run in worker threads; small writes are buffered (up to
WRITE_BUFFER) so a stream of tiny chunks costs one thread hop per MiB.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import shutil
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from vallum.storage.base import (
    CHUNK,
    BlobCorrupt,
    BlobMissing,
    BlobStore,
    BlobWriter,
    StorageError,
    check_blob_id,
    check_range,
    check_size,
    new_blob_id,
)
from vallum.storage.headroom import Headroom, StorageFull, is_enospc

WRITE_BUFFER = 1024 * 1024
# Every EARLY_WRITEBACK bytes a writer asks the kernel to start writing them out (without
# waiting): otherwise nothing reaches the disk before the commit's fsync, which then had
# to flush the whole blob (0.3 s of a 2.7 s 1 GiB PUT here). With it the fsync finds
# little left and the disk works while the body is still arriving: 1 GiB single PUT
# 334-363 -> 408-424 MiB/s (three alternating runs each). Durability is unchanged: the
# commit still fsyncs before anything points at the blob.
EARLY_WRITEBACK = 8 * 1024 * 1024
_START_WRITEBACK = getattr(os, "POSIX_FADV_DONTNEED", None)
_ID_RE = re.compile(r"[0-9a-f]{32}")
_HEX2_RE = re.compile(r"[0-9a-f]{2}")
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalBlobStore(BlobStore):
    """Blobs as files under `root`; see the module docstring for the layout.

    Each commit fsyncs its own destination directory. Group-committing those
    fsyncs in a background thread was measured and dropped: uuid ids spread
    concurrent renames over 65,536 directories, so rounds rarely share one, and
    small concurrent puts ran at about a third of the plain rate."""

    def __init__(self, root: Path, headroom: Headroom | None = None) -> None:
        self.root = Path(root)
        # With a headroom, writes stop at its floor (headroom.py) and ENOSPC is StorageFull.
        self.headroom = headroom
        self._blobs = str(self.root / "blobs")
        self._tmp = str(self.root / "tmp")
        # Directories whose own entry in their parent is known durable.
        self._durable_dirs: set[str] = set()

    # --- paths ---------------------------------------------------------------
    def _blob_path(self, blob_id: str) -> str:
        check_blob_id(blob_id)
        return os.path.join(self._blobs, blob_id[0:2], blob_id[2:4], blob_id)

    def _tmp_path(self, blob_id: str) -> str:
        return os.path.join(self._tmp, check_blob_id(blob_id))

    # --- lifecycle -----------------------------------------------------------
    async def open(self) -> None:
        def make() -> None:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            for d in (self._blobs, self._tmp):
                os.makedirs(d, mode=0o700, exist_ok=True)
            _fsync_dir(str(self.root))

        await asyncio.to_thread(make)

    async def close(self) -> None:
        pass

    # --- the commit path shared by put() and writers -----------------------------
    def _place(self, tmp: str, blob_id: str) -> None:
        """Rename a fsynced temp file into place, then fsync the directories
        that make the rename (and any directory created for it) durable.
        On error nothing is left in blobs/ (the temp file may remain)."""
        top, sub = blob_id[0:2], blob_id[2:4]
        top_dir = os.path.join(self._blobs, top)
        leaf_dir = os.path.join(top_dir, sub)
        try:
            os.rename(tmp, os.path.join(leaf_dir, blob_id))
        except FileNotFoundError:
            for d in (top_dir, leaf_dir):  # makedirs would apply 0700 to the leaf only
                try:
                    os.mkdir(d, 0o700)
                except FileExistsError:
                    pass
            os.rename(tmp, os.path.join(leaf_dir, blob_id))
        dirs = [leaf_dir]
        # A directory seen but not yet confirmed (maybe just created by a
        # concurrent put) gets its parent fsynced too; confirmed ones never again.
        if leaf_dir not in self._durable_dirs:
            dirs.append(top_dir)
            if top_dir not in self._durable_dirs:
                dirs.append(self._blobs)
        try:
            for d in dirs:
                _fsync_dir(d)
        except BaseException:
            _unlink_quietly(os.path.join(leaf_dir, blob_id))
            raise
        self._durable_dirs.update(dirs[:-1])  # their entries in their parents are now durable

    # --- BlobStore -------------------------------------------------------------
    def writer(self) -> LocalBlobWriter:
        return LocalBlobWriter(self, new_blob_id())

    def writer_as(self, blob_id: str) -> LocalBlobWriter:
        return LocalBlobWriter(self, check_blob_id(blob_id))

    async def put(self, data: bytes) -> str:
        blob_id = new_blob_id()
        tmp = self._tmp_path(blob_id)

        def work() -> None:
            if self.headroom is not None:
                self.headroom.check_floor()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC | _O_NOFOLLOW,
                         0o600)
            try:
                try:
                    _write_all(fd, data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                self._place(tmp, blob_id)
            except BaseException:
                _unlink_quietly(tmp)
                raise

        # One thread hop: write, fsync, rename, directory fsync.
        with _full_on_enospc():
            await asyncio.to_thread(work)
        return blob_id

    def read(self, blob_id: str, start: int = 0, end: int | None = None,
             chunk_size: int = CHUNK, *, expect_size: int | None = None) -> AsyncIterator[bytes]:
        path = self._blob_path(blob_id)
        check_range(start, end, chunk_size)
        return _stream_file(path, blob_id, start, end, chunk_size, expect_size)

    async def size(self, blob_id: str) -> int:
        path = self._blob_path(blob_id)
        try:
            return os.stat(path).st_size
        except (FileNotFoundError, NotADirectoryError):
            raise BlobMissing(blob_id) from None

    async def delete(self, blob_ids: list[str]) -> None:
        paths = [self._blob_path(b) for b in blob_ids]
        if paths:
            await asyncio.to_thread(_unlink_all, paths)

    async def sweep(self, is_referenced: Callable[[str], bool]) -> int:
        count = await asyncio.to_thread(self._clear_tmp)
        tops = await asyncio.to_thread(self._list_dir, self._blobs)
        for top in sorted(t for t in tops if _HEX2_RE.fullmatch(t)):
            # One top-level directory at a time keeps memory at ~1/256 of the ids;
            # is_referenced runs on the event loop thread (it may use the loop's DB).
            ids = await asyncio.to_thread(self._ids_under, top)
            dead = [b for b in ids if not is_referenced(b)]
            if dead:
                count += await asyncio.to_thread(self._unlink_ids, dead)
        return count

    # --- sweep helpers (run in threads) -------------------------------------------
    @staticmethod
    def _list_dir(path: str) -> list[str]:
        try:
            return os.listdir(path)
        except FileNotFoundError:
            return []

    def _clear_tmp(self) -> int:
        n = 0
        for entry in os.scandir(self._tmp):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                _unlink_quietly(entry.path)
            n += 1
        return n

    def _ids_under(self, top: str) -> list[str]:
        ids = []
        top_dir = os.path.join(self._blobs, top)
        for sub in self._list_dir(top_dir):
            if not _HEX2_RE.fullmatch(sub):
                continue
            for entry in os.scandir(os.path.join(top_dir, sub)):
                name = entry.name
                if (_ID_RE.fullmatch(name) and name[0:2] == top and name[2:4] == sub
                        and entry.is_file(follow_symlinks=False)):
                    ids.append(name)
        return ids

    def _unlink_ids(self, ids: list[str]) -> int:
        n = 0
        for b in ids:
            try:
                os.unlink(self._blob_path(b))
                n += 1
            except FileNotFoundError:
                pass
        return n


class _full_on_enospc:
    """Out of space (or quota) while writing is StorageFull, answered 507, not a 500."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if exc is not None and is_enospc(exc):
            raise StorageFull(str(exc)) from exc


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _unlink_all(paths: list[str]) -> None:
    for path in paths:
        _unlink_quietly(path)


def _consume_outcome(fut: asyncio.Future[bytes]) -> None:
    """A read-ahead the caller never awaited (it stopped early): retrieve its outcome
    so asyncio does not report an unretrieved exception."""
    if not fut.cancelled():
        fut.exception()


def _open_sized(path: str) -> tuple[int, int]:
    """An fd on the blob and its length (one thread hop for both)."""
    fd = os.open(path, os.O_RDONLY | _O_CLOEXEC)
    try:
        return fd, os.fstat(fd).st_size
    except BaseException:
        os.close(fd)
        raise


async def _stream_file(path: str, blob_id: str, start: int, end: int | None,
                       chunk_size: int, expect_size: int | None = None) -> AsyncIterator[bytes]:
    try:
        fd, length = await asyncio.to_thread(_open_sized, path)
    except (FileNotFoundError, NotADirectoryError):
        raise BlobMissing(blob_id) from None
    try:
        check_size(blob_id, length, expect_size)
    except BlobCorrupt:
        os.close(fd)
        raise
    # A cancelled reader (or its read-ahead) may leave a pread queued or running in a
    # worker thread; the lock and the closed flag make sure no pread ever touches the
    # fd number after it is closed (it could already name another file).
    lock = threading.Lock()
    closed = [False]

    def pread(n: int, pos: int) -> bytes:
        with lock:
            if closed[0]:
                raise OSError(errno.EBADF, "blob reader already closed")
            return os.pread(fd, n, pos)

    def close() -> None:
        with lock:
            if not closed[0]:
                closed[0] = True
                os.close(fd)

    def size_at(pos: int) -> int:
        return chunk_size if end is None else min(chunk_size, end - pos)

    # One read ahead: the next pread runs in a worker thread while the caller sends this
    # chunk, so disk (or page cache) copies overlap the network writes.
    loop = asyncio.get_running_loop()
    ahead: asyncio.Future[bytes] | None = None
    try:
        pos = start
        if size_at(pos) > 0:
            ahead = loop.run_in_executor(None, pread, size_at(pos), pos)
        while ahead is not None:
            data = await ahead
            ahead = None
            if not data:
                break
            pos += len(data)
            if size_at(pos) > 0:
                ahead = loop.run_in_executor(None, pread, size_at(pos), pos)
                ahead.add_done_callback(_consume_outcome)
            yield data
    finally:
        if ahead is not None:
            ahead.cancel()                 # not started yet: it never runs
        if lock.acquire(blocking=False):
            try:
                if not closed[0]:
                    closed[0] = True
                    os.close(fd)
            finally:
                lock.release()
        else:
            loop.run_in_executor(None, close)


class LocalBlobWriter(BlobWriter):
    """Streams one blob into root/tmp, then commits it by fsync + rename."""

    def __init__(self, store: LocalBlobStore, blob_id: str) -> None:
        self.blob_id = blob_id
        self._store = store
        self._tmp = store._tmp_path(blob_id)
        self._fd: int | None = None
        self._buf = bytearray()
        self._size = 0
        self._written = 0      # bytes handed to the file so far
        self._flushing = 0     # bytes whose writeback has been started (see _write_chunks)
        self._state = "open"  # open -> committed | aborted | failed
        self._placed = False  # renamed into blobs/ (a failed commit may get this far)
        # Thread-side operations take this lock, so abort waits for a write a
        # cancelled task left running instead of closing the fd under it.
        self._lock = threading.Lock()

    async def write(self, data: bytes) -> None:
        if self._state != "open":
            raise StorageError(f"writer for {self.blob_id} is {self._state}")
        n = len(data)
        if not n:
            return
        if len(self._buf) + n < WRITE_BUFFER:
            self._buf += data
            self._size += n
            return
        chunks: list[bytes | bytearray] = [self._buf, data] if self._buf else [data]
        self._buf = bytearray()
        try:
            with _full_on_enospc():
                await asyncio.to_thread(self._write_chunks, chunks)
        except BaseException:
            if self._state == "open":
                self._state = "failed"
            raise
        self._size += n

    def _ensure_open(self) -> int:
        if self._fd is None:
            self._fd = os.open(
                self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC | _O_NOFOLLOW, 0o600)
        return self._fd

    def _write_chunks(self, chunks: list[bytes | bytearray]) -> None:
        with self._lock:
            if self._state not in ("open", "committing"):
                raise StorageError(f"writer for {self.blob_id} is {self._state}")
            if self._store.headroom is not None:
                self._store.headroom.check_floor()
            fd = self._ensure_open()
            for c in chunks:
                _write_all(fd, c)
                self._written += len(c)
            if _START_WRITEBACK is not None and self._written - self._flushing >= EARLY_WRITEBACK:
                # On Linux, DONTNEED starts asynchronous writeback of the range's dirty pages
                # (and drops only pages already clean, none of these yet).
                os.posix_fadvise(fd, self._flushing, self._written - self._flushing,
                                 _START_WRITEBACK)
                self._flushing = self._written

    def _commit_sync(self, tail: bytearray) -> None:
        with self._lock:
            if self._state != "committing":  # an abort got the lock first
                raise StorageError(f"writer for {self.blob_id} is {self._state}")
            fd = self._ensure_open()
            _write_all(fd, tail)
            os.fsync(fd)
            self._fd = None
            os.close(fd)
            self._store._place(self._tmp, self.blob_id)
            self._placed = True

    async def commit(self) -> int:
        if self._state != "open":
            raise StorageError(f"writer for {self.blob_id} is {self._state}")
        self._state = "committing"
        tail, self._buf = self._buf, bytearray()
        try:
            with _full_on_enospc():
                await asyncio.to_thread(self._commit_sync, tail)
        except BaseException:
            if self._state == "committing":
                self._state = "failed"
            raise
        if self._state != "committing":  # abort() ran meanwhile and removed the blob
            raise StorageError(f"writer for {self.blob_id} was aborted during commit")
        self._state = "committed"
        return self._size

    def _abort_sync(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            _unlink_quietly(self._tmp)
            if self._placed:
                _unlink_quietly(self._store._blob_path(self.blob_id))
                self._placed = False

    async def abort(self) -> None:
        if self._state in ("committed", "aborted"):
            return
        self._state = "aborted"
        self._buf = bytearray()
        await asyncio.to_thread(self._abort_sync)
