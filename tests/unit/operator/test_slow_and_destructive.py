"""Attacks paced under the per-minute bars, destruction, and automation that must not
be contained (issue 16): each on a learned normal, through the real Detector and
Containment in contain mode, contained callers refused as the gateway refuses them."""

from __future__ import annotations

import random

from vallum.operator.alerts import Alert
from vallum.operator.containment import Containment
from vallum.operator.detector import CHUNK, MAX_DELAY, Detector
from vallum.operator.evaluation import refused
from vallum.operator.request_events import AUTH_FAILURES, RequestEvent

DAY = 86400.0
T0 = 1704067200.0          # Monday 00:00 UTC
OFFICE = "10.1.2.3"


def ev(ts, op, key="", *, who="AKUSER", source=OFFICE, bucket="bkt", error="", bytes_in=0,
       bytes_out=None, label=-1):
    if bytes_out is None:
        bytes_out = 200_000 if op == "GetObject" and not error else 0
    status = {"": 200, "AccessDenied": 403, "InvalidAccessKeyId": 403}.get(error, 400)
    return RequestEvent(ts, who, "" if error in AUTH_FAILURES else "acct", source, op, bucket, key,
                        status, error, bytes_in, bytes_out, label)


def office_days(days=4, who="AKUSER", rate=0.5, seed=3, label=1):
    """A light user: weekdays 09-17, ``rate`` requests a minute, reads at ``label``."""
    rng = random.Random(seed)
    out = []
    for d in range(days):
        t = T0 + d * DAY + 9 * 3600
        while t < T0 + d * DAY + 17 * 3600:
            t += rng.expovariate(rate / 60)
            op = rng.choice(("GetObject", "GetObject", "PutObject", "ListObjectsV2"))
            out.append(ev(t, op, f"d{rng.randint(0, 5)}/k{rng.randint(0, 80)}", who=who,
                          bytes_in=50_000 if op == "PutObject" else 0, label=label))
    return out


def replay(events, scored_from):
    """As the gateway runs it: batches of CHUNK (none over MAX_DELAY), alerts contained from ``scored_from``,
    contained callers refused. Returns (alerts, actions, served events)."""
    det, policy = Detector(anomaly=False), Containment(default_mode="contain")
    alerts: list[Alert] = []
    served: list[RequestEvent] = []
    batch: list[RequestEvent] = []

    def hand_over() -> None:
        for a in det.observe_batch(batch):
            if a.ts >= scored_from:
                alerts.append(a)
                policy.on_alert(a)
        batch.clear()

    for e in sorted(events, key=lambda e: e.ts):
        if batch and (len(batch) >= CHUNK or e.ts - batch[0].ts > MAX_DELAY):
            hand_over()
        if e.ts >= scored_from:
            verdict = policy.admit(None if e.error in AUTH_FAILURES else e.principal, e.source, e.ts)
            if verdict is not None:
                e = refused(e, verdict)
            else:
                served.append(e)
        batch.append(e)
    hand_over()
    return alerts, [a for a in policy.actions if a.action != "release"], served


START = T0 + 4 * DAY + 10 * 3600          # Friday 10:00, after four days of history


def test_overwrite_burst_suspends_with_versioning_guidance():
    """Ransomware: read each object, write it back encrypted, 60 objects a minute."""
    attack = []
    for i in range(300):
        t = START + i
        attack += [ev(t, "GetObject", f"d{i % 6}/k{i}"), ev(t + 0.3, "PutObject", f"d{i % 6}/k{i}",
                                                           bytes_in=200_000)]
    alerts, actions, served = replay(office_days() + attack, START)
    hit = [a for a in alerts if a.kind == "destruction"]
    assert hit and "versioning" in hit[0].reason and "object lock" in hit[0].reason
    assert [(a.action, a.kind) for a in actions] == [("suspend", "destruction")]
    written = {e.key for e in served if e.operation == "PutObject" and e.ts >= START}
    assert len(written) <= 20, len(written)          # of 300: suspended within seconds


