"""The durable queue on a real SQLite file and on a real PostgreSQL (the same SQL on both):
claims, retries, roll-up, dependencies, cancel, recovery, idempotency, and trigger dispatch."""

from __future__ import annotations

import json

import pytest

from tests.support.postgres import fresh_url, postgres  # noqa: F401 - fixture
from vallum.compute import jobstore as js
from vallum.compute import triggers
from vallum.compute.db import ComputeDB
from vallum.compute.pgdb import PostgresComputeDB
from vallum.compute.spec import JobSpec, Quota, SpecError, parse_job


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    if request.param == "sqlite":
        d = ComputeDB(tmp_path / "meta.sqlite3")
    else:
        request.getfixturevalue("postgres")
        d = PostgresComputeDB(fresh_url())
    d.open()
    yield d
    d.close()


def spec(**kw):
    doc = {"runtime": "python", "code": "", "output": "s3://b/o/", **kw}
    return parse_job(doc, Quota())


def submit(db, *items, account="acct"):
    return db.run_write(lambda c: js.insert_jobs(c, account, "arn", list(items), 1.0, {}))


def state(db, job_id):
    return db.query("SELECT state FROM compute_jobs WHERE id=?", (job_id,))[0]["state"]


def test_claim_respects_capacity_and_parallelism(db):
    ids = submit(db, js.NewJob("a", spec(parallelism=2), "array", [(f"t{i}", f"k{i}") for i in range(5)]),
                 js.NewJob("b", spec(), "job", [("", None)]))
    got = db.run_write(lambda c: js.claim(c, "L", 2.0, 10))
    by_job = [c.job_id for c in got]
    assert by_job.count(ids["a"]) == 2 and by_job.count(ids["b"]) == 1
    assert db.run_write(lambda c: js.claim(c, "L", 2.0, 10)) == []
    assert state(db, ids["a"]) == "RUNNING"


def test_retry_then_roll_up(db):
    ids = submit(db, js.NewJob("a", spec(retries=1), "job", [("", None)]))
    (c,) = db.run_write(lambda c: js.claim(c, "L", 2.0, 1))
    assert db.run_write(lambda conn: js.finish_task(conn, c.seq, "FAILED", 3, "exit code 3", 3.0,
                                                    retry_at=10.0)) == []
    assert db.run_write(lambda conn: js.claim(conn, "L", 5.0, 1)) == []        # backoff
    (c2,) = db.run_write(lambda conn: js.claim(conn, "L", 10.0, 1))
    assert c2.attempt == 2
    ended = db.run_write(lambda conn: js.finish_task(conn, c2.seq, "SUCCEEDED", 0, None, 11.0))
    assert ended == [ids["a"]] and state(db, ids["a"]) == "SUCCEEDED"


def test_array_roll_up_prefers_timeout_over_failure(db):
    ids = submit(db, js.NewJob("a", spec(), "array", [("x", "x"), ("y", "y"), ("z", "z")]))
    cs = db.run_write(lambda c: js.claim(c, "L", 2.0, 3))
    for c, st in zip(cs, ("SUCCEEDED", "FAILED", "TIMED_OUT")):
        db.run_write(lambda conn, c=c, st=st: js.finish_task(conn, c.seq, st, None, st.lower(), 3.0))
    row = db.query("SELECT state, reason FROM compute_jobs WHERE id=?", (ids["a"],))[0]
    assert row["state"] == "TIMED_OUT" and "2 of 3 tasks" in row["reason"]


def test_dependencies_block_release_and_fail_in_cascade(db):
    ids = submit(db, js.NewJob("a", spec(), "job", [("", None)]),
                 js.NewJob("b", spec(depends_on=["a"]), "job", [("", None)]),
                 js.NewJob("c", spec(depends_on=["b"]), "job", [("", None)]))
    (ca,) = db.run_write(lambda c: js.claim(c, "L", 2.0, 10))
    assert ca.job_id == ids["a"]
    db.run_write(lambda c: js.finish_task(c, ca.seq, "SUCCEEDED", 0, None, 3.0))
    (cb,) = db.run_write(lambda c: js.claim(c, "L", 4.0, 10))
    assert cb.job_id == ids["b"]
    ended = db.run_write(lambda c: js.finish_task(c, cb.seq, "FAILED", 1, "x", 5.0))
    assert set(ended) == {ids["b"], ids["c"]}
    assert state(db, ids["c"]) == "FAILED"
    with pytest.raises(SpecError):                       # depending on a failed job
        submit(db, js.NewJob("d", spec(depends_on=[ids["b"]]), "job", [("", None)]))


def test_cycles_and_unknown_or_foreign_dependencies_are_refused(db):
    items = [js.NewJob("a", spec(depends_on=["b"]), "job", [("", None)]),
             js.NewJob("b", spec(depends_on=["a"]), "job", [("", None)])]
    with pytest.raises(SpecError) as exc:
        js.check_refs(items)
    assert exc.value.code == "CyclicDependency"
    other = submit(db, js.NewJob("x", spec(), "job", [("", None)]), account="other")["x"]
    with pytest.raises(SpecError):
        submit(db, js.NewJob("y", spec(depends_on=[other]), "job", [("", None)]))


