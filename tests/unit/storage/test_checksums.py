"""Checksums against botocore's own implementations, the standard CRC check
values, and (for the multipart combines) hashing the concatenation."""

from __future__ import annotations

import base64
import hashlib
import zlib

import crc32c
import pytest
from botocore.httpchecksum import (
    Crc32Checksum,
    CrtCrc32cChecksum,
    CrtCrc32Checksum,
    CrtCrc64NvmeChecksum,
    Sha1Checksum,
    Sha256Checksum,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from vallum.storage import checksums
from vallum.storage.checksums import (
    ALGORITHMS,
    MultiHasher,
    combine_composite,
    combine_crc,
    combine_full_object_crc,
    new_hasher,
)

BOTOCORE = {
    "CRC32": Crc32Checksum,
    "CRC32C": CrtCrc32cChecksum,
    "CRC64NVME": CrtCrc64NvmeChecksum,
    "SHA1": Sha1Checksum,
    "SHA256": Sha256Checksum,
}
CRCS = ("CRC32", "CRC32C", "CRC64NVME")


def botocore_b64(algorithm: str, data: bytes) -> str:
    c = BOTOCORE[algorithm]()
    c.update(data)
    return c.b64digest()


def ours(algorithm: str, *chunks: bytes):
    h = new_hasher(algorithm)
    for c in chunks:
        h.update(c)
    return h


# The standard "check" values (CRC catalogue) over b"123456789".
@pytest.mark.parametrize("algorithm,check", [
    ("CRC32", 0xCBF43926), ("CRC32C", 0xE3069283), ("CRC64NVME", 0xAE8B14860A799888),
])
def test_crc_check_values(algorithm, check):
    h = ours(algorithm, b"1234", b"56789")
    assert h.digest() == check.to_bytes(8 if algorithm == "CRC64NVME" else 4, "big")
    assert h.b64() == base64.b64encode(h.digest()).decode()


def test_empty_and_known_header_values():
    assert ours("SHA256").b64() == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
    assert ours("CRC32").b64() == "AAAAAA=="
    assert ours("CRC64NVME").b64() == "AAAAAAAAAAA="
    assert ours("SHA1", b"abc").digest().hex() == "a9993e364706816aba3e25717850c26c9cd0d89d"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("data", [b"", b"a", b"Hello world", bytes(range(256)) * 4097])
def test_matches_botocore(algorithm, data):
    assert ours(algorithm, data).b64() == botocore_b64(algorithm, data)


def test_crt_crc32_agrees_with_zlib():
    data = bytes(range(256)) * 1000
    c = CrtCrc32Checksum()
    c.update(data)
    assert ours("CRC32", data).digest() == c.digest()
    assert ours("CRC32C", data).digest() == crc32c.crc32c(data).to_bytes(4, "big")


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(ALGORITHMS), st.binary(max_size=3000), st.data())
def test_streaming_equals_one_shot(algorithm, data, draw):
    cuts = sorted(draw.draw(st.lists(st.integers(0, len(data)), max_size=6)))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]
    h = ours(algorithm, *pieces)
    assert h.b64() == botocore_b64(algorithm, data)
    assert h.digest() == h.digest()  # digest does not finalise the state
    h.update(b"more")
    assert h.b64() == botocore_b64(algorithm, data + b"more")


def test_unknown_algorithm():
    with pytest.raises(ValueError):
        new_hasher("MD4")
    with pytest.raises(ValueError):
        combine_full_object_crc("SHA256", [])
    assert new_hasher("crc32c").algorithm == "CRC32C"


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    cuts = sorted(cuts)
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(CRCS), st.binary(max_size=5000), st.data())
def test_full_object_combine_equals_crc_of_concatenation(algorithm, data, draw):
    parts = split(data, draw.draw(st.lists(st.integers(0, len(data)), max_size=8)))
    pairs = [(ours(algorithm, p).digest(), len(p)) for p in parts]
    assert combine_full_object_crc(algorithm, pairs) == botocore_b64(algorithm, data)


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(CRCS), st.binary(max_size=2000), st.binary(max_size=2000))
def test_python_combine_matches_native_and_direct(algorithm, a, b):
    ca = int.from_bytes(ours(algorithm, a).digest(), "big")
    cb = int.from_bytes(ours(algorithm, b).digest(), "big")
    direct = int.from_bytes(ours(algorithm, a + b).digest(), "big")
    assert combine_crc(algorithm, ca, cb, len(b), native=False) == direct
    assert combine_crc(algorithm, ca, cb, len(b)) == direct


@pytest.mark.parametrize("algorithm", CRCS)
def test_combine_with_huge_lengths(algorithm):
    """5 GiB parts: the shift is computed, never materialised; Python == awscrt."""
    if algorithm not in checksums._CRT_COMBINE:
        pytest.skip("awscrt without combine functions")
    for length in (5 * 2**30, 2**40 + 12345, 10_000 * 5 * 2**30):
        assert (combine_crc(algorithm, 0x12345678, 0x9ABCDEF0, length, native=False)
                == checksums._CRT_COMBINE[algorithm](0x12345678, 0x9ABCDEF0, length))


def test_full_object_rejects_wrong_digest_width():
    with pytest.raises(ValueError):
        combine_full_object_crc("CRC64NVME", [(b"\0" * 4, 1)])


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(ALGORITHMS), st.lists(st.binary(max_size=500), min_size=1, max_size=6))
def test_composite_is_hash_of_part_digests(algorithm, parts):
    digests = [ours(algorithm, p).digest() for p in parts]
    expected = botocore_b64(algorithm, b"".join(digests)) + f"-{len(parts)}"
    assert combine_composite(algorithm, digests) == expected


def test_composite_known_sha256():
    parts = [b"a" * 10, b"b" * 20]
    inner = b"".join(hashlib.sha256(p).digest() for p in parts)
    want = base64.b64encode(hashlib.sha256(inner).digest()).decode() + "-2"
    assert combine_composite("SHA256", [hashlib.sha256(p).digest() for p in parts]) == want


def test_multihasher():
    chunks = [b"abc", b"", b"def" * 1000]
    data = b"".join(chunks)
    m = MultiHasher(["crc32", "CRC64NVME", "CRC32"], sha256=True)
    for c in chunks:
        m.update(c)
    assert m.md5_hex == hashlib.md5(data).hexdigest()
    assert m.sha256_hex == hashlib.sha256(data).hexdigest()
    assert m.b64("CRC32") == botocore_b64("CRC32", data)
    assert m.digest("crc32") == zlib.crc32(data).to_bytes(4, "big")
    assert m.b64("CRC64NVME") == botocore_b64("CRC64NVME", data)
    assert m.b64("SHA256") == botocore_b64("SHA256", data)
    with pytest.raises(KeyError):
        m.b64("SHA1")


def test_multihasher_plain_md5_only():
    m = MultiHasher()
    m.update(b"x")
    assert m.md5_hex == hashlib.md5(b"x").hexdigest()
    with pytest.raises(KeyError):
        _ = m.sha256_hex
    with pytest.raises(ValueError):
        MultiHasher(["BLAKE3"])
