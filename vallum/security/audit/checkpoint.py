"""What an audit checkpoint signs, and the key fingerprint an operator pins.

A checkpoint is signed over its WHOLE content (every field but ``sig``, canonical JSON
behind a domain tag): its seq, the hash of the record before it (the head), its time,
how many records it covers, the hash and seq of the previous checkpoint (so checkpoints
form their own chain) and the signing key. Editing any field, or re-signing with
another key, is therefore detected by whoever holds the pinned public key; the
``audit-signing.pub`` file beside the log is a convenience, never a trust anchor.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from vallum.security.crypto import primitives as crypto

GENESIS = "0" * 64
DOMAIN = b"vallum-audit-checkpoint-v2\n"
# The writer checkpoints at least every MAX_GAP records; verify refuses longer gaps.
MAX_GAP = 1000


def line_hash(line: bytes) -> str:
    """SHA-256 (hex) of a record's exact bytes, without its newline: the chain link."""
    return hashlib.sha256(line).hexdigest()


def fingerprint(public: bytes) -> str:
    """The name of an audit public key an operator writes down: SHA-256 of its raw bytes."""
    return hashlib.sha256(public).hexdigest()


def same_hex(a: str, b: str) -> bool:
    """Constant-time comparison of two hex strings (case-insensitive)."""
    return hmac.compare_digest(a.strip().lower().encode(), b.strip().lower().encode())


def signed_message(rec: dict[str, Any]) -> bytes:
    body = {k: v for k, v in rec.items() if k != "sig"}
    return DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sign(private: bytes, rec: dict[str, Any]) -> str:
    return crypto.ed25519_sign(private, signed_message(rec)).hex()


def signature_ok(public: bytes, rec: dict[str, Any]) -> bool:
    try:
        sig = bytes.fromhex(str(rec.get("sig", "")))
    except ValueError:
        return False
    return crypto.ed25519_verify(public, sig, signed_message(rec))


def parse_public_key(text: str) -> bytes:
    """A pinned key as printed by `vallum serve` (64 hex digits); ValueError otherwise."""
    raw = bytes.fromhex(text.strip())
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes (64 hex digits)")
    return raw
