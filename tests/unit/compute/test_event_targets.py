"""Event targets on a real SQLite file: validation, the MAC/IAM-filtered fan-out, claims in
key order, backoff, dead letters, sealing, and the webhook signature."""

from __future__ import annotations

import json
import time

import pytest

from vallum.compute import event_delivery as ed
from vallum.compute import event_targets as et
from vallum.compute.db import ComputeDB
from vallum.compute.event_senders import signature, verify
from vallum.compute.spec import SpecError
from vallum.security.crypto.keytable import Keyring
from vallum.security.crypto.primitives import new_key
from vallum.security.mac.labels import parse

ACCT = "111122223333"


@pytest.fixture
def db(tmp_path):
    d = ComputeDB(tmp_path / "meta.sqlite3")
    d.open()
    yield d
    d.close()


def add_target(db, name="t", ceiling="UNCLASSIFIED", account=ACCT, **knobs):
    row = et.validate({"name": name, "type": "webhook", "endpoint": "https://example.test/h",
                       "ceiling": ceiling, **knobs}, "us-east-1", account, "arn:owner", None)
    row["secret"] = None
    db.run_write(lambda c: c.execute(f"INSERT INTO event_targets ({', '.join(row)}) VALUES "  # noqa: S608
                                     f"({', '.join('?' * len(row))})", list(row.values())))
    return row["arn"]


def route(db, bucket, arn, account=ACCT, prefix="", suffix="", events=("s3:ObjectCreated:*",)):
    rows = et.route_rows(bucket, account, [{"target": arn, "id": "c", "prefix": prefix,
                                            "suffix": suffix, "events": list(events)}],
                         {arn: {"account": account}})
    db.run_write(lambda c: c.execute(
        "INSERT INTO event_routes VALUES (?,?,?,?,?,?,?,?)",
        tuple(rows[0][k] for k in ("id", "bucket", "account", "target", "config_id", "prefix",
                                   "suffix", "events"))))


