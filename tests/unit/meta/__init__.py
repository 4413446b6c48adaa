"""Metadata-store tests: every contract test runs on every backend (PostgreSQL on a real
server the tests start: tests/support/postgres.py)."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

from tests.support.postgres import fresh_url
from vallum.meta.base import MetaStore
from vallum.meta.memory import MemoryMetaStore
from vallum.meta.postgres import PostgresMetaStore
from vallum.meta.records import BucketRecord, ObjectRecord
from vallum.meta.sqlite import SQLiteMetaStore

T = TypeVar("T")
BACKENDS = ["memory", "sqlite", "postgres"]
# PostgreSQL TEXT cannot hold NUL: that backend refuses such keys (UnstorableText).
HOLDS_NUL = {"memory": True, "sqlite": True, "postgres": False}


def storable(kind: str, value: T) -> T:
    """``value`` (text, or lists and tuples of it) with NUL made U+0001 on a backend that
    cannot store NUL: still below every other character, so byte-order cases stay."""
    if HOLDS_NUL[kind]:
        return value
    if isinstance(value, str):
        return value.replace("\x00", "\x01")  # type: ignore[return-value]
    if isinstance(value, list | tuple):
        return type(value)(storable(kind, v) for v in value)  # type: ignore[return-value]
    return value


def make_store(kind: str, directory: Path) -> MetaStore:
    if kind == "memory":
        return MemoryMetaStore()
    if kind == "postgres":
        return PostgresMetaStore(fresh_url())       # a new schema: an empty store
    return SQLiteMetaStore(directory / "meta.db")


def run_on(kind: str, directory: Path, body: Callable[[MetaStore], Awaitable[T]]) -> T:
    """Open a fresh store of ``kind``, run ``body`` on it in a new event loop, close it."""
    async def main() -> T:
        store = make_store(kind, directory)
        await store.open()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    """A directory per hypothesis example (function-scoped fixtures are shared across them)."""
    with tempfile.TemporaryDirectory(prefix="vallum-meta-") as d:
        yield Path(d)


def bucket(name: str = "bkt", owner: str = "acct1", **kw: object) -> BucketRecord:
    return BucketRecord(name=name, created=1700000000.5, owner=owner, **kw)  # type: ignore[arg-type]


def obj(key: str, version_id: str = "null", *, b: str = "bkt", blob: str | None = None,
        **kw: object) -> ObjectRecord:
    return ObjectRecord(bucket=b, key=key, version_id=version_id,
                        blob_id=blob if blob is not None else f"blob-{key}-{version_id}",
                        **kw)  # type: ignore[arg-type]
