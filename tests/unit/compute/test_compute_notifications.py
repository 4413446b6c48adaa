"""Deleting a function with its triggers and bucket-notification entries: the XML filter, and
on both stores (a real SQLite file; a real PostgreSQL, where the buckets are not in any
SQLite table) the documents are edited through the metadata store, and a delete that fails
part way leaves the function whole and is finished by deleting again."""

from __future__ import annotations

import asyncio
import sqlite3

import psycopg
import pytest
from defusedxml import ElementTree

from tests.support.postgres import fresh_url, postgres  # noqa: F401 - fixture
from vallum.compute import notifications
from vallum.compute.db import ComputeDB
from vallum.compute.pgdb import PostgresComputeDB
from vallum.compute.spec import SpecError
from vallum.meta.postgres import PostgresMetaStore
from vallum.meta.records import BucketRecord
from vallum.meta.sqlite import SQLiteMetaStore

NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def doc(*entries: tuple[str, str, str]) -> str:
    body = "".join(f"<{tag}><Id>{i}</Id><{t_tag}>{target}</{t_tag}><Event>s3:ObjectCreated:*</Event>"
                   f"<Filter><S3Key><FilterRule><Name>prefix</Name><Value>p/</Value></FilterRule>"
                   f"</S3Key></Filter></{tag}>"
                   for i, target, tag in entries
                   for t_tag in ["LambdaFunctionArn" if tag == "LambdaFunctionConfiguration"
                                 else "CloudFunction"])
    return f'<?xml version="1.0" encoding="UTF-8"?><NotificationConfiguration xmlns="{NS}">{body}' \
           f"</NotificationConfiguration>"


LAMBDA = "LambdaFunctionConfiguration"


def ids(text: str | None) -> list[str]:
    root = ElementTree.fromstring(text.encode())
    return [e.findtext(f"{{{NS}}}Id") for e in root]


def test_only_the_entries_naming_the_function_go():
    text = doc(("a", "arn:aws:lambda:us-east-1:1:function:f", LAMBDA),
               ("b", "g", LAMBDA),
               ("c", "arn:vallum:function:f", LAMBDA),
               ("d", "f", "CloudFunctionConfiguration"),
               ("e", "ff", LAMBDA))
    kept, removed = notifications.without_function(text, "f")
    assert removed == 3 and ids(kept) == ["b", "e"]
    assert kept.count(f'xmlns="{NS}"') == 1 and "ns0:" not in kept     # same namespace, no prefix
    root = ElementTree.fromstring(kept.encode())
    assert root.find(f"{{{NS}}}{LAMBDA}/{{{NS}}}Filter/{{{NS}}}S3Key/{{{NS}}}FilterRule/"
                     f"{{{NS}}}Value").text == "p/"
    assert notifications.without_function(text, "nobody") == (text, 0)
    assert notifications.without_function(doc(("a", "f", LAMBDA)), "f") == (None, 1)


