"""The operator's state on disk: baselines that survive a restart, and the event feed
that gives every gateway process's traffic to one detector.

Why SQLite in ``<data_dir>/operator/operator.db`` (0600): a restart must not forget
what each principal normally does (a veteran would be a stranger again, and the
read budgets would start from nothing), and with ``--workers N`` a principal's
traffic is spread over N processes; one detector must see all of it. Every process
appends its requests to ``events`` (one transaction per batch); the process holding
the detector lock (``detector.lock``, an flock released when the process dies) reads
them in order, decides, and journals its actions, which every process applies.

Baselines are plain JSON documents (never pickle: the file is data, not code).
With ``--meta postgresql://…`` (``VALLUM_META_URL`` in every gateway process) the same state
lives in PostgreSQL instead, shared by the gateways of every host (pg_state.py).
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from array import array
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from vallum.meta.factory import META_URL_ENV
from vallum.operator.budget import ReadBudget
from vallum.operator.profile import HOURLY, Profile
from vallum.operator.request_events import RequestEvent

DB = "operator.db"
LOCK = "detector.lock"
PRIOR = "prior"
CURSOR = "cursor"
MAX_ADDRESSES = 256            # addresses remembered per principal (networks are kept whole)
MAX_BUCKETS = 512

SCHEMA = """
CREATE TABLE IF NOT EXISTS baselines (principal TEXT PRIMARY KEY, updated REAL NOT NULL,
                                      doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL, principal TEXT,
    account TEXT, source TEXT, operation TEXT, bucket TEXT, key TEXT, status INTEGER,
    error TEXT, bytes_in INTEGER, bytes_out INTEGER, label INTEGER, opaque INTEGER);
"""


def _errors() -> tuple[type[Exception], ...]:
    try:
        import psycopg
    except ImportError:
        return (sqlite3.Error,)
    return (sqlite3.Error, psycopg.Error)


ERRORS = _errors()      # what a store's calls raise when its database fails


def open_store(directory: Path) -> Any:
    """The operator state of this deployment: PostgreSQL when the gateways' metadata is
    there (every host shares it), else SQLite in ``directory``."""
    url = os.environ.get(META_URL_ENV)
    if url:
        from vallum.operator.pg_state import PostgresStore

        return PostgresStore(url, adopt=_saved_baselines(Path(directory) / DB))
    return Store(directory)


def _saved_baselines(path: Path) -> list[tuple[str, float, str]]:
    """The baselines an embedded deployment saved (read only), for PostgreSQL to adopt."""
    if not path.exists():
        return []
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.5)
        try:
            return db.execute("SELECT principal, updated, doc FROM baselines").fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return []


class Store:
    """One process's connection to the operator database."""

    shares_actions = False          # the action journal is journal.py's file

    def __init__(self, directory: Path) -> None:
        path = Path(directory) / DB
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)     # 0600 before SQLite opens it;
        os.close(fd)                                          # its -wal/-shm inherit the mode
        os.chmod(path, 0o600)
        # Autocommit; short timeout: a busy database costs one batch, never a stalled loop.
        self.db = sqlite3.connect(path, timeout=0.5, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self.lock_path = Path(directory) / LOCK
        self._lock_fd: int | None = None

    # -- the detector lock -----------------------------------------------------------
    def lead(self) -> bool:
        """Take the detector lock if nobody holds it; True while this process holds it."""
        if self._lock_fd is not None:
            return True
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    # -- the shared event feed -------------------------------------------------------
    def push(self, events: Sequence[RequestEvent]) -> None:
        """Append a batch of events, in one transaction."""
        with self.db:
            self.db.executemany(
                "INSERT INTO events (ts, principal, account, source, operation, bucket, key, status,"
                " error, bytes_in, bytes_out, label, opaque) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", events)

    def pull(self, after: int, limit: int = 4096) -> tuple[list[RequestEvent], int]:
        """Events appended after id ``after`` (oldest first), and the last id read."""
        rows = self.db.execute(
            "SELECT id, ts, principal, account, source, operation, bucket, key, status, error,"
            " bytes_in, bytes_out, label, opaque FROM events WHERE id > ? ORDER BY id LIMIT ?",
            (after, limit)).fetchall()
        if not rows:
            return [], after
        new = tuple.__new__
        return [new(RequestEvent, r[1:]) for r in rows], rows[-1][0]

    def last_event(self) -> int:
        return int(self.db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])

    def prune(self, upto: int) -> None:
        with self.db:
            self.db.execute("DELETE FROM events WHERE id <= ?", (upto,))

    # -- baselines ---------------------------------------------------------------------
    def save(self, docs: Iterable[tuple[str, float, dict[str, Any]]],
             meta: dict[str, Any]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT INTO baselines (principal, updated, doc) VALUES (?,?,?) ON CONFLICT(principal)"
                " DO UPDATE SET updated = excluded.updated, doc = excluded.doc",
                [(p, ts, json.dumps(d, separators=(",", ":"))) for p, ts, d in docs])
            self.db.executemany(
                "INSERT INTO meta (name, doc) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET doc = excluded.doc",
                [(k, json.dumps(v, separators=(",", ":"))) for k, v in meta.items()])

    def baselines(self) -> Iterable[tuple[str, dict[str, Any]]]:
        for principal, doc in self.db.execute("SELECT principal, doc FROM baselines"):
            try:
                yield principal, json.loads(doc)
            except ValueError:
                continue

    def meta(self, name: str) -> Any:
        row = self.db.execute("SELECT doc FROM meta WHERE name = ?", (name,)).fetchone()
        try:
            return json.loads(row[0]) if row else None
        except ValueError:
            return None

    def close(self) -> None:
        self.db.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)             # releases the lock
            self._lock_fd = None


