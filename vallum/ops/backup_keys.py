"""The operator's backup passphrase and the keys derived from it.

Why a passphrase of the operator's and not the site's master key: a backup must open on a
new machine after the site is lost. The passphrase comes from a file or the environment,
never from argv (visible in ``ps``). scrypt turns it into two keys: one wraps the secrets
(AES-256-GCM), the other authenticates the manifest (HMAC-SHA-256). A wrapped check value
in the manifest tells a wrong passphrase apart from an edited manifest.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vallum.security.crypto import primitives as crypto
from vallum.security.crypto.primitives import CryptoError

ENV = "VALLUM_BACKUP_PASSPHRASE"
MIN_LENGTH = 12
# scrypt cost: about 32 MiB and a tenth of a second; bounds refuse a hostile manifest's.
KDF = {"name": "scrypt", "n": 2 ** 15, "r": 8, "p": 1}
_N_RANGE, _R_MAX, _P_MAX = (2 ** 14, 2 ** 18), 8, 4      # at most 256 MiB
_CHECK = b"vallum-backup-passphrase-check-v1"


class BackupError(Exception):
    """A backup cannot be made, read or restored; the message says why and what to do."""


class WrongPassphrase(BackupError):
    """The passphrase does not open this backup."""


def read_passphrase(file: str | None) -> bytes:
    """The passphrase from ``file`` (its first line) or else from $VALLUM_BACKUP_PASSPHRASE."""
    if file:
        try:
            data = Path(file).read_bytes()
        except OSError as exc:
            raise BackupError(f"cannot read the passphrase file: {exc}") from None
        data = data.splitlines()[0] if data.strip() else b""
    else:
        data = os.environ.get(ENV, "").encode()
    if not data:
        raise BackupError(f"no passphrase: pass --passphrase-file FILE or set {ENV}")
    if len(data) < MIN_LENGTH:
        raise BackupError(f"the passphrase is too short (at least {MIN_LENGTH} characters)")
    return data


@dataclass(frozen=True)
class BackupKeys:
    wrap: bytes
    mac: bytes


def new_kdf() -> dict[str, Any]:
    return {**KDF, "salt": base64.b64encode(os.urandom(16)).decode()}


def derive(passphrase: bytes, kdf: dict[str, Any]) -> BackupKeys:
    """The keys for ``kdf`` (a manifest's parameters, checked against sane bounds first)."""
    try:
        n, r, p, salt = int(kdf["n"]), int(kdf["r"]), int(kdf["p"]), base64.b64decode(kdf["salt"])
        ok = (kdf.get("name") == "scrypt" and _N_RANGE[0] <= n <= _N_RANGE[1] and n & (n - 1) == 0
              and 1 <= r <= _R_MAX and 1 <= p <= _P_MAX and len(salt) >= 16)
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise BackupError("the manifest's key derivation parameters are malformed or out of bounds")
    material = crypto.passphrase_key(passphrase, salt, n=n, r=r, p=p)
    return BackupKeys(material[:32], material[32:])


def check_value(keys: BackupKeys) -> str:
    return base64.b64encode(crypto.wrap(keys.wrap, _CHECK, b"check")).decode()


def check(keys: BackupKeys, value: str) -> None:
    """Raise WrongPassphrase unless ``value`` was made under these keys."""
    try:
        if crypto.unwrap(keys.wrap, base64.b64decode(value), b"check") == _CHECK:
            return
    except (CryptoError, ValueError, TypeError):
        pass
    raise WrongPassphrase("wrong passphrase: it does not open this backup "
                          "(the manifest's passphrase check failed)")


def mac(keys: BackupKeys, data: bytes) -> str:
    return hmac.new(keys.mac, data, hashlib.sha256).hexdigest()


def mac_ok(keys: BackupKeys, data: bytes, tag: str) -> bool:
    return hmac.compare_digest(mac(keys, data), tag.strip())


def seal_secret(keys: BackupKeys, path: str, plaintext: bytes) -> bytes:
    return crypto.wrap(keys.wrap, plaintext, b"vallum-backup-secret:" + path.encode())


def open_secret(keys: BackupKeys, path: str, sealed: bytes) -> bytes:
    return crypto.unwrap(keys.wrap, sealed, b"vallum-backup-secret:" + path.encode())