def test_delete_objects_wiper_and_copy_in_place_are_destruction():
    wipe = [ev(START + 5 * i, "DeleteObjects", bytes_in=60 + 50 * 52) for i in range(8)]
    alerts, actions, _ = replay(office_days() + wipe, START)
    assert any(a.kind == "destruction" for a in alerts)
    assert actions and actions[0].action == "suspend"
    copy = [ev(START + i * 0.8, "CopyObject", f"d{i % 6}/k{i}") for i in range(200)]
    alerts, actions, served = replay(office_days() + copy, START)
    assert actions and actions[0].action == "suspend" and actions[0].kind == "destruction"
    assert sum(e.operation == "CopyObject" for e in served) <= 20


def test_a_purge_job_that_always_deletes_is_not_destruction():
    """A nightly clean-up deleting 40 objects a minute every night learns its own norm."""
    events = []
    for d in range(5):
        for i in range(200):
            events.append(ev(T0 + d * DAY + 2 * 3600 + i * 1.5, "DeleteObject", f"tmp/{d}/{i}",
                             who="AKPURGE", source="10.9.9.9"))
    alerts, actions, _ = replay(events, T0 + 4 * DAY)
    assert not [a for a in alerts if a.kind == "destruction"] and not actions


def test_slow_and_low_exfiltration_is_caught_by_the_read_budget():
    """25 reads a minute (under every per-minute bar) for two hours: many times the
    user's daily volume. Throttled below its pace, then suspended."""
    attack = [ev(START + i * 2.4, "GetObject", f"d{i % 6}/k{i}") for i in range(3000)]
    alerts, actions, served = replay(office_days() + attack, START)
    budget = [a for a in alerts if a.kind == "exfiltration" and a.features.get("budget")]
    assert budget, [a.reason for a in alerts]
    assert actions and actions[-1].action == "suspend"
    leaked = sum(e.operation == "GetObject" and e.ts >= START for e in served)
    assert leaked < 800, leaked


def test_label_climbing_over_half_an_hour_is_not_learned_as_usual():
    """30 reads above the habitual level over 27 minutes, between ordinary work."""
    rng = random.Random(5)
    attack, t = [], START
    for i in range(30):
        t += rng.uniform(30, 75)
        attack.append(ev(t, "GetObject", f"s{i}/doc", label=3))
        attack.append(ev(t + 5, "GetObject", f"d{i % 6}/k{i}", label=1))
    alerts, _, _ = replay(office_days() + attack, START)
    assert any(a.kind == "label_climbing" for a in alerts)


def test_uploading_unclassified_files_is_not_label_climbing():
    """A user who never read labelled data uploads 500 UNCLASSIFIED files."""
    up = [ev(START + i * 0.2, "PutObject", f"up/f{i}", label=0, bytes_in=100_000) for i in range(500)]
    alerts, actions, _ = replay(office_days(label=-1) + up, START)
    assert not [a for a in alerts if a.kind == "label_climbing"] and not actions


def test_slow_credential_stuffing_across_addresses_of_one_network():
    """Under 3 keys a minute, rotating over three addresses of one /24."""
    rng = random.Random(2)
    attack, t = [], START
    for _ in range(200):
        t += rng.expovariate(2.5 / 60)
        attack.append(ev(t, "ListBuckets", who=f"AKIA{rng.getrandbits(40):010X}",
                         source=f"45.6.7.{rng.choice((11, 12, 13))}", error="InvalidAccessKeyId"))
    alerts, actions, _ = replay(office_days() + attack, START)
    assert any(a.kind == "credential_stuffing" for a in alerts)
    assert any(a.action == "block_address" for a in actions)


