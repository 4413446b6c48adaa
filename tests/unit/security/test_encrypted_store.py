"""EncryptedBlobStore: the BlobStore contract, plus tampering, truncation, reordering,
key rotation and range correctness at every chunk boundary."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.storage import test_blobstore_contract as contract
from vallum.security.crypto import envelope
from vallum.security.crypto.encrypted_store import BlobCorrupt, EncryptedBlobStore
from vallum.security.crypto.keytable import Keyring, KeyTable, add_master_key, load_keyring
from vallum.security.crypto.primitives import CryptoError, new_key
from vallum.storage.base import BlobMissing
from vallum.storage.localfs import LocalBlobStore
from vallum.storage.memory import MemoryBlobStore

CHUNK = 64  # tiny chunks so every test crosses many boundaries


def make(kind: str, tmp_path: Path, chunk: int = envelope.DEFAULT_CHUNK) -> EncryptedBlobStore:
    inner = MemoryBlobStore() if kind == "memory" else LocalBlobStore(tmp_path / "data")
    return EncryptedBlobStore(inner, KeyTable(tmp_path / f"keys-{os.urandom(4).hex()}.sqlite3"),
                              Keyring.single(new_key()), chunk)


@pytest.fixture(params=["local", "memory"])
def run(request, tmp_path):
    """Override of the contract's fixture: every contract test runs on the encrypted store."""

    def runner(body):
        async def main():
            store = make(request.param, tmp_path)
            await store.open()
            try:
                await body(store)
            finally:
                await store.close()

        asyncio.run(main())

    return runner


# Re-use every test of the BlobStore contract (they pick up the `run` fixture above).
for _name in dir(contract):
    if _name.startswith("test_"):
        globals()[_name] = getattr(contract, _name)


def with_store(tmp_path, body, chunk=CHUNK, kind="local"):
    async def main():
        store = make(kind, tmp_path, chunk)
        await store.open()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


async def collect(store, blob_id, start=0, end=None, chunk_size=1 << 20) -> bytes:
    return b"".join([c async for c in store.read(blob_id, start, end, chunk_size)])


def blob_path(store: EncryptedBlobStore, blob_id: str) -> Path:
    return Path(store.inner._blob_path(blob_id))


def test_blob_on_disk_is_ciphertext_with_header(tmp_path):
    async def body(store):
        data = b"SECRET//NOFORN plan " * 100
        bid = await store.put(data)
        raw = blob_path(store, bid).read_bytes()
        assert raw[:8] == envelope.MAGIC and b"SECRET" not in raw
        assert len(raw) == 16 + len(data) + 16 * (len(data) // CHUNK + 1)
        assert await store.size(bid) == len(data)
        assert await collect(store, bid) == data

    with_store(tmp_path, body)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(0, 700), data=st.data())
def test_ranges_match_plaintext(tmp_path, size, data):
    plain = os.urandom(size)
    start = data.draw(st.integers(0, size))
    end = data.draw(st.one_of(st.none(), st.integers(start, size + 10)))
    piece = data.draw(st.integers(1, 200))

    async def body(store):
        bid = await store.put(plain)
        pieces = [c async for c in store.read(bid, start, end, piece)]
        assert b"".join(pieces) == plain[start:end]
        assert all(len(p) == piece for p in pieces[:-1])

    with_store(tmp_path, body, kind="memory")


def test_every_chunk_boundary(tmp_path):
    plain = os.urandom(CHUNK * 4)

    async def body(store):
        bid = await store.put(plain)
        for b in range(0, len(plain) + 1, CHUNK):
            for s in (b - 1, b, b + 1):
                for e in (b - 1, b, b + 1, len(plain)):
                    if 0 <= s <= e <= len(plain):
                        assert await collect(store, bid, s, e) == plain[s:e], (s, e)

    with_store(tmp_path, body)


def test_range_decrypts_only_needed_chunks(tmp_path):
    plain = os.urandom(CHUNK * 10)

    async def body(store):
        bid = await store.put(plain)
        path = blob_path(store, bid)
        raw = bytearray(path.read_bytes())
        raw[envelope.cipher_offset(8, CHUNK) + 3] ^= 1       # damage chunk 8 only
        path.write_bytes(raw)
        assert await collect(store, bid, 0, CHUNK * 8) == plain[:CHUNK * 8]
        with pytest.raises(BlobCorrupt):
            await collect(store, bid, CHUNK * 8, CHUNK * 8 + 1)

    with_store(tmp_path, body)


@pytest.mark.parametrize("position", ["header", "first", "middle", "tag", "last"])
def test_any_flipped_byte_fails_loudly(tmp_path, position):
    plain = os.urandom(CHUNK * 3 + 10)

    async def body(store):
        bid = await store.put(plain)
        path = blob_path(store, bid)
        raw = bytearray(path.read_bytes())
        at = {"header": 9, "first": 16, "middle": envelope.cipher_offset(1, CHUNK) + 5,
              "tag": envelope.cipher_offset(1, CHUNK) + CHUNK + 2, "last": len(raw) - 1}[position]
        raw[at] ^= 0x40
        path.write_bytes(raw)
        with pytest.raises(BlobCorrupt):
            await collect(store, bid)

    with_store(tmp_path, body)