def remembered(directory: Path) -> int:
    """How many principals' baselines are on disk (0 when there is no database yet); read
    only, for `vallum operator status`."""
    path = Path(directory) / DB
    if not path.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.5)
        try:
            return int(db.execute("SELECT COUNT(*) FROM baselines").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0


# -- (de)serialising what a restart must keep ----------------------------------------------

def dump_profile(p: Profile) -> dict[str, Any]:
    return {"hist": [list(h) for h in p.hist], "samples": p.samples, "how": list(p.how),
            "addresses": sorted(p.addresses)[:MAX_ADDRESSES], "networks": sorted(p.networks),
            "label_minutes": p.label_minutes, "label_first": p.label_first,
            "first_ts": p.first_ts, "last_ts": p.last_ts, "hour_max": p.hour_max,
            "candidates": p.candidates}


def load_profile(d: dict[str, Any]) -> Profile:
    """A profile from its document; a field that does not fit is left at its default."""
    p = Profile()
    hist = d.get("hist") or []
    if len(hist) == len(p.hist) and all(len(h) == len(p.hist[0]) for h in hist):
        p.hist = [array("I", (max(0, int(v)) for v in h)) for h in hist]
    how = d.get("how") or []
    if len(how) == len(p.how):
        p.how = array("I", (max(0, int(v)) for v in how))
    p.samples = int(d.get("samples", 0))
    p.addresses = {str(a) for a in d.get("addresses", [])}
    p.networks = {str(n) for n in d.get("networks", [])}
    if len(d.get("label_minutes", [])) == 5:
        p.label_minutes = [int(v) for v in d["label_minutes"]]
        p.label_first = [float(v) for v in d.get("label_first", [0.0] * 5)][:5]
    p.first_ts, p.last_ts = float(d.get("first_ts", 0.0)), float(d.get("last_ts", 0.0))
    hour_max = d.get("hour_max") or {}
    for f in HOURLY:
        row = hour_max.get(f)
        if isinstance(row, list) and len(row) == 24:
            p.hour_max[f] = [float(v) for v in row]
    p.candidates = {str(k): int(v) for k, v in (d.get("candidates") or {}).items()}
    return p


def dump_budget(b: ReadBudget) -> dict[str, Any]:
    return {"hours": list(b.hours), "hour": b.hour, "days": {str(k): v for k, v in b.days.items()},
            "busiest_hour": b.busiest_hour, "busiest_day": b.busiest_day, "days_seen": b.days_seen,
            "tainted_hour": b.tainted_hour, "tainted_day": b.tainted_day, "total": b.total}


def load_budget(d: dict[str, Any]) -> ReadBudget:
    b = ReadBudget()
    b.hours = deque([int(h), float(n)] for h, n in d.get("hours", []))
    b.hour = int(d.get("hour", -1))
    b.days = {int(k): float(v) for k, v in (d.get("days") or {}).items()}
    b.busiest_hour, b.busiest_day = float(d.get("busiest_hour", 0.0)), float(d.get("busiest_day", 0.0))
    b.days_seen = int(d.get("days_seen", 0))
    b.tainted_hour, b.tainted_day = bool(d.get("tainted_hour")), bool(d.get("tainted_day"))
    b.total = sum(n for _, n in b.hours)
    return b
