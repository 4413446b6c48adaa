"""Differential state machine: the in-memory twin and SQLite (and PostgreSQL) must answer
every call alike.

Unit tests elsewhere trust MemoryMetaStore to stand in for the real backend;
this is what earns that trust.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.support.postgres import fresh_url
from vallum.meta.memory import MemoryMetaStore
from vallum.meta.postgres import PostgresMetaStore
from vallum.meta.records import ObjectRecord, PartRecord, Quota, UploadRecord
from vallum.meta.sqlite import SQLiteMetaStore

from . import bucket

# The machine's own key set (st.runner() is the running machine): PostgreSQL cannot hold NUL.
KEYS = st.runner().flatmap(lambda machine: st.sampled_from(machine.keys))
DELIMS = st.sampled_from(["", "/"])
LABELS = st.sampled_from(["", "SECRET", "TOP SECRET//NOFORN"])


class Twins(RuleBasedStateMachine):
    keys = ["a", "a/b", "a/c", "b", "é", "\U0001f600/x", "a\x00"]

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory(prefix="vallum-twin-")
        self.loop = asyncio.new_event_loop()
        self.stores = [MemoryMetaStore(), self.real_store()]
        self.n = 0
        self.uploads: list[str] = []
        for s in self.stores:
            self.call(s.open())
            self.call(s.create_bucket(bucket()))

    def real_store(self):
        return SQLiteMetaStore(Path(self.tmp.name) / "m.db")

    def call(self, coro):
        return self.loop.run_until_complete(coro)

    def both(self, method: str, *args, **kw):
        """Run the same call on both stores; results (or exception types) must agree."""
        out = []
        for s in self.stores:
            try:
                out.append(("ok", self.call(getattr(s, method)(*args, **kw))))
            except Exception as exc:   # noqa: BLE001 - compared, not swallowed
                out.append(("err", type(exc)))
        assert out[0] == out[1], (method, args, kw, out)
        return out[0]

    def teardown(self) -> None:
        for s in self.stores:
            self.call(s.close())
        self.loop.close()
        self.tmp.cleanup()

    def next_id(self, tag: str) -> str:
        self.n += 1
        return f"{tag}{self.n:04d}"

    @rule(key=KEYS, null=st.booleans(), marker=st.booleans(), label=LABELS)
    def put(self, key, null, marker, label):
        vid = "null" if null else self.next_id("v")
        blob = None if marker else self.next_id("blob")
        self.both("put_object", ObjectRecord("bkt", key, vid, size=self.n, blob_id=blob,
                                             delete_marker=marker, last_modified=1.0,
                                             extra={"label": label} if label else {}))

    @rule(scope=st.sampled_from(["bucket:bkt", "account:acct1"]),
          max_bytes=st.none() | st.integers(0, 400), max_objects=st.none() | st.integers(0, 8))
    def set_quota(self, scope, max_bytes, max_objects):
        self.both("set_quota", scope, Quota(max_bytes, max_objects))
        self.both("get_quota", scope)

    @rule(key=KEYS, pick=st.integers(0, 3), refuse=st.booleans())
    def delete_version(self, key, pick, refuse):
        kind, page = self.both("list_versions", "bkt", prefix=key, max_keys=1000)
        ids = [e.version_id for e in page.entries if e.key == key] + ["missing"]

        def gate(cur):
            if refuse and cur is not None and cur.delete_marker:
                raise PermissionError

        self.both("delete_version", "bkt", key, ids[pick % len(ids)], precondition=gate)

    @rule(key=KEYS)
    def create_upload(self, key):
        uid = self.next_id("u")
        self.both("create_upload", UploadRecord(uid, "bkt", key, 1.0))
        self.uploads.append(uid)

    @precondition(lambda self: self.uploads)
    @rule(pick=st.integers(0, 50), number=st.integers(1, 3))
    def put_part(self, pick, number):
        uid = self.uploads[pick % len(self.uploads)]
        self.both("put_part", uid, PartRecord(number, self.n % 7, "e", self.next_id("p"), 1.0))

    @precondition(lambda self: self.uploads)
    @rule(pick=st.integers(0, 50), use=st.integers(0, 3), finish=st.booleans())
    def complete_or_abort(self, pick, use, finish):
        uid = self.uploads.pop(pick % len(self.uploads))
        if not finish:
            self.both("abort_upload", uid)
            return
        _, (parts, _) = self.both("list_parts", uid)
        upload = self.call(self.stores[0].get_upload(uid))
        self.both("complete_upload", uid,
                  ObjectRecord("bkt", upload.key, self.next_id("v"), parts=parts[:use]))

    @rule(prefix=st.sampled_from(["", "a", "a/"]), delimiter=DELIMS, max_keys=st.integers(0, 3),
          marker=st.sampled_from(["", "a", "a/", "a/b"]))
    def listings(self, prefix, delimiter, max_keys, marker):
        self.both("list_objects", "bkt", prefix=prefix, delimiter=delimiter,
                  start_after=marker, max_keys=max_keys)
        self.both("list_versions", "bkt", prefix=prefix, delimiter=delimiter,
                  key_marker=marker, max_keys=max_keys)
        self.both("list_uploads", "bkt", prefix=prefix, delimiter=delimiter,
                  key_marker=marker, max_uploads=max_keys)

    @rule()
    def delete_bucket_attempt(self):
        kind, value = self.both("delete_bucket", "bkt")
        if kind == "ok":                # it was empty: start over with a fresh bucket
            self.uploads.clear()
            for s in self.stores:
                self.call(s.create_bucket(bucket()))

    @invariant()
    def same_state(self):
        self.both("list_versions", "bkt", max_keys=1000)
        self.both("list_uploads", "bkt", max_uploads=1000)
        self.both("referenced_blobs")
        self.both("bucket_usage", "bkt")
        self.both("account_usage", "acct1")
        self.both("get_quota", "bucket:bkt")


class PostgresTwins(Twins):
    keys = ["a", "a/b", "a/c", "b", "é", "\U0001f600/x", "a\x01"]

    def real_store(self):
        return PostgresMetaStore(fresh_url())


Twins.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
TestTwins = Twins.TestCase
PostgresTwins.TestCase.settings = settings(max_examples=20, stateful_step_count=30, deadline=None)
TestPostgresTwins = PostgresTwins.TestCase
