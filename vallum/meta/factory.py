"""Which object-metadata store a process opens: PostgreSQL when a URL is configured
(``--meta`` / ``VALLUM_META_URL``), else the embedded SQLite file. Every command that reads
object metadata (serve, scrub, operator usage) opens it through here, so none of them reads
an empty SQLite store on a PostgreSQL deployment."""

from __future__ import annotations

import os
from pathlib import Path

from vallum.meta.base import MetaStore
from vallum.meta.postgres import PostgresMetaStore
from vallum.meta.sqlite import SQLiteMetaStore

META_URL_ENV = "VALLUM_META_URL"


def meta_store(sqlite_path: Path, url: str | None) -> MetaStore:
    return PostgresMetaStore(url) if url else SQLiteMetaStore(sqlite_path)


def configured_url() -> str | None:
    """The PostgreSQL URL from the environment (commands other than serve)."""
    return os.environ.get(META_URL_ENV) or None
