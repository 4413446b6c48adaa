"""The operator's state: baselines that survive a restart, one detector fed by every
process, every containment applied everywhere, and the event-time replay through the
live path. Real Live instances, a real SQLite database and journal in tmp_path."""

import os
import sqlite3
import stat
import time

import pytest
from typer.testing import CliRunner

from vallum.cli.main import app
from vallum.operator import journal
from vallum.operator import shared_state as state
from vallum.operator.containment import Action, Containment
from vallum.operator.live import Live
from vallum.operator.request_events import RequestEvent
from vallum.operator.simulate import START

DAY = 86400.0
VET = "AKIAVETERAN000000001"
HOME = "10.20.0.5"


def live(path, mode: str = "contain") -> Live:
    return Live(path, None, mode, sinks_from_env=False)


def get(ts: float, key: str, who: str = VET, source: str = HOME, size: int = 100_000) -> RequestEvent:
    return RequestEvent(ts, who, "acct1", source, "GetObject", "data", key, 200, "", 0, size)


def routine(days: int = 4) -> list[RequestEvent]:
    """An analyst's hour every morning (09:00-10:00): 20 reads a minute over 10 prefixes."""
    out = []
    for d in range(days):
        for m in range(60):
            base = START + d * DAY + 9 * 3600 + m * 60
            out += [get(base + j * 3.0, f"p{j % 10}/d{d}-m{m}-{j}") for j in range(20)]
    return out


def pull_day(day: int = 4) -> list[RequestEvent]:
    """A big pull on a later morning: 100 objects in a minute, wide: past its norm, but
    not twice past it (in doubt)."""
    base = START + day * DAY + 9 * 3600 + 30 * 60
    return [get(base + j * 0.6, f"p{j % 10}/big-{j}") for j in range(100)]


def test_a_veteran_stays_alert_only_across_a_restart(tmp_path):
    first = live(tmp_path / "a")
    first.replay(routine(), contain_from=float("inf"))
    samples = first.detector.principals[VET].profile.samples
    first.close()
    db = tmp_path / "a" / "operator" / state.DB
    assert stat.S_IMODE(db.stat().st_mode) == 0o600

    again = live(tmp_path / "a")                       # the restarted gateway
    st = again.detector.principals[VET]
    assert st.profile.samples == samples and st.profile.days >= 3
    assert again.detector.veteran(VET, pull_day()[0].ts)
    alerts, served = again.replay(pull_day())
    assert [a.kind for a in alerts if a.kind == "exfiltration"] and all(served)
    assert all(a.features["veteran"] for a in alerts if a.kind == "exfiltration")
    assert again.policy.actions == []                  # alerted on, not contained
    again.close()

    # The same pull by a key nobody remembers (a fresh data directory) is contained.
    stranger = live(tmp_path / "b")
    alerts, served = stranger.replay(pull_day())
    assert stranger.policy.actions and not all(served)
    stranger.close()


def test_the_process_that_takes_the_detector_over_restores_the_baselines(tmp_path):
    leader, follower = live(tmp_path), live(tmp_path)
    assert leader.leader and not follower.leader      # one detector per data directory
    leader.replay(routine(3), contain_from=float("inf"))
    assert VET not in follower.detector.principals
    leader.close()                                    # saved, lock given up (its process died)
    follower.poll(force=True)
    assert follower.leader and follower.detector.principals[VET].profile.samples > 100
    follower.close()


