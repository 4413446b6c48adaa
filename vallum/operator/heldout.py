"""A held-out scenario family for the operator: frozen, never used for tuning.

Why a second generator: simulate.py was written next to the detectors, so figures
measured on its traces flatter them. This one is written apart from it, with another
organisation (a naval engineering directorate working shifts round the clock), other
rhythms (rotas, a nightly backup, a 24/7 ingest service, a tenant admin running
rclone), buckets of known size (so "fraction of the bucket that left" is measurable)
and attack kinds and parameters simulate.py does not have: slow-and-low reads,
ransomware overwrite / rename, DeleteObjects wipers, copy-in-place, credential
stuffing and probing paced under per-minute bars, a paced whole-bucket copy.

Frozen: detectors are tuned on simulate.py's tuning seeds only. Changing this file
or heldout_eval.py to make a detector look better defeats its purpose; a change to
it must be its own commit, made before (never after) the detector change it is
meant to measure.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from vallum.operator.request_events import RequestEvent

HSTART = 1706745600.0          # Thursday 2024-02-01 00:00 UTC: not simulate.py's Monday
DAY = 86400.0
HELDOUT_SEEDS = (9001, 9002, 9003)
ATTACKS = ("bulk_exfil", "slow_exfil", "paced_copy", "label_climb", "overwrite", "wiper",
           "copy_in_place", "slow_stuffing", "slow_probing")
AUTOMATION = ("nightly_backup", "rclone_sync", "ingest")
DEPARTMENTS = (("hull", 0), ("propulsion", 1), ("sonar", 2), ("weapons", 3), ("comms", 2),
               ("logistics", 0), ("personnel", 1), ("trials", 2))


@dataclass
class Scenario:
    """One attack (or one run of automation) and what it targeted."""
    kind: str
    entities: list[str]                 # access key ids, or source addresses (stuffing)
    start: float
    end: float
    bucket: str = ""
    bucket_size: int = 0
    batches: list[list[float]] = field(default_factory=list)   # DeleteObjects: [ts, keys]


@dataclass
class Person:
    key: str
    account: str
    role: str          # watch | engineer | analyst | backup | ingest | admin
    clearance: int
    usual: int         # highest level its everyday reads reach
    address: str
    buckets: list[str]
    shift: int = 0     # watch: 0 = 06-14, 1 = 14-22, 2 = 22-06
    rate: float = 1.0


@dataclass
class HeldoutTrace:
    events: list[RequestEvent]
    attacks: list[Scenario]
    automation: list[Scenario]
    people: int
    days: int
    warmup_days: int
    bucket_sizes: dict[str, int]
    start: float = HSTART

    @property
    def scored_from(self) -> float:
        return self.start + self.warmup_days * DAY

    @property
    def principal_days(self) -> float:
        return self.people * (self.days - self.warmup_days)


class Yard:
    """The organisation: three accounts, each with buckets of known objects."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.objects: dict[str, list[tuple[str, int]]] = {}
        self.accounts: dict[str, list[str]] = {}
        for acct in ("dockyard", "fleet-eng", "trials-unit"):
            names = [f"{acct}-{suffix}" for suffix in rng.sample(
                ("drawings", "reports", "telemetry", "archive", "manuals"), 3)]
            self.accounts[acct] = names
            for b in names:
                depts = rng.sample(DEPARTMENTS, rng.randint(3, 5))
                size = rng.randint(150, 450)
                objs = []
                for n in range(size):
                    dept, level = depts[n % len(depts)]
                    year = 2019 + (n // len(depts)) % 6
                    objs.append((f"{dept}/{year}/doc-{n:04d}.pdf", level))
                self.objects[b] = objs

    def pick(self, bucket: str, max_level: int) -> tuple[str, int]:
        objs = self.objects[bucket]
        for _ in range(8):
            key, level = self.rng.choice(objs)
            if level <= max_level:
                return key, level
        return objs[0]


def _addr(prefix: str, rng: random.Random) -> str:
    return f"{prefix}.{rng.randint(2, 250)}"


class HeldoutGenerator:
    def __init__(self, seed: int, people: int = 30, days: int = 6, warmup_days: int = 4,
                 per_kind: int = 2) -> None:
        self.rng = random.Random(seed * 7919 + 13)
        self.days, self.warmup, self.per_kind = days, warmup_days, per_kind
        self.yard = Yard(self.rng)
        self.events: list[RequestEvent] = []
        self.attacks: list[Scenario] = []
        self.automation: list[Scenario] = []
        self.people = [self._person(i) for i in range(people)]
        for a, acct in enumerate(sorted(self.yard.accounts)):
            self.people.append(Person(f"AKHOADM{a:02d}{acct[:3].upper()}X", acct, "admin", 3, 1,
                                      f"172.20.{a}.10", list(self.yard.accounts[acct])))
        acct = sorted(self.yard.accounts)[0]
        self.people.append(Person("AKHOBACKUP0001X", acct, "backup", 4, 3, "172.20.9.5",
                                  self.yard.accounts[acct][:2]))
        acct = sorted(self.yard.accounts)[1]
        self.people.append(Person("AKHOINGEST0001X", acct, "ingest", 4, 1, "172.20.9.6",
                                  self.yard.accounts[acct][:1]))

    def _person(self, i: int) -> Person:
        rng = self.rng
        acct = rng.choice(sorted(self.yard.accounts))
        role = rng.choices(("watch", "engineer", "analyst"), weights=(40, 35, 25))[0]
        clearance = rng.choice((1, 2, 2, 3, 3, 4))
        usual = max(0, clearance - rng.choice((0, 1, 1)))
        buckets = rng.sample(self.yard.accounts[acct], rng.randint(1, 3))
        rate = {"watch": rng.uniform(0.4, 1.2), "engineer": rng.uniform(0.3, 1.0),
                "analyst": rng.uniform(0.8, 2.5)}[role]
        return Person(f"AKHO{i:05d}{acct[:2].upper()}USR", acct, role, clearance, usual,
                      f"10.{40 + i % 7}.{rng.randint(0, 60)}.{rng.randint(2, 250)}", buckets,
                      rng.randint(0, 2), rate)

    # ------------------------------------------------------------------ emitting
    def emit(self, ts: float, p: Person | None, op: str, *, key_id: str | None = None,
             source: str | None = None, bucket: str = "", key: str = "", level: int = -1,
             error: str = "", bytes_in: int = 0, bytes_out: int = 0) -> None:
        status = {"": 200, "AccessDenied": 403, "NoSuchKey": 404, "InvalidAccessKeyId": 403,
                  "SignatureDoesNotMatch": 403}.get(error, 400)
        if op == "GetObject" and not error and not bytes_out:
            bytes_out = self.rng.choice((30_000, 250_000, 1_500_000, 6_000_000))
        auth_failed = error in ("InvalidAccessKeyId", "SignatureDoesNotMatch")
        self.events.append(RequestEvent(
            ts, key_id if key_id is not None else (p.key if p else ""),
            "" if auth_failed or p is None else p.account, source or (p.address if p else ""),
            op, bucket, key, status, error, bytes_in, bytes_out, -1 if error else level))

    def _times(self, t0: float, t1: float, per_min: float):
        ts = t0
        while True:
            ts += self.rng.expovariate(per_min / 60.0)
            if ts >= t1:
                return
            yield ts

    def work(self, p: Person, ts: float, source: str | None = None) -> None:
        rng = self.rng
        b = rng.choice(p.buckets)
        op = rng.choices(("GetObject", "HeadObject", "PutObject", "ListObjectsV2"),
                         weights={"watch": (55, 15, 15, 15), "engineer": (35, 10, 40, 15),
                                  "analyst": (70, 10, 5, 15)}[p.role])[0]
        key, level = self.yard.pick(b, p.usual)
        if op == "ListObjectsV2":
            self.emit(ts, p, op, source=source, bucket=b, key=key.split("/")[0] + "/", bytes_out=4000)
        elif op == "PutObject":
            self.emit(ts, p, op, source=source, bucket=b, key=key.replace("doc-", "note-"),
                      level=level, bytes_in=rng.choice((20_000, 200_000, 900_000)))
        else:
            err = "NoSuchKey" if rng.random() < 0.04 else ""
            self.emit(ts, p, op, source=source, bucket=b, key=key, level=level, error=err)

    # ------------------------------------------------------------------ normal life
    def day(self, p: Person, d: int) -> None:
        rng = self.rng
        d0 = HSTART + d * DAY
        weekday = (d + 3) % 7              # HSTART is a Thursday
        if p.role == "backup":
            t = d0 + 3600 + rng.uniform(-600, 600)
            if d >= self.warmup:
                self.automation.append(Scenario("nightly_backup", [p.key], t, t + 3600))
            for b in p.buckets:
                rate = rng.uniform(150, 250)
                self.emit(t, p, "ListObjectsV2", bucket=b, bytes_out=60_000)
                for key, level in self.yard.objects[b]:
                    t += rng.expovariate(rate / 60.0)
                    self.emit(t, p, "GetObject", bucket=b, key=key, level=level)
            return
        if p.role == "ingest":
            b = p.buckets[0]
            feed = rng.random() < 0.35 and d >= 1
            burst_at = d0 + rng.uniform(2, 22) * 3600 if feed else -1.0
            n = 0
            for ts in self._times(d0, d0 + DAY, rng.uniform(2.0, 4.0)):
                level = 1 if rng.random() < 0.9 else 0
                if 0 <= ts - burst_at < 900:
                    level = 3                    # a SECRET feed arrives now and then
                key = f"ingest/{d:03d}/{n:06d}.dat"
                n += 1
                self.emit(ts, p, "PutObject", bucket=b, key=key, level=level, bytes_in=80_000)
                self.emit(ts + 0.3, p, "HeadObject", bucket=b, key=key, level=level)
            if feed and d >= self.warmup:
                self.automation.append(Scenario("ingest", [p.key], burst_at, burst_at + 900))
            return
        if p.role == "admin":
            for ts in self._times(d0 + 8 * 3600, d0 + 16 * 3600, 0.1):
                b = rng.choice(p.buckets)
                self.emit(ts, p, rng.choice(("ListBuckets", "ListObjectsV2", "GetBucketPolicy")),
                          bucket=b, bytes_out=2000)
            return
        if p.role == "watch":
            if d % 6 >= 4:
                return                            # two days off in six
            begin = d0 + (6 + 8 * p.shift) * 3600 + rng.uniform(-900, 900)
            end = begin + 8 * 3600
        else:
            if weekday >= 5:
                return
            begin = d0 + rng.uniform(6.5, 9.0) * 3600
            end = begin + rng.uniform(7.5, 9.5) * 3600
        for ts in self._times(begin, end, p.rate):
            if rng.random() < 0.55:
                self.work(p, ts)
        if p.role == "engineer" and rng.random() < 0.3:      # a build pushes its artefacts
            t = rng.uniform(begin, end)
            b = p.buckets[0]
            for k, ts in enumerate(self._times(t, t + 120, rng.uniform(15, 40))):
                self.emit(ts, p, "PutObject", bucket=b, key=f"builds/{d}/{k:04d}.bin",
                          level=0, bytes_in=500_000)

    def rclone(self, p: Person, t: float) -> None:
        """`rclone sync ./dir remote:bucket/upload` of 500 files in 40 directories, then
        `rclone check`: a directory listing each (4 checkers, in seconds), the uploads at
        four transfers, then the check's listings again."""
        rng = self.rng
        b = p.buckets[0]
        dirs = [f"upload/set{k:02d}/" for k in range(40)]
        files = [(dirs[i % 40], f"file-{i:04d}.dat") for i in range(500)]
        start = t
        for d in dirs:
            t += rng.uniform(0.02, 0.2)
            self.emit(t, p, "ListObjectsV2", bucket=b, key=d, bytes_out=300)
        for d, name in files:
            t += rng.uniform(0.05, 0.25)
            self.emit(t, p, "PutObject", bucket=b, key=d + name, level=0, bytes_in=120_000)
        t += 2.0
        for d in dirs:
            t += rng.uniform(0.02, 0.2)
            self.emit(t, p, "ListObjectsV2", bucket=b, key=d, bytes_out=5000)
        self.automation.append(Scenario("rclone_sync", [p.key], start, t, b, 500))

    # ------------------------------------------------------------------ attacks
    def _at(self, night: bool) -> float:
        d = self.rng.randint(self.warmup, self.days - 1)
        hour = self.rng.uniform(0.5, 4.0) if night else self.rng.uniform(9.5, 15.0)
        return HSTART + d * DAY + hour * 3600

    def _user(self, roles: tuple[str, ...] = ("watch", "engineer", "analyst")) -> Person:
        return self.rng.choice([q for q in self.people if q.role in roles])

    def _sweep(self, kind: str, p: Person, t: float, per_min: float, source: str,
               streams: int = 1, limit: int | None = None) -> None:
        """Read a bucket's objects in order (a copy tool), ``streams`` interleaved."""
        rng = self.rng
        b = rng.choice(p.buckets)
        objs = self.yard.objects[b][:limit] if limit else self.yard.objects[b]
        start = t
        clocks = [t + k * 0.1 for k in range(streams)]
        for i, (key, level) in enumerate(objs):
            s = i % streams
            clocks[s] += rng.expovariate(per_min / streams / 60.0)
            self.emit(clocks[s], p, "GetObject", source=source, bucket=b, key=key, level=level)
        self.attacks.append(Scenario(kind, [p.key], start, max(clocks), b, len(self.yard.objects[b])))

    def inject(self, kind: str) -> None:
        rng = self.rng
        outside = f"185.{rng.randint(10, 250)}.{rng.randint(0, 250)}"
        if kind == "bulk_exfil":
            p = self._user()
            self._sweep(kind, p, self._at(rng.random() < 0.5), rng.uniform(200, 600),
                        _addr(outside, rng), streams=rng.randint(1, 3))
        elif kind == "paced_copy":
            p = self._user()
            self._sweep(kind, p, self._at(False), 90.0, _addr(outside, rng))
        elif kind == "slow_exfil":
            p = self._user(("engineer", "watch"))     # light readers: 25/min is far past their day
            t = self._at(False) if p.role == "engineer" else \
                HSTART + rng.randint(self.warmup, self.days - 1) * DAY + (7 + 8 * p.shift) * 3600
            self._sweep(kind, p, t, 25.0, p.address)
        elif kind == "label_climb":
            p = rng.choice([q for q in self.people if q.role in ("watch", "engineer", "analyst")
                            and q.usual + 1 < len(DEPARTMENTS) and q.usual <= 2])
            t = start = self._at(False)
            for i in range(30):
                t += rng.uniform(20, 90)
                b = rng.choice(p.buckets)
                above = [o for bb in p.buckets for o in self.yard.objects[bb] if o[1] > p.usual]
                key, level = rng.choice(above) if above else (f"x/{i}", min(4, p.usual + 1))
                denied = level > p.clearance
                self.emit(t, p, "GetObject", bucket=b, key=key, level=level,
                          error="AccessDenied" if denied else "")
                self.work(p, t + rng.uniform(1, 15))
            self.attacks.append(Scenario(kind, [p.key], start, t))
        elif kind in ("overwrite", "copy_in_place"):
            p = self._user()
            stolen = rng.random() < 0.5
            source = _addr(outside, rng) if stolen else p.address
            b = rng.choice(p.buckets)
            t = start = self._at(rng.random() < 0.5)
            per_min = rng.uniform(40, 150)
            rename = kind == "overwrite" and rng.random() < 0.5
            for key, level in self.yard.objects[b]:
                t += rng.expovariate(per_min / 60.0)
                if kind == "copy_in_place":
                    self.emit(t, p, "CopyObject", source=source, bucket=b, key=key, level=level)
                    continue
                self.emit(t, p, "GetObject", source=source, bucket=b, key=key, level=level)
                if rename:
                    self.emit(t + 0.2, p, "PutObject", source=source, bucket=b, key=key + ".locked",
                              level=level, bytes_in=300_000)
                    self.emit(t + 0.3, p, "DeleteObject", source=source, bucket=b, key=key)
                else:
                    self.emit(t + 0.2, p, "PutObject", source=source, bucket=b, key=key, level=level,
                              bytes_in=300_000)
            self.attacks.append(Scenario(kind, [p.key], start, t, b, len(self.yard.objects[b])))
        elif kind == "wiper":
            p = self._user()
            b = rng.choice(p.buckets)
            objs = self.yard.objects[b]
            t = start = self._at(True)
            self.emit(t, p, "ListObjectsV2", bucket=b, bytes_out=80_000)
            batches: list[list[float]] = []
            step = rng.randint(20, 100)
            for i in range(0, len(objs), step):
                t += rng.uniform(2, 10)
                chunk = objs[i:i + step]
                body = 60 + sum(len(k) + 30 for k, _ in chunk)
                self.emit(t, p, "DeleteObjects", bucket=b, bytes_in=body)
                batches.append([t, float(len(chunk))])
            self.attacks.append(Scenario(kind, [p.key], start, t, b, len(objs), batches))
        elif kind == "slow_stuffing":
            net = f"45.{rng.randint(10, 250)}.{rng.randint(0, 250)}"
            sources = [f"{net}.{rng.randint(2, 250)}" for _ in range(3)]
            t = start = self._at(rng.random() < 0.5)
            end = t + rng.uniform(3, 5) * 3600
            victims = [q for q in self.people if q.role in ("watch", "engineer", "analyst")]
            while t < end:
                t += rng.expovariate(2.5 / 60.0)
                src = rng.choice(sources)
                if rng.random() < 0.3:
                    self.emit(t, rng.choice(victims), "ListBuckets", source=src,
                              error="SignatureDoesNotMatch")
                else:
                    self.emit(t, None, "ListBuckets", key_id=f"AKIA{rng.getrandbits(64):016X}",
                              source=src, error="InvalidAccessKeyId")
            self.attacks.append(Scenario(kind, sources, start, t))
        elif kind == "slow_probing":
            ops = ("PutBucketPolicy", "GetBucketPolicy", "DeleteBucket", "PutBucketAcl",
                   "CreateBucket", "PutObject", "GetObject", "DeleteObject", "ListObjectsV2",
                   "PutBucketVersioning", "GetBucketEncryption", "PutBucketLifecycleConfiguration")
            others = [b for bs in self.yard.accounts.values() for b in bs]
            source = _addr(outside, rng)
            first, second = rng.sample([q for q in self.people if q.role in ("watch", "engineer", "analyst")], 2)
            t = start = self._at(rng.random() < 0.5)
            end = t + rng.uniform(40, 90) * 60
            while t < end:
                t += rng.expovariate(5.0 / 60.0)
                self.emit(t, first, rng.choice(ops), source=source, bucket=rng.choice(others),
                          key="probe", error="AccessDenied")
            self.attacks.append(Scenario(kind, [first.key], start, t))
            t2 = start2 = t + rng.uniform(60, 600)
            for _ in range(30):                   # then a second stolen key, same source
                t2 += rng.uniform(5, 30)
                self.emit(t2, second, rng.choice(ops), source=source, bucket=rng.choice(others),
                          key="probe", error="AccessDenied")
            self.attacks.append(Scenario(kind, [second.key], start2, t2))

    def run(self) -> HeldoutTrace:
        for p in self.people:
            for d in range(self.days):
                self.day(p, d)
        admin = next(q for q in self.people if q.role == "admin")
        self.rclone(admin, HSTART + self.warmup * DAY + self.rng.uniform(10, 15) * 3600)
        for kind in ATTACKS:
            for _ in range(self.per_kind):
                self.inject(kind)
        self.events.sort(key=lambda e: e.ts)
        sizes = {b: len(o) for b, o in self.yard.objects.items()}
        return HeldoutTrace(self.events, self.attacks, self.automation, len(self.people),
                            self.days, self.warmup, sizes)


def generate(seed: int, people: int = 30, days: int = 6, warmup_days: int = 4,
             per_kind: int = 2) -> HeldoutTrace:
    return HeldoutGenerator(seed, people, days, warmup_days, per_kind).run()
