"""Failed-authentication limits shared by every gateway process of one data directory.

Why: with ``vallum serve --workers N`` each process counting alone would give an
attacker N times the budget. Failures are rows in the IAM database (the one place all
workers share); the worker whose failure crosses a limit writes a lockout row and bumps
a mapped change word (meta/changes.py), so every worker refuses the key or address on its
next request. A successful request writes nothing and reads no database: ``blocked()``
is a dictionary lookup plus a load of the change word, with a re-read of the lockouts
only when the word moved (or once a second, for gateways on other hosts).

Should the database be busy past a short timeout, a failure is counted in this process
only (the per-process FailureLimiter): never unlimited, never a stalled event loop.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from vallum.iam.auth_failures import FailureLimiter, counters
from vallum.meta.changes import ChangeSignal
from vallum.sqlite_open import create_schema, opening

log = logging.getLogger("vallum.security")
POLL_EVERY = 1.0            # seconds between lockout re-reads when no change was signalled
BUSY_MS = 250               # a failure waits at most this long for the database
PRUNE_EVERY = 256           # failures (per process) between deletions of expired rows

_DDL = (
    "CREATE TABLE IF NOT EXISTS iam_auth_failures (who TEXT NOT NULL, at FLOAT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS ix_iam_auth_failures_who ON iam_auth_failures (who, at)",
    "CREATE TABLE IF NOT EXISTS iam_auth_lockouts (who TEXT NOT NULL PRIMARY KEY, "
    "until FLOAT NOT NULL)",
)
_INSERT = "INSERT INTO iam_auth_failures (who, at) VALUES (?, ?)"
# The limit-th most recent failure inside the window: the lockout lasts until it ages out.
_NTH = ("SELECT at FROM iam_auth_failures WHERE who = ? AND at > ? "
        "ORDER BY at DESC LIMIT 1 OFFSET ?")
_LOCK = ("INSERT INTO iam_auth_lockouts (who, until) VALUES (?, ?) ON CONFLICT (who) "
         "DO UPDATE SET until = max(until, excluded.until)")
_ACTIVE = "SELECT who, until FROM iam_auth_lockouts WHERE until > ?"
_PRUNE = ("DELETE FROM iam_auth_failures WHERE at <= ?",
          "DELETE FROM iam_auth_lockouts WHERE until <= ?")


def signal_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".auth-lockouts")


class SharedFailureLimiter(FailureLimiter):
    """FailureLimiter's interface and limits, counted across processes. Times are wall
    clock (``time.time()``), which every process and host agrees on."""

    def __init__(self, db_path: Path, **limits: Any) -> None:
        super().__init__(**limits)
        self.db_path = Path(db_path)
        with opening(self.db_path):
            conn = sqlite3.connect(self.db_path, timeout=BUSY_MS / 1000, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout={BUSY_MS}")
            # Counters, not records: a power cut may forget the last failures, never corrupt.
            conn.execute("PRAGMA synchronous=NORMAL")
            create_schema(conn, self.db_path, _DDL)
        self._conn: sqlite3.Connection | None = conn
        self._lock = threading.Lock()
        self.signal = ChangeSignal(signal_path(self.db_path))
        self._locked: dict[str, float] = {}      # who -> until, as last read
        self._seen = (-1, 0.0)                   # (change word, next poll, monotonic)
        self._since_prune = PRUNE_EVERY

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        self.signal.close()

    # -- the request path ----------------------------------------------------------
    def blocked(self, access_key: str | None, address: str, now: float | None = None) -> str | None:
        now = time.time() if now is None else now
        self._sync(now)
        locked = self._locked
        if locked:
            pair, addr = counters(access_key, address)
            for who, what in ((pair, "key"), (addr, "address")):
                if who and locked.get(who, 0.0) > now:
                    self.lockouts += 1
                    log.warning("authentication locked out (%s): access_key=%s address=%s",
                                what, access_key, address)
                    return what
        if self._fails:                  # failures counted only here (database unavailable)
            return super().blocked(access_key, address, now)
        return None

    def _sync(self, now: float) -> None:
        word = self.signal.value()
        seen_word, next_poll = self._seen
        mono = time.monotonic()
        if word == seen_word and mono < next_poll:
            return
        try:
            with self._lock:
                if self._conn is None:
                    return
                rows = self._conn.execute(_ACTIVE, (now,)).fetchall()
        except sqlite3.Error:
            log.warning("could not read shared authentication lockouts", exc_info=True)
            return                       # keep the last view; the next request retries
        self._locked = dict(rows)
        self._seen = (word, mono + POLL_EVERY)

    # -- the failure path ----------------------------------------------------------
    def failed(self, access_key: str | None, address: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        log.warning("authentication failed: access_key=%s address=%s", access_key, address)
        pair, addr = counters(access_key, address)
        targets = [(w, n) for w, n in ((pair, self.max_per_key), (addr, self.max_per_address)) if w]
        try:
            locked = self._record(targets, now)
        except sqlite3.Error:
            log.warning("shared authentication counters unavailable; counting in this "
                        "process only", exc_info=True)
            self._count(access_key, address, now)
            return
        if locked:
            self._locked.update(locked)
            self.signal.bump()

    def _record(self, targets: list[tuple[str, int]], now: float) -> dict[str, float]:
        locked: dict[str, float] = {}
        with self._lock:
            conn = self._conn
            if conn is None:
                raise sqlite3.ProgrammingError("limiter closed")
            conn.execute("BEGIN IMMEDIATE")
            try:
                for who, limit in targets:
                    conn.execute(_INSERT, (who, now))
                    nth = conn.execute(_NTH, (who, now - self.window, int(limit) - 1)).fetchone()
                    if nth is not None:
                        locked[who] = nth[0] + self.window
                        conn.execute(_LOCK, (who, locked[who]))
                self._since_prune += 1
                if self._since_prune >= PRUNE_EVERY:
                    self._since_prune = 0
                    conn.execute(_PRUNE[0], (now - self.window,))
                    conn.execute(_PRUNE[1], (now,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return locked
