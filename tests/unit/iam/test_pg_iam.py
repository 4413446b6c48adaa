"""What is PostgreSQL's own in the IAM store and the lockouts (the contract itself runs on
every backend in test_store.py): two stores on one database stand for two gateways on two
hosts, which share nothing but the database."""

from __future__ import annotations

import time

import psycopg
import pytest

from tests.support.postgres import fresh_url
from vallum.iam.pglockouts import PostgresFailureLimiter
from vallum.iam.pgstore import PostgresIAMStore
from vallum.iam.store import KeyRow, Op
from vallum.meta import pgshared


@pytest.fixture
def pair():
    url = fresh_url()
    a, b = PostgresIAMStore(url), PostgresIAMStore(url)
    a.open()
    b.open()
    yield a, b, url
    a.close()
    b.close()


def _until(pred, limit: float) -> float:
    """Seconds until ``pred()`` held (calling it back to back); fails past ``limit``."""
    start = time.monotonic()
    while not pred():
        assert time.monotonic() - start < limit, "not seen in time"
    return time.monotonic() - start


def test_a_revocation_applies_on_the_other_gateway_before_it_is_acknowledged(pair):
    a, b, _ = pair
    _until(lambda: b.follower.value is not None, 5.0)          # b's follower is running
    a.apply([Op("put_key", value=KeyRow("AKREV", "1", "u", "Active", b"w", 1.0))])
    assert b.generation() == a.generation()                    # no wait: apply waited
    assert b.get_key("AKREV").status == "Active"
    for _ in range(20):
        gen = a.apply([Op("key_status", value=("AKREV", "Inactive"))])
        assert a.generation() == gen and b.generation() == gen
        gen = b.apply([Op("key_status", value=("AKREV", "Active"))])
        assert a.generation() == gen and b.generation() == gen
    assert b.get_key("AKREV").status == "Active"


def test_a_silent_follower_holds_the_writer_until_it_is_bypassed(pair):
    """The follower of gateway b is gone (its thread starved, its connection lost): a's write
    waits until b's last heartbeat is STALE old, when b's requests read the generation
    themselves; so b still applies the change before a acknowledges it."""
    a, b, _ = pair
    _until(lambda: b.follower.value is not None, 5.0)
    b.follower.stop()
    started = time.monotonic()
    gen = a.apply([Op("put", "user", {"account": "1", "name": "x"})])
    waited = time.monotonic() - started
    assert b.generation() == gen
    assert waited <= pgshared.STALE + 0.25 + 0.5
    b.follower = None                                # already stopped: close() must not wait


def test_a_writer_does_not_wait_for_processes_long_gone(pair):
    a, b, url = pair
    with psycopg.connect(url) as conn:               # a follower that beat 2 s ago and left
        conn.execute("INSERT INTO iam_followers VALUES ('gone', 0, clock_timestamp() - "
                     "interval '2 seconds')")
    started = time.monotonic()
    a.apply([Op("put", "user", {"account": "1", "name": "y"})])
    assert time.monotonic() - started < pgshared.STALE


def test_writers_on_two_gateways_serialise_and_never_reuse_a_generation(pair):
    a, b, _ = pair
    gens = []
    for i in range(10):
        gens.append((a if i % 2 else b).apply([Op("put", "group", {"account": "1", "name": f"g{i}"})]))
    assert gens == sorted(gens) and len(set(gens)) == 10
    assert [g["name"] for g in a.scan("group", account="1")] == sorted(f"g{i}" for i in range(10))


def test_nul_finds_nothing_and_is_never_written(pair):
    a, _, _ = pair
    assert a.get_key("AK\x00") is None
    assert a.get("user", account="1", name="a\x00") is None
    assert a.scan("user", account="\x00") == []
    with pytest.raises(ValueError):
        a.apply([Op("put", "user", {"account": "1", "name": "bad\x00"})])
    a.touch_key("AK\x00", 1.0)                      # advisory: silently nothing


def test_scan_order_is_byte_order(pair):
    a, _, _ = pair
    names = ["a", "B", "_", "é", "Z", "b"]
    a.apply([Op("put", "user", {"account": "1", "name": n}) for n in names])
    assert [r["name"] for r in a.scan("user", account="1")] == sorted(names, key=str.encode)