def test_requests_fed_by_other_processes_reach_the_one_detector(tmp_path):
    """A sweep split over two processes: each sees 7 reads (under the unfamiliar-caller
    bar of 12), the detector sees 14 and throttles; the other process applies it too."""
    leader, follower = live(tmp_path), live(tmp_path)
    leader.peers = 2                # what poll() counts from the gateway files of two processes
    thief = "AKIATHIEF00000000001"
    t = time.time()
    for i in range(14):
        who = leader if i % 2 == 0 else follower
        who._pending.append(get(t + i * 0.2, f"d{i % 8}/o{i}", thief, "10.9.9.9", 131072))
        who.flush()
    assert thief not in follower.detector.principals
    assert thief in leader.policy.throttled
    action = next(a for a in leader.policy.actions if a.action == "throttle")
    assert action.rate == leader.policy.slow_rate
    follower.pid = -1                                 # (the same test process plays both)
    leader.pid = -2
    follower.poll(force=True)
    assert thief in follower.policy.throttled
    assert follower.policy.throttled[thief].rate == action.rate
    leader.close()
    follower.close()


def test_every_action_kind_is_applied_from_the_journal():
    policy = Containment(default_mode="contain")
    now = 1000.0
    policy.apply(Action(now, "throttle", "AKIAT", "principal", "why", rate=0.1))
    verdicts = [policy.admit("AKIAT", "10.0.0.1", now + 0.01 * i) for i in range(8)]
    assert verdicts[:5] == [None] * 5 and verdicts[5:] == ["throttled"] * 3
    policy.apply(Action(now, "suspend", "AKIAS", "principal", "why"))
    policy.apply(Action(now, "block_address", "10.6.6.6", "address", "why"))
    assert policy.admit("AKIAS", "10.0.0.1", now) == "suspended"
    assert policy.admit("AKIAX", "10.6.6.6", now) == "blocked"
    policy.apply(Action(now, "throttle", "AKIAS", "principal", "why", rate=0.1))
    assert policy.admit("AKIAS", "10.0.0.1", now) == "suspended"      # a throttle never lifts it
    for who in ("AKIAT", "AKIAS", "10.6.6.6"):
        policy.apply(Action(now, "release", who, "principal", "admin"))
    assert not (policy.suspended or policy.throttled or policy.blocked)


def test_replay_drives_the_live_path_in_event_time(tmp_path):
    """A day and a half of routine and then a copier, replayed in well under a second of
    CPU per simulated hour: alerts carry event time, are journalled like live ones, and
    the copier's requests after its containment are answered as refused."""
    h = live(tmp_path)
    copier = "AKIACOPIER0000000001"
    base = START + 2 * DAY + 11 * 3600
    attack = [get(base + i * 0.05, f"x{i % 20}/o{i}", copier, "10.77.0.1", 200_000) for i in range(400)]
    events = routine(2) + attack
    cpu = time.process_time()
    alerts, served = h.replay(events, contain_from=base)
    cpu = time.process_time() - cpu
    assert cpu < 20.0                                  # 2 days of event time
    mine = [a for a in alerts if a.entity == copier]
    assert mine and base <= mine[0].ts <= base + 20           # event time, not wall time
    copied = sum(ok for ev, ok in zip(events, served, strict=True) if ev.principal == copier)
    assert copied < 40, copied                               # under 10% of the sweep
    journalled = (tmp_path / "operator" / "alerts.jsonl").read_text()
    assert copier in journalled
    assert h.policy.default_mode == "contain"                # restored after the replay
    h.close()


# -- hostile and broken state -------------------------------------------------------------

def test_a_database_that_is_not_one_costs_the_baselines_not_the_gateway(tmp_path):
    d = tmp_path / "operator"
    d.mkdir()
    (d / state.DB).write_bytes(b"this is not SQLite" * 100)
    h = live(tmp_path)
    assert h.store is None and h.leader
    alerts, _ = h.replay(pull_day(0))
    assert h.detector.principals[VET]                         # still decides
    h.close()


