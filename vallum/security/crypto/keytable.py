"""Master keys for object encryption (the keyring) and the wrapped data keys (the key table).

Keyring: ``<data_dir>/object-keys.json``, 0600, ``{"current": id, "keys": {id: base64}}``;
created on first start. ``VALLUM_OBJECT_MASTER_KEY`` (base64 of 32 bytes) supplies
the current key from outside (a KMS/HSM agent) instead; keys already in the file
stay usable for unwrapping. Rotation adds a new current key and re-wraps every
data key (``KeyTable.rewrap``); retired keys stay in the file until nothing is
wrapped under them any more (``KeyTable.count_under``) so no blob is ever orphaned.

Key table: ``<data_dir>/object-keys.sqlite3``, one row per blob: the master key id
and the data key wrapped under it (associated data: the blob id, so a row copied
to another blob does not unwrap). A row is committed durably (WAL,
synchronous=FULL) *before* its blob is, so a committed blob always has its key;
a row without a blob (crash in between) is removed by ``prune``.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vallum.security.crypto import primitives as crypto
from vallum.security.crypto.primitives import CryptoError
from vallum.sqlite_open import create_schema, opening

KEYRING_FILE = "object-keys.json"
KEYTABLE_FILE = "object-keys.sqlite3"
ENV_MASTER = "VALLUM_OBJECT_MASTER_KEY"


@dataclass
class Keyring:
    current_id: str
    keys: dict[str, bytes] = field(default_factory=dict)

    @property
    def current(self) -> bytes:
        return self.keys[self.current_id]

    def get(self, key_id: str) -> bytes:
        try:
            return self.keys[key_id]
        except KeyError:
            raise CryptoError(f"master key {key_id} is not in the keyring") from None

    @classmethod
    def single(cls, key: bytes) -> Keyring:
        kid = crypto.key_fingerprint(key)
        return cls(kid, {kid: key})


def _write_keyring(path: Path, ring: Keyring) -> None:
    doc = {"current": ring.current_id,
           "keys": {k: base64.b64encode(v).decode() for k, v in ring.keys.items()}}
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def load_keyring(data_dir: Path) -> Keyring:
    """Read (or create, 0600) the object keyring; honour VALLUM_OBJECT_MASTER_KEY."""
    path = Path(data_dir) / KEYRING_FILE
    ring: Keyring | None = None
    if path.exists():
        doc = json.loads(path.read_text())
        ring = Keyring(doc["current"], {k: base64.b64decode(v) for k, v in doc["keys"].items()})
        if any(len(v) != crypto.KEY_BYTES for v in ring.keys.values()) or ring.current_id not in ring.keys:
            raise CryptoError(f"{path}: corrupt keyring")
    env = os.environ.get(ENV_MASTER)
    if env:
        key = base64.b64decode(env, validate=True)
        if len(key) != crypto.KEY_BYTES:
            raise CryptoError(f"{ENV_MASTER} must be base64 of {crypto.KEY_BYTES} bytes")
        kid = crypto.key_fingerprint(key)
        keys = dict(ring.keys) if ring else {}
        keys[kid] = key
        return Keyring(kid, keys)
    if ring is None:
        ring = Keyring.single(crypto.new_key())
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:     # another gateway process won the race
            return load_keyring(data_dir)
        os.close(fd)
        _write_keyring(path, ring)
    return ring


def add_master_key(data_dir: Path, key: bytes | None = None) -> Keyring:
    """Make a new key current (the old ones stay for unwrapping); returns the new ring."""
    ring = load_keyring(data_dir)
    key = key or crypto.new_key()
    kid = crypto.key_fingerprint(key)
    ring = Keyring(kid, {**ring.keys, kid: key})
    _write_keyring(Path(data_dir) / KEYRING_FILE, ring)
    return ring


def dek_aad(blob_id: str) -> bytes:
    return b"vallum-dek:" + blob_id.encode()


class KeyTable:
    """blob id -> (master key id, wrapped data key), in SQLite. Thread-safe, blocking:
    async callers use asyncio.to_thread."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def open(self) -> None:
        with opening(self.path):
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                 timeout=30)
            db.execute("PRAGMA synchronous=FULL")
            create_schema(db, self.path, ["CREATE TABLE IF NOT EXISTS deks (blob_id TEXT PRIMARY KEY,"
                                          " kek TEXT NOT NULL, wrapped BLOB NOT NULL)"])
        os.chmod(self.path, 0o600)
        self._db = db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise CryptoError("key table is not open")
        return self._db

    def put(self, blob_id: str, kek_id: str, wrapped: bytes) -> None:
        with self._lock:
            self._conn().execute("INSERT OR REPLACE INTO deks VALUES (?, ?, ?)", (blob_id, kek_id, wrapped))

    def get(self, blob_id: str) -> tuple[str, bytes] | None:
        with self._lock:
            row = self._conn().execute("SELECT kek, wrapped FROM deks WHERE blob_id = ?",
                                       (blob_id,)).fetchone()
        return (row[0], bytes(row[1])) if row else None

    def delete(self, blob_ids: list[str]) -> None:
        with self._lock:
            db = self._conn()
            db.execute("BEGIN")
            db.executemany("DELETE FROM deks WHERE blob_id = ?", [(b,) for b in blob_ids])
            db.execute("COMMIT")

    def prune(self, keep: Callable[[str], bool]) -> int:
        """Delete rows whose blob is not kept (after a blob sweep)."""
        with self._lock:
            ids = [r[0] for r in self._conn().execute("SELECT blob_id FROM deks")]
        dead = [b for b in ids if not keep(b)]
        if dead:
            self.delete(dead)
        return len(dead)

    def count_under(self, kek_id: str) -> int:
        with self._lock:
            return self._conn().execute("SELECT count(*) FROM deks WHERE kek = ?", (kek_id,)).fetchone()[0]

    def rewrap(self, ring: Keyring, batch: int = 1000) -> int:
        """Re-wrap every data key not under the ring's current key; returns how many.
        Blobs are untouched; each batch commits atomically, so it can be interrupted."""
        done = 0
        while True:
            with self._lock:
                rows = self._conn().execute("SELECT blob_id, kek, wrapped FROM deks WHERE kek != ? LIMIT ?",
                                            (ring.current_id, batch)).fetchall()
            if not rows:
                return done
            updates = []
            for blob_id, kek, wrapped in rows:
                dek = crypto.unwrap(ring.get(kek), bytes(wrapped), dek_aad(blob_id))
                updates.append((ring.current_id, crypto.wrap(ring.current, dek, dek_aad(blob_id)),
                                blob_id, kek))
            with self._lock:
                db = self._conn()
                db.execute("BEGIN IMMEDIATE")
                db.executemany("UPDATE deks SET kek = ?, wrapped = ? WHERE blob_id = ? AND kek = ?", updates)
                db.execute("COMMIT")
            done += len(updates)
