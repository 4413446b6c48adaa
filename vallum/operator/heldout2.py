"""A second held-out scenario family for the operator: frozen, never used for tuning.

Why a second one: heldout.py was looked at while its detectors were changed (its
misses were analysed), so it no longer measures unseen behaviour. This family is
written apart from both simulate.py and heldout.py, before the detector changes it
measures: another organisation (a hospital research institute: radiology, genomics
and a clinical trials office), other rhythms (clinicians on 12-hour day and night
shifts, two on two off; researchers with irregular hours and weekend sessions; a
sequencer writing round the clock; a curator pulling whole cohorts), buckets of
200-1200 objects under study / cohort prefixes, and attacks at several paces:
slow-and-low reads from 2 to 20 objects a minute (whole buckets or most of one, in
key order or shuffled), label climbing from one read every half minute to one every
ten minutes, a paced copy at 40-80 a minute. Automation that must never be contained:
a nightly backup reading three whole buckets, an integrity scrub reading the whole
archive every third night at a slow pace, the sequencer's writes and HEADs, a
curator's nightly cohort export, and rclone sync + check.

Refused reads carry the object's label (the gateway's MAC notes it), unlike heldout.py.

Scored with heldout_eval.py's replay and scoring (``run`` below); the attack kinds
have the same names as heldout.ATTACKS so the same acceptance rules apply.

Frozen: committed on its own, before any detector change it is meant to measure.
Changing it to make a detector look better defeats its purpose.
"""

from __future__ import annotations

import random
import time

from vallum.operator import heldout_eval as he
from vallum.operator.heldout import HeldoutTrace, Scenario
from vallum.operator.request_events import RequestEvent

H2START = 1717372800.0         # Monday 2024-06-03 00:00 UTC
DAY = 86400.0
HELDOUT2_SEEDS = (7301, 7302, 7303)
ATTACKS = ("bulk_exfil", "slow_exfil", "paced_copy", "label_climb", "overwrite", "wiper",
           "copy_in_place", "slow_stuffing", "slow_probing")
SLOW_PACES = (2.0, 5.0, 10.0, 20.0)            # objects a minute
CLIMB_GAPS = ((20.0, 40.0), (60.0, 180.0), (240.0, 600.0))   # seconds between climbing reads
STUDIES = (("imaging", 1), ("cohort-a", 2), ("cohort-b", 2), ("consent", 1), ("genotype", 3),
           ("controls", 0), ("adverse-events", 3), ("identifiers", 4), ("protocols", 0))


