"""Stream a stored object's bytes (inline, one blob, or a multipart manifest) for a range."""

from __future__ import annotations

from collections.abc import AsyncIterator

from vallum.meta.records import ObjectRecord
from vallum.security.inline import unseal
from vallum.storage.base import BlobStore


def inline_body(blobs: BlobStore, record: ObjectRecord) -> bytes:
    """The plaintext of an inline body (stored sealed; security/inline.py)."""
    assert record.inline is not None
    return unseal(blobs, record.inline)


async def read_object(blobs: BlobStore, record: ObjectRecord, start: int, end: int) -> AsyncIterator[bytes]:
    """Bytes [start, end] (inclusive) of the object's body."""
    if end < start:
        return
    if record.inline is not None:
        yield inline_body(blobs, record)[start:end + 1]
        return
    if record.parts:
        offset = 0
        for part in record.parts:
            part_start, part_end = offset, offset + part.size - 1
            offset += part.size
            if part_end < start or part.size == 0:
                continue
            if part_start > end:
                break
            lo = max(start, part_start) - part_start
            hi = min(end, part_end) - part_start
            async for chunk in blobs.read(part.blob_id, lo, hi + 1):
                yield chunk
        return
    if record.blob_id:
        async for chunk in blobs.read(record.blob_id, start, end + 1):
            yield chunk


def part_range(record: ObjectRecord, part_number: int) -> tuple[int, int] | None:
    """(start, end inclusive) of one part of a multipart object, None if no such part."""
    if not record.parts:
        return (0, record.size - 1) if part_number == 1 else None
    offset = 0
    for part in record.parts:
        if part.part_number == part_number:
            return offset, offset + part.size - 1
        offset += part.size
    return None