def test_truncation_is_detected(tmp_path):
    plain = os.urandom(CHUNK * 3)     # ends with an empty final chunk

    async def body(store):
        bid = await store.put(plain)
        path = blob_path(store, bid)
        raw = path.read_bytes()
        for cut in (16, envelope.cipher_offset(3, CHUNK), envelope.cipher_offset(2, CHUNK), len(raw) - 1):
            path.write_bytes(raw[:cut])
            with pytest.raises((BlobCorrupt, CryptoError)):
                await collect(store, bid)

    with_store(tmp_path, body)


def test_truncation_fails_a_range_it_still_covers_given_the_recorded_size(tmp_path):
    """Without a size the first chunks of a cut blob still open (they are authentic); the
    object service passes the size its metadata recorded, and the read fails first."""
    plain = os.urandom(CHUNK * 5 + 7)

    async def body(store):
        bid = await store.put(plain)
        path = blob_path(store, bid)
        path.write_bytes(path.read_bytes()[:envelope.cipher_offset(3, CHUNK) + 20])
        assert await collect(store, bid, 0, CHUNK) == plain[:CHUNK]
        it = store.read(bid, 0, CHUNK, expect_size=len(plain))
        with pytest.raises(BlobCorrupt, match="recorded"):
            await it.__anext__()

    with_store(tmp_path, body)


def test_reordered_and_swapped_chunks_and_blobs_fail(tmp_path):
    plain = os.urandom(CHUNK * 3 + 5)

    async def body(store):
        a = await store.put(plain)
        b = await store.put(plain)
        pa, pb = blob_path(store, a), blob_path(store, b)
        raw_a, raw_b = pa.read_bytes(), pb.read_bytes()
        o1, o2, n = envelope.cipher_offset(0, CHUNK), envelope.cipher_offset(1, CHUNK), CHUNK + 16
        swapped = raw_a[:o1] + raw_a[o2:o2 + n] + raw_a[o1:o1 + n] + raw_a[o2 + n:]
        pa.write_bytes(swapped)
        with pytest.raises(BlobCorrupt):
            await collect(store, a)
        pa.write_bytes(raw_b)             # blob b's bytes under a's name (same plaintext!)
        with pytest.raises(BlobCorrupt):
            await collect(store, a)
        # a key row copied to another blob does not unwrap there
        store.keys.put(a, *store.keys.get(b))
        store._deks.clear()               # the store caches unwrapped keys of blobs it read
        pa.write_bytes(raw_a)
        with pytest.raises(BlobCorrupt):
            await collect(store, a)

    with_store(tmp_path, body)


def test_rotation_rewraps_keys_without_touching_blobs(tmp_path):
    data_dir = tmp_path / "d"
    ring1 = load_keyring(data_dir)
    assert (data_dir / "object-keys.json").stat().st_mode & 0o777 == 0o600
    assert load_keyring(data_dir).current == ring1.current

    async def body():
        store = EncryptedBlobStore(LocalBlobStore(data_dir), KeyTable(data_dir / "k.sqlite3"), ring1, CHUNK)
        await store.open()
        ids = [await store.put(os.urandom(300)) for _ in range(5)]
        before = {i: blob_path(store, i).read_bytes() for i in ids}
        contents = {i: await collect(store, i) for i in ids}
        ring2 = add_master_key(data_dir)
        assert ring2.current_id != ring1.current_id
        assert await store.rotate(ring2) == 5
        assert store.keys.count_under(ring1.current_id) == 0
        assert {i: blob_path(store, i).read_bytes() for i in ids} == before
        # readable with only the new key
        store.ring = Keyring(ring2.current_id, {ring2.current_id: ring2.current})
        store._deks.clear()
        assert {i: await collect(store, i) for i in ids} == contents
        # and not with only the old one
        store.ring = ring1
        store._deks.clear()
        with pytest.raises(BlobCorrupt):
            await collect(store, ids[0])
        await store.close()

    asyncio.run(body())


def test_delete_shreds_the_key_and_missing_is_missing(tmp_path):
    async def body(store):
        bid = await store.put(b"x" * 100)
        await store.delete([bid])
        assert store.keys.get(bid) is None
        with pytest.raises(BlobMissing):
            await collect(store, bid)

    with_store(tmp_path, body)


def test_small_bodies():
    k1, k2 = new_key(), new_key()
    sealed = envelope.encrypt_small(k1, b"inline body")
    assert b"inline" not in sealed
    assert envelope.decrypt_small(k1, sealed) == b"inline body"
    with pytest.raises(CryptoError):
        envelope.decrypt_small(k2, sealed)
    with pytest.raises(CryptoError):
        envelope.decrypt_small(k1, sealed[:-1] + bytes([sealed[-1] ^ 1]))
    bound = envelope.encrypt_small(k1, b"x", b"bucket/key")
    with pytest.raises(CryptoError):
        envelope.decrypt_small(k1, bound, b"bucket/other")
    rotated = envelope.rewrap_small(k1, k2, sealed)
    assert envelope.decrypt_small(k2, rotated) == b"inline body"
    assert rotated[-20:] == sealed[-20:]
    assert envelope.small_key_id(rotated) != envelope.small_key_id(sealed)