class Institute:
    """Three accounts, each with buckets of known objects under study prefixes."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.objects: dict[str, list[tuple[str, int]]] = {}
        self.accounts: dict[str, list[str]] = {}
        for acct in ("radiology", "genomics", "trials-office"):
            names = [f"{acct}-{s}" for s in rng.sample(("scans", "studies", "raw", "shared", "results"), 3)]
            names.append(f"{acct}-archive")
            self.accounts[acct] = names
            for b in names:
                studies = rng.sample(STUDIES, rng.randint(2, 6))
                size = rng.randint(200, 1200)
                objs = []
                for n in range(size):
                    study, level = studies[(n * 7 // 3) % len(studies)]
                    objs.append((f"{study}/subj-{n % 97:03d}/series-{n:05d}.dcm", level))
                rng.shuffle(objs)
                objs.sort(key=lambda o: o[0])             # key order, as a listing returns it
                self.objects[b] = objs

    def pick(self, bucket: str, max_level: int, hot: int) -> tuple[str, int]:
        """Mostly a small working set (``hot`` objects), now and then anything allowed."""
        objs = self.objects[bucket]
        rng = self.rng
        for _ in range(10):
            i = rng.randrange(min(hot, len(objs))) if rng.random() < 0.8 else rng.randrange(len(objs))
            key, level = objs[(i * 31 + hot) % len(objs)]
            if level <= max_level:
                return key, level
        return min(objs, key=lambda o: o[1])


class Staff:
    def __init__(self, key: str, account: str, role: str, clearance: int, usual: int,
                 address: str, buckets: list[str], rate: float = 1.0, shift: int = 0,
                 hot: int = 40) -> None:
        self.key, self.account, self.role = key, account, role
        self.clearance, self.usual, self.address = clearance, usual, address
        self.buckets, self.rate, self.shift, self.hot = buckets, rate, shift, hot


class Generator2:
    def __init__(self, seed: int, people: int = 36, days: int = 7, warmup_days: int = 5,
                 per_kind: int = 2) -> None:
        self.rng = random.Random(seed * 104729 + 71)
        self.days, self.warmup, self.per_kind = days, warmup_days, per_kind
        self.inst = Institute(self.rng)
        self.events: list[RequestEvent] = []
        self.attacks: list[Scenario] = []
        self.automation: list[Scenario] = []
        self.used: set[str] = set()         # one attack per key: its containment is its own
        self.staff = [self._staff(i) for i in range(people)]
        accts = sorted(self.inst.accounts)
        for a, acct in enumerate(accts):
            self.staff.append(Staff(f"AKRI{a:02d}ADMIN{acct[:4].upper()}", acct, "admin", 4, 1,
                                    f"192.168.{a}.20", list(self.inst.accounts[acct])))
        self.staff.append(Staff("AKRIBACKUPNIGHT01", accts[0], "backup", 4, 4, "192.168.50.5",
                                [b for b in self.inst.accounts[accts[0]] if not b.endswith("archive")]))
        self.staff.append(Staff("AKRISCRUBARCHIV01", accts[1], "scrub", 4, 4, "192.168.50.6",
                                [f"{accts[1]}-archive"]))
        self.staff.append(Staff("AKRISEQUENCER0001", accts[1], "sequencer", 3, 2, "192.168.60.9",
                                [self.inst.accounts[accts[1]][0]]))
        self.staff.append(Staff("AKRICURATOREXP001", accts[2], "curator", 3, 3, "192.168.50.7",
                                [self.inst.accounts[accts[2]][0]]))

    def _staff(self, i: int) -> Staff:
        rng = self.rng
        acct = rng.choice(sorted(self.inst.accounts))
        role = rng.choices(("clinician", "researcher", "coordinator"), weights=(45, 35, 20))[0]
        clearance = rng.choice((1, 2, 2, 3, 3, 4))
        usual = max(0, clearance - rng.choice((0, 1, 1, 2)))
        buckets = rng.sample(self.inst.accounts[acct][:3], rng.randint(1, 3))
        rate = {"clinician": rng.uniform(0.3, 0.9), "researcher": rng.uniform(0.5, 3.0),
                "coordinator": rng.uniform(0.2, 0.6)}[role]
        return Staff(f"AKRI{i:04d}{acct[:3].upper()}STAFF", acct, role, clearance, usual,
                     f"10.{100 + i % 5}.{rng.randint(0, 30)}.{rng.randint(2, 250)}", buckets,
                     rate, rng.randint(0, 1), rng.randint(20, 120))

    # ------------------------------------------------------------------ emitting
    def emit(self, ts: float, s: Staff | None, op: str, *, key_id: str | None = None,
             source: str | None = None, bucket: str = "", key: str = "", level: int = -1,
             error: str = "", bytes_in: int = 0, bytes_out: int = 0) -> None:
        status = {"": 200, "AccessDenied": 403, "NoSuchKey": 404, "InvalidAccessKeyId": 403,
                  "SignatureDoesNotMatch": 403}.get(error, 400)
        if op == "GetObject" and not error and not bytes_out:
            bytes_out = self.rng.choice((120_000, 800_000, 3_000_000, 12_000_000))
        auth_failed = error in ("InvalidAccessKeyId", "SignatureDoesNotMatch")
        self.events.append(RequestEvent(
            ts, key_id if key_id is not None else (s.key if s else ""),
            "" if auth_failed or s is None else s.account, source or (s.address if s else ""),
            op, bucket, key, status, error, bytes_in, bytes_out,
            -1 if error and error != "AccessDenied" else level))

    def _times(self, t0: float, t1: float, per_min: float):
        ts = t0
        while True:
            ts += self.rng.expovariate(per_min / 60.0)
            if ts >= t1:
                return
            yield ts

    def work(self, s: Staff, ts: float) -> None:
        rng = self.rng
        b = rng.choice(s.buckets)
        op = rng.choices(("GetObject", "HeadObject", "PutObject", "ListObjectsV2"),
                         weights={"clinician": (60, 20, 10, 10), "researcher": (50, 5, 25, 20),
                                  "coordinator": (40, 10, 30, 20)}[s.role])[0]
        key, level = self.inst.pick(b, s.usual, s.hot)
        if op == "ListObjectsV2":
            self.emit(ts, s, op, bucket=b, key=key.split("/")[0] + "/", bytes_out=9000)
        elif op == "PutObject":
            self.emit(ts, s, op, bucket=b, key=key.replace("series-", "note-"), level=level,
                      bytes_in=rng.choice((15_000, 150_000, 2_000_000)))
        else:
            err = "NoSuchKey" if rng.random() < 0.03 else ""
            self.emit(ts, s, op, bucket=b, key=key, level=level, error=err)

    # ------------------------------------------------------------------ normal life
    def day(self, s: Staff, d: int) -> None:
        rng = self.rng
        d0 = H2START + d * DAY
        weekday = d % 7
        if s.role == "backup":
            t = d0 + 2.5 * 3600 + rng.uniform(-900, 900)
            start = t
            for b in s.buckets:
                rate = rng.uniform(60, 400)
                self.emit(t, s, "ListObjectsV2", bucket=b, bytes_out=200_000)
                for key, level in self.inst.objects[b]:
                    t += rng.expovariate(rate / 60.0)
                    self.emit(t, s, "GetObject", bucket=b, key=key, level=level)
            if d >= self.warmup:
                self.automation.append(Scenario("nightly_backup", [s.key], start, t))
            return
        if s.role == "scrub":
            if d % 3:
                return
            t = start = d0 + 0.5 * 3600 + rng.uniform(0, 1800)
            b = s.buckets[0]
            rate = rng.uniform(40, 60)
            for key, level in self.inst.objects[b]:
                t += rng.expovariate(rate / 60.0)
                self.emit(t, s, "GetObject", bucket=b, key=key, level=level)
            if d >= self.warmup:
                self.automation.append(Scenario("integrity_scrub", [s.key], start, t))
            return
        if s.role == "sequencer":
            b = s.buckets[0]
            n = 0
            for ts in self._times(d0, d0 + DAY, rng.uniform(1.0, 3.0)):
                level = 2 if rng.random() < 0.8 else 3
                key = f"runs/{d:03d}/read-{n:06d}.fastq"
                n += 1
                self.emit(ts, s, "PutObject", bucket=b, key=key, level=level, bytes_in=2_500_000)
                self.emit(ts + 0.5, s, "HeadObject", bucket=b, key=key, level=level)
            if d >= self.warmup:
                self.automation.append(Scenario("ingest", [s.key], d0, d0 + DAY))
            return
        if s.role == "curator":
            if weekday >= 5:
                return
            t = start = d0 + 21 * 3600 + rng.uniform(0, 1800)
            b = s.buckets[0]
            objs = self.inst.objects[b]
            lo = rng.randrange(len(objs) // 2)
            for key, level in objs[lo:lo + rng.randint(60, 150)]:      # one cohort, exported
                t += rng.expovariate(30 / 60.0)
                self.emit(t, s, "GetObject", bucket=b, key=key, level=level)
            if d >= self.warmup:
                self.automation.append(Scenario("cohort_export", [s.key], start, t))
            return
        if s.role == "admin":
            for ts in self._times(d0 + 7 * 3600, d0 + 18 * 3600, 0.08):
                self.emit(ts, s, rng.choice(("ListBuckets", "ListObjectsV2", "GetBucketVersioning")),
                          bucket=rng.choice(s.buckets), bytes_out=1500)
            return
        if s.role == "clinician":
            if (d + s.shift * 2) % 4 >= 2:
                return                                # two on, two off
            begin = d0 + (7 if s.shift == 0 else 19) * 3600 + rng.uniform(-1200, 600)
            end = begin + 12 * 3600
        elif s.role == "researcher":
            if weekday >= 5 and rng.random() < 0.8:
                return
            begin = d0 + rng.uniform(8.0, 13.0) * 3600
            end = begin + rng.uniform(3.0, 10.0) * 3600
        else:
            if weekday >= 5:
                return
            begin = d0 + rng.uniform(7.5, 9.5) * 3600
            end = begin + rng.uniform(6.0, 8.5) * 3600
        for ts in self._times(begin, end, s.rate):
            if rng.random() < 0.5:
                self.work(s, ts)
        if s.role == "researcher" and rng.random() < 0.35:     # pulls a study subset to analyse
            t = rng.uniform(begin, end)
            b = rng.choice(s.buckets)
            for ts in self._times(t, t + rng.uniform(60, 300), rng.uniform(15, 60)):
                key, level = self.inst.pick(b, s.usual, s.hot)
                self.emit(ts, s, "GetObject", bucket=b, key=key, level=level)

    def rclone(self, s: Staff, t: float) -> None:
        """`rclone sync` of 300 result files in 25 directories at 8 transfers, then `rclone check`."""
        rng = self.rng
        b = s.buckets[0]
        dirs = [f"sync/batch{k:02d}/" for k in range(25)]
        start = t
        for d in dirs:
            t += rng.uniform(0.01, 0.1)
            self.emit(t, s, "ListObjectsV2", bucket=b, key=d, bytes_out=400)
        for i in range(300):
            t += rng.uniform(0.02, 0.12)
            self.emit(t, s, "PutObject", bucket=b, key=f"{dirs[i % 25]}res-{i:04d}.csv", level=0,
                      bytes_in=60_000)
        t += 1.0
        for d in dirs:
            t += rng.uniform(0.01, 0.1)
            self.emit(t, s, "ListObjectsV2", bucket=b, key=d, bytes_out=6000)
        self.automation.append(Scenario("rclone_sync", [s.key], start, t, b, 300))

    # ------------------------------------------------------------------ attacks
    def _at(self, night: bool) -> float:
        d = self.rng.randint(self.warmup, self.days - 1)
        hour = self.rng.uniform(0.0, 5.0) if night else self.rng.uniform(8.0, 16.0)
        return H2START + d * DAY + hour * 3600

    def _user(self, roles: tuple[str, ...] = ("clinician", "researcher", "coordinator"),
              max_usual: int = 4) -> Staff:
        s = self.rng.choice([q for q in self.staff if q.role in roles and q.key not in self.used
                             and q.usual <= max_usual])
        self.used.add(s.key)
        return s

    def _read_all(self, kind: str, s: Staff, t: float, per_min: float, source: str, *,
                  streams: int = 1, share: float = 1.0, shuffle: bool = False) -> None:
        rng = self.rng
        b = rng.choice(s.buckets)
        objs = list(self.inst.objects[b])
        if shuffle:
            rng.shuffle(objs)
        objs = objs[:max(1, int(len(objs) * share))]
        start = t
        clocks = [t + k * 0.2 for k in range(streams)]
        for i, (key, level) in enumerate(objs):
            k = i % streams
            clocks[k] += rng.expovariate(per_min / streams / 60.0)
            denied = level > s.clearance
            self.emit(clocks[k], s, "GetObject", source=source, bucket=b, key=key, level=level,
                      error="AccessDenied" if denied else "")
        self.attacks.append(Scenario(kind, [s.key], start, max(clocks), b, len(self.inst.objects[b])))

    def inject(self, kind: str, n: int) -> None:
        rng = self.rng
        outside = f"91.{rng.randint(10, 250)}.{rng.randint(0, 250)}.{rng.randint(2, 250)}"
        if kind == "bulk_exfil":
            self._read_all(kind, self._user(), self._at(rng.random() < 0.5), rng.uniform(150, 800),
                           outside, streams=rng.randint(1, 4), shuffle=rng.random() < 0.5)
        elif kind == "paced_copy":
            self._read_all(kind, self._user(), self._at(rng.random() < 0.5), rng.uniform(40, 80),
                           outside)
        elif kind == "slow_exfil":
            s = self._user()
            pace = SLOW_PACES[(n + rng.randrange(len(SLOW_PACES))) % len(SLOW_PACES)]
            self._read_all(kind, s, self._at(False), pace, s.address,
                           share=rng.uniform(0.6, 1.0), shuffle=rng.random() < 0.5)
        elif kind == "label_climb":
            s = self._user(max_usual=2)
            lo, hi = CLIMB_GAPS[(n + rng.randrange(len(CLIMB_GAPS))) % len(CLIMB_GAPS)]
            reads = rng.randint(10, 40)
            above = sorted({o for bb in s.buckets for o in self.inst.objects[bb] if o[1] > s.usual},
                           key=lambda o: o[1])
            b = s.buckets[0]
            t = start = self._at(rng.random() < 0.3)
            for i in range(reads):
                t += rng.uniform(lo, hi)
                if above:                           # climbs: lower levels first
                    key, level = above[min(len(above) - 1, (i * len(above)) // reads + rng.randrange(3))]
                else:
                    key, level = f"identifiers/x-{i}", min(4, s.usual + 1 + i * 2 // reads)
                for bb in s.buckets:
                    if any(o[0] == key for o in self.inst.objects[bb]):
                        b = bb
                        break
                self.emit(t, s, "GetObject", bucket=b, key=key, level=level,
                          error="AccessDenied" if level > s.clearance else "")
                if rng.random() < 0.5:              # ordinary work in between
                    self.work(s, t + rng.uniform(1, 15))
            self.attacks.append(Scenario(kind, [s.key], start, t))
        elif kind in ("overwrite", "copy_in_place"):
            s = self._user()
            b = rng.choice(s.buckets)
            source = outside if rng.random() < 0.5 else s.address
            t = start = self._at(rng.random() < 0.6)
            per_min = rng.uniform(20, 120)
            rename = kind == "overwrite" and rng.random() < 0.5
            for key, level in self.inst.objects[b]:
                t += rng.expovariate(per_min / 60.0)
                if kind == "copy_in_place":
                    self.emit(t, s, "CopyObject", source=source, bucket=b, key=key, level=level)
                    continue
                self.emit(t, s, "GetObject", source=source, bucket=b, key=key, level=level)
                if rename:
                    self.emit(t + 0.3, s, "PutObject", source=source, bucket=b, key=key + ".enc",
                              level=level, bytes_in=900_000)
                    self.emit(t + 0.4, s, "DeleteObject", source=source, bucket=b, key=key)
                else:
                    self.emit(t + 0.3, s, "PutObject", source=source, bucket=b, key=key, level=level,
                              bytes_in=900_000)
            self.attacks.append(Scenario(kind, [s.key], start, t, b, len(self.inst.objects[b])))
        elif kind == "wiper":
            s = self._user()
            b = rng.choice(s.buckets)
            objs = self.inst.objects[b]
            t = start = self._at(True)
            batches: list[list[float]] = []
            step = rng.randint(10, 60)
            for i in range(0, len(objs), step):
                t += rng.uniform(3, 20)
                chunk = objs[i:i + step]
                self.emit(t, s, "ListObjectsV2", bucket=b, bytes_out=20_000)
                self.emit(t + 0.5, s, "DeleteObjects", bucket=b,
                          bytes_in=60 + sum(len(k) + 30 for k, _ in chunk))
                batches.append([t + 0.5, float(len(chunk))])
            self.attacks.append(Scenario(kind, [s.key], start, t + 0.5, b, len(objs), batches))
        elif kind == "slow_stuffing":
            net = f"62.{rng.randint(10, 250)}.{rng.randint(0, 250)}"
            sources = [f"{net}.{rng.randint(2, 250)}" for _ in range(rng.randint(2, 5))]
            t = start = self._at(rng.random() < 0.5)
            end = t + rng.uniform(2, 6) * 3600
            per_min = rng.uniform(1.0, 4.0)
            victims = [q for q in self.staff if q.role in ("clinician", "researcher", "coordinator")]
            while t < end:
                t += rng.expovariate(per_min / 60.0)
                src = rng.choice(sources)
                if rng.random() < 0.2:
                    self.emit(t, rng.choice(victims), "ListBuckets", source=src,
                              error="SignatureDoesNotMatch")
                else:
                    self.emit(t, None, "ListBuckets", key_id=f"AKIA{rng.getrandbits(64):016X}",
                              source=src, error="InvalidAccessKeyId")
            self.attacks.append(Scenario(kind, sources, start, t))
        elif kind == "slow_probing":
            ops = ("PutBucketPolicy", "GetBucketAcl", "DeleteBucket", "PutBucketReplication",
                   "CreateBucket", "PutObject", "GetObject", "DeleteObject", "ListObjectsV2",
                   "PutBucketVersioning", "PutObjectLockConfiguration", "GetBucketPolicy")
            others = [b for bs in self.inst.accounts.values() for b in bs]
            s = self._user()
            source = outside
            t = start = self._at(rng.random() < 0.5)
            end = t + rng.uniform(30, 120) * 60
            per_min = rng.uniform(2.0, 8.0)
            while t < end:
                t += rng.expovariate(per_min / 60.0)
                self.emit(t, s, rng.choice(ops), source=source, bucket=rng.choice(others),
                          key="probe", error="AccessDenied")
            self.attacks.append(Scenario(kind, [s.key], start, t))

    def run(self) -> HeldoutTrace:
        for s in self.staff:
            for d in range(self.days):
                self.day(s, d)
        admin = next(q for q in self.staff if q.role == "admin")
        for d in range(self.days):
            if d % 2 == 1:                  # the admin syncs every other day
                self.rclone(admin, H2START + d * DAY + self.rng.uniform(16, 18) * 3600)
        self.automation = [a for a in self.automation if a.kind != "rclone_sync"
                           or a.start >= H2START + self.warmup * DAY]
        for kind in ATTACKS:
            for n in range(self.per_kind):
                self.inject(kind, n)
        self.events.sort(key=lambda e: e.ts)
        sizes = {b: len(o) for b, o in self.inst.objects.items()}
        people = sum(1 for s in self.staff)
        return HeldoutTrace(self.events, self.attacks, self.automation, people, self.days,
                            self.warmup, sizes, H2START)


def generate(seed: int, people: int = 36, days: int = 7, warmup_days: int = 5,
             per_kind: int = 2) -> HeldoutTrace:
    return Generator2(seed, people, days, warmup_days, per_kind).run()


def run(seeds: list[int] | tuple[int, ...], people: int = 36, days: int = 7,
        warmup_days: int = 5) -> he.HeldoutResult:
    """heldout_eval's replay and scoring, on this family's traces."""
    result = he.HeldoutResult()
    for seed in seeds:
        trace = generate(seed, people, days, warmup_days)
        started = time.perf_counter()
        alerts, actions, served = he.replay(trace)
        result.seconds += time.perf_counter() - started
        result.events += len(trace.events)
        result.seeds.append(seed)
        he.score(trace, alerts, actions, served, result)
    return result
