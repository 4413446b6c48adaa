"""Take an upload body into storage while hashing it, and verify it before it counts.

Small bodies stay in memory and end up inline in the metadata row (encrypted there,
security/crypto/inline.py, so ``Ingested.inline`` is what to store, not the plaintext); larger ones
stream to a blob writer in chunks. Every digest the client declared (Content-MD5,
x-amz-checksum-*, in headers or trailers) is compared before the blob is
committed, so a failed upload leaves nothing behind.

With an SSE-C object key (``customer``), the body is sealed under it instead (security/crypto/ssec.py):
inline or as a blob beneath the master-key layer, and the ETag is not the plaintext MD5.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from vallum.s3 import errors
from vallum.s3.body import Body
from vallum.security.crypto import inline as inline_crypto
from vallum.security.crypto.ssec import ObjectKey
from vallum.security.crypto.ssec import writer as customer_writer
from vallum.security.spill.guard import SpillGuard
from vallum.storage.base import BlobStore, BlobWriter
from vallum.storage.checksums import MultiHasher

INLINE_MAX = 64 * 1024
MAX_OBJECT_SIZE = 5 * 1024**4          # 5 TiB: the largest multipart object
MAX_SINGLE_PUT = 5 * 1024**3           # 5 GiB: the largest single PUT or part
PIPELINE_BATCH = 1024 * 1024           # bytes handed to the hashing and writing threads at once


@dataclass
class Expectations:
    """What the client said the body hashes to; checked once the body ends."""

    md5: bytes | None = None                          # from Content-MD5
    checksums: dict[str, str | None] = field(default_factory=dict)  # algorithm -> b64 (None: from trailer)
    trailer_names: dict[str, str] = field(default_factory=dict)     # algorithm -> trailer header name
    compute_only: set[str] = field(default_factory=set)             # computed and stored, nothing to check

    def algorithms(self) -> list[str]:
        return [*self.checksums, *sorted(self.compute_only - set(self.checksums))]


@dataclass
class Ingested:
    size: int
    md5_hex: str
    checksums: dict[str, str]          # algorithm -> b64 as stored
    digests: dict[str, bytes]          # algorithm -> raw digest (for multipart combining)
    blob_id: str | None = None
    inline: bytes | None = None        # as stored: sealed (encrypted) when encryption is on
    etag: str = ""                     # the ETag to store: md5_hex, or opaque for SSE-C

    def __post_init__(self) -> None:
        if not self.etag:
            self.etag = self.md5_hex


async def ingest(blobs: BlobStore, body: Body, expect: Expectations, *,
                 max_size: int = MAX_SINGLE_PUT, allow_inline: bool = True,
                 scanner: SpillGuard | None = None, customer: ObjectKey | None = None) -> Ingested:
    """Store a request body, checking every digest the client declared before commit."""
    if body.length is not None and body.length > max_size:
        raise errors.EntityTooLarge(MaxSizeAllowed=str(max_size), ProposedSize=str(body.length))
    return await store(blobs, body.chunks(), expect.algorithms(), max_size=max_size,
                       allow_inline=allow_inline, scanner=scanner, customer=customer,
                       verify=lambda hasher: _verify(hasher, expect, body.trailers))


async def store(blobs: BlobStore, chunks: AsyncIterator[bytes], algorithms: list[str], *,
                max_size: int = MAX_OBJECT_SIZE, allow_inline: bool = True,
                verify: Callable[[MultiHasher], None] | None = None,
                scanner: SpillGuard | None = None, customer: ObjectKey | None = None) -> Ingested:
    """Hash and store a byte stream: inline if small (and allowed), else as a committed blob;
    sealed under the SSE-C object key ``customer`` when there is one."""
    hasher = MultiHasher(algorithms)
    buffered: list[bytes] = []
    buffered_size = 0
    size = 0
    writer: BlobWriter | None = None
    behind: _Pipeline | None = None
    try:
        async for data in chunks:
            size += len(data)
            if size > max_size:
                raise errors.EntityTooLarge(MaxSizeAllowed=str(max_size))
            if behind is not None:
                await behind.add(data)   # hashed, spill-scanned and written one batch behind
                continue
            if scanner is not None:
                scanner.feed(data)       # spill scan as the body streams (security/spill/markings.py)
            hasher.update(data)
            if writer is None and buffered_size + len(data) <= INLINE_MAX:
                buffered.append(data)
                buffered_size += len(data)
                continue
            writer = blobs.writer() if customer is None else customer_writer(blobs, customer)
            for piece in buffered:
                await writer.write(piece)
            buffered = []
            await writer.write(data)
            behind = _Pipeline(hasher, writer, scanner)
        if behind is not None:
            await behind.finish()
        if scanner is not None:
            scanner.check()              # raises SpillDetected before anything commits
        if verify is not None:
            verify(hasher)
        checksums = {alg: hasher.b64(alg) for alg in algorithms}
        digests = {alg: hasher.digest(alg) for alg in algorithms}
        etag = hasher.md5_hex if customer is None else customer.etag(hasher.md5_hex)
        if writer is None:
            data = b"".join(buffered)
            if allow_inline:
                sealed = inline_crypto.seal(blobs, data) if customer is None else customer.seal_inline(data)
                return Ingested(size, hasher.md5_hex, checksums, digests, inline=sealed, etag=etag)
            if customer is None:
                blob_id = await blobs.put(data)
                return Ingested(size, hasher.md5_hex, checksums, digests, blob_id=blob_id)
            writer = customer_writer(blobs, customer)
            await writer.write(data)
        await writer.commit()
        return Ingested(size, hasher.md5_hex, checksums, digests, blob_id=writer.blob_id, etag=etag)
    except BaseException:
        if behind is not None:
            await behind.settle()
        if writer is not None:
            await writer.abort()
        raise


class _Pipeline:
    """Hashes and writes a large body one batch behind the receiver.

    Why: MD5 (for the ETag) runs at about 650 MiB/s on one core, and on the event loop
    it made a 1 GiB PUT CPU-bound on that core (half of the gateway's samples,
    py-spy). Here each ~1 MiB batch is hashed (and spill-scanned) on one worker thread
    while the blob writer encrypts and writes it on another (hashing and encryption
    release the GIL for large buffers), and the loop meanwhile receives the next batch. Batches run strictly in
    order, one at a time, so the hasher and the writer see the bytes in sequence and
    at most two batches are held in memory."""

    def __init__(self, hasher: MultiHasher, writer: BlobWriter, scanner: SpillGuard | None = None) -> None:
        self._hasher = hasher
        self._writer = writer
        self._scanner = scanner
        self._pieces: list[bytes] = []
        self._pending = 0
        self._task: asyncio.Future[None] | None = None

    async def add(self, data: bytes) -> None:
        self._pieces.append(data)
        self._pending += len(data)
        if self._pending >= PIPELINE_BATCH:
            await self._hand_on()

    async def finish(self) -> None:
        """Wait until every byte added is hashed and handed to the writer."""
        if self._pieces:
            await self._hand_on()
        await self._wait()

    async def settle(self) -> None:
        """After a failure: let the batch in flight end (its outcome no longer matters),
        so the writer can be aborted without a thread still writing."""
        task, self._task = self._task, None
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    async def _wait(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await task

    async def _hand_on(self) -> None:
        pieces, self._pieces, self._pending = self._pieces, [], 0
        await self._wait()                      # the previous batch is done (or raises here)
        self._task = asyncio.ensure_future(self._batch(pieces))

    async def _batch(self, pieces: list[bytes]) -> None:
        hashing = asyncio.get_running_loop().run_in_executor(None, self._hash, pieces)
        try:
            for piece in pieces:
                await self._writer.write(piece)
        finally:
            await asyncio.wait([hashing])       # never leave the hasher busy behind a failure
        hashing.result()

    def _hash(self, pieces: list[bytes]) -> None:
        # One update per batch, so each checksum runs (GIL released) over 1 MiB at a time.
        batch = b"".join(pieces) if len(pieces) > 1 else pieces[0]
        self._hasher.update(batch)
        if self._scanner is not None:   # off the event loop too; batches keep their order
            self._scanner.feed(batch)


def _verify(hasher: MultiHasher, expect: Expectations, trailers: dict[str, str]) -> None:
    if expect.md5 is not None and not hmac.compare_digest(expect.md5, bytes.fromhex(hasher.md5_hex)):
        raise errors.BadDigest(
            ExpectedDigest=base64.b64encode(expect.md5).decode(),
            CalculatedDigest=base64.b64encode(bytes.fromhex(hasher.md5_hex)).decode())
    for alg, declared in expect.checksums.items():
        if declared is None:
            name = expect.trailer_names.get(alg, f"x-amz-checksum-{alg.lower()}")
            declared = trailers.get(name)
            if declared is None:
                raise errors.InvalidRequest(f"The {alg} checksum trailer was not sent.")
            validate_checksum_value(alg, declared, name)
        if not hmac.compare_digest(declared.encode(), hasher.b64(alg).encode()):
            raise errors.BadDigest(f"The {alg} you specified did not match the calculated checksum.")


_DIGEST_SIZES = {"CRC32": 4, "CRC32C": 4, "CRC64NVME": 8, "SHA1": 20, "SHA256": 32}


def validate_checksum_value(algorithm: str, value: str, header: str) -> None:
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        raw = b""
    if len(raw) != _DIGEST_SIZES[algorithm]:
        raise errors.InvalidRequest(f"Value for {header} header is invalid.")
