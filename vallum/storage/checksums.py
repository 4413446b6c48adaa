"""Streaming hashers for the S3 checksum algorithms and the MD5 ETag.

Bodies are hashed chunk by chunk while they stream to disk, so every hasher is
incremental. CRC digests are the big-endian bytes AWS puts (base64) in the
``x-amz-checksum-*`` headers. Multipart uploads need two combine rules:
COMPOSITE (hash of the part digests, "-N" suffix) and FULL_OBJECT (the CRC of
the whole object, derived from part CRCs and lengths without re-reading data).
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Callable, Iterable
from typing import Any

from awscrt import checksums as _crt

ALGORITHMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")
CRC_ALGORITHMS = ("CRC32", "CRC32C", "CRC64NVME")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


class Hasher:
    """One running checksum; `digest()` may be called at any time."""

    algorithm: str

    def update(self, data: bytes) -> None:
        raise NotImplementedError

    def digest(self) -> bytes:
        raise NotImplementedError

    def b64(self) -> str:
        return _b64(self.digest())


class _CrcHasher(Hasher):
    """A CRC kept as an int; `fn(data, previous)` continues the running value."""

    def __init__(self, algorithm: str, fn: Callable[[bytes, int], int], width: int) -> None:
        self.algorithm = algorithm
        self._fn = fn
        self._width = width
        self._crc = 0

    def update(self, data: bytes) -> None:
        self._crc = self._fn(data, self._crc)

    def digest(self) -> bytes:
        return self._crc.to_bytes(self._width // 8, "big")


class _HashlibHasher(Hasher):
    def __init__(self, algorithm: str, h: hashlib._Hash) -> None:
        self.algorithm = algorithm
        self._h = h

    def update(self, data: bytes) -> None:
        self._h.update(data)

    def digest(self) -> bytes:
        return self._h.digest()


# The fastest provider per algorithm on 1 MiB chunks: zlib for CRC32, awscrt for
# CRC32C (about twice the crc32c package). awscrt is the only provider of CRC64NVME.
# The crc32c package remains the tests' oracle.
_CRC_FUNCS: dict[str, tuple[Callable[[bytes, int], int], int]] = {
    "CRC32": (zlib.crc32, 32),
    "CRC32C": (_crt.crc32c, 32),
    "CRC64NVME": (_crt.crc64nvme, 64),
}


def new_hasher(algorithm: str) -> Hasher:
    """A fresh hasher for one of ALGORITHMS (case-insensitive); ValueError otherwise."""
    name = algorithm.upper()
    if name in _CRC_FUNCS:
        fn, width = _CRC_FUNCS[name]
        return _CrcHasher(name, fn, width)
    if name == "SHA1":
        return _HashlibHasher(name, hashlib.sha1(usedforsecurity=False))
    if name == "SHA256":
        return _HashlibHasher(name, hashlib.sha256())
    raise ValueError(f"unknown checksum algorithm: {algorithm!r}")


def combine_composite(algorithm: str, part_digests: list[bytes]) -> str:
    """AWS COMPOSITE multipart checksum: base64(H(d1 || d2 || ...)) + "-N"."""
    h = new_hasher(algorithm)
    for d in part_digests:
        h.update(d)
    return f"{h.b64()}-{len(part_digests)}"


# --- FULL_OBJECT CRC combine ---------------------------------------------
# All three CRCs are reflected with init == xorout == all ones, so
#   crc(A || B) = crc(A) * x^(8*len(B)) mod P  xor  crc(B)
# in the reflected bit order (zlib's crc32_combine, generalised to width 64).

_REFLECTED_POLY = {"CRC32": (0xEDB88320, 32), "CRC32C": (0x82F63B78, 32),
                   "CRC64NVME": (0x9A6C9329AC4BC9B5, 64)}


class _CrcCombiner:
    """GF(2) polynomial arithmetic modulo one reflected CRC polynomial."""

    def __init__(self, poly: int, width: int) -> None:
        self.poly = poly
        self.width = width
        self.top = 1 << (width - 1)  # the polynomial "1" in reflected order
        # x2n[k] = x^(2^k) mod P, starting from x^1.
        self.x2n = [self.top >> 1]
        for _ in range(1, 64):
            self.x2n.append(self.mul(self.x2n[-1], self.x2n[-1]))

    def mul(self, a: int, b: int) -> int:
        """a(x) * b(x) mod P."""
        m, p = self.top, 0
        while a:
            if a & m:
                p ^= b
                a ^= m
            m >>= 1
            b = (b >> 1) ^ self.poly if b & 1 else b >> 1
        return p

    def x8n(self, n: int) -> int:
        """x^(8n) mod P: the shift a CRC undergoes over n more bytes."""
        p, k = self.top, 3
        while n:
            if n & 1:
                p = self.mul(self.x2n[k & 63], p)
            n >>= 1
            k += 1
        return p

    def combine(self, crc1: int, crc2: int, len2: int) -> int:
        return self.mul(self.x8n(len2), crc1) ^ crc2


_COMBINERS = {name: _CrcCombiner(*pw) for name, pw in _REFLECTED_POLY.items()}

# awscrt ships the same math in C (much faster for thousands of parts); older
# awscrt releases lack it, so the pure-Python combiner stays as the fallback.
_CRT_COMBINE: dict[str, Callable[[int, int, int], int]] = {
    name: fn for name, attr in (("CRC32", "combine_crc32"), ("CRC32C", "combine_crc32c"),
                                ("CRC64NVME", "combine_crc64nvme"))
    if (fn := getattr(_crt, attr, None)) is not None
}


def combine_crc(algorithm: str, crc1: int, crc2: int, len2: int, *, native: bool = True) -> int:
    """CRC of A||B from crc(A), crc(B) and len(B)."""
    name = algorithm.upper()
    if name not in _COMBINERS:
        raise ValueError(f"not a CRC algorithm: {algorithm!r}")
    fn = _CRT_COMBINE.get(name) if native else None
    if fn is not None:
        return fn(crc1, crc2, len2)
    return _COMBINERS[name].combine(crc1, crc2, len2)


def combine_full_object_crc(algorithm: str, parts: list[tuple[bytes, int]]) -> str:
    """FULL_OBJECT multipart checksum: base64 of the CRC of the whole object,
    from each part's (raw digest, byte length), in part order. No "-N" suffix."""
    name = algorithm.upper()
    if name not in _COMBINERS:
        raise ValueError(f"FULL_OBJECT checksums exist only for CRCs, not {algorithm!r}")
    width = _COMBINERS[name].width // 8
    crc = 0
    for digest, length in parts:
        if len(digest) != width:
            raise ValueError(f"{name} part digest must be {width} bytes")
        crc = combine_crc(name, crc, int.from_bytes(digest, "big"), length)
    return _b64(crc.to_bytes(width, "big"))


class MultiHasher:
    """MD5 (for the ETag) plus any checksum algorithms, fed by one update call."""

    def __init__(self, algorithms: Iterable[str] = (), *, sha256: bool = False) -> None:
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._hashers: dict[str, Hasher] = {}
        for a in algorithms:
            h = new_hasher(a)
            self._hashers.setdefault(h.algorithm, h)
        if sha256:
            self._hashers.setdefault("SHA256", new_hasher("SHA256"))
        self._all: list[Any] = [self._md5, *self._hashers.values()]

    def update(self, data: bytes) -> None:
        for h in self._all:
            h.update(data)

    @property
    def md5_hex(self) -> str:
        return self._md5.hexdigest()

    @property
    def sha256_hex(self) -> str:
        """Hex SHA-256 (for x-amz-content-sha256); requires sha256=True or the algorithm."""
        return self._get("SHA256").digest().hex()

    def digest(self, algorithm: str) -> bytes:
        return self._get(algorithm).digest()

    def b64(self, algorithm: str) -> str:
        return _b64(self.digest(algorithm))

    def _get(self, algorithm: str) -> Hasher:
        try:
            return self._hashers[algorithm.upper()]
        except KeyError:
            raise KeyError(f"checksum {algorithm!r} is not being computed") from None
