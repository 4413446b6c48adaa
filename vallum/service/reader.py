"""Stream a stored object's bytes (inline, one blob, or a multipart manifest) for a range.

SSE-C versions (security/crypto/ssec.py) are read only with their object key (``key``); without
it every function here refuses, so no caller can stream their ciphertext by mistake.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from vallum.meta.records import ObjectRecord
from vallum.s3 import errors
from vallum.s3.sse import KEY_REQUIRED
from vallum.security.crypto import ssec
from vallum.security.crypto.inline import unseal
from vallum.storage.base import BlobStore


def _key_for(record: ObjectRecord, key: ssec.ObjectKey | None) -> ssec.ObjectKey | None:
    if ssec.is_customer_encrypted(record.extra):
        if key is None:
            raise errors.InvalidRequest(KEY_REQUIRED)
        return key
    return None


def inline_body(blobs: BlobStore, record: ObjectRecord, key: ssec.ObjectKey | None = None) -> bytes:
    """The plaintext of an inline body (stored sealed; security/crypto/inline.py or ssec.py)."""
    assert record.inline is not None
    customer = _key_for(record, key)
    if customer is not None:
        return customer.open_inline(record.inline)
    return unseal(blobs, record.inline)


def _blob(blobs: BlobStore, key: ssec.ObjectKey | None, blob_id: str, start: int,
          end: int, size: int) -> AsyncIterator[bytes]:
    """Bytes [start, end) of one blob of the object, whose metadata says it holds ``size``
    bytes (a blob of another length is corrupt: BlobCorrupt before any byte)."""
    if key is not None:
        return ssec.read_blob(blobs, key, blob_id, start, end, expect_size=size)
    return blobs.read(blob_id, start, end, expect_size=size)


async def read_object(blobs: BlobStore, record: ObjectRecord, start: int, end: int,
                      key: ssec.ObjectKey | None = None) -> AsyncIterator[bytes]:
    """Bytes [start, end] (inclusive) of the object's body (``key``: its SSE-C object key)."""
    customer = _key_for(record, key)
    if end < start:
        return
    if record.inline is not None:
        yield inline_body(blobs, record, customer)[start:end + 1]
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
            async for chunk in _blob(blobs, customer, part.blob_id, lo, hi + 1, part.size):
                yield chunk
        return
    if record.blob_id:
        async for chunk in _blob(blobs, customer, record.blob_id, start, end + 1, record.size):
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
