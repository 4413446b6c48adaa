"""The IAM service one gateway process holds: store, directory, identities, rate limits."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from vallum.iam import sqlstore
from vallum.iam.auth_failures import FailureLimiter
from vallum.iam.directory import Directory
from vallum.iam.identity import Identities
from vallum.iam.lockouts import SharedFailureLimiter
from vallum.iam.pglockouts import PostgresFailureLimiter
from vallum.iam.pgstore import PostgresIAMStore
from vallum.iam.root import RootCredentials
from vallum.iam.sqlstore import SQLiteIAMStore
from vallum.iam.store import IAMStore, MemoryIAMStore
from vallum.security.crypto import primitives as crypto

log = logging.getLogger("vallum.iam")


@dataclass
class IAM:
    store: IAMStore
    directory: Directory
    identities: Identities
    limiter: FailureLimiter = field(default_factory=FailureLimiter)

    @property
    def master_key(self) -> bytes:
        return self.directory.master_key

    def close(self) -> None:
        self.limiter.close()
        self.store.close()


def build(store: IAMStore, master_key: bytes, root: RootCredentials, root_account: str) -> IAM:
    store.open()
    directory = Directory(store, master_key)
    return IAM(store, directory, Identities(directory, root, root_account))


def open_sqlite(data_dir: Path, db_path: Path, root: RootCredentials, root_account: str) -> IAM:
    """The IAM tables live in the metadata database file; the master key in the data dir.
    Failed-authentication counts live there too, shared by every gateway process."""
    iam = build(SQLiteIAMStore(db_path), crypto.load_or_create_master_key(data_dir), root,
                root_account)
    iam.limiter = SharedFailureLimiter(db_path)
    return iam


def open_postgres(data_dir: Path, url: str, root: RootCredentials, root_account: str,
                  sqlite_path: Path) -> IAM:
    """``--meta postgresql://…``: the IAM tables and the failed-authentication counts live
    in that database, shared by every gateway on every host; the master key that wraps
    access-key secrets stays a file in the data directory (every gateway needs the same).
    An empty PostgreSQL IAM adopts the identities of ``sqlite_path`` (the embedded store)."""
    store = PostgresIAMStore(url)
    iam = build(store, crypto.load_or_create_master_key(data_dir), root, root_account)
    # A deployment whose IAM was on SQLite (object metadata alone on PostgreSQL, before):
    # its identities move with it on the first start, never silently left behind.
    ops = sqlstore.dump(sqlite_path)
    if store.adopt(ops):
        log.warning("IAM: adopted %d rows from %s into PostgreSQL (the SQLite copy is no "
                    "longer read)", len(ops), sqlite_path)
    iam.limiter = PostgresFailureLimiter(url)
    return iam


def store_for(sqlite_path: Path, url: str | None) -> IAMStore:
    """The IAM store a command opens: PostgreSQL when a URL is configured, else SQLite."""
    return PostgresIAMStore(url) if url else SQLiteIAMStore(sqlite_path)


def open_memory(root: RootCredentials, root_account: str = "root") -> IAM:
    return build(MemoryIAMStore(), crypto.new_key(), root, root_account)
