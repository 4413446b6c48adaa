"""The on-disk format of an encrypted blob, and of an encrypted inline body.

Blob (every blob has its own random 256-bit data key, DEK)::

    header   16 bytes   magic "VLMENC" 0x01 0x00 | chunk size (u32 BE) | reserved (u32, 0)
    chunk 0  ciphertext of plaintext[0:C]    + 16-byte GCM tag
    chunk 1  ciphertext of plaintext[C:2C]   + tag
    ...
    final    ciphertext of the last 0..C-1 bytes + tag   (always present, may be empty)

Each chunk is AES-256-GCM under the DEK with nonce = 4 zero bytes || index
(u64 BE) — unique, since a DEK encrypts exactly one blob — and associated data
``header || blob_id || index (u64 BE) || final (1 byte)``. So a chunk moved to
another position or another blob, a header edited, or the blob cut short (the
new last chunk was not sealed as final) all fail authentication: reads raise,
never return wrong bytes. Chunk i sits at ``16 + i * (C + 16)``, so a range
read decrypts only the chunks it overlaps.

The DEK is not in the blob: it is wrapped (AES-GCM, crypto.wrap) by a master
key and kept in the key table (security/crypto/keytable.py), with associated data
binding it to the blob id. Master-key rotation re-wraps rows of that table and
never rewrites a blob; deleting a row crypto-shreds its blob.

Inline body (kept in the metadata row, see ``encrypt_small``)::

    "VLMS" 0x01 | master key id (16 ascii hex) | u16 BE length | wrapped DEK | crypto.wrap(DEK, body)

SSE-C (customer-key) objects use the same blob format, but their data keys come from an
object key wrapped under the customer's key (security/crypto/ssec.py), never from the key table;
their inline bodies are ``"VLMC" 0x01 | crypto.wrap(inline key, body)`` (``encrypt_customer_small``).
A distinct magic, so no code path that lacks the customer's key can mistake one for a
master-key body or for a legacy plaintext row.
"""

from __future__ import annotations

import struct
from typing import Any

from vallum.security.crypto import primitives as crypto
from vallum.security.crypto.primitives import TAG_BYTES, ChunkCipher, CryptoError

MAGIC = b"VLMENC\x01\x00"
HEADER_BYTES = 16
DEFAULT_CHUNK = 64 * 1024
MAX_CHUNK = 16 * 1024 * 1024
SMALL_MAGIC = b"VLMS\x01"
CUSTOMER_MAGIC = b"VLMC\x01"
_CUSTOMER_AAD = b"vallum-ssec-inline"


def make_header(chunk_size: int) -> bytes:
    if not 16 <= chunk_size <= MAX_CHUNK:
        raise ValueError(f"chunk size out of range: {chunk_size}")
    return MAGIC + struct.pack(">II", chunk_size, 0)


def parse_header(header: bytes) -> int:
    """The chunk size of a blob; CryptoError if the header is not ours or was altered."""
    if len(header) != HEADER_BYTES or header[:8] != MAGIC:
        raise CryptoError("not a Vallum encrypted blob (bad magic)")
    chunk_size, reserved = struct.unpack(">II", header[8:])
    if not 16 <= chunk_size <= MAX_CHUNK or reserved != 0:
        raise CryptoError("encrypted blob header is corrupt")
    return chunk_size


def nonce(index: int) -> bytes:
    return b"\0\0\0\0" + struct.pack(">Q", index)


def chunk_aad(header: bytes, blob_id: str, index: int, final: bool) -> bytes:
    return header + blob_id.encode() + struct.pack(">QB", index, 1 if final else 0)


def cipher_offset(index: int, chunk_size: int) -> int:
    return HEADER_BYTES + index * (chunk_size + TAG_BYTES)


def plaintext_size(cipher_size: int, chunk_size: int) -> int:
    """Plaintext length of a blob of ``cipher_size`` bytes; CryptoError if impossible."""
    body = cipher_size - HEADER_BYTES
    full, rest = divmod(body, chunk_size + TAG_BYTES)
    if body < TAG_BYTES or rest < TAG_BYTES:
        raise CryptoError("encrypted blob is truncated")
    return full * chunk_size + rest - TAG_BYTES


def last_index(size: int, chunk_size: int) -> int:
    """Index of the final chunk of a plaintext of ``size`` bytes."""
    return size // chunk_size