def test_an_unreachable_database_refuses_to_open(monkeypatch):
    monkeypatch.setenv("VALLUM_META_OPEN_TIMEOUT", "1")
    store = PostgresIAMStore("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
    with pytest.raises(Exception, match="127.0.0.1:1"):
        store.open()


def test_lockouts_are_shared_between_gateways(pair):
    _, _, url = pair
    g1 = PostgresFailureLimiter(url, max_per_key=3, max_per_address=100, window=60.0)
    g2 = PostgresFailureLimiter(url, max_per_key=3, max_per_address=100, window=60.0)
    try:
        now = time.time()
        g1.failed("AKX", "10.0.0.1", now)
        g2.failed("AKX", "10.0.0.1", now)
        assert g1.blocked("AKX", "10.0.0.1", now) is None
        g1.failed("AKX", "10.0.0.1", now)             # the third, spread over both gateways
        assert g2.blocked("AKX", "10.0.0.1", now) == "key"
        assert g1.blocked("AKX", "10.0.0.1", now) == "key"
        # Per (key, address): the same key elsewhere, another key here, are not locked.
        assert g2.blocked("AKX", "10.0.0.2", now) is None
        assert g2.blocked("AKY", "10.0.0.1", now) is None
        assert g2.blocked("AKX", "10.0.0.1", now + 61.0) is None      # the window passed
        g1.failed("AK\x00", "10.0.0.3", now)          # NUL: the key counted here, not stored
        g1.failed("AK\x00", "10.0.0.3", now)
        g1.failed("AK\x00", "10.0.0.3", now)
        assert g1.blocked("AK\x00", "10.0.0.3", now) == "key"
        with psycopg.connect(url) as conn:
            n = conn.execute("SELECT count(*) FROM iam_auth_failures").fetchone()[0]
        assert n == 9                # key and address rows of three failures, three address rows
    finally:
        g1.close()
        g2.close()


def test_lockouts_fall_back_to_this_process_when_the_database_is_gone():
    lim = PostgresFailureLimiter("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1",
                                 max_per_key=2, max_per_address=100, window=60.0)
    try:
        now = time.time()
        lim.failed("AK", "10.0.0.9", now)
        lim.failed("AK", "10.0.0.9", now)
        assert lim.blocked("AK", "10.0.0.9", now) == "key"      # never unlimited
        started = time.monotonic()                              # a flood, during the back-off
        for _ in range(200):
            lim.failed("AK2", "10.0.0.8", now)
            lim.blocked("AK2", "10.0.0.8", now)
        assert time.monotonic() - started < 0.5
    finally:
        lim.close()


def test_an_empty_postgres_store_adopts_the_sqlite_identities_once(tmp_path):
    """A deployment moving IAM from SQLite (object metadata alone on PostgreSQL, before)
    keeps every account, user, policy and key, byte for byte."""
    from vallum.iam import sqlstore
    from vallum.iam.directory import Directory
    from vallum.security.crypto import primitives as crypto

    old = sqlstore.SQLiteIAMStore(tmp_path / "meta.sqlite3")
    old.open()
    d = Directory(old, crypto.new_key())
    account, admin = d.create_account("moving")
    d.create_user(account["id"], "alice", tags={"team": "red"})
    d.create_group(account["id"], "ops")
    d.add_to_group(account["id"], "ops", "alice")
    key = d.create_key(account["id"], "alice")
    row = old.get_key(key.access_key_id)
    old.close()

    new = PostgresIAMStore(fresh_url())
    new.open()
    try:
        ops = sqlstore.dump(tmp_path / "meta.sqlite3")
        assert new.adopt(ops) is True
        assert new.get_key(key.access_key_id) == row          # the wrapped secret too
        assert new.get("user", account=account["id"], name="alice")["tags"] == {"team": "red"}
        assert [m["user_name"] for m in new.scan("member", account=account["id"])] == ["alice"]
        assert {k.access_key_id for k in new.keys_of(account["id"])} == \
            {key.access_key_id, admin.access_key_id}
        assert new.adopt(ops) is False                    # never twice, never over live rows
    finally:
        new.close()
    assert sqlstore.dump(tmp_path / "absent.sqlite3") == []


def test_a_lost_database_answers_503_quickly_and_recovers():
    """Reads run on the request's thread: with the database gone a request is refused
    (never allowed on missing rows) within the pool wait, the next ones at once, and the
    store serves again once the database is back."""
    from tests.support.postgres import halt, resume, start, stop
    from vallum.iam import pgstore
    from vallum.meta.postgres import DatabaseUnavailable

    server = start()                   # a server of its own: this test stops it
    store = PostgresIAMStore(server.url())
    try:
        store.open()
        store.apply([Op("put_key", value=KeyRow("AKDOWN", "1", "u", "Active", b"w", 1.0))])
        halt(server)
        t = time.monotonic()
        with pytest.raises(DatabaseUnavailable):
            store.get_key("AKDOWN")
        assert time.monotonic() - t < pgstore.POOL_WAIT + 2.0
        t = time.monotonic()
        with pytest.raises(DatabaseUnavailable):
            store.get_key("AKDOWN")
        assert time.monotonic() - t < 0.1                 # at once, during the back-off
        _until(lambda: not store.follower.fresh(), pgshared.STALE + 1.0)
        with pytest.raises(DatabaseUnavailable):        # no fresh generation: no cached answer
            time.sleep(pgstore.BACKOFF)
            store.generation()
        resume(server)
        time.sleep(pgstore.BACKOFF)

        def back() -> bool:
            try:
                return store.get_key("AKDOWN").status == "Active"
            except DatabaseUnavailable:
                time.sleep(0.1)
                return False
        _until(back, 15.0)
    finally:
        store.close()
        stop(server)


def test_a_closed_store_no_longer_holds_writers(pair):
    a, _, url = pair
    c = PostgresIAMStore(url)
    c.open()
    _until(lambda: c.follower.value is not None, 5.0)
    c.close()                                          # a gateway process shutting down
    started = time.monotonic()
    a.apply([Op("put", "user", {"account": "1", "name": "z"})])
    assert time.monotonic() - started < pgshared.STALE / 2