def test_idempotency_key_per_account(db):
    a = submit(db, js.NewJob("a", spec(idempotency_key="k"), "job", [("", None)]))["a"]
    assert submit(db, js.NewJob("a", spec(idempotency_key="k"), "job", [("", None)]))["a"] == a
    assert submit(db, js.NewJob("a", spec(idempotency_key="k"), "job", [("", None)]),
                  account="other")["a"] != a


def test_cancel_queued_and_running(db):
    ids = submit(db, js.NewJob("a", spec(), "array", [("x", "x"), ("y", "y")]))
    (c,) = db.run_write(lambda conn: js.claim(conn, "L", 2.0, 1))
    ok, running, ended = db.run_write(lambda conn: js.cancel_job(conn, ids["a"], 3.0))
    assert ok and running == [c.seq] and ended == []
    ended = db.run_write(lambda conn: js.finish_task(conn, c.seq, "SUCCEEDED", 0, None, 4.0))
    assert ended == [ids["a"]] and state(db, ids["a"]) == "CANCELLED"
    assert db.run_write(lambda conn: js.cancel_job(conn, ids["a"], 5.0))[0] is False


def test_recover_requeues_or_fails_tasks_of_dead_leases(db):
    ids = submit(db, js.NewJob("r", spec(retries=1), "job", [("", None)]),
                 js.NewJob("n", spec(retries=0), "job", [("", None)]))
    db.run_write(lambda c: js.claim(c, "dead", 2.0, 10))
    assert db.run_write(lambda c: js.recover(c, 3.0, 2.5, {"dead"})) == []   # still live
    out = dict(db.run_write(lambda c: js.recover(c, 3.0, 2.5, set())))
    assert sorted(out.values()) == ["failed", "requeued"]
    assert state(db, ids["n"]) == "FAILED" and state(db, ids["r"]) == "RUNNING"
    (again,) = db.run_write(lambda c: js.claim(c, "new", 4.0, 10))
    assert again.job_id == ids["r"] and again.attempt == 2


def test_dispatch_turns_outbox_events_into_idempotent_invocations(db):
    row = {"id": "t1", "account": "acct", "owner": "arn", "principal": "{}", "kind": "object",
           "source": "api", "bucket": "b", "prefix": "in/", "suffix": ".csv",
           "events": json.dumps(["s3:ObjectCreated:*"]), "function": "f", "cron": None,
           "job": None, "next_run": None, "created": 0.0}
    db.run_write(lambda c: triggers.insert(c, row))
    db.run_write(lambda c: c.execute(
        "INSERT INTO compute_functions (account, name, owner, principal, spec, revision, "
        "created) VALUES ('acct', 'f', 'arn', ?, '{}', 1, 0)", (json.dumps({"level": "SECRET"}),)))
    for key in ("in/a.csv", "in/b.txt", "out/c.csv"):
        ev = {"eventName": "ObjectCreated:Put", "s3": {"object": {"key": key}}}
        db.run_write(lambda c, ev=ev: c.execute(
            "INSERT INTO compute_outbox (bucket, event, label, created, done) "
            "VALUES ('b', ?, 'UNCLASSIFIED', 0, 0)", (json.dumps(ev),)))
    seqs, found = triggers.pending(db.reader())
    assert len(seqs) == 3 and [d.key for d in found] == ["in/a.csv"]
    assert found[0].label == "UNCLASSIFIED" and found[0].trigger["id"] == "t1"
    assert db.run_write(lambda c: triggers.deliver(c, seqs, found, 1.0)) == 3
    jobs = db.query("SELECT spec, idem_key, principal FROM compute_jobs")
    assert len(jobs) == 1 and jobs[0]["idem_key"].endswith(":t1")
    spec = json.loads(jobs[0]["spec"])
    assert spec["payload"]["Records"][0]["s3"]["configurationId"] == "t1"
    # The invocation runs as the function's principal, at its level.
    assert spec["level"] == "SECRET" and json.loads(jobs[0]["principal"])["level"] == "SECRET"
    assert triggers.pending(db.reader()) == ([], [])


def test_old_outbox_tables_gain_the_label_column(tmp_path):
    import sqlite3
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE compute_outbox (seq INTEGER PRIMARY KEY, bucket TEXT NOT NULL, "
                     "event TEXT NOT NULL, created FLOAT NOT NULL, done INTEGER NOT NULL)")
    d = ComputeDB(path)
    d.open()
    try:
        cols = {r[1] for r in d.reader().execute("PRAGMA table_info(compute_outbox)")}
        assert "label" in cols
    finally:
        d.close()


def test_spec_round_trip():
    s = spec(retries=2, resources={"memory_mb": 64})
    assert JobSpec.from_json(json.loads(json.dumps(s.to_json()))) == s
