"""The blob store contract: opaque, immutable byte blobs named by id.

Storage never parses HTTP and never sees object keys: the object service names
each blob by a fresh uuid. A blob becomes visible only when its writer
commits (data fsynced, renamed into place, directory fsynced).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable

CHUNK = 1024 * 1024


class StorageError(Exception):
    """Base of storage errors."""


class BlobMissing(StorageError):
    pass


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
        """Discard everything written; safe to call twice or after commit failed."""


class BlobStore(ABC):
    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def writer(self) -> BlobWriter:
        """A writer for a new blob with a fresh id."""

    @abstractmethod
    async def put(self, data: bytes) -> str:
        """Write a whole small blob durably in one call; returns its id."""

    @abstractmethod
    def read(self, blob_id: str, start: int = 0, end: int | None = None,
             chunk_size: int = CHUNK) -> AsyncIterator[bytes]:
        """Stream bytes [start, end) of a blob (end None = to the end).
        Raise BlobMissing (on first iteration) if it does not exist."""

    @abstractmethod
    async def size(self, blob_id: str) -> int: ...

    @abstractmethod
    async def delete(self, blob_ids: list[str]) -> None:
        """Remove blobs; missing ids are ignored."""

    @abstractmethod
    async def sweep(self, is_referenced: Callable[[str], bool]) -> int:
        """Remove leftovers of interrupted writes and committed blobs nobody
        references. Call only when no writer is active (at start). Returns count."""
