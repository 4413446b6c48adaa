"""All cryptography of Vallum, in one module (the only one that imports ``cryptography``).

Today it offers two things:
- a master key, 32 random bytes kept 0600 in the data directory, created once;
- AES-256-GCM *wrap*/*unwrap* of small secrets under a key (access-key secrets,
  session tokens). A wrapped value is ``version(1) || nonce(12) || ciphertext+tag``;
  the optional ``aad`` binds it to its context (e.g. the access key id) so a
  wrapped secret copied to another row does not unwrap there.

Object encryption (chunked AES-GCM) will be added here later; keep every primitive
behind a small function so callers never see the library.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MASTER_KEY_FILE = "master.key"
KEY_BYTES = 32
NONCE_BYTES = 12
_VERSION = b"\x01"


class CryptoError(Exception):
    """A wrapped value is corrupt, truncated, or was wrapped under another key/context."""


def new_key() -> bytes:
    """A fresh random 256-bit key."""
    return os.urandom(KEY_BYTES)


def load_or_create_master_key(data_dir: Path) -> bytes:
    """The server's master key: read ``data_dir/master.key`` or create it (0600, O_EXCL).

    Several gateway processes may start at once: O_EXCL makes exactly one of them
    create the file; the others read what it wrote.
    """
    path = Path(data_dir) / MASTER_KEY_FILE
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key(path)
    key = new_key()
    with os.fdopen(fd, "wb") as f:
        f.write(key)
        f.flush()
        os.fsync(f.fileno())
    return key


def _read_key(path: Path) -> bytes:
    for _ in range(100):            # a concurrent creator may not have written it yet
        data = path.read_bytes()
        if len(data) == KEY_BYTES:
            return data
        if data:
            break
        import time
        time.sleep(0.01)
    raise CryptoError(f"{path}: master key must be exactly {KEY_BYTES} bytes")


def wrap(key: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    """Encrypt and authenticate ``plaintext`` under ``key`` (AES-256-GCM, random nonce)."""
    nonce = os.urandom(NONCE_BYTES)
    return _VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, aad or None)


def unwrap(key: bytes, wrapped: bytes, aad: bytes = b"") -> bytes:
    """Inverse of ``wrap``; raise CryptoError if anything was altered."""
    if len(wrapped) < 1 + NONCE_BYTES + 16 or wrapped[:1] != _VERSION:
        raise CryptoError("wrapped value is truncated or of an unknown version")
    nonce, body = wrapped[1:1 + NONCE_BYTES], wrapped[1 + NONCE_BYTES:]
    try:
        return AESGCM(key).decrypt(nonce, body, aad or None)
    except InvalidTag:
        raise CryptoError("wrapped value failed authentication") from None
