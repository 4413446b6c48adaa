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
from typing import Any

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


def passphrase_key(passphrase: bytes, salt: bytes, *, n: int, r: int, p: int, length: int = 64) -> bytes:
    """Key material from an operator's passphrase (scrypt): backups are wrapped under it."""
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=length, n=n, r=r, p=p).derive(passphrase)


# --- object encryption: AES-256-GCM with caller-chosen nonces (security/crypto/envelope.py) ---
TAG_BYTES = 16


class ChunkCipher:
    """AES-256-GCM under one data key, reused for every chunk of a blob.

    The caller supplies the nonce: envelope.py derives it from the chunk index,
    which is unique per data key because every blob has its own key."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        return self._aead.encrypt(nonce, plaintext, aad)

    def open(self, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise CryptoError("encrypted chunk failed authentication") from None

    def open_into(self, nonce: bytes, ciphertext: Any, aad: bytes, out: Any) -> None:
        """``open`` writing the plaintext into ``out`` (exactly len(ciphertext) - 16 bytes):
        a whole read batch decrypts into one buffer, with no per-chunk bytes and no join."""
        try:
            self._aead.decrypt_into(nonce, ciphertext, aad, out)
        except InvalidTag:
            raise CryptoError("encrypted chunk failed authentication") from None


def key_fingerprint(key: bytes) -> str:
    """A short public name for a key (which master key wrapped a data key)."""
    import hashlib

    return hashlib.sha256(b"vallum-key-id:" + key).hexdigest()[:16]


# --- Ed25519 signatures (audit checkpoints) ----------------------------------------
def ed25519_new_private() -> bytes:
    """A fresh Ed25519 private key, raw 32 bytes."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())


def ed25519_public(private: bytes) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(private).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def ed25519_sign(private: bytes, message: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(private).sign(message)


def ed25519_verify(public: bytes, signature: bytes, message: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
        return True
    except (InvalidSignature, ValueError):
        return False


# --- development TLS certificates (vallum certs dev) -----------------------------------
def make_dev_certificates(hosts: list[str], days: int = 365) -> dict[str, bytes]:
    """A throw-away CA and a server certificate for ``hosts`` (names or IP addresses),
    as PEM: {"ca.pem", "ca.key", "server.pem", "server.key"}. For local testing only."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Vallum development CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=days))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))

    def key_pem(k) -> bytes:
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())

    return {"ca.pem": ca.public_bytes(serialization.Encoding.PEM), "ca.key": key_pem(ca_key),
            "server.pem": cert.public_bytes(serialization.Encoding.PEM), "server.key": key_pem(key)}
