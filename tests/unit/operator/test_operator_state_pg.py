"""The operator's shared state on PostgreSQL: two Live instances with data directories of
their own (two hosts) and one database share one detector, its baselines and every action.
A real PostgreSQL (tests/support/postgres.py); nothing passes through a data directory."""

import time

import psycopg
import pytest

from tests.support.operator_traffic import VET, get, routine
from tests.support.postgres import fresh_url
from vallum.operator.live import Live
from vallum.operator.pg_state import PostgresStore
from vallum.operator.request_events import RequestEvent


@pytest.fixture
def url(monkeypatch):
    url = fresh_url()
    monkeypatch.setenv("VALLUM_META_URL", url)
    return url


def live(path) -> Live:
    return Live(path, None, "contain", sinks_from_env=False)


def test_one_detector_for_every_host_and_its_baselines_survive_it(tmp_path, url):
    leader, follower = live(tmp_path / "host1"), live(tmp_path / "host2")
    assert isinstance(leader.store, PostgresStore)
    assert leader.leader and not follower.leader      # one detector per database
    leader.replay(routine(3), contain_from=float("inf"))
    leader.close()                                    # saved; the lock goes with its connection
    follower.poll(force=True)
    assert follower.leader and follower.detector.principals[VET].profile.samples > 100
    follower.close()
    assert not list((tmp_path / "host1" / "operator").glob("operator.db*"))


def test_requests_and_actions_cross_hosts(tmp_path, url):
    """A sweep split over two hosts: the detector sees all 14 reads and throttles; the other
    host applies the throttle from the shared journal."""
    leader, follower = live(tmp_path / "host1"), live(tmp_path / "host2")
    leader.peers = 2
    thief = "AKIATHIEF00000000002"
    t = time.time()
    for i in range(14):
        who = leader if i % 2 == 0 else follower
        who._pending.append(get(t + i * 0.2, f"d{i % 8}/o{i}", thief, "10.9.9.9", 131072))
        who.flush()
    assert thief not in follower.detector.principals
    assert thief in leader.policy.throttled
    rate = leader.policy.throttled[thief].rate
    assert thief not in follower.policy.throttled
    follower.poll(force=True)
    assert follower.policy.throttled[thief].rate == rate
    # A late-starting gateway (a third host) applies what is in force at its start.
    third = live(tmp_path / "host3")
    assert thief in third.policy.throttled
    for p in (leader, follower, third):
        p.close()


def test_nul_in_a_request_never_loses_the_batch(tmp_path, url):
    leader, follower = live(tmp_path / "host1"), live(tmp_path / "host2")
    try:
        ev = RequestEvent(time.time(), "AK\x00X", "a", "10.0.0.1", "GetObject", "b", "k\x00", 404,
                          "NoSuchKey", 0, 0)
        follower.store.push([ev, get(time.time(), "fine")])
        events, _ = leader.store.pull(0)
        assert [e.key for e in events] == ["k\ufffd", "fine"]
        assert events[0].principal == "AK\ufffdX"
    finally:
        leader.close()
        follower.close()


def test_release_from_the_cli_reaches_every_gateway(tmp_path, url):
    from typer.testing import CliRunner

    from vallum.cli.main import app
    from vallum.operator.containment import Action

    g = live(tmp_path / "host1")
    try:
        g._record(Action(time.time(), "suspend", "ASIASESSION0000001", "principal", "test"))
        g.policy.apply(Action(time.time(), "suspend", "ASIASESSION0000001", "principal", "test"),
                       time.time())
        other = live(tmp_path / "host2")
        assert "ASIASESSION0000001" in other.policy.suspended
        out = CliRunner().invoke(app, ["operator", "release", "ASIASESSION0000001",
                                       "--data-dir", str(tmp_path / "host1"), "--reason", "ok"])
        assert out.exit_code == 0, out.output
        other.poll(force=True)
        assert "ASIASESSION0000001" not in other.policy.suspended
        other.close()
        with psycopg.connect(url) as conn:
            n = conn.execute("SELECT count(*) FROM operator_actions").fetchone()[0]
        assert n == 2
    finally:
        g.close()


def test_baselines_saved_on_sqlite_move_to_postgres(tmp_path, monkeypatch):
    """A gateway that learned on SQLite, restarted with --meta: its veterans stay veterans."""
    first = Live(tmp_path / "d", None, "contain", sinks_from_env=False)    # no URL yet: SQLite
    first.replay(routine(3), contain_from=float("inf"))
    samples = first.detector.principals[VET].profile.samples
    first.close()
    monkeypatch.setenv("VALLUM_META_URL", fresh_url())
    again = live(tmp_path / "d")
    assert isinstance(again.store, PostgresStore)
    assert again.detector.principals[VET].profile.samples == samples
    again.close()


def test_the_operator_store_survives_a_database_restart():
    """A restarted database: calls fail (the caller logs and goes on), then the store
    reconnects by itself and its detector takes its lock again."""
    from tests.support.postgres import halt, resume, start, stop
    from vallum.operator import pg_state

    server = start()                   # a server of its own: this test restarts it
    store = PostgresStore(server.url())
    try:
        assert store.lead()
        halt(server)
        with pytest.raises(psycopg.Error):
            store.push([get(time.time(), "lost")])
        t = time.monotonic()
        with pytest.raises(psycopg.Error):              # at once: the loop never waits on it
            store.push([get(time.time(), "lost")])
        assert time.monotonic() - t < 0.1
        resume(server)
        deadline = time.monotonic() + 15
        while True:
            time.sleep(pg_state.RECONNECT)
            try:
                store.push([get(time.time(), "kept")])
                break
            except psycopg.Error:
                assert time.monotonic() < deadline
        assert [e.key for e in store.pull(0)[0]] == ["kept"]
        assert store.lead()
        with psycopg.connect(server.url()) as other:          # held by the store again
            assert other.execute("SELECT pg_try_advisory_lock(%s)",
                                 (pg_state.DETECTOR_LOCK,)).fetchone()[0] is False
    finally:
        store.close()
        stop(server)


def test_gateways_are_counted_on_every_host_and_a_sweep_waits_for_none(url, tmp_path):
    """The gateway presence lock: the operator counts the serving processes of the whole
    database, and a start-up sweep is possible only while none serves."""
    from vallum.meta import pgshared

    g = live(tmp_path / "host1")
    serving = [pgshared.Presence(url) for _ in range(3)]     # three gateway processes
    try:
        assert g.store.peers() == 0
        alone = pgshared.sole_gateway(url)
        assert alone is not None                              # nobody serves: may sweep
        alone.close()
        for p in serving:
            p.start()
            assert p.held.wait(10)
        g.poll(force=True)
        assert g.peers == 3
        assert pgshared.sole_gateway(url) is None             # someone serves: no sweep
    finally:
        for p in serving:
            p.stop()
        g.close()
    again = pgshared.sole_gateway(url)
    assert again is not None                                  # all gone: may sweep again
    again.close()
