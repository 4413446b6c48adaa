"""Failed-authentication limits shared by every gateway on one PostgreSQL database.

Why PostgreSQL: gateways on several hosts share no data directory, so the SQLite limiter
(iam/lockouts.py) would give an attacker a budget per host. The rules are the SQLite
limiter's: one row per failure, the limit-th most recent failure inside the window
fixes how long the lockout lasts, one row per active lockout (iam/schema.py's tables,
created by iam/pgstore.py). The gate asks only once a request has failed
(iam/gate.py), so both ``blocked`` and ``failed`` read the database directly: a lockout
committed by one gateway is refused by every gateway at its next failed attempt, with no
cache to go stale, and a correct request costs nothing here.

A statement waits at most ``BUSY_MS`` for a connection and for the database; past that,
or with the database down, failures are counted in this process only (FailureLimiter):
never unlimited, never a stalled event loop. After such an error the database is left alone
for ``BACKOFF`` seconds, so a flood of bad signatures does not wait on it once per request.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from vallum.iam.auth_failures import FailureLimiter, counters

log = logging.getLogger("vallum.security")
BUSY_MS = 250
PRUNE_EVERY = 256           # failures (per process) between deletions of expired rows
BACKOFF = 1.0               # after a database error, count here only for this long

_INSERT = "INSERT INTO iam_auth_failures (who, at) VALUES (%s, %s)"
_NTH = ("SELECT at FROM iam_auth_failures WHERE who = %s AND at > %s "
        "ORDER BY at DESC LIMIT 1 OFFSET %s")
_LOCK = ("INSERT INTO iam_auth_lockouts (who, until) VALUES (%s, %s) ON CONFLICT (who) "
         "DO UPDATE SET until = GREATEST(iam_auth_lockouts.until, excluded.until)")
_ACTIVE = "SELECT who FROM iam_auth_lockouts WHERE who = ANY(%s) AND until > %s"
_PRUNE = ("DELETE FROM iam_auth_failures WHERE at <= %s",
          "DELETE FROM iam_auth_lockouts WHERE until <= %s")


def _configure(conn: Any) -> None:
    conn.execute(f"SET statement_timeout = {BUSY_MS}")


class PostgresFailureLimiter(FailureLimiter):
    """FailureLimiter's interface and limits, counted across every gateway. Times are wall
    clock (``time.time()``): hosts are expected to keep their clocks in sync (NTP); a skew
    shortens or lengthens a lockout by that much."""

    def __init__(self, url: str, **limits: Any) -> None:
        super().__init__(**limits)
        from psycopg_pool import ConnectionPool

        # The tables exist: the IAM store (opened first) created them. Opened lazily, so a
        # database down at start-up costs the local fallback, not the gateway.
        self._pool: Any = ConnectionPool(url, min_size=0, max_size=2, open=True,
                                         kwargs={"autocommit": True}, configure=_configure,
                                         name="vallum-lockouts", timeout=BUSY_MS / 1000)
        self._since_prune = PRUNE_EVERY
        self._down_until = 0.0      # monotonic: no statement before then (a flood of bad
                                    # signatures must not wait on a dead database each)

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def blocked(self, access_key: str | None, address: str, now: float | None = None) -> str | None:
        import psycopg

        now = time.time() if now is None else now
        pair, addr = counters(access_key, address)
        names = [w for w in (pair, addr) if w and "\x00" not in w]
        try:
            with self._connection() as conn:
                locked = {r[0] for r in conn.execute(_ACTIVE, (names, now))}
        except psycopg.Error as exc:
            self._gone(exc)
            locked = set()
        for who, what in ((pair, "key"), (addr, "address")):
            if who and who in locked:
                self.lockouts += 1
                log.warning("authentication locked out (%s): access_key=%s address=%s",
                            what, access_key, address)
                return what
        if self._fails:                  # failures counted only here (database unavailable)
            return super().blocked(access_key, address, now)
        return None

    def failed(self, access_key: str | None, address: str, now: float | None = None) -> None:
        import psycopg

        now = time.time() if now is None else now
        log.warning("authentication failed: access_key=%s address=%s", access_key, address)
        pair, addr = counters(access_key, address)
        targets = [(w, n) for w, n in ((pair, self.max_per_key), (addr, self.max_per_address))
                   if w and "\x00" not in w]
        if any(w and "\x00" in w for w in (pair, addr)):
            self._count(access_key, address, now)       # unstorable there: counted here
        try:
            self._record(targets, now)
        except psycopg.Error as exc:
            self._gone(exc)
            self._count(access_key, address, now)

    def _gone(self, exc: Exception) -> None:
        now = time.monotonic()
        if now >= self._down_until:         # a real failure, not the back-off's own refusal
            log.warning("shared authentication counters unavailable (%s); counting in this "
                        "process only for %.0f s", exc, BACKOFF)
            self._down_until = now + BACKOFF

    def _connection(self) -> Any:
        import psycopg

        if self._pool is None:
            raise psycopg.InterfaceError("limiter closed")
        if time.monotonic() < self._down_until:
            raise psycopg.OperationalError("database unavailable a moment ago")
        return self._pool.connection()

    def _record(self, targets: list[tuple[str, int]], now: float) -> None:
        with self._connection() as conn, conn.transaction():
            for who, limit in targets:
                conn.execute(_INSERT, (who, now))
                nth = conn.execute(_NTH, (who, now - self.window, int(limit) - 1)).fetchone()
                if nth is not None:
                    conn.execute(_LOCK, (who, nth[0] + self.window))
            self._since_prune += 1
            if self._since_prune >= PRUNE_EVERY:
                self._since_prune = 0
                conn.execute(_PRUNE[0], (now - self.window,))
                conn.execute(_PRUNE[1], (now,))