class Sealer:
    """Encrypts a stream: ``feed`` returns ciphertext for every full chunk so far,
    ``finish`` the final chunk. The header is the first thing ``feed``/``finish`` emit."""

    def __init__(self, dek: bytes, blob_id: str, chunk_size: int = DEFAULT_CHUNK) -> None:
        self.header = make_header(chunk_size)
        self._cipher = ChunkCipher(dek)
        self._blob_id = blob_id
        self._chunk = chunk_size
        self._buf = bytearray()
        self._index = 0
        self._started = False
        self.size = 0

    def _start(self) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        return [self.header]

    def _seal(self, data: bytes, final: bool) -> bytes:
        out = self._cipher.seal(nonce(self._index), data,
                                chunk_aad(self.header, self._blob_id, self._index, final))
        self._index += 1
        return out

    def feed(self, data: bytes) -> bytes:
        self.size += len(data)
        out = self._start()
        buf = self._buf
        buf += data
        c = self._chunk
        if len(buf) >= c:
            n = len(buf) // c * c
            view = memoryview(buf)
            out.extend(self._seal(bytes(view[i:i + c]), False) for i in range(0, n, c))
            view.release()
            del buf[:n]
        return b"".join(out)

    def finish(self) -> bytes:
        out = self._start()
        out.append(self._seal(bytes(self._buf), True))
        self._buf = bytearray()
        return b"".join(out)


class Opener:
    """Decrypts chunks of one blob, given its header and plaintext size."""

    def __init__(self, dek: bytes, blob_id: str, header: bytes, size: int) -> None:
        self.chunk_size = parse_header(header)
        self.header = header
        self._cipher = ChunkCipher(dek)
        self._blob_id = blob_id
        self.last = last_index(size, self.chunk_size)

    def open(self, index: int, sealed: bytes) -> bytes:
        final = index == self.last
        return self._cipher.open(nonce(index), sealed,
                                 chunk_aad(self.header, self._blob_id, index, final))

    def open_into(self, index: int, sealed: Any, out: Any) -> None:
        final = index == self.last
        self._cipher.open_into(nonce(index), sealed,
                               chunk_aad(self.header, self._blob_id, index, final), out)


def seal_all(dek: bytes, blob_id: str, data: bytes, chunk_size: int = DEFAULT_CHUNK) -> bytes:
    s = Sealer(dek, blob_id, chunk_size)
    return s.feed(data) + s.finish()


# --- inline bodies ---------------------------------------------------------------------
def encrypt_small(master: bytes, data: bytes, context: bytes = b"") -> bytes:
    """Encrypt a small body kept in a metadata row under a fresh DEK wrapped by ``master``.

    ``context`` is bound as associated data: pass b"" if the row's bytes may be copied
    verbatim to another object (CopyObject), else e.g. bucket/key/version."""
    dek = crypto.new_key()
    wrapped = crypto.wrap(master, dek, b"vallum-small-dek:" + context)
    return (SMALL_MAGIC + crypto.key_fingerprint(master).encode() + struct.pack(">H", len(wrapped))
            + wrapped + crypto.wrap(dek, data, b"vallum-small:" + context))


def small_key_id(blob: bytes) -> str:
    """Which master key an inline body is wrapped under (to pick it from a keyring)."""
    if not is_small(blob):
        raise CryptoError("not an encrypted inline body")
    return blob[5:21].decode()


def is_small(blob: bytes) -> bool:
    return blob[:5] == SMALL_MAGIC and len(blob) > 23


def decrypt_small(master: bytes, blob: bytes, context: bytes = b"") -> bytes:
    """Inverse of ``encrypt_small``; CryptoError if altered or under another key."""
    if not is_small(blob):
        raise CryptoError("not an encrypted inline body")
    (n,) = struct.unpack(">H", blob[21:23])
    wrapped, body = blob[23:23 + n], blob[23 + n:]
    dek = crypto.unwrap(master, wrapped, b"vallum-small-dek:" + context)
    return crypto.unwrap(dek, body, b"vallum-small:" + context)


def rewrap_small(old: bytes, new: bytes, blob: bytes, context: bytes = b"") -> bytes:
    """Re-wrap an inline body's DEK under a new master key; the body ciphertext is kept."""
    (n,) = struct.unpack(">H", blob[21:23])
    dek = crypto.unwrap(old, blob[23:23 + n], b"vallum-small-dek:" + context)
    wrapped = crypto.wrap(new, dek, b"vallum-small-dek:" + context)
    return (SMALL_MAGIC + crypto.key_fingerprint(new).encode() + struct.pack(">H", len(wrapped))
            + wrapped + blob[23 + n:])


# --- inline bodies of SSE-C objects ----------------------------------------------------
def encrypt_customer_small(key: bytes, data: bytes) -> bytes:
    """An inline body sealed under a key derived from an SSE-C object key (ssec.py)."""
    return CUSTOMER_MAGIC + crypto.wrap(key, data, _CUSTOMER_AAD)


def is_customer_small(blob: bytes) -> bool:
    return blob[:5] == CUSTOMER_MAGIC


def decrypt_customer_small(key: bytes, blob: bytes) -> bytes:
    """Inverse of ``encrypt_customer_small``; CryptoError if altered or under another key."""
    if not is_customer_small(blob):
        raise CryptoError("not a customer-key inline body")
    return crypto.unwrap(key, blob[5:], _CUSTOMER_AAD)
