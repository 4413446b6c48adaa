"""Objects encrypted under a customer-provided key (SSE-C): keys, blobs and inline bodies.

Each SSE-C object (or multipart upload) gets a random 256-bit *object key*. It is wrapped
(AES-256-GCM, crypto.wrap) under the customer's key and kept in ``ObjectRecord.extra`` /
``UploadRecord.extra`` under ``EXTRA``, next to a salted HMAC of the customer's key that
recognises a wrong key before anything is decrypted (as AWS keeps a salted HMAC). The
customer's key itself is never stored, logged or cached: without it neither the object key
nor the body can be recovered, not even with Vallum's master keys.

Blobs use the envelope format (security/crypto/envelope.py) under a per-blob data key derived
from the object key and the blob id (HMAC-SHA256), so every part of a multipart upload has
its own key and nonces never repeat under one key. They are written straight to the
*inner* blob store: no key-table row (the master key cannot open them) and, with
``VALLUM_ENCRYPTION=off``, they are still encrypted under the customer's key. Range reads
fetch and open only the chunks they need (encrypted_store.read_sealed).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import AsyncIterator
from typing import Any

from vallum.security.crypto import envelope
from vallum.security.crypto import primitives as crypto
from vallum.security.crypto.encrypted_store import EncryptedBlobStore, read_sealed
from vallum.security.crypto.primitives import CryptoError
from vallum.storage.base import CHUNK, BlobStore, BlobWriter, StorageError

EXTRA = "sse_c"                     # the key of the SSE-C metadata in record.extra
ALGORITHM = "AES256"
_VERSION = 1
_WRAP_AAD = b"vallum-ssec-object-key:v1"
_SALT_BYTES = 16


class WrongKey(Exception):
    """The customer key given is not the one the object (or upload) was written with."""


class ObjectKey:
    """The unwrapped object key of one SSE-C object or upload (in memory only)."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if len(secret) != crypto.KEY_BYTES:
            raise ValueError("an object key is 32 bytes")
        self._secret = secret

    def __repr__(self) -> str:           # never print key material
        return "ObjectKey(<secret>)"

    def _derive(self, label: bytes) -> bytes:
        return hmac.new(self._secret, label, hashlib.sha256).digest()

    def blob_key(self, blob_id: str) -> bytes:
        """The data key of one blob: unique per blob, so chunk nonces never repeat."""
        return self._derive(b"vallum-ssec-blob:" + blob_id.encode())

    def etag(self, md5_hex: str) -> str:
        """A stable ETag that, as on AWS, is not the MD5 of the plaintext (which would let
        anyone without the key confirm a guess of the content)."""
        return hmac.new(self._derive(b"vallum-ssec-etag"), md5_hex.encode(), hashlib.sha256).hexdigest()[:32]

    def seal_inline(self, data: bytes) -> bytes:
        return envelope.encrypt_customer_small(self._derive(b"vallum-ssec-inline"), data)

    def open_inline(self, stored: bytes) -> bytes:
        try:
            return envelope.decrypt_customer_small(self._derive(b"vallum-ssec-inline"), stored)
        except CryptoError as exc:
            raise CustomerBodyCorrupt(f"SSE-C inline body failed authentication: {exc}") from None


class CustomerBodyCorrupt(StorageError):
    """An SSE-C body (inline or blob) failed authentication under the right key."""


def _key_id(customer_key: bytes, salt: bytes) -> bytes:
    return hmac.new(customer_key, b"vallum-ssec-key-id:" + salt, hashlib.sha256).digest()


def new_object_key(customer_key: bytes) -> tuple[ObjectKey, dict[str, Any]]:
    """A fresh object key and the metadata to store for it (JSON-safe, no key material)."""
    secret = crypto.new_key()
    salt = os.urandom(_SALT_BYTES)
    meta = {"v": _VERSION, "algorithm": ALGORITHM,
            "salt": base64.b64encode(salt).decode(),
            "key_hmac": base64.b64encode(_key_id(customer_key, salt)).decode(),
            "wrapped": base64.b64encode(crypto.wrap(customer_key, secret, _WRAP_AAD)).decode()}
    return ObjectKey(secret), meta


def is_customer_encrypted(extra: dict[str, Any]) -> bool:
    return EXTRA in extra


def matches(customer_key: bytes, meta: dict[str, Any]) -> bool:
    """Whether ``customer_key`` is the key ``meta`` was written with (constant time)."""
    try:
        salt = base64.b64decode(meta["salt"])
        expected = base64.b64decode(meta["key_hmac"])
    except (KeyError, TypeError, ValueError):
        return False
    return hmac.compare_digest(_key_id(customer_key, salt), expected)


def open_object_key(customer_key: bytes, meta: dict[str, Any]) -> ObjectKey:
    """The object key of an SSE-C object; WrongKey if ``customer_key`` is not its key."""
    if not matches(customer_key, meta):
        raise WrongKey("the customer key does not match the object's")
    try:
        return ObjectKey(crypto.unwrap(customer_key, base64.b64decode(meta["wrapped"]), _WRAP_AAD))
    except (CryptoError, KeyError, TypeError, ValueError):
        raise WrongKey("the object key does not unwrap under the customer key") from None


# --- blobs -------------------------------------------------------------------------------
def raw_store(blobs: BlobStore) -> BlobStore:
    """The store SSE-C blobs live in: beneath the master-key layer when there is one."""
    return blobs.inner if isinstance(blobs, EncryptedBlobStore) else blobs


def at_rest_encrypted(blobs: BlobStore) -> bool:
    """Whether every object body is encrypted under Vallum's keys (VALLUM_ENCRYPTION on)."""
    return isinstance(blobs, EncryptedBlobStore)


def _chunk_size(blobs: BlobStore) -> int:
    return blobs.chunk_size if isinstance(blobs, EncryptedBlobStore) else envelope.DEFAULT_CHUNK


class CustomerBlobWriter(BlobWriter):
    """Writes one blob in the envelope format under a data key derived from an object key."""

    def __init__(self, inner: BlobWriter, key: ObjectKey, chunk_size: int) -> None:
        self.blob_id = inner.blob_id
        self._inner = inner
        self._sealer = envelope.Sealer(key.blob_key(self.blob_id), self.blob_id, chunk_size)

    async def write(self, data: bytes) -> None:
        out = self._sealer.feed(bytes(data))
        if out:
            await self._inner.write(out)

    async def commit(self) -> int:
        await self._inner.write(self._sealer.finish())
        await self._inner.commit()
        return self._sealer.size

    async def abort(self) -> None:
        await self._inner.abort()


def writer(blobs: BlobStore, key: ObjectKey) -> CustomerBlobWriter:
    return CustomerBlobWriter(raw_store(blobs).writer(), key, _chunk_size(blobs))


def read_blob(blobs: BlobStore, key: ObjectKey, blob_id: str, start: int, end: int,
              chunk_size: int = CHUNK, *, expect_size: int | None = None) -> AsyncIterator[bytes]:
    """Plaintext bytes [start, end) of an SSE-C blob (only the chunks needed are opened)."""
    return read_sealed(raw_store(blobs), blob_id, key.blob_key(blob_id), start, end, chunk_size,
                       expect_size=expect_size)
