"""Request-rate limits per account: one token bucket per account for all of a gateway's workers.

The platform root sets them (``SetAccountRateLimit``, server/quotas_admin.py). They live in
the operator's database (``<data_dir>/operator/operator.db``, operator/shared_state.py),
which every worker process of the gateway already shares. Each process keeps a local token
bucket per limited account and, every SYNC seconds, publishes how many requests it let
through per account and takes out of its own bucket what the other processes let through
since it last looked: together they admit at most ``rps`` a second plus ``burst``, give or
take SYNC seconds of the others' traffic. A refused request is answered ``503 SlowDown``
with ``Retry-After`` and audited with the rule that refused it.

The platform root is never limited (it must be able to lift a limit). An anonymous request
naming a bucket counts against the bucket owner's limit (a tenant must not get round its
limit through a public bucket).
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from prometheus_client import Counter

from vallum.metrics import REGISTRY
from vallum.operator import journal
from vallum.operator import shared_state as state
from vallum.s3 import errors

log = logging.getLogger("vallum.ratelimit")
SYNC = 0.25            # seconds between looks at the shared state (limits, others' traffic)
STALE = 300.0          # a process's published count is dropped this long after its last sync
MAX_RPS = 1_000_000.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS rate_limits (account TEXT PRIMARY KEY, rps REAL NOT NULL,
                                        burst REAL NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS rate_admitted (account TEXT NOT NULL, pid INTEGER NOT NULL,
    admitted INTEGER NOT NULL, ts REAL NOT NULL, PRIMARY KEY (account, pid));
"""

LIMITED = Counter("vallum_rate_limited_total", "Requests refused by an account's rate limit",
                  registry=REGISTRY)


class Bucket:
    __slots__ = ("burst", "last", "rps", "tokens")

    def __init__(self, rps: float, burst: float, now: float) -> None:
        self.rps, self.burst, self.tokens, self.last = rps, burst, burst, now

    def refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rps)
        self.last = now

    def spend(self, n: int, now: float) -> None:
        """Take out what other processes let through (refilled first: a full bucket's cap
        must not swallow the debit); down to -burst at most."""
        self.refill(now)
        self.tokens = max(-self.burst, self.tokens - n)

    def take(self, now: float) -> float:
        """0.0 when a token was taken, else the seconds until one is due."""
        self.refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rps


def parse_limit(args: dict[str, Any]) -> tuple[float, float] | None:
    """(rps, burst) from the admin API's JSON; None (``rps`` null) removes the limit."""
    rps = args.get("rps")
    if rps is None:
        if args.get("burst") is not None:
            raise ValueError("burst needs rps")
        return None
    rps = _number("rps", rps)
    if not 0 < rps <= MAX_RPS:
        raise ValueError(f"rps must be a number above 0 and at most {MAX_RPS:.0f}")
    burst = _number("burst", args["burst"]) if args.get("burst") is not None else max(1.0, rps)
    if not 1 <= burst <= MAX_RPS:
        raise ValueError(f"burst must be a number from 1 to {MAX_RPS:.0f}")
    return rps, burst


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number")
    return float(value)