def test_a_cron_retrying_one_dead_key_all_day_is_not_stuffing():
    dead = [ev(START + i * 60, "GetObject", "x", who="AKDEAD", source="10.3.3.3",
               error="InvalidAccessKeyId") for i in range(1440)]
    alerts, actions, _ = replay(office_days() + dead, START)
    assert not [a for a in alerts if a.kind == "credential_stuffing"] and not actions


def test_slow_probing_and_a_second_key_from_the_same_source():
    ops = ("PutBucketPolicy", "GetBucketPolicy", "DeleteBucket", "PutBucketAcl", "CreateBucket")
    first = [ev(START + i * 12, ops[i % 5], "x", source="185.1.2.3", error="AccessDenied")
             for i in range(60)]
    second = [ev(START + 800 + i * 20, ops[i % 5], "x", who="AKOTHER", source="185.1.2.3",
                 error="AccessDenied") for i in range(30)]
    alerts, _, _ = replay(office_days() + office_days(who="AKOTHER", seed=4) + first + second, START)
    probed = {a.entity for a in alerts if a.kind == "privilege_probing"}
    assert probed == {"AKUSER", "AKOTHER"}


def test_rclone_sync_then_check_is_not_contained():
    """`rclone sync` of 500 files in 40 directories, then `rclone check`, by a tenant
    admin with a light history: no throttle, no refused request."""
    rng = random.Random(8)
    admin = []
    for d in range(4):
        for k in range(30):
            admin.append(ev(T0 + d * DAY + 10 * 3600 + k * 300, "ListObjectsV2", "", who="AKADMIN"))
    t, sync = START, []
    dirs = [f"upload/set{k:02d}/" for k in range(40)]
    for d in dirs:
        t += rng.uniform(0.02, 0.2)
        sync.append(ev(t, "ListObjectsV2", d, who="AKADMIN"))
    for i in range(500):
        t += rng.uniform(0.05, 0.25)
        sync.append(ev(t, "PutObject", dirs[i % 40] + f"f{i}", who="AKADMIN", bytes_in=120_000, label=0))
    for d in dirs:
        t += rng.uniform(0.02, 0.2)
        sync.append(ev(t, "ListObjectsV2", d, who="AKADMIN"))
    alerts, actions, served = replay(admin + sync, START)
    assert actions == [], [(a.action, a.kind) for a in actions]
    assert len([e for e in served if e.ts >= START]) == len(sync)


def test_a_nightly_backup_of_a_whole_bucket_is_not_contained():
    """Reads every object of a 400-object bucket at ~200/min at 01:00 every night; a
    handful of active minutes a day, never 30, but the same ones every night; the
    office's light traffic is what everybody's baseline looks like."""
    events = office_days(6) + office_days(6, who="AKUSER2", seed=11)
    for d in range(6):
        t = T0 + d * DAY + 3600 + (d % 3) * 200
        for i in range(400):
            t += 0.3
            events.append(ev(t, "GetObject", f"d{i % 8}/obj{i}", who="AKBACKUP", source="10.9.0.5"))
    alerts, actions, _ = replay(events, T0 + 4 * DAY)
    assert actions == [], [(a.action, a.kind, a.reason) for a in actions]


def test_a_stolen_key_sweeping_from_a_new_network_is_held_in_seconds():
    """An unfamiliar caller (a network the key never used) reading a bucket at 8
    objects/s: throttled by the tight bar, then suspended as it hammers; under 10% of a
    400-object bucket leaves."""
    sweep = [ev(START + i / 8, "GetObject", f"d{i % 6}/obj{i}", source="185.9.9.9")
             for i in range(400)]
    alerts, actions, served = replay(office_days() + sweep, START)
    assert actions and actions[0].action == "throttle"
    assert any(a.action == "suspend" for a in actions)
    leaked = {e.key for e in served if e.source == "185.9.9.9"}
    assert len(leaked) < 40, len(leaked)


