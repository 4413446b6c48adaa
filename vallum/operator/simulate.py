"""Synthetic multi-day traffic for many principals, with labelled injected incidents.

Why synthetic: real incidents are rare and unlabelled; a generator that mixes the
hard parts of normal life (working hours, weekly cycles, nightly batch jobs,
analysts pulling a dataset, inventory scripts, forgotten crons with dead keys,
travel, late nights) with labelled attacks of every kind is what lets precision,
recall and time-to-detect be *measured*. The first ``warmup_days`` carry no
incident: the operator learns during them (observe mode) and they are not scored.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vallum.operator.alerts import KINDS
from vallum.operator.request_events import RequestEvent

START = 1704067200.0          # Monday 2024-01-01 00:00 UTC
DAY = 86400.0
GET_SIZES = (4_000, 40_000, 400_000, 2_000_000)


@dataclass
class Incident:
    kind: str
    entity: str                       # access key id, or source address (credential stuffing)
    start: float
    end: float
    also: list[str] = field(default_factory=list)   # other kinds it truly is as well

    @property
    def kinds(self) -> set[str]:
        return {self.kind, *self.also}


@dataclass
class Principal:
    key: str
    account: str
    role: str                         # office | batch | service | admin | analyst
    clearance: int
    home: list[str]
    buckets: list[str]
    start_hour: float = 9.0
    end_hour: float = 17.0
    rate: float = 1.0                 # requests per active minute
    batch_hour: float = 2.0


@dataclass
class Trace:
    events: list[RequestEvent]
    incidents: list[Incident]
    principals: int
    days: int
    warmup_days: int
    start: float = START

    @property
    def scored_from(self) -> float:
        return self.start + self.warmup_days * DAY

    @property
    def principal_days(self) -> float:
        return self.principals * (self.days - self.warmup_days)


class World:
    def __init__(self, rng: random.Random, accounts: int) -> None:
        self.rng = rng
        self.prefixes: dict[str, list[tuple[str, int]]] = {}     # bucket -> [(prefix, level)]
        self.buckets: dict[str, list[str]] = {}
        for a in range(accounts):
            acct = f"acct{a:02d}"
            names = [f"{acct}-data{j}" for j in range(rng.randint(2, 4))]
            self.buckets[acct] = names
            for b in names:
                self.prefixes[b] = [(f"p{i:02d}", min(4, int(rng.expovariate(1.2))))
                                    for i in range(rng.randint(6, 20))]

    def key_in(self, bucket: str, max_level: int, prefix_pool: int | None = None) -> tuple[str, int]:
        rng = self.rng
        options = [p for p in self.prefixes[bucket] if p[1] <= max_level] or self.prefixes[bucket][:1]
        if prefix_pool is not None:
            options = options[:prefix_pool]
        prefix, level = rng.choice(options)
        return f"{prefix}/obj{rng.randint(0, 300):05d}", level


def _ip(net: str, rng: random.Random) -> str:
    return f"{net}.{rng.randint(1, 254)}.{rng.randint(1, 254)}"


class Generator:
    def __init__(self, seed: int, principals: int, days: int, warmup_days: int = 3,
                 incidents_per_kind: int | None = None) -> None:
        self.rng = random.Random(seed)
        self.n, self.days, self.warmup = principals, days, warmup_days
        self.per_kind = incidents_per_kind or max(2, principals // 15)
        self.world = World(self.rng, max(2, principals // 12))
        self.events: list[RequestEvent] = []
        self.incidents: list[Incident] = []
        self.people = [self._principal(i) for i in range(principals)]
        self.backups = self._backups(random.Random(seed * 31 + 5), max(1, principals // 60))

    def _backups(self, rng: random.Random, n: int) -> list[Principal]:
        """Automation that reads whole buckets every night (its own random stream, so the
        rest of the trace is what it was without it): must never be contained."""
        out = []
        for i in range(n):
            acct = rng.choice(sorted(self.world.buckets))
            names = self.world.buckets[acct]
            out.append(Principal(key=f"AKIABACKUP{i:02d}{acct[4:]}SIM", account=acct, role="backup",
                                 clearance=4, home=[_ip(f"10.{int(acct[4:])}", rng)],
                                 buckets=rng.sample(names, min(2, len(names))),
                                 batch_hour=rng.uniform(0.5, 4.0), rate=rng.uniform(150, 400)))
        return out

    def backup_night(self, p: Principal, day: int, rng: random.Random) -> None:
        """Every object of its buckets, in key order, at its pace."""
        ts = START + day * DAY + p.batch_hour * 3600 + rng.uniform(-600, 600)
        for b in p.buckets:
            self.emit(p, ts, "ListObjectsV2", bucket=b, bytes_out=100_000)
            for prefix, level in self.world.prefixes[b]:
                for k in range(301):
                    ts += rng.expovariate(p.rate / 60.0)
                    self.emit(p, ts, "GetObject", bucket=b, key=f"{prefix}/obj{k:05d}", level=level,
                              bytes_out=40_000)

    # ---------------------------------------------------------------- population
    def _principal(self, i: int) -> Principal:
        rng = self.rng
        acct = rng.choice(sorted(self.world.buckets))
        a = int(acct[4:])
        role = rng.choices(("office", "batch", "service", "admin", "analyst"),
                           weights=(45, 12, 18, 10, 15))[0]
        home = [_ip(f"10.{a}", rng)] if role in ("batch", "service") else \
            [_ip(f"10.{a}", rng) for _ in range(rng.randint(1, 2))]
        p = Principal(key=f"AKIA{i:06d}{a:02d}SIM", account=acct, role=role,
                      clearance=rng.choice((0, 1, 1, 2, 2, 3)), home=home,
                      buckets=rng.sample(self.world.buckets[acct], k=rng.randint(1, len(self.world.buckets[acct]))))
        p.start_hour = rng.uniform(6.5, 10.0)
        p.end_hour = p.start_hour + rng.uniform(7.5, 10.0)
        p.rate = {"office": rng.uniform(0.3, 2.0), "analyst": rng.uniform(0.5, 3.0),
                  "admin": rng.uniform(0.5, 2.0), "service": rng.uniform(0.3, 3.0),
                  "batch": rng.uniform(0.1, 0.3)}[role]
        p.batch_hour = rng.uniform(0.0, 5.0)
        return p

    def emit(self, p: Principal, ts: float, op: str, *, source: str | None = None,
             bucket: str | None = None, key: str = "", level: int = -1, error: str = "",
             bytes_out: int = 0, bytes_in: int = 0, principal: str | None = None) -> None:
        status = {"": 200, "AccessDenied": 403, "NoSuchKey": 404, "NoSuchBucket": 404,
                  "InvalidAccessKeyId": 403, "SignatureDoesNotMatch": 403}.get(error, 400)
        if op in ("GetObject",) and not error and not bytes_out:
            bytes_out = self.rng.choice(GET_SIZES)
        self.events.append(RequestEvent(
            ts=ts, principal=p.key if principal is None else principal,
            account="" if error in ("InvalidAccessKeyId", "SignatureDoesNotMatch") else p.account,
            source=source or p.home[0], operation=op, bucket=bucket or "", key=key, status=status,
            error=error, bytes_in=bytes_in, bytes_out=bytes_out, label=level))

    def normal_request(self, p: Principal, ts: float, source: str, focus: int | None = None) -> None:
        rng = self.rng
        bucket = rng.choice(p.buckets)
        weights = {"office": (50, 10, 15, 20, 5), "analyst": (65, 10, 5, 18, 2),
                   "admin": (25, 10, 10, 50, 5), "service": (40, 30, 25, 3, 2),
                   "batch": (60, 5, 30, 5, 0)}[p.role]
        op = rng.choices(("GetObject", "HeadObject", "PutObject", "ListObjectsV2", "DeleteObject"),
                         weights=weights)[0]
        level_cap = p.clearance
        key, level = self.world.key_in(bucket, level_cap, focus)
        error = ""
        miss = 0.25 if p.role == "service" else 0.03
        if op in ("GetObject", "HeadObject") and rng.random() < miss:
            error = "NoSuchKey"
        if rng.random() < 0.004:
            error = "AccessDenied"
        if op == "ListObjectsV2":
            self.emit(p, ts, op, source=source, bucket=bucket, key="", bytes_out=2000)
        elif op == "PutObject":
            self.emit(p, ts, op, source=source, bucket=bucket, key=key, level=level,
                      bytes_in=rng.choice(GET_SIZES), error=error)
        elif op in ("GetObject", "HeadObject"):
            self.emit(p, ts, op, source=source, bucket=bucket, key=key,
                      level=level if not error else -1, error=error,
                      bytes_out=0 if error or op == "HeadObject" else 0)
        else:
            self.emit(p, ts, op, source=source, bucket=bucket, key=key, error=error)

    def poisson(self, t0: float, t1: float, per_min: float):
        ts = t0
        rng = self.rng
        while True:
            ts += rng.expovariate(per_min / 60.0)
            if ts >= t1:
                return
            yield ts

    # ---------------------------------------------------------------- normal days
    def normal_day(self, p: Principal, day: int) -> None:
        rng = self.rng
        d0 = START + day * DAY
        weekday = day % 7
        if p.role == "service":
            for ts in self.poisson(d0, d0 + DAY, p.rate * (1.0 if weekday < 5 else 0.5)):
                self.normal_request(p, ts, p.home[0])
            if rng.random() < 0.05:                 # a forgotten cron with a deleted key
                for ts in self.poisson(d0, d0 + DAY, 1.0):
                    self.emit(p, ts, "GetObject", error="InvalidAccessKeyId",
                              principal=f"AKIADEAD{p.key[4:10]}", bucket=p.buckets[0])
            return
        if p.role == "batch":
            t0 = d0 + p.batch_hour * 3600 + rng.uniform(-300, 300)
            n = rng.randint(200, 1500)
            rate = rng.uniform(40, 120)
            ts = t0
            for _ in range(n):
                ts += rng.expovariate(rate / 60.0)
                b = rng.choice(p.buckets)
                key, level = self.world.key_in(b, 4)
                self.emit(p, ts, "GetObject", bucket=b, key=key, level=level)
                if rng.random() < 0.2:
                    self.emit(p, ts + 0.5, "PutObject", bucket=b, key="out/" + key,
                              bytes_in=rng.choice(GET_SIZES))
            for ts in self.poisson(d0, d0 + DAY, p.rate):
                self.normal_request(p, ts, p.home[0])
            return
        works = weekday < 5 or rng.random() < 0.08
        if not works:
            return
        start = d0 + (p.start_hour + rng.uniform(-0.7, 0.7)) * 3600
        end = d0 + (p.end_hour + rng.uniform(-0.7, 1.5)) * 3600
        source = rng.choice(p.home)
        r = rng.random()
        if r < 0.04:
            source = _ip(f"172.{rng.randint(16, 31)}", rng)        # travelling / at home
        elif r < 0.10:
            source = _ip(".".join(p.home[0].split(".")[:2]), rng)   # new DHCP lease, same site
        for ts in self.poisson(start, end, p.rate):
            if rng.random() < 0.6:                  # sessions: quiet spells
                self.normal_request(p, ts, source)
        if rng.random() < 0.02:                     # working late
            for ts in self.poisson(end, end + rng.uniform(1800, 7200), p.rate):
                self.normal_request(p, ts, source)
        if rng.random() < 0.1:                      # a morning typo
            for k in range(rng.randint(1, 3)):
                self.emit(p, start + k, "ListBuckets", source=source, error="SignatureDoesNotMatch")
        if p.role == "analyst" and rng.random() < 0.25:   # pull a dataset: a normal burst
            t = rng.uniform(start, end)
            b = rng.choice(p.buckets)
            focus = rng.randint(1, 2)
            for ts in self.poisson(t, t + rng.uniform(120, 600), rng.uniform(20, 80)):
                key, level = self.world.key_in(b, p.clearance, focus)
                self.emit(p, ts, "GetObject", source=source, bucket=b, key=key, level=level)
        if p.role == "admin" and rng.random() < 0.3:      # an inventory script walks prefixes
            t = rng.uniform(start, end)
            for ts in self.poisson(t, t + 180, rng.uniform(10, 30)):
                b = rng.choice(p.buckets)
                self.emit(p, ts, "ListObjectsV2", source=source, bucket=b, bytes_out=3000,
                          key=rng.choice(self.world.prefixes[b])[0] + "/")

    # ---------------------------------------------------------------- incidents
    def _when(self, night: bool) -> float:
        rng = self.rng
        day = rng.randint(self.warmup, self.days - 1)
        hour = rng.uniform(1.0, 4.5) if night else rng.uniform(10.0, 15.0)
        return START + day * DAY + hour * 3600

    def _victim(self, roles: tuple[str, ...] = ("office", "analyst", "admin", "batch", "service")) -> Principal:
        return self.rng.choice([p for p in self.people if p.role in roles])

    def inject(self, kind: str) -> None:
        rng = self.rng
        stolen = rng.random() < 0.5
        if kind == "credential_stuffing":
            t0 = self._when(rng.random() < 0.5)
            attacker = _ip(f"203.{rng.randint(0, 255)}", rng)
            p = self._victim()
            n = rng.randint(60, 400)
            rate = rng.uniform(20, 120)
            brute = rng.random() < 0.4
            ts = t0
            for _ in range(n):
                ts += rng.expovariate(rate / 60.0)
                if brute:
                    self.emit(p, ts, "ListBuckets", source=attacker, error="SignatureDoesNotMatch")
                else:
                    self.emit(p, ts, "ListBuckets", source=attacker, error="InvalidAccessKeyId",
                              principal=f"AKIA{rng.getrandbits(48):012X}")
            self.incidents.append(Incident(kind, attacker, t0, ts))
            return
        if kind == "unusual_access":
            p = self._victim(("office", "analyst", "admin"))
            stolen, night = True, True
        elif kind == "label_climbing":       # someone with levels above them left to climb
            p = self.rng.choice([q for q in self.people if q.role in ("office", "analyst", "admin")
                                 and q.clearance <= 2])
            night = rng.random() < 0.5
        else:
            p = self._victim()
            night = rng.random() < 0.5
        t0 = self._when(night)
        source = _ip(f"198.{rng.randint(0, 255)}", rng) if stolen else p.home[0]
        also: list[str] = []
        if stolen and night and p.role in ("office", "analyst", "admin"):
            also.append("unusual_access")
        ts = t0
        if kind == "exfiltration":
            n, rate = rng.randint(150, 2000), rng.uniform(50, 300)
            if rng.random() < 0.4:          # slow-and-low: under every per-minute bar, for hours
                n, rate = rng.randint(400, 2500), rng.uniform(8, 40)
                if rng.random() < 0.5:      # ... walking one bucket in key order, 2-20 a minute
                    ts = self._walk(p, ts, source, rng.uniform(2, 20), rng.uniform(0.3, 1.0))
                    n = 0
            for _ in range(n):
                ts += rng.expovariate(rate / 60.0)
                b = rng.choice(p.buckets)
                key, level = self.world.key_in(b, p.clearance)
                self.emit(p, ts, "GetObject", source=source, bucket=b, key=key, level=level,
                          bytes_out=rng.choice((400_000, 2_000_000, 8_000_000)))
        elif kind == "enumeration":
            style = rng.choice(("guess", "walk", "sweep"))
            n, rate = rng.randint(60, 400), rng.uniform(30, 120)
            for _ in range(n):
                ts += rng.expovariate(rate / 60.0)
                b = rng.choice(p.buckets)
                if style == "guess":
                    self.emit(p, ts, rng.choice(("HeadObject", "GetObject")), source=source, bucket=b,
                              key=f"{rng.choice(('backup', 'secret', 'keys', 'db', 'hr'))}/{rng.getrandbits(32):x}",
                              error="NoSuchKey" if rng.random() < 0.95 else "")
                elif style == "walk":
                    self.emit(p, ts, "ListObjectsV2", source=source, bucket=b, bytes_out=3000,
                              key=f"{rng.choice(self.world.prefixes[b])[0]}/{rng.getrandbits(12):x}/")
                else:
                    name = f"{rng.choice(('prod', 'backup', 'finance', 'hr', 'logs'))}-{rng.getrandbits(16):x}"
                    self.emit(p, ts, "HeadBucket", source=source, bucket=name,
                              error=rng.choice(("NoSuchBucket", "NoSuchBucket", "AccessDenied")))
        elif kind == "privilege_probing":
            n, rate = rng.randint(30, 200), rng.uniform(15, 80)
            ops = ("PutBucketPolicy", "DeleteBucket", "GetBucketAcl", "PutObject", "GetObject",
                   "PutBucketVersioning", "DeleteObject", "GetBucketPolicy", "CreateBucket")
            others = [b for bs in self.world.buckets.values() for b in bs]
            for _ in range(n):
                ts += rng.expovariate(rate / 60.0)
                self.emit(p, ts, rng.choice(ops), source=source, bucket=rng.choice(others),
                          key="x", error="AccessDenied" if rng.random() < 0.9 else "")
        elif kind == "unusual_access":
            n, rate = rng.randint(10, 60), rng.uniform(3, 20)
            for _ in range(n):
                ts += rng.expovariate(rate / 60.0)
                self.normal_request(p, ts, source)
        elif kind == "label_climbing":
            n, rate = rng.randint(20, 120), rng.uniform(3, 20)
            r = rng.random()
            if r < 0.4:                     # a patient climb: a read or two a minute
                n, rate = rng.randint(20, 60), rng.uniform(0.7, 2.0)
            elif r < 0.6:                   # a slow one: a read every 2-10 minutes, for hours
                n, rate = rng.randint(8, 30), rng.uniform(0.1, 0.5)
            base = min(p.clearance, 2)
            for i in range(n):
                ts += rng.expovariate(rate / 60.0)
                b = rng.choice(p.buckets)
                level = min(4, base + 1 + (i * 3) // n)
                key, _ = self.world.key_in(b, 4)
                denied = level > p.clearance and rng.random() < 0.5
                # a refusal's label is known live (MAC notes it), not in every replayed trail
                self.emit(p, ts, "GetObject", source=source, bucket=b, key=key,
                          level=-1 if denied and r >= 0.4 and i % 2 else level,
                          error="AccessDenied" if denied else "")
        self.incidents.append(Incident(kind, p.key, t0, ts, also))

    def _walk(self, p: Principal, ts: float, source: str, per_min: float, share: float) -> float:
        """Read one of its buckets object by object in key order (a slow copy), for at
        most six hours."""
        rng = self.rng
        b = rng.choice(p.buckets)
        keys = [(f"{prefix}/obj{k:05d}", level) for prefix, level in self.world.prefixes[b]
                for k in range(301) if level <= p.clearance]
        for key, level in keys[:max(1, int(min(len(keys) * share, per_min * 360)))]:   # <= 6 h
            ts += rng.expovariate(per_min / 60.0)
            self.emit(p, ts, "GetObject", source=source, bucket=b, key=key, level=level,
                      bytes_out=rng.choice((400_000, 2_000_000)))
        return ts

    def run(self) -> Trace:
        for p in self.people:
            for day in range(self.days):
                self.normal_day(p, day)
        for p in self.backups:
            rng = random.Random(p.key)
            for day in range(self.days):
                self.backup_night(p, day, rng)
        for kind in KINDS:
            for _ in range(self.per_kind):
                self.inject(kind)
        self.events.sort(key=lambda e: e.ts)
        return Trace(self.events, self.incidents, self.n + len(self.backups), self.days, self.warmup)


def generate(seed: int, principals: int = 120, days: int = 7, warmup_days: int = 3,
             incidents_per_kind: int | None = None) -> Trace:
    return Generator(seed, principals, days, warmup_days, incidents_per_kind).run()


def save(trace: Trace, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "events.jsonl", "w") as f:
        for ev in trace.events:
            f.write(json.dumps(ev.to_dict(), separators=(",", ":")) + "\n")
    meta = {"principals": trace.principals, "days": trace.days, "warmup_days": trace.warmup_days,
            "start": trace.start, "incidents": [asdict(i) for i in trace.incidents]}
    (directory / "incidents.json").write_text(json.dumps(meta, indent=1))


def load(directory: Path) -> Trace:
    meta = json.loads((directory / "incidents.json").read_text())
    with open(directory / "events.jsonl") as f:
        events = [RequestEvent.from_dict(json.loads(line)) for line in f]
    return Trace(events, [Incident(**i) for i in meta["incidents"]], meta["principals"],
                 meta["days"], meta["warmup_days"], meta["start"])