class Limiter:
    """One gateway process's view of the limits and its buckets."""

    def __init__(self, data_dir: Path) -> None:
        self.store = state.Store(journal.directory(data_dir))
        self.store.db.executescript(SCHEMA)
        self.pid = os.getpid()
        self.limits: dict[str, tuple[float, float]] = {}
        self.buckets: dict[str, Bucket] = {}
        self.admitted: dict[str, int] = {}        # this process, since it started
        self.published: dict[str, int] = {}
        self.others: dict[str, int] = {}          # the other processes' sums, last look
        self._next_sync = 0.0

    def limited(self, now: float) -> bool:
        """Whether any account has a limit (looked up at most every SYNC seconds)."""
        if now >= self._next_sync:
            self.sync(now)
        return bool(self.buckets)

    def check(self, account: str, now: float) -> float:
        """0.0 to admit a request of ``account``, else seconds until it may retry."""
        if now >= self._next_sync:
            self.sync(now)
        bucket = self.buckets.get(account)
        if bucket is None:
            return 0.0
        wait = bucket.take(now)
        if not wait:
            self.admitted[account] = self.admitted.get(account, 0) + 1
        return wait

    def sync(self, now: float) -> None:
        """Re-read the limits, publish this process's admissions, take the others' out of
        the buckets. A busy database costs one look, never a request."""
        self._next_sync = now + SYNC
        db = self.store.db
        try:
            limits = {a: (float(r), float(b)) for a, r, b in
                      db.execute("SELECT account, rps, burst FROM rate_limits")}
            self._apply(limits, now)
            if not limits:
                return
            wall = time.time()
            changed = [(a, self.pid, n, wall) for a, n in self.admitted.items()
                       if a in limits and self.published.get(a) != n]
            if changed:
                with db:
                    db.executemany("INSERT INTO rate_admitted (account, pid, admitted, ts) "
                                   "VALUES (?,?,?,?) ON CONFLICT (account, pid) DO UPDATE SET "
                                   "admitted = excluded.admitted, ts = excluded.ts", changed)
                self.published.update((a, n) for a, _, n, _ in changed)
            for account, total in db.execute(
                    "SELECT account, SUM(admitted) FROM rate_admitted WHERE pid != ? AND ts > ? "
                    "GROUP BY account", (self.pid, wall - STALE)):
                seen = self.others.get(account)
                self.others[account] = int(total)
                bucket = self.buckets.get(account)
                if bucket is not None and seen is not None and total > seen:
                    bucket.spend(total - seen, now)
        except sqlite3.Error as exc:
            log.warning("rate limits: shared state unavailable this time: %s", exc)

    def _apply(self, limits: dict[str, tuple[float, float]], now: float) -> None:
        for account, (rps, burst) in limits.items():
            if self.limits.get(account) != (rps, burst):
                self.buckets[account] = Bucket(rps, burst, now)
        for account in set(self.buckets) - set(limits):
            del self.buckets[account]
        self.limits = limits

    def set(self, account: str, limit: tuple[float, float] | None) -> None:
        """Store (None: remove) an account's limit; every process applies it within SYNC."""
        with self.store.db as db:
            if limit is None:
                db.execute("DELETE FROM rate_limits WHERE account = ?", (account,))
                db.execute("DELETE FROM rate_admitted WHERE account = ?", (account,))
            else:
                db.execute("INSERT INTO rate_limits (account, rps, burst, updated) VALUES "
                           "(?,?,?,?) ON CONFLICT (account) DO UPDATE SET rps = excluded.rps, "
                           "burst = excluded.burst, updated = excluded.updated",
                           (account, limit[0], limit[1], time.time()))
        self._next_sync = 0.0

    def get(self, account: str) -> tuple[float, float] | None:
        row = self.store.db.execute("SELECT rps, burst FROM rate_limits WHERE account = ?",
                                    (account,)).fetchone()
        return (float(row[0]), float(row[1])) if row else None

    def close(self) -> None:
        self.store.close()


_limiter: Limiter | None = None


def current(services: Any) -> Limiter:
    """This process's limiter, opened on first use. Without its database no limit can be
    known: the request is refused (503, retry later) rather than let through unlimited."""
    global _limiter
    if _limiter is None:
        try:
            _limiter = Limiter(services.config.data_dir)
        except (OSError, sqlite3.Error) as exc:
            log.error("rate limits unavailable: %s", exc)
            raise errors.by_code("ServiceUnavailable")("Rate limits are unavailable; retry later.") from None
    return _limiter


async def admit(services: Any, request: Any) -> None:
    """Refuse (503 SlowDown, Retry-After) a request over its account's limit."""
    caller = request.caller
    if caller is None or caller.is_root:
        return
    limiter = current(services)
    now = time.monotonic()
    account = caller.account
    if caller.anonymous:
        name = request.endpoint.bucket
        if not name or not limiter.limited(now):
            return
        bucket = await services.meta.get_bucket(name)      # (cached)
        if bucket is None:
            return
        account = bucket.owner
    wait = limiter.check(account, now)
    if wait:
        LIMITED.inc()
        request.audit.update(decision="deny", rule=f"rate-limit: account {account}")
        raise errors.SlowDown("Request rate limit of the account exceeded; retry later.",
                              headers={"retry-after": str(max(1, math.ceil(wait)))})


def shutdown() -> None:
    global _limiter
    if _limiter is not None:
        _limiter.close()
        _limiter = None