class Stores:
    """The metadata store and the compute store of one deployment, and a way to make the
    buckets table refuse updates of one bucket (as a full disk or I/O error would)."""

    def __init__(self, kind, tmp_path):
        self.kind = kind
        if kind == "sqlite":
            self.path = tmp_path / "meta.sqlite3"
            self.meta, self.db = SQLiteMetaStore(self.path), ComputeDB(self.path)
        else:
            self.url = fresh_url()
            self.meta, self.db = PostgresMetaStore(self.url), PostgresComputeDB(self.url)
        asyncio.run(self.meta.open())
        self.db.open()

    def close(self):
        self.db.close()
        asyncio.run(self.meta.close())

    def break_updates_of(self, bucket):
        if self.kind == "sqlite":
            with sqlite3.connect(self.path) as conn:
                conn.execute(f"CREATE TRIGGER boom BEFORE UPDATE ON buckets WHEN NEW.name='{bucket}' "
                             "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END")
        else:
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute("CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                             "RAISE EXCEPTION 'disk I/O error'; END $$")
                conn.execute(f"CREATE TRIGGER boom BEFORE UPDATE ON buckets FOR EACH ROW "
                             f"WHEN (NEW.name = '{bucket}') EXECUTE FUNCTION boom()")

    def mend(self):
        if self.kind == "sqlite":
            with sqlite3.connect(self.path) as conn:
                conn.execute("DROP TRIGGER boom")
        else:
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute("DROP TRIGGER boom ON buckets")


@pytest.fixture(params=["sqlite", "postgresql"])
def stores(request, tmp_path):
    if request.param == "postgresql":
        request.getfixturevalue("postgres")
    s = Stores(request.param, tmp_path)
    yield s
    s.close()


def seed(s) -> None:
    async def buckets():
        for name, text in (("b1", doc(("x", "f", LAMBDA), ("y", "g", LAMBDA))),
                           ("b2", doc(("only", "f", LAMBDA)))):
            await s.meta.create_bucket(BucketRecord(name, 1.0, owner="o",
                                                    config={"notification": text, "cors": "<CORS/>"}))
    asyncio.run(buckets())

    def tx(c):
        for fn in ("f", "g"):
            c.execute("INSERT INTO compute_functions VALUES ('acct',?,'arn','{}','{}',1,1.0)", (fn,))
        rows = [("t-api", "b1", "api", "f"), ("n-b1-x", "b1", "notification", "f"),
                ("n-b1-y", "b1", "notification", "g"), ("n-b2-only", "b2", "notification", "f")]
        for i, (tid, bucket, source, fn) in enumerate(rows):
            c.execute("INSERT INTO compute_triggers (id, account, owner, principal, kind, source, "
                      "bucket, prefix, suffix, events, function, created) VALUES "
                      "(?, 'acct', 'arn', '{}', 'object', ?, ?, '', '', '[]', ?, ?)",
                      (tid, source, bucket, fn, float(i)))
    s.db.run_write(tx)


def config(s, bucket):
    return asyncio.run(s.meta.get_bucket(bucket)).config


def triggers(s):
    return sorted(r["id"] for r in s.db.query("SELECT id FROM compute_triggers"))


def functions(s):
    return sorted(r["name"] for r in s.db.query("SELECT name FROM compute_functions"))


def delete(s, account, name):
    async def both():
        await notifications.strip_function(s.db, s.meta, account, name)
        return await s.db.write(lambda c: notifications.delete_function(c, account, name))
    return asyncio.run(both())


def test_delete_removes_function_triggers_and_entries(stores):
    s = stores
    seed(s)
    gone = delete(s, "acct", "f")
    assert gone == ["t-api", "n-b1-x", "n-b2-only"]
    assert functions(s) == ["g"] and triggers(s) == ["n-b1-y"]
    assert ids(config(s, "b1")["notification"]) == ["y"]
    assert config(s, "b2") == {"cors": "<CORS/>"}          # other settings untouched
    with pytest.raises(SpecError) as exc:
        delete(s, "acct", "f")
    assert exc.value.code == "NoSuchFunction"
    with pytest.raises(SpecError):                          # another account's name: not found
        delete(s, "other", "g")
    assert functions(s) == ["g"] and ids(config(s, "b1")["notification"]) == ["y"]


def test_a_failure_part_way_keeps_the_function_and_a_retry_finishes(stores):
    """The second bucket's update fails: the function and its triggers are all still there
    (it keeps working), and once the fault is gone deleting again finishes the job."""
    s = stores
    seed(s)
    s.break_updates_of("b2")
    before = (functions(s), triggers(s), config(s, "b2"))
    with pytest.raises(Exception, match="disk I/O error"):
        delete(s, "acct", "f")
    assert (functions(s), triggers(s), config(s, "b2")) == before
    s.mend()
    assert delete(s, "acct", "f") == ["t-api", "n-b1-x", "n-b2-only"]
    assert functions(s) == ["g"] and config(s, "b2") == {"cors": "<CORS/>"}
    assert ids(config(s, "b1")["notification"]) == ["y"]