def event(db, bucket, key, label, name="ObjectCreated:Put"):
    rec = {"eventName": name, "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}
    return db.run_write(lambda c: c.execute(
        "INSERT INTO compute_outbox (bucket, event, label, created, done) VALUES (?,?,?,?,0)",
        (bucket, json.dumps(rec), label, time.time())).lastrowid)


def fan_out(db, seqs, owners):
    return db.run_write(lambda c: et.fan_out(c, seqs, owners))


def deliveries(db):
    return [(r["target"], r["key"]) for r in db.query("SELECT * FROM event_deliveries ORDER BY id")]


def test_validate_caps_the_ceiling_at_the_registrants_clearance():
    doc = {"name": "n", "type": "nats", "endpoint": "nats://127.0.0.1:4222", "subject": "a.b",
           "ceiling": "SECRET"}
    assert et.validate(doc, "r", ACCT, "o", parse("SECRET"))["ceiling"] == "SECRET"
    assert et.validate(doc, "r", ACCT, "o", None)["arn"] == f"arn:vallum:sqs:r:{ACCT}:n"
    with pytest.raises(SpecError) as exc:
        et.validate(doc, "r", ACCT, "o", parse("CONFIDENTIAL"))
    assert exc.value.code == "AccessDenied"
    assert et.validate({**doc, "ceiling": None}, "r", ACCT, "o", None)["ceiling"] == "UNCLASSIFIED"


@pytest.mark.parametrize("url", ["https://u@h/", "https://h/#f", "http://h:0/", "https://h:99999/",
                                 "javascript:alert(1)", "https://h/\x00", " https://h/"])
def test_validate_refuses_bad_webhook_urls(url):
    with pytest.raises(SpecError):
        et.validate({"name": "n", "type": "webhook", "endpoint": url}, "r", ACCT, "o", None)


def test_fan_out_filters_by_owner_label_and_key(db):
    low, high = add_target(db, "low"), add_target(db, "high", "SECRET")
    for arn in (low, high):
        route(db, "b", arn, prefix="in/", suffix=".txt")
    seqs = [event(db, "b", "in/open.txt", "UNCLASSIFIED"), event(db, "b", "in/plan.txt", "SECRET"),
            event(db, "b", "out/x.txt", "UNCLASSIFIED"), event(db, "b", "in/unknown.txt", None)]
    made, withheld = fan_out(db, seqs, {"b": ACCT})
    assert made == 3 and withheld == {low: 2, high: 1}
    assert sorted(deliveries(db)) == sorted([(low, "in/open.txt"), (high, "in/open.txt"),
                                            (high, "in/plan.txt")])
    assert b"plan" not in "".join(r["body"] for r in db.query(
        "SELECT body FROM event_deliveries WHERE target=?", (low,))).encode()
    counts = {r["arn"]: r["withheld"] for r in db.query("SELECT arn, withheld FROM event_targets")}
    assert counts == {low: 2, high: 1}


def test_fan_out_sends_nothing_when_the_bucket_changed_hands(db):
    arn = add_target(db)
    route(db, "b", arn)
    seq = event(db, "b", "k", "UNCLASSIFIED")
    assert fan_out(db, [seq], {"b": "999988887777"}) == (0, {})
    assert fan_out(db, [seq], {"b": None}) == (0, {})
    assert deliveries(db) == []


def test_fan_out_skips_settled_events(db):
    arn = add_target(db)
    route(db, "b", arn)
    seq = event(db, "b", "k", "UNCLASSIFIED")
    db.run_write(lambda c: c.execute("UPDATE compute_outbox SET done=1"))
    assert fan_out(db, [seq], {"b": ACCT}) == (0, {})


def test_another_accounts_target_is_refused_as_unknown():
    with pytest.raises(SpecError) as exc:
        et.route_rows("b", ACCT, [{"target": "arn:vallum:sqs:r:999988887777:t", "prefix": "",
                                   "suffix": "", "events": ["s3:ObjectCreated:*"]}],
                      {"arn:vallum:sqs:r:999988887777:t": {"account": "999988887777"}})
    assert exc.value.code == "InvalidArgument"


def test_claims_keep_key_order_back_off_and_dead_letter(db):
    arn = add_target(db, max_attempts=3, backoff_s=10)
    route(db, "b", arn)
    seqs = [event(db, "b", k, "UNCLASSIFIED") for k in ("k1", "k1", "k2")]
    fan_out(db, seqs, {"b": ACCT})
    now = time.time()
    batch = db.run_write(lambda c: ed.claim(c, now))
    first = [b[0] for b in batch]
    assert len(batch) == 2                       # k1's second event waits behind its first
    assert db.run_write(lambda c: ed.claim(c, now)) == []    # leased
    target = {arn: {"account": ACCT, "max_attempts": 3, "backoff_s": 10}}
    results = [(first[0], "HTTP 500"), (first[1], None)]
    db.run_write(lambda c: ed.settle(c, results, target, now))
    row = db.query("SELECT attempts, next_try FROM event_deliveries WHERE id=?", (first[0],))[0]
    assert (row["attempts"], round(row["next_try"] - now)) == (1, 10)
    db.run_write(lambda c: ed.settle(c, [(first[0], "HTTP 500")], target, now))
    assert round(db.query("SELECT next_try FROM event_deliveries WHERE id=?",
                          (first[0],))[0]["next_try"] - now) == 20
    db.run_write(lambda c: ed.settle(c, [(first[0], "HTTP 503")], target, now))
    (dead,) = db.query("SELECT * FROM event_dead_letters")
    assert (dead["key"], dead["attempts"], dead["error"]) == ("k1", 3, "HTTP 503")
    assert db.query("SELECT failed FROM event_targets")[0]["failed"] == 3
    # k1's second event is now first in line.
    assert [b[0] for b in db.run_write(lambda c: ed.claim(c, now + 1))] == [first[0] + 1]


def test_delivery_ids_are_never_reused(db):
    arn = add_target(db)
    route(db, "b", arn)
    fan_out(db, [event(db, "b", "a", "UNCLASSIFIED")], {"b": ACCT})
    (one,) = db.run_write(lambda c: ed.claim(c, time.time()))
    db.run_write(lambda c: ed.settle(c, [(one[0], None)], {}, time.time()))
    fan_out(db, [event(db, "b", "b", "UNCLASSIFIED")], {"b": ACCT})
    (two,) = db.run_write(lambda c: ed.claim(c, time.time()))
    assert two[0] > one[0]


def test_secrets_are_sealed_and_bound_to_their_target():
    ring = Keyring.single(new_key())
    stored = et.seal(ring, "arn:a", "s3cr3t")
    assert stored is not None and b"s3cr3t" not in stored
    assert et.unseal(ring, "arn:a", stored) == "s3cr3t"
    with pytest.raises(Exception):                # noqa: B017 - any authentication failure
        et.unseal(ring, "arn:b", stored)


def test_signature_covers_time_and_body():
    sig = signature("k", b"{}", 1000)
    assert verify("k", b"{}", sig, now=1000)
    assert not verify("k", b"{ }", sig, now=1000)
    assert not verify("other", b"{}", sig, now=1000)
    assert not verify("k", b"{}", sig, now=1000 + 301)          # replayed later
    assert not verify("k", b"{}", sig.replace("t=1000", "t=2000"), now=2000)
    assert not verify("k", b"{}", "garbage", now=1000)
