"""Deleting a function with its triggers and bucket-notification entries, on a real SQLite
file: the XML filter, and all-or-nothing when the bucket update fails mid-way."""

from __future__ import annotations

import asyncio
import json

import pytest
from defusedxml import ElementTree
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.schema import CreateTable

from vallum.compute import notifications
from vallum.compute.db import ComputeDB
from vallum.compute.spec import SpecError
from vallum.meta import schema as meta_schema

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


@pytest.fixture
def db(tmp_path):
    d = ComputeDB(tmp_path / "meta.sqlite3")
    d.open()
    d.run_write(lambda c: c.execute(str(CreateTable(meta_schema.buckets, if_not_exists=True)
                                        .compile(dialect=sqlite_dialect.dialect()))))
    yield d
    d.close()


def seed(db) -> None:
    def tx(c):
        for name, text in (("b1", doc(("x", "f", LAMBDA), ("y", "g", LAMBDA))),
                           ("b2", doc(("only", "f", LAMBDA)))):
            c.execute("INSERT INTO buckets VALUES (?,?,?,?,?,?,?)",
                      (name, 1.0, "us-east-1", "o", "", 0,
                       json.dumps({"notification": text, "cors": "<CORS/>"})))
        for fn in ("f", "g"):
            c.execute("INSERT INTO compute_functions VALUES ('acct',?,'arn','{}','{}',1,1.0)", (fn,))
        rows = [("t-api", "b1", "api", "f"), ("n-b1-x", "b1", "notification", "f"),
                ("n-b1-y", "b1", "notification", "g"), ("n-b2-only", "b2", "notification", "f")]
        for i, (tid, bucket, source, fn) in enumerate(rows):
            c.execute("INSERT INTO compute_triggers (id, account, owner, principal, kind, source, "
                      "bucket, prefix, suffix, events, function, created) VALUES "
                      "(?, 'acct', 'arn', '{}', 'object', ?, ?, '', '', '[]', ?, ?)",
                      (tid, source, bucket, fn, float(i)))
    db.run_write(tx)


def config(db, bucket):
    return json.loads(db.query("SELECT config FROM buckets WHERE name=?", (bucket,))[0]["config"])


def triggers(db):
    return sorted(r["id"] for r in db.query("SELECT id FROM compute_triggers"))


def functions(db):
    return sorted(r["name"] for r in db.query("SELECT name FROM compute_functions"))


def test_delete_removes_function_triggers_and_entries_together(db):
    seed(db)
    gone = db.run_write(lambda c: notifications.delete_function(c, "acct", "f"))
    assert gone == ["t-api", "n-b1-x", "n-b2-only"]
    assert functions(db) == ["g"] and triggers(db) == ["n-b1-y"]
    assert ids(config(db, "b1")["notification"]) == ["y"]
    assert config(db, "b2") == {"cors": "<CORS/>"}          # other settings untouched
    with pytest.raises(SpecError) as exc:
        db.run_write(lambda c: notifications.delete_function(c, "acct", "f"))
    assert exc.value.code == "NoSuchFunction"
    with pytest.raises(SpecError):                           # another account's name: not found
        db.run_write(lambda c: notifications.delete_function(c, "other", "g"))
    assert functions(db) == ["g"]


def test_a_failure_part_way_rolls_everything_back(db):
    """The second bucket's update fails (as a full disk or I/O error would): nothing of the
    delete is kept, while a write grouped in the same commit still lands."""
    seed(db)
    db.run_write(lambda c: c.execute(
        "CREATE TRIGGER boom BEFORE UPDATE ON buckets WHEN NEW.name='b2' "
        "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"))
    before = (functions(db), triggers(db), config(db, "b1"), config(db, "b2"))

    async def both():
        return await asyncio.gather(
            db.write(lambda c: notifications.delete_function(c, "acct", "f")),
            db.write(lambda c: c.execute("INSERT INTO compute_functions VALUES "
                                         "('acct','h','arn','{}','{}',1,1.0)")),
            return_exceptions=True)

    failed, _ = asyncio.run(both())
    assert "disk I/O error" in str(failed)
    assert (functions(db), triggers(db), config(db, "b1"), config(db, "b2")) == \
        (sorted([*before[0], "h"]), *before[1:])
