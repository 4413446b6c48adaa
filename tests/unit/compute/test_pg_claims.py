"""Several gateways on one PostgreSQL: two compute stores (each its own connection pool, as
two gateways have) race to claim and finish the same tasks, and leaders are elected by
advisory lock. Real PostgreSQL (tests/support/postgres.py), real threads."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from tests.support.postgres import fresh_url, postgres  # noqa: F401 - fixture
from vallum.compute import jobstore as js
from vallum.compute.pgdb import PostgresComputeDB
from vallum.compute.spec import Quota, parse_job
from vallum.meta.leader import AdvisoryLeader


@pytest.fixture
def two(postgres):  # noqa: F811 - the fixture imported above
    url = fresh_url()
    a, b = PostgresComputeDB(url), PostgresComputeDB(url)
    a.open()
    b.open()
    yield url, a, b
    a.close()
    b.close()


def spec(**kw):
    return parse_job({"runtime": "python", "code": "", "output": "s3://b/o/", **kw}, Quota())


def race(stores, lease_of, batch, finish):
    """Each store claims ``batch`` at a time (and finishes what it claimed) until the queue
    is empty; returns per store the seqs it claimed and the jobs it saw end."""
    start = threading.Barrier(len(stores))
    got = [([], []) for _ in stores]
    errors = []

    def run(i, db):
        claimed, ended = got[i]
        start.wait()
        try:
            idle = 0
            while idle < 3:
                out = db.run_write(lambda c: js.claim(c, lease_of(i), time.time(), batch))
                idle = 0 if out else idle + 1
                claimed.extend(c.seq for c in out)
                for c in out if finish else ():
                    ended.extend(db.run_write(lambda conn, c=c: js.finish_task(
                        conn, c.seq, "SUCCEEDED", 0, None, time.time())))
        except Exception as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, db)) for i, db in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return got


def test_two_claimers_over_200_tasks_claim_each_exactly_once(two):
    url, a, b = two
    ids = a.run_write(lambda c: js.insert_jobs(c, "acct", "arn", [
        js.NewJob("j", spec(), "array", [(f"t{i}", f"k{i}") for i in range(200)])], 1.0, {}))
    (ca, _), (cb, _) = race([a, b], lambda i: f"gw{i}", 3, finish=False)
    assert len(ca) + len(cb) == 200                      # nothing claimed twice ...
    assert set(ca).isdisjoint(cb) and len(set(ca) | set(cb)) == 200   # ... nothing left
    assert ca and cb                                     # both really claimed
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT state, attempts, lease FROM compute_tasks").fetchall()
    assert {(s, n) for s, n, _ in rows} == {("RUNNING", 1)}
    assert sorted(r[2] for r in rows) == sorted(["gw0"] * len(ca) + ["gw1"] * len(cb))
    assert a.query("SELECT state FROM compute_jobs WHERE id=?", (ids["j"],))[0]["state"] == "RUNNING"


def test_racing_finishers_roll_the_job_up_once(two):
    """Tasks of one job end on two gateways at once: the job ends exactly once, SUCCEEDED,
    and its dependent is released (never both or neither)."""
    _, a, b = two
    ids = a.run_write(lambda c: js.insert_jobs(c, "acct", "arn", [
        js.NewJob("j", spec(), "array", [(f"t{i}", f"k{i}") for i in range(60)]),
        js.NewJob("after", spec(depends_on=["j"]), "job", [("", None)])], 1.0, {}))
    (ca, ea), (cb, eb) = race([a, b], lambda i: f"gw{i}", 2, finish=True)
    claimed = ca + cb
    assert len(claimed) == len(set(claimed)) == 61     # the dependent ran too, once
    ended = ea + eb
    assert sorted(ended) == sorted([ids["j"], ids["after"]])
    states = {r["id"]: r["state"] for r in a.query("SELECT id, state FROM compute_jobs")}
    assert states == {ids["j"]: "SUCCEEDED", ids["after"]: "SUCCEEDED"}


def test_parallelism_holds_across_gateways(two):
    _, a, b = two
    a.run_write(lambda c: js.insert_jobs(c, "acct", "arn", [
        js.NewJob("j", spec(parallelism=4), "array", [(f"t{i}", f"k{i}") for i in range(40)])],
        1.0, {}))
    (ca, _), (cb, _) = race([a, b], lambda i: f"gw{i}", 10, finish=False)
    assert len(ca) + len(cb) == 4


def test_the_same_idempotency_key_on_two_gateways_makes_one_job(two):
    """An event delivered, or a submit retried, on two gateways at once: one job, and both
    callers are answered with its id (no unique-key error)."""
    url, a, b = two
    start = threading.Barrier(2)
    got: list[list[str]] = [[], []]

    errors: list[BaseException] = []

    def run(i, db):
        try:
            for n in range(40):
                start.wait(30)                  # both at once, key by key
                item = js.NewJob("e", spec(idempotency_key=f"evt:{n}"), "function", [("", None)])
                got[i].append(db.run_write(lambda c, item=item: js.insert_jobs(
                    c, "acct", "arn", [item], time.time(), {}))["e"])
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
            start.abort()                       # the other thread stops waiting

    threads = [threading.Thread(target=run, args=(i, db)) for i, db in enumerate((a, b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not [e for e in errors if not isinstance(e, threading.BrokenBarrierError)], errors
    assert got[0] == got[1] and len(set(got[0])) == 40
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM compute_jobs").fetchone()[0] == 40
        assert conn.execute("SELECT count(*) FROM compute_tasks").fetchone()[0] == 40


def eventually(check, timeout=10.0):
    """A session's advisory locks go when the server has ended it, a moment after."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_one_leader_and_it_moves_when_its_session_dies(two):
    url, _, _ = two
    first, second = AdvisoryLeader(url, "cron"), AdvisoryLeader(url, "cron")
    other = AdvisoryLeader(url, "lifecycle")
    try:
        assert first.held() and first.held()
        assert not second.held()
        assert other.held()                              # another name: its own lock
        elsewhere = AdvisoryLeader(fresh_url(), "cron")  # another schema: another deployment
        assert elsewhere.held()
        elsewhere.release()
        with psycopg.connect(url, autocommit=True) as conn:   # the leader's session is killed
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE "
                         "locktype='advisory' AND objid=%s::bigint & 4294967295",
                         (first.key,))
        assert not first.held()
        assert eventually(second.held) and not first.held()
        second.release()                                 # the server ends that session soon
        assert eventually(first.held)
    finally:
        for leader in (first, second, other):
            leader.release()