def test_a_suspended_users_refused_everyday_work_is_not_probing():
    """Once suspended, every request of the key is refused AccessDenied: its usual
    Get/Put/List are not privilege probing."""
    work = office_days()
    tail = [e._replace(ts=e.ts + DAY, status=403, error="AccessDenied", bytes_out=0, label=-1)
            for e in office_days(days=1, rate=3.0)]
    alerts, _, _ = replay(work + [e._replace(ts=e.ts + 3 * DAY) for e in tail], START)
    assert not [a for a in alerts if a.kind == "privilege_probing"]


def test_a_paced_copy_from_a_new_network_is_suspended():
    """A whole 400-object bucket at 1.5 objects/s: a 1 req/s throttle would let it
    finish; the unfamiliar caller's throttle is slower and its hammering suspends it."""
    copy = [ev(START + i / 1.5, "GetObject", f"d{i % 6}/obj{i}", source="185.7.7.7")
            for i in range(400)]
    alerts, actions, served = replay(office_days() + copy, START)
    assert any(a.action == "suspend" for a in actions)
    leaked = {e.key for e in served if e.source == "185.7.7.7"}
    assert len(leaked) < 40, len(leaked)              # under 10% of the bucket


def test_a_familiar_key_sweeping_a_bucket_it_never_read_is_held():
    """The key's own office network, but a bucket it never read in four days: a sweep
    at 5 objects/s gets the tight bar, not the 40-object one."""
    sweep = [ev(START + i / 5, "GetObject", f"d{i % 6}/obj{i}", bucket="vault") for i in range(400)]
    alerts, actions, served = replay(office_days() + sweep, START)
    assert actions and actions[0].action == "throttle"
    assert len({e.key for e in served if e.bucket == "vault"}) < 30


# -- coverage budget: distinct objects of a bucket against its size and the reader's record --

VAULT = [f"case/{i:04d}.pdf" for i in range(400)]


def vault_known(days=4):
    """The vault's 400 objects, written once by its owner on the first morning (that is
    how the operator knows its size) and read now and then by nobody else."""
    return [ev(T0 + 8 * 3600 + i, "PutObject", k, who="AKOWNER", bucket="vault", bytes_in=10_000,
               source="10.1.9.9") for i, k in enumerate(VAULT)]


def slow_walk(start, per_min=3.0, who="AKUSER"):
    return [ev(start + i * 60.0 / per_min, "GetObject", k, who=who, bucket="vault")
            for i, k in enumerate(VAULT)]


def covered(served, who="AKUSER"):
    return len({e.key for e in served if e.principal == who and e.bucket == "vault"
                and e.operation == "GetObject"})


def test_a_slow_reader_of_an_unfamiliar_bucket_is_contained_by_coverage():
    """3 objects a minute (no per-minute bar, no volume budget reaches it) walking a bucket
    the key never read: throttled at 20% of it, suspended at 40%."""
    start = T0 + 2 * DAY + 10 * 3600
    alerts, actions, served = replay(office_days(days=2) + vault_known() + slow_walk(start), start)
    cov = [a for a in alerts if a.features.get("budget") == "coverage"]
    assert cov and cov[0].features["bucket"] == "vault" and not cov[0].features["veteran"]
    assert cov[0].features["objects"] == 80                   # 20% of 400
    assert [(a.action, a.kind) for a in actions] == [("throttle", "exfiltration"),
                                                      ("suspend", "exfiltration")]
    assert covered(served) <= 0.41 * len(VAULT), covered(served)


def test_a_veteran_is_alerted_first_then_suspended_at_twice_the_bar():
    start = T0 + 4 * DAY + 10 * 3600
    alerts, actions, served = replay(office_days(days=4) + vault_known() + slow_walk(start), start)
    cov = [a for a in alerts if a.features.get("budget") == "coverage"]
    assert cov[0].features["veteran"] and cov[0].score < 2.0
    assert [a.action for a in actions] == ["suspend"]          # the first alert only alerted
    assert actions[0].ts > cov[0].ts
    assert covered(served) <= 0.41 * len(VAULT), covered(served)


