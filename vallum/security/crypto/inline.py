"""Encryption of inline bodies (<= 64 KiB, kept in the metadata row) under the object keyring.

The object service calls ``seal`` where a body goes inline and ``unseal`` where it is
read, so handlers never see ciphertext. The keyring is the encrypted blob store's
(``VALLUM_ENCRYPTION=off``: no keyring, bodies stay in clear). Context is b"" because
CopyObject may copy a row's bytes verbatim to another object. Inline bodies of SSE-C
objects are sealed by security/crypto/ssec.py under the customer's key instead, whatever the
switch says; ``unseal`` refuses them rather than hand out their ciphertext.
"""

from __future__ import annotations

from typing import Any

from vallum.security.crypto import envelope
from vallum.security.crypto.primitives import CryptoError
from vallum.storage.base import StorageError


class InlineCorrupt(StorageError):
    """An encrypted inline body failed authentication (or its key is missing)."""


class CustomerKeyRequired(StorageError):
    """An inline body sealed under a customer key (SSE-C) was read without that key."""


def _ring(blobs: Any) -> Any:
    return getattr(blobs, "ring", None)


def seal(blobs: Any, data: bytes) -> bytes:
    """The bytes to store inline for ``data`` (encrypted when encryption is on)."""
    ring = _ring(blobs)
    if ring is None:
        return data
    return envelope.encrypt_small(ring.current, data)


def unseal(blobs: Any, stored: bytes) -> bytes:
    """The plaintext of a stored inline body; InlineCorrupt if it does not authenticate.
    Rows written before inline encryption (no envelope magic) are returned as they are;
    SSE-C bodies are refused (only ssec.ObjectKey.open_inline, given the key, opens them)."""
    if envelope.is_customer_small(stored):
        raise CustomerKeyRequired("inline body is encrypted under a customer key")
    if not envelope.is_small(stored):
        return stored
    ring = _ring(blobs)
    if ring is None:
        raise InlineCorrupt("inline body is encrypted but encryption is off")
    kid = envelope.small_key_id(stored)
    lookup = getattr(blobs, "master", ring.get)   # reloads the keyring after a rotation
    try:
        return envelope.decrypt_small(lookup(kid), stored)
    except CryptoError as exc:
        raise InlineCorrupt(f"inline body failed authentication: {exc}") from None
