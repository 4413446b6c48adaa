"""A BlobStore that encrypts every blob of any inner BlobStore (format: security/crypto/envelope.py).

Sizes and ranges are in plaintext terms, so the object service does not know
encryption exists. A read of bytes [start, end) fetches and decrypts only the
chunks that overlap it. Anything that fails authentication — a flipped byte,
chunks swapped or reordered, a truncated blob, a key row moved to another
blob — raises ``BlobCorrupt`` (a StorageError): a reader gets an error, never
wrong bytes.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from vallum.security.crypto import envelope
from vallum.security.crypto import primitives as crypto
from vallum.security.crypto.keytable import Keyring, KeyTable, dek_aad, load_keyring
from vallum.security.crypto.primitives import TAG_BYTES, CryptoError
from vallum.storage.base import (
    CHUNK,
    BlobCorrupt,
    BlobMissing,
    BlobStore,
    BlobWriter,
    StorageError,
    check_blob_id,
    check_size,
)
from vallum.storage.mirror import READ_FAILURES, worst

DEK_CACHE = 4096


class EncryptedBlobStore(BlobStore):
    def __init__(self, inner: BlobStore, keys: KeyTable, ring: Keyring,
                 chunk_size: int = envelope.DEFAULT_CHUNK, *, keyring_dir: Path | None = None) -> None:
        self.inner = inner
        self.keys = keys
        self.ring = ring
        self.keyring_dir = keyring_dir      # where `ring` was loaded from (reloaded after a rotation)
        self.chunk_size = chunk_size
        # Unwrapped data keys of recently read blobs: saves a key-table lookup (a thread
        # hop) per ranged GET. Blobs are immutable, so only delete/rotate invalidate.
        self._deks: OrderedDict[str, bytes] = OrderedDict()

    async def open(self) -> None:
        await self.inner.open()
        await asyncio.to_thread(self.keys.open)

    async def close(self) -> None:
        await self.inner.close()
        await asyncio.to_thread(self.keys.close)

    # --- writing -------------------------------------------------------------------
    def writer(self) -> EncryptedBlobWriter:
        return EncryptedBlobWriter(self, self.inner.writer())

    async def put(self, data: bytes) -> str:
        w = self.writer()
        try:
            await w.write(data)
            await w.commit()
        except BaseException:
            await w.abort()
            raise
        return w.blob_id

    # --- reading -------------------------------------------------------------------
    async def _dek(self, blob_id: str) -> bytes:
        cached = self._deks.get(blob_id)
        if cached is not None:
            self._deks.move_to_end(blob_id)
            return cached
        dek = await self._load_dek(blob_id)
        self._deks[blob_id] = dek
        if len(self._deks) > DEK_CACHE:
            self._deks.popitem(last=False)
        return dek

    async def _load_dek(self, blob_id: str) -> bytes:
        row = await asyncio.to_thread(self.keys.get, blob_id)
        if row is None:
            # No key: the blob is gone (or was crypto-shredded); tell which.
            await self.inner.size(blob_id)          # raises BlobMissing if absent
            raise BlobCorrupt(f"blob {blob_id} has no data key")
        kek_id, wrapped = row
        try:
            return crypto.unwrap(self.master(kek_id), wrapped, dek_aad(blob_id))
        except CryptoError as e:
            raise BlobCorrupt(f"blob {blob_id}: data key: {e}") from None

    def master(self, key_id: str) -> bytes:
        """A master key by id. An id this process does not know was added by `vallum keys
        rotate` while it ran: reload the keyring file (which also makes the new key current
        here, so later writes use it)."""
        if key_id not in self.ring.keys and self.keyring_dir is not None:
            try:
                self.ring = load_keyring(self.keyring_dir)
            except (OSError, ValueError, CryptoError):
                pass            # keep the ring we have; ring.get names the missing key
        return self.ring.get(key_id)

    async def _header(self, blob_id: str) -> bytes:
        return await _header(self.inner, blob_id)

    async def size(self, blob_id: str) -> int:
        check_blob_id(blob_id)
        cipher_size = await self.inner.size(blob_id)
        try:
            return envelope.plaintext_size(cipher_size, envelope.parse_header(await self._header(blob_id)))
        except CryptoError as e:
            raise BlobCorrupt(f"blob {blob_id}: {e}") from None

    def read(self, blob_id: str, start: int = 0, end: int | None = None,
             chunk_size: int = CHUNK, *, expect_size: int | None = None) -> AsyncIterator[bytes]:
        check_blob_id(blob_id)
        if start < 0 or (end is not None and end < start) or chunk_size <= 0:
            raise ValueError(f"invalid range or chunk size: {start}, {end}, {chunk_size}")
        return self._read(blob_id, start, end, chunk_size, expect_size)

    async def _read(self, blob_id: str, start: int, end: int | None, out_size: int,
                    expect_size: int | None) -> AsyncIterator[bytes]:
        dek = await self._dek(blob_id)
        async for piece in read_sealed(self.inner, blob_id, dek, start, end, out_size,
                                       expect_size=expect_size):
            yield piece

    # --- the rest ----------------------------------------------------------------------
    async def delete(self, blob_ids: list[str]) -> None:
        await self.inner.delete(blob_ids)
        for b in blob_ids:
            self._deks.pop(b, None)
        if blob_ids:
            await asyncio.to_thread(self.keys.delete, blob_ids)

    async def sweep(self, is_referenced: Callable[[str], bool]) -> int:
        count = await self.inner.sweep(is_referenced)
        await asyncio.to_thread(self.keys.prune, is_referenced)
        return count

    # --- copies (a mirror underneath) -----------------------------------------------------
    def replicas(self) -> list[tuple[str, BlobStore]]:
        """Each copy of the inner store, decrypted: how the scrub authenticates every copy."""
        copies = self.inner.replicas()
        if len(copies) == 1:
            return [(copies[0][0], self)]
        return [(name, EncryptedBlobStore(store, self.keys, self.ring, self.chunk_size,
                                          keyring_dir=self.keyring_dir))
                for name, store in copies]

    async def repair(self, blob_id: str, source: str, targets: list[str]) -> None:
        await self.inner.repair(blob_id, source, targets)

    async def rotate(self, ring: Keyring) -> int:
        """Adopt a keyring with a new current key and re-wrap every data key under it."""
        self.ring = ring
        self._deks.clear()
        return await asyncio.to_thread(self.keys.rewrap, ring)


async def _header(inner: BlobStore, blob_id: str) -> bytes:
    parts = [c async for c in inner.read(blob_id, 0, envelope.HEADER_BYTES)]
    return b"".join(parts)


def read_sealed(inner: BlobStore, blob_id: str, dek: bytes, start: int, end: int | None,
                out_size: int = CHUNK, *, expect_size: int | None = None) -> AsyncIterator[bytes]:
    """Plaintext bytes [start, end) of a blob in the envelope format, stored in ``inner``
    and sealed under ``dek``; only the chunks overlapping the range are fetched and opened.
    Shared by the master-key store and SSE-C objects (security/crypto/ssec.py), which differ only
    in where the data key comes from. BlobCorrupt on any authentication failure, and
    (before any byte) when the plaintext length is not ``expect_size``. When ``inner``
    keeps several copies (a mirror), a copy that fails, authentication included, is
    recorded and the next one continues from the same offset."""
    copies = inner.replicas()
    if len(copies) == 1:
        return _read_sealed(inner, blob_id, dek, start, end, out_size, expect_size=expect_size)
    return _read_sealed_copies(inner, copies, blob_id, dek, start, end, out_size, expect_size)


async def _read_sealed_copies(inner: BlobStore, copies: list[tuple[str, BlobStore]], blob_id: str,
                              dek: bytes, start: int, end: int | None, out_size: int,
                              expect_size: int | None) -> AsyncIterator[bytes]:
    pos, failures = start, []
    for name, store in copies:
        try:
            async for piece in _read_sealed(store, blob_id, dek, pos, end, out_size,
                                            expect_size=expect_size):
                pos += len(piece)
                yield piece
            return
        except READ_FAILURES as exc:
            inner.note_damage(blob_id, name, exc)
            failures.append(exc)
    raise worst(failures)


async def _read_sealed(inner: BlobStore, blob_id: str, dek: bytes, start: int, end: int | None,
                       out_size: int = CHUNK, *, expect_size: int | None = None) -> AsyncIterator[bytes]:
    """read_sealed from one copy."""
    header = await _header(inner, blob_id)
    cipher_size = await inner.size(blob_id)
    try:
        chunk = envelope.parse_header(header)
        size = envelope.plaintext_size(cipher_size, chunk)
        opener = envelope.Opener(dek, blob_id, header, size)
    except CryptoError as e:
        raise BlobCorrupt(f"blob {blob_id}: {e}") from None
    check_size(blob_id, size, expect_size)
    end = size if end is None else min(end, size)
    if start >= end:
        return
    first, last = start // chunk, (end - 1) // chunk

    def need(i: int) -> int:
        return chunk + TAG_BYTES if i < opener.last else size - opener.last * chunk + TAG_BYTES

    lo = envelope.cipher_offset(first, chunk)
    hi = envelope.cipher_offset(last, chunk) + need(last)
    # Each inner read (whole sealed chunks) is opened into one buffer: per chunk one
    # decrypt_into, no per-chunk bytes and no join. On the loop, not a worker thread: the
    # hand-off cost more than the decryption (in-process: 2.9-3.2 GiB/s inline against
    # 0.6-0.9 GiB/s through the executor).
    # Inner reads of out_size // chunk sealed chunks open to exactly out_size bytes when the
    # range starts on a chunk boundary, so whole reads are answered without re-cutting.
    index, leftover, carry = first, b"", b""
    per_read = max(1, out_size // chunk) * (chunk + TAG_BYTES)
    async for data in inner.read(blob_id, lo, hi, per_read):
        if leftover:
            data, leftover = leftover + data, b""
        spans, pos = [], 0
        while index <= last and len(data) - pos >= (n := need(index)):
            spans.append((index, pos, n))
            pos += n
            index += 1
        if pos < len(data):
            leftover = data[pos:]
        if not spans:
            continue
        plain = _open_spans(opener, blob_id, data, spans, chunk, start, end)
        ready = carry + plain if carry else plain
        if len(ready) == out_size:
            carry = b""
            yield ready  # type: ignore[misc]  # a fresh bytearray: bytes-like, and no copy
            continue
        whole = len(ready) - len(ready) % out_size
        view = memoryview(ready)
        for at in range(0, whole, out_size):       # callers get chunks of exactly out_size
            yield bytes(view[at:at + out_size])
        carry = bytes(view[whole:])
    if index <= last:
        raise BlobCorrupt(f"blob {blob_id} is truncated at chunk {index}")
    if carry:
        yield carry


def _open_spans(opener: envelope.Opener, blob_id: str, data: bytes,
                spans: list[tuple[int, int, int]], chunk: int, start: int,
                end: int) -> bytes | bytearray:
    """Decrypt the sealed chunks ``spans`` (index, offset, length) of ``data`` into one
    buffer and cut it to [start, end) of the plaintext."""
    out = bytearray(sum(n - TAG_BYTES for _, _, n in spans))
    view, target, at = memoryview(data), memoryview(out), 0
    for index, pos, n in spans:
        size = n - TAG_BYTES
        try:
            opener.open_into(index, view[pos:pos + n], target[at:at + size])
        except CryptoError as e:
            raise BlobCorrupt(f"blob {blob_id} chunk {index}: {e}") from None
        at += size
    base = spans[0][0] * chunk
    lo_cut, hi_cut = max(0, start - base), min(len(out), end - base)
    target.release()
    if lo_cut == 0 and hi_cut == len(out):
        return out      # a fresh buffer nobody else holds: no copy into bytes (~18% of the read)
    return bytes(out[lo_cut:hi_cut])


class EncryptedBlobWriter(BlobWriter):
    def __init__(self, store: EncryptedBlobStore, inner: BlobWriter) -> None:
        self.blob_id = inner.blob_id
        self._store = store
        self._inner = inner
        self._dek = crypto.new_key()
        self._sealer = envelope.Sealer(self._dek, self.blob_id, store.chunk_size)
        self._key_saved = False
        self._committed = False
        self._aborted = False

    def _check_open(self) -> None:
        if self._aborted or self._committed:
            raise StorageError(f"writer for {self.blob_id} is {'aborted' if self._aborted else 'committed'}")

    async def write(self, data: bytes) -> None:
        self._check_open()
        out = self._sealer.feed(bytes(data))
        if out:
            await self._inner.write(out)

    async def commit(self) -> int:
        self._check_open()
        await self._inner.write(self._sealer.finish())
        ring = self._store.ring
        wrapped = crypto.wrap(ring.current, self._dek, dek_aad(self.blob_id))
        # The key row is durable before the blob is visible: a committed blob always has its key.
        await asyncio.to_thread(self._store.keys.put, self.blob_id, ring.current_id, wrapped)
        self._key_saved = True
        await self._inner.commit()
        self._committed = True
        return self._sealer.size

    async def abort(self) -> None:
        if self._committed:
            return
        self._aborted = True
        await self._inner.abort()
        if self._key_saved:
            await asyncio.to_thread(self._store.keys.delete, [self.blob_id])
            self._key_saved = False


__all__ = ["BlobCorrupt", "BlobMissing", "EncryptedBlobStore", "EncryptedBlobWriter", "read_sealed"]
