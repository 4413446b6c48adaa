"""`vallum meta migrate`'s copy on a real SQLite file and a real PostgreSQL: tables another
store keeps on PostgreSQL are copied when the target has them, a copy whose values changed
on the way fails verification, and a row PostgreSQL cannot hold aborts it; in every failure
nothing is committed."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys

import psycopg
import pytest

from tests.support.postgres import fresh_url, postgres  # noqa: F401 - fixture
from vallum.meta.records import BucketRecord, ObjectRecord
from vallum.meta.sqlite import SQLiteMetaStore
from vallum.ops import meta_migrate


def make_install(path, keys=("a", "b/c")):
    async def fill():
        store = SQLiteMetaStore(path)
        await store.open()
        await store.create_bucket(BucketRecord("bk", 1.0, owner="o"))
        for i, key in enumerate(keys):
            await store.put_object(ObjectRecord("bk", key, size=3, etag=f"e{i}",
                                                last_modified=2.0, inline=b"xyz"))
        await store.close()
    asyncio.run(fill())
    with sqlite3.connect(path) as conn:        # a table of a store not in the base schemas
        conn.execute("CREATE TABLE iam_users (name TEXT PRIMARY KEY, arn TEXT, created REAL)")
        conn.executemany("INSERT INTO iam_users VALUES (?, ?, ?)",
                         [("alice", "arn:a", 1.5), ("bob", None, 2.25)])


def rows(url, table):
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - test names


@pytest.fixture
def install(tmp_path, postgres):  # noqa: F811 - the fixture imported above
    path = tmp_path / "meta.sqlite3"
    make_install(path)
    return path


def test_a_table_the_target_has_is_copied_one_it_lacks_is_left(install):
    url = fresh_url()
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE iam_users (name TEXT PRIMARY KEY, arn TEXT, created FLOAT)")
    reports = {r.table: r for r in meta_migrate.migrate(f"sqlite:{install.parent}", url)}
    assert reports["iam_users"].action == "copied" and reports["iam_users"].ok
    assert reports["iam_users"].target_rows == 2 and reports["versions"].target_rows == 2
    assert reports["usage"].action == "derived" and reports["usage"].ok
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT bytes, objects FROM usage").fetchall() == [(6, 2)]
        # The sequence goes on after the copied ids: a new version gets a fresh seq.
        top = conn.execute("SELECT max(seq) FROM versions").fetchone()[0]
        assert conn.execute("SELECT nextval(pg_get_serial_sequence('versions', 'seq'))"
                            ).fetchone()[0] == top + 1

    other = fresh_url()
    with psycopg.connect(other) as conn:             # a table without the source's columns
        conn.execute("CREATE TABLE iam_users (name TEXT PRIMARY KEY)")
    reports = {r.table: r for r in meta_migrate.migrate(f"sqlite:{install}", other)}
    assert reports["iam_users"].action.startswith("left in SQLite (the target table lacks arn")
    assert rows(other, "iam_users") == 0 and rows(other, "versions") == 2


def test_a_value_changed_on_the_way_fails_verification_and_nothing_is_kept(install):
    url = fresh_url()
    meta_migrate.migrate(f"sqlite:{install}", fresh_url())   # a clean copy passes
    meta_migrate.create_tables(url)
    with psycopg.connect(url) as conn:               # the target corrupts one etag
        conn.execute("CREATE FUNCTION flip() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                     "NEW.etag := 'bad'; RETURN NEW; END $$")
        conn.execute("CREATE TRIGGER flip BEFORE INSERT ON versions FOR EACH ROW "
                     "WHEN (NEW.key = 'b/c') EXECUTE FUNCTION flip()")
    with pytest.raises(meta_migrate.MigrateError) as err:
        meta_migrate.migrate(f"sqlite:{install}", url)
    assert "verification failed for versions" in str(err.value)
    assert "MISMATCH" in str(err.value)
    assert rows(url, "versions") == 0 and rows(url, "buckets") == 0 and rows(url, "usage") == 0


def test_a_key_postgres_cannot_hold_aborts_the_copy(tmp_path, postgres):  # noqa: F811
    path = tmp_path / "meta.sqlite3"
    make_install(path, keys=("fine", "nul\x00key"))
    url = fresh_url()
    with pytest.raises(meta_migrate.MigrateError) as err:
        meta_migrate.migrate(f"sqlite:{path}", url)
    assert "nothing was committed" in str(err.value)
    assert rows(url, "versions") == 0 and rows(url, "buckets") == 0


def test_a_non_empty_target_and_an_open_source_are_refused(install):
    url = fresh_url()
    meta_migrate.migrate(f"sqlite:{install}", url)
    with pytest.raises(meta_migrate.MigrateError, match="not empty"):
        meta_migrate.migrate(f"sqlite:{install}", url)
    holder = subprocess.Popen(                       # another process has the file open
        [sys.executable, "-c", "import sqlite3, sys\n"
         f"c = sqlite3.connect({str(install)!r})\n"
         "c.execute('SELECT count(*) FROM versions').fetchone()\n"
         "print('open', flush=True)\nsys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "open\n"
        assert meta_migrate.held_open(install)
        with pytest.raises(meta_migrate.MigrateError, match="open in another process"):
            meta_migrate.migrate(f"sqlite:{install}", fresh_url())
    finally:
        holder.stdin.close()
        holder.wait(30)
    assert not meta_migrate.held_open(install)