def test_a_nightly_backup_reading_the_whole_bucket_is_never_contained():
    """Every night, every object of the vault at 200 a minute: its record is the whole
    bucket, so the whole bucket is its norm."""
    nights = []
    for d in range(6):
        t = T0 + d * DAY + 2 * 3600
        nights += [ev(t + i * 0.3, "GetObject", k, who="AKBACKUP", bucket="vault", source="10.1.7.7",
                      bytes_out=40_000) for i, k in enumerate(VAULT)]
    alerts, actions, served = replay(vault_known() + nights, T0 + 3 * DAY)
    assert not [a for a in alerts if a.entity == "AKBACKUP" and a.kind == "exfiltration"], alerts
    assert not actions
    assert covered(served, "AKBACKUP") == len(VAULT)


def test_a_reader_keeping_to_its_usual_share_of_a_bucket_is_not_alerted():
    """An analyst reading about a fifth of the vault every day keeps doing so."""
    rng = random.Random(11)
    days = []
    for d in range(6):
        t = T0 + d * DAY + 9 * 3600
        for k in rng.sample(VAULT, 80):
            t += rng.uniform(60, 300)
            days.append(ev(t, "GetObject", k, who="AKANALYST", bucket="vault"))
    alerts, actions, _ = replay(vault_known() + days, T0 + 3 * DAY)
    assert not [a for a in alerts if a.entity == "AKANALYST"] and not actions


def test_a_climb_paced_over_hours_is_caught_by_first_touches():
    """One read every 6-9 minutes at levels the user never read (SECRET, then TOP SECRET):
    never 4 in a 15-minute window, six within two hours."""
    rng = random.Random(7)
    start = T0 + 2 * DAY + 10 * 3600          # two days of history: not yet a veteran
    attack, t = [], start
    for i in range(8):
        t += rng.uniform(360, 540)
        attack.append(ev(t, "GetObject", f"s{i}/doc", label=3 + i // 4))
    alerts, actions, _ = replay(office_days(days=2) + attack, start)
    climbs = [a for a in alerts if a.kind == "label_climbing"]
    assert climbs and climbs[0].features["first_touches"] == 6, [a.reason for a in alerts]
    assert actions and actions[0].action == "suspend"


def test_refusals_alone_are_no_climb():
    """Refused reads with no label say nothing about levels: a user refused now and then
    over hours (a policy change) is not climbing."""
    refusals = [ev(START + i * 900, "GetObject", f"x{i}/doc", error="AccessDenied") for i in range(12)]
    alerts, actions, _ = replay(office_days(days=2) + refusals, START)
    assert not [a for a in alerts if a.kind == "label_climbing"] and not actions


def test_a_level_the_user_reads_every_day_is_no_first_touch():
    history = office_days(days=3, label=3)
    reads = [ev(START + i * 600, "GetObject", f"d{i}/k{i}", label=3) for i in range(12)]
    alerts, actions, _ = replay(history + reads, START)
    assert not [a for a in alerts if a.kind == "label_climbing"] and not actions


def test_a_suspended_climber_hammering_on_raises_no_further_climbs():
    """After the suspension, every read is answered AccessDenied (no label) by the operator
    itself: hours of that are not more climbing."""
    start = T0 + 2 * DAY + 10 * 3600
    attack = [ev(start + i * 400, "GetObject", f"s{i}/doc", label=3) for i in range(8)]
    attack += [ev(start + 4000 + i * 20, "GetObject", f"t{i}/doc", label=3) for i in range(900)]
    alerts, actions, _ = replay(office_days(days=2) + attack, start)
    assert [a.action for a in actions] == ["suspend"]
    assert len([a for a in alerts if a.kind == "label_climbing"]) == 1, [a.reason for a in alerts]
