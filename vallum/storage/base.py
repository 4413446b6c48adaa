"""The blob store contract: opaque, immutable byte blobs named by id.

Storage never parses HTTP and never sees object keys: the object service names
each blob by a fresh uuid. A blob becomes visible only when its writer
commits (data fsynced, renamed into place, directory fsynced).
"""

from __future__ import annotations

import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable

CHUNK = 1024 * 1024
_ID_RE = re.compile(r"[0-9a-f]{32}")


def new_blob_id() -> str:
    return uuid.uuid4().hex


def check_blob_id(blob_id: str) -> str:
    """Reject anything but 32 lowercase hex digits before it can reach a path."""
    if not isinstance(blob_id, str) or _ID_RE.fullmatch(blob_id) is None:
        raise ValueError(f"invalid blob id: {blob_id!r}")
    return blob_id


def check_range(start: int, end: int | None, chunk_size: int) -> None:
    """ValueError for a negative start, an end before the start or a non-positive chunk size."""
    if start < 0 or (end is not None and end < start) or chunk_size <= 0:
        raise ValueError(f"invalid range or chunk size: {start}, {end}, {chunk_size}")


class StorageError(Exception):
    """Base of storage errors."""


class BlobMissing(StorageError):
    pass


class BlobCorrupt(StorageError):
    """A blob failed its integrity check: authentication (encrypted blobs) or its length."""


class StorageUnavailable(StorageError):
    """A remote blob store did not answer (after its retries): the client gets 503
    (``SlowDown`` when the remote asked us to slow down), nothing is acknowledged."""

    def __init__(self, message: str, *, slow_down: bool = False) -> None:
        super().__init__(message)
        self.code = "SlowDown" if slow_down else "ServiceUnavailable"


def check_size(blob_id: str, actual: int, expect: int | None) -> None:
    """BlobCorrupt when a blob's length is not the one its metadata recorded."""
    if expect is not None and actual != expect:
        raise BlobCorrupt(f"blob {blob_id} holds {actual} bytes, its object recorded {expect}")


class BlobWriter(ABC):
    blob_id: str

    @abstractmethod
    async def write(self, data: bytes) -> None:
        """Append bytes (any size; the writer batches them)."""

    @abstractmethod
    async def commit(self) -> int:
        """Make the blob durable and visible; returns its size."""

    @abstractmethod
    async def abort(self) -> None:
        """Discard everything written; safe to call twice, after a failed commit, and
        (doing nothing) after a successful one."""


class BlobStore(ABC):
    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def writer(self) -> BlobWriter:
        """A writer for a new blob with a fresh id."""

    def writer_as(self, blob_id: str) -> BlobWriter:
        """A writer for the blob ``blob_id`` (replacing it at commit): how a mirror keeps
        one id on every copy, and how a copy is healed from another."""
        raise NotImplementedError(f"{type(self).__name__} cannot write a blob under a given id")

    def replicas(self) -> list[tuple[str, BlobStore]]:
        """The independent copies a blob is kept in, named, the one to read first first.
        One store keeps one copy: itself."""
        return [("", self)]

    def note_damage(self, blob_id: str, copy: str, exc: BaseException) -> None:
        """A reader found copy ``copy`` of ``blob_id`` missing, corrupt or unreadable and
        used another one (only stores with several replicas record it)."""
        return None

    async def repair(self, blob_id: str, source: str, targets: list[str]) -> None:
        """Rewrite copies ``targets`` of a blob from copy ``source`` (a mirror's healing)."""
        raise StorageError("this blob store keeps one copy: there is nothing to repair from")

    @abstractmethod
    async def put(self, data: bytes) -> str:
        """Write a whole small blob durably in one call; returns its id."""

    @abstractmethod
    def read(self, blob_id: str, start: int = 0, end: int | None = None,
             chunk_size: int = CHUNK, *, expect_size: int | None = None) -> AsyncIterator[bytes]:
        """Stream bytes [start, end) of a blob (end None = to the end).
        Raise BlobMissing (on first iteration) if it does not exist, and BlobCorrupt (on
        first iteration) if ``expect_size`` is given and the blob's length differs: a
        truncated blob fails before any byte, even for a range it still covers."""

    @abstractmethod
    async def size(self, blob_id: str) -> int: ...

    @abstractmethod
    async def delete(self, blob_ids: list[str]) -> None:
        """Remove blobs; missing ids are ignored."""

    @abstractmethod
    async def sweep(self, is_referenced: Callable[[str], bool]) -> int:
        """Remove leftovers of interrupted writes and committed blobs nobody
        references. Call only when no writer is active (at start). Returns how many
        were removed, temp leftovers included."""