@pytest.mark.parametrize("doc", [
    {"profile": {"hist": [[1] * 3], "samples": "many"}},
    {"profile": {"hist": "x"}, "budget": {"hours": [["a", 1]]}},
    {"profile": {}, "buckets": ["not", "a", "dict"]},
    {"profile": {}, "robust": [10 ** 12] * 3},
    {"profile": {}, "coverage": {"b": [1.0, "x"]}},
], ids=["bad-samples", "bad-hours", "bad-buckets", "short-robust", "bad-coverage"])
def test_a_malformed_baseline_is_skipped_or_reset_never_fatal(tmp_path, doc):
    first = live(tmp_path)
    first.replay(routine(1), contain_from=float("inf"))
    first.close()
    store = state.Store(tmp_path / "operator")
    store.save([("AKIAHOSTILE000000001", 0.0, doc)], {})
    store.close()
    h = live(tmp_path)
    assert h.detector.principals[VET].profile.samples > 0     # the others restored
    hostile = h.detector.principals.get("AKIAHOSTILE000000001")
    if hostile is not None:                                   # kept only with sane fields
        assert isinstance(hostile.profile.samples, int)
        assert len(hostile.profile.hist[0]) == len(h.detector.prior.hist[0])
        assert "AKIAHOSTILE000000001" not in (h.detector.robust.history if h.detector.robust else {})
    h.replay([get(START + 5 * DAY, "k", "AKIAHOSTILE000000001")])
    h.close()


def test_the_database_is_0600_under_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        h = live(tmp_path)
        h.replay(routine(1), contain_from=float("inf"))
        h.close()
    finally:
        os.umask(old)
    for name in (state.DB, state.LOCK):
        assert stat.S_IMODE((tmp_path / "operator" / name).stat().st_mode) == 0o600
    with sqlite3.connect(tmp_path / "operator" / state.DB) as conn:
        assert conn.execute("SELECT COUNT(*) FROM baselines").fetchone()[0] == 1


def test_throttles_and_blocks_long_over_are_not_read_back():
    """A gateway starting up reads the whole action journal: what expired stays expired
    (and the admission fast path stays free); suspensions hold until released."""
    policy = Containment(default_mode="contain")
    old = 1000.0
    now = old + 2 * max(policy.block_for, policy.throttle_for)
    policy.apply(Action(old, "throttle", "AKIAT", "principal", "why", rate=0.1), now)
    policy.apply(Action(old, "block_address", "10.6.6.6", "address", "why"), now)
    policy.apply(Action(old, "suspend", "AKIAS", "principal", "why"), now)
    assert not policy.throttled and not policy.blocked
    assert policy.admit("AKIAS", "10.0.0.1", now) == "suspended"


def test_status_counts_the_baselines_on_disk(tmp_path):
    assert state.remembered(tmp_path / "operator") == 0
    h = live(tmp_path)
    h.replay(routine(1), contain_from=float("inf"))
    h.close()
    assert state.remembered(tmp_path / "operator") == 1
    out = CliRunner().invoke(app, ["operator", "status", "--data-dir", str(tmp_path)])
    assert out.exit_code == 0 and "baselines on disk: 1 principals" in out.output


@pytest.mark.parametrize("record", [
    {"ts": "soon", "action": "throttle", "entity": "AKIAX", "entity_type": "principal", "reason": "r"},
    {"ts": 1.0, "action": "throttle", "entity": "AKIAX", "entity_type": "principal", "reason": "r",
     "rate": "fast"},
    {"ts": 1.0, "action": "throttle", "entity": "AKIAX", "entity_type": "principal", "reason": "r",
     "rate": -1},
    {"ts": 1.0, "action": "suspend", "entity": ["AKIAX"], "entity_type": "principal", "reason": "r"},
    {"action": "suspend"},
], ids=["bad-ts", "bad-rate", "negative-rate", "list-entity", "missing-fields"])
def test_a_malformed_journal_record_is_ignored(tmp_path, record):
    d = journal.directory(tmp_path)
    journal.append(d / journal.ACTIONS, {**record, "pid": -5})
    h = live(tmp_path)
    assert not (h.policy.suspended or h.policy.throttled or h.policy.blocked)
    h.close()
