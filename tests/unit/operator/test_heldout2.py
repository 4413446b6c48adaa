"""The second held-out family: every attack kind and the automation are in a trace, the
paces are what it claims (slow-and-low under the per-minute bars, climbs spread over
many minutes), and it is scored by heldout_eval's scoring."""

from vallum.operator import heldout, heldout2, heldout_eval


def _per_minute(ts: list[float]) -> int:
    counts: dict[int, int] = {}
    for t in ts:
        counts[int(t // 60)] = counts.get(int(t // 60), 0) + 1
    return max(counts.values())


def test_trace_has_every_attack_and_the_automation():
    trace = heldout2.generate(7399, people=20, days=7, warmup_days=5, per_kind=2)
    assert {sc.kind for sc in trace.attacks} == set(heldout2.ATTACKS) == set(heldout.ATTACKS)
    assert {sc.kind for sc in trace.automation} >= {"nightly_backup", "integrity_scrub", "ingest",
                                                   "rclone_sync"}
    assert all(a.start >= trace.scored_from for a in trace.attacks)
    assert [e.ts for e in trace.events] == sorted(e.ts for e in trace.events)
    attacked = [sc.entities[0] for sc in trace.attacks if sc.kind != "slow_stuffing"]
    assert len(attacked) == len(set(attacked))           # one attack per key
    for sc in trace.attacks:
        if sc.kind in heldout_eval.LEAKS | heldout_eval.DESTROYS:
            assert sc.bucket_size == trace.bucket_sizes[sc.bucket] > 0
        mine = [e.ts for e in trace.events if e.principal == sc.entities[0]
                and sc.start <= e.ts <= sc.end and e.operation == "GetObject"]
        if sc.kind == "slow_exfil":
            assert _per_minute(mine) < 40                # under every per-minute bar
        if sc.kind == "label_climb":
            assert sc.end - sc.start > 300               # minutes to hours, not a burst


def test_backup_reads_whole_buckets_every_night():
    trace = heldout2.generate(7399, people=10, days=3, warmup_days=1, per_kind=1)
    backup = next(sc for sc in trace.automation if sc.kind == "nightly_backup")
    read = {(e.bucket, e.key) for e in trace.events if e.principal == backup.entities[0]
            and backup.start <= e.ts <= backup.end and e.operation == "GetObject"}
    buckets = {b for b, _ in read}
    assert sum(trace.bucket_sizes[b] for b in buckets) == len(read)
