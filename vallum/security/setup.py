"""Wiring of the security services into a gateway process (called from server/lifespan.py).

Benchmark-only switches (never in production): ``VALLUM_ENCRYPTION=off`` stores blobs in
clear, ``VALLUM_AUDIT=off`` writes no audit log. Both default to on.
"""

from __future__ import annotations

import os
from pathlib import Path

from vallum.security.audit.log import AuditLog
from vallum.security.audit.witness import Witness
from vallum.security.crypto.encrypted_store import EncryptedBlobStore
from vallum.security.crypto.keytable import KEYTABLE_FILE, KeyTable, load_keyring
from vallum.storage.base import BlobStore


def _on(name: str) -> bool:
    return os.environ.get(name, "on").lower() not in ("off", "0", "false", "no")


def blob_store(data_dir: Path, inner: BlobStore) -> BlobStore:
    """``inner`` wrapped in encryption at rest (keys in the data directory)."""
    if not _on("VALLUM_ENCRYPTION"):
        return inner
    return EncryptedBlobStore(inner, KeyTable(Path(data_dir) / KEYTABLE_FILE), load_keyring(Path(data_dir)),
                              keyring_dir=Path(data_dir))


def audit_on() -> bool:
    return _on("VALLUM_AUDIT")


async def open_audit(data_dir: Path) -> AuditLog | None:
    if not _on("VALLUM_AUDIT"):
        return None
    spec = os.environ.get("VALLUM_AUDIT_WITNESS")   # set by `vallum serve --audit-witness`
    log = AuditLog(Path(data_dir), witness=Witness(spec, Path(data_dir)) if spec else None)
    await log.open()
    return log


async def close_audit(log: AuditLog | None) -> None:
    if log is not None:
        await log.close()
