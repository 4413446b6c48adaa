"""SSE-C object keys, blobs and inline bodies (security/crypto/ssec.py), and the object service
reading and writing them (service/ingest.store, service/reader)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os

import pytest

from vallum.meta.records import ObjectRecord, PartRecord
from vallum.s3 import errors
from vallum.security.crypto import envelope, ssec
from vallum.security.crypto.encrypted_store import BlobCorrupt, EncryptedBlobStore
from vallum.security.crypto.inline import CustomerKeyRequired, unseal
from vallum.security.crypto.keytable import Keyring, KeyTable
from vallum.security.crypto.primitives import new_key
from vallum.service.ingest import INLINE_MAX, store
from vallum.service.reader import inline_body, read_object
from vallum.storage.memory import MemoryBlobStore

CUSTOMER = os.urandom(32)
OTHER = os.urandom(32)


def run(coro):
    return asyncio.run(coro)


async def chunks(data: bytes, size: int = 10_000):
    for i in range(0, len(data), size):
        yield data[i:i + size]


async def collect(it) -> bytes:
    return b"".join([c async for c in it])


def test_object_key_metadata_holds_no_key_material():
    okey, meta = ssec.new_object_key(CUSTOMER)
    text = json.dumps(meta)                                  # JSON-safe for ObjectRecord.extra
    for secret in (CUSTOMER, okey._secret):
        assert base64.b64encode(secret).decode() not in text and secret.hex() not in text
    assert base64.b64encode(hashlib.md5(CUSTOMER).digest()).decode() not in text
    assert ssec.matches(CUSTOMER, meta) and not ssec.matches(OTHER, meta)
    assert ssec.open_object_key(CUSTOMER, meta)._secret == okey._secret
    with pytest.raises(ssec.WrongKey):
        ssec.open_object_key(OTHER, meta)
    assert "secret" in repr(okey) and okey._secret.hex() not in repr(okey)


def test_salted_hmac_differs_per_object():
    _, a = ssec.new_object_key(CUSTOMER)
    _, b = ssec.new_object_key(CUSTOMER)
    assert a["key_hmac"] != b["key_hmac"] and a["wrapped"] != b["wrapped"]


def test_tampered_metadata_is_a_wrong_key():
    _, meta = ssec.new_object_key(CUSTOMER)
    wrapped = bytearray(base64.b64decode(meta["wrapped"]))
    wrapped[-1] ^= 1
    with pytest.raises(ssec.WrongKey):
        ssec.open_object_key(CUSTOMER, dict(meta, wrapped=base64.b64encode(bytes(wrapped)).decode()))
    with pytest.raises(ssec.WrongKey):
        ssec.open_object_key(CUSTOMER, {"salt": "!!"})


def test_etag_is_stable_and_not_the_md5():
    okey, meta = ssec.new_object_key(CUSTOMER)
    md5 = hashlib.md5(b"body").hexdigest()
    assert okey.etag(md5) == ssec.open_object_key(CUSTOMER, meta).etag(md5) != md5
    assert len(okey.etag(md5)) == 32 and int(okey.etag(md5), 16) >= 0
    other, _ = ssec.new_object_key(CUSTOMER)
    assert other.etag(md5) != okey.etag(md5)


def test_inline_bodies():
    okey, _ = ssec.new_object_key(CUSTOMER)
    sealed = okey.seal_inline(b"small body")
    assert b"small body" not in sealed and envelope.is_customer_small(sealed)
    assert okey.open_inline(sealed) == b"small body"
    flipped = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(ssec.CustomerBodyCorrupt):
        okey.open_inline(flipped)
    with pytest.raises(ssec.CustomerBodyCorrupt):
        ssec.new_object_key(CUSTOMER)[0].open_inline(sealed)
    # The master-key path refuses it instead of returning ciphertext as "legacy plaintext".
    with pytest.raises(CustomerKeyRequired):
        unseal(MemoryBlobStore(), sealed)


def _encrypted(tmp_path) -> EncryptedBlobStore:
    return EncryptedBlobStore(MemoryBlobStore(), KeyTable(tmp_path / "keys.sqlite3"), Keyring.single(new_key()),
                              chunk_size=64)


@pytest.mark.parametrize("layer", ["plain", "encrypted"])
def test_blob_ranges_at_every_chunk_boundary(tmp_path, layer):
    async def main():
        blobs = MemoryBlobStore() if layer == "plain" else _encrypted(tmp_path)
        await blobs.open()
        okey, meta = ssec.new_object_key(CUSTOMER)
        chunk = 64 if layer == "encrypted" else envelope.DEFAULT_CHUNK
        data = os.urandom(chunk * 4 + 5)
        w = ssec.writer(blobs, okey)
        for i in range(0, len(data), 37):
            await w.write(data[i:i + 37])
        assert await w.commit() == len(data)
        raw = ssec.raw_store(blobs)
        on_disk = await collect(raw.read(w.blob_id))
        assert data[:32] not in on_disk and on_disk[:8] == envelope.MAGIC
        for b in range(0, 5):
            edge = b * chunk
            for lo, hi in ((max(0, edge - 1), edge + 1), (edge, edge + chunk), (0, edge + 1)):
                hi = min(hi, len(data))
                assert await collect(ssec.read_blob(blobs, okey, w.blob_id, lo, hi)) == data[lo:hi]
        reopened = ssec.open_object_key(CUSTOMER, meta)      # as a later request would
        assert await collect(ssec.read_blob(blobs, reopened, w.blob_id, 0, len(data))) == data
        with pytest.raises(BlobCorrupt):           # another object key
            await collect(ssec.read_blob(blobs, ssec.new_object_key(CUSTOMER)[0], w.blob_id, 0, 10))
        if layer == "encrypted":
            with pytest.raises(BlobCorrupt):       # the master-key layer has no key for it
                await collect(blobs.read(w.blob_id))
            assert await blobs.size(w.blob_id) == len(data)
        await blobs.delete([w.blob_id])
        await blobs.close()

    run(main())


def test_tampered_blob_fails_loudly():
    async def main():
        blobs = MemoryBlobStore()
        okey, _ = ssec.new_object_key(CUSTOMER)
        w = ssec.writer(blobs, okey)
        await w.write(os.urandom(envelope.DEFAULT_CHUNK * 2))
        await w.commit()
        raw = bytearray(blobs._blobs[w.blob_id])
        raw[envelope.HEADER_BYTES + envelope.DEFAULT_CHUNK + 40] ^= 1      # chunk 1
        blobs._blobs[w.blob_id] = bytes(raw)
        assert len(await collect(ssec.read_blob(blobs, okey, w.blob_id, 0, 100))) == 100   # chunk 0 fine
        with pytest.raises(BlobCorrupt):
            await collect(ssec.read_blob(blobs, okey, w.blob_id, 0, envelope.DEFAULT_CHUNK * 2))

    run(main())


@pytest.mark.parametrize("size", [0, 1000, INLINE_MAX + 1, 3 * envelope.DEFAULT_CHUNK + 3])
@pytest.mark.parametrize("allow_inline", [True, False])
def test_store_and_read_back(size, allow_inline):
    async def main():
        blobs = MemoryBlobStore()
        okey, meta = ssec.new_object_key(CUSTOMER)
        data = os.urandom(size)
        stored = await store(blobs, chunks(data), ["CRC32"], allow_inline=allow_inline, customer=okey)
        assert stored.md5_hex == hashlib.md5(data).hexdigest() and stored.etag == okey.etag(stored.md5_hex)
        record = ObjectRecord("b", "k", size=size, etag=stored.etag, blob_id=stored.blob_id,
                              inline=stored.inline, extra={ssec.EXTRA: meta})
        assert (stored.inline is not None) == (allow_inline and size <= INLINE_MAX)
        if stored.blob_id:
            assert data[:64] not in blobs._blobs[stored.blob_id] or size == 0
        assert await collect(read_object(blobs, record, 0, size - 1, okey)) == data
        if size > 10:
            assert await collect(read_object(blobs, record, 3, 9, okey)) == data[3:10]
        with pytest.raises(errors.InvalidRequest):
            await collect(read_object(blobs, record, 0, size - 1))
        if stored.inline is not None:
            assert inline_body(blobs, record, okey) == data
            with pytest.raises(errors.InvalidRequest):
                inline_body(blobs, record)

    run(main())


def test_multipart_manifest_reads_each_part_under_its_own_key():
    async def main():
        blobs = MemoryBlobStore()
        okey, meta = ssec.new_object_key(CUSTOMER)
        pieces = [os.urandom(70_000), os.urandom(100), os.urandom(130_000)]
        parts = []
        for n, piece in enumerate(pieces, 1):
            s = await store(blobs, chunks(piece), [], allow_inline=False, customer=okey)
            parts.append(PartRecord(n, s.size, s.etag, s.blob_id, 0.0))
        whole = b"".join(pieces)
        record = ObjectRecord("b", "k", size=len(whole), parts=parts, extra={ssec.EXTRA: meta})
        assert await collect(read_object(blobs, record, 0, len(whole) - 1, okey)) == whole
        lo, hi = 65_000, 70_150
        assert await collect(read_object(blobs, record, lo, hi, okey)) == whole[lo:hi + 1]
        # Part blobs have distinct keys: two parts' first chunks differ even for equal plaintext.
        s1 = await store(blobs, chunks(b"same" * 100), [], allow_inline=False, customer=okey)
        s2 = await store(blobs, chunks(b"same" * 100), [], allow_inline=False, customer=okey)
        assert blobs._blobs[s1.blob_id][16:] != blobs._blobs[s2.blob_id][16:]

    run(main())
