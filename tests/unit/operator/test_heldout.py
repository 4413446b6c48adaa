"""The held-out harness itself: every attack kind and every automation is in a trace,
and the damage arithmetic counts what was served, not what was attempted."""

from vallum.operator import heldout, heldout_eval
from vallum.operator.heldout import HeldoutTrace, Scenario
from vallum.operator.request_events import RequestEvent


def test_trace_has_every_attack_and_the_automation():
    trace = heldout.generate(9101, people=12, days=5, warmup_days=4, per_kind=1)
    kinds = {sc.kind for sc in trace.attacks}
    assert kinds == set(heldout.ATTACKS)
    assert {sc.kind for sc in trace.automation} >= {"nightly_backup", "rclone_sync"}
    assert all(a.start >= trace.scored_from for a in trace.attacks)
    assert [e.ts for e in trace.events] == sorted(e.ts for e in trace.events)
    for sc in trace.attacks:
        if sc.kind in heldout_eval.LEAKS | heldout_eval.DESTROYS:
            assert sc.bucket_size == trace.bucket_sizes[sc.bucket] > 0
    # slow-and-low really is slow: no minute of it reaches 40 reads
    slow = next(sc for sc in trace.attacks if sc.kind == "slow_exfil")
    reads = [e.ts for e in trace.events if e.principal == slow.entities[0]
             and slow.start <= e.ts <= slow.end and e.operation == "GetObject"]
    per_minute: dict[int, int] = {}
    for ts in reads:
        per_minute[int(ts // 60)] = per_minute.get(int(ts // 60), 0) + 1
    assert max(per_minute.values()) < 40


def _ev(ts, op, key="", bytes_in=0):
    return RequestEvent(ts, "AKX", "acct", "10.0.0.1", op, "b", key, 200, "", bytes_in, 0, -1)


def test_damage_counts_only_served_requests():
    wipe = Scenario("wiper", ["AKX"], 100.0, 110.0, "b", 200, [[100.0, 50.0], [110.0, 50.0]])
    leak = Scenario("bulk_exfil", ["AKX"], 100.0, 110.0, "b", 4)
    events = [_ev(100.0, "DeleteObjects", bytes_in=2000), _ev(110.0, "DeleteObjects", bytes_in=2000)]
    trace = HeldoutTrace(events, [wipe], [], 1, 2, 1, {"b": 200})
    assert heldout_eval.damage(trace, wipe, [True, False]) == 0.25
    assert heldout_eval.damage(trace, wipe, [True, True]) == 0.5
    reads = [_ev(100.0 + i, "GetObject", f"k{i % 3}") for i in range(6)]
    trace = HeldoutTrace(reads, [leak], [], 1, 2, 1, {"b": 4})
    assert heldout_eval.damage(trace, leak, [True] * 6) == 0.75          # 3 distinct of 4
    assert heldout_eval.damage(trace, leak, [True, False, False, False, False, False]) == 0.25
