"""The operator's shared state on PostgreSQL (``--meta postgresql://…``): the event feed,
the baselines, the detector lock and the action journal of every gateway on every host.

Why: with gateways on several hosts, one detector must still see every gateway's requests
(a principal's traffic spread over hosts would otherwise look small to each), and a
throttle, an address block or a session key's suspension decided on one host must be
applied by all (an IAM key's suspension also travels through IAM: live.py). The
interface is shared_state.Store's, plus the action journal (``append_action``,
``actions_after``), which on SQLite is the file journal.py keeps.

The detector lock is a session advisory lock on the store's own connection: it is released
when the process exits or its connection is lost, and another gateway takes the detector
over at its next peer check (live.py, every PEERS_EVERY seconds). Text PostgreSQL cannot
store (NUL) is replaced, never a reason to lose a batch: a request with NUL in its key must
not blind the detector.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from vallum.meta import pgshared
from vallum.operator.request_events import RequestEvent

log = logging.getLogger("vallum.operator")
RECONNECT = 1.0         # seconds between attempts to replace a lost connection
# Session advisory lock id of the detector (one per database).
DETECTOR_LOCK = 0x56414C4C4F50
DDL = (
    "CREATE TABLE IF NOT EXISTS operator_events (id BIGSERIAL PRIMARY KEY, ts FLOAT8, "
    "principal TEXT, account TEXT, source TEXT, operation TEXT, bucket TEXT, key TEXT, "
    "status INTEGER, error TEXT, bytes_in BIGINT, bytes_out BIGINT, label INTEGER, "
    "opaque INTEGER)",
    "CREATE TABLE IF NOT EXISTS operator_baselines (principal TEXT PRIMARY KEY, "
    "updated FLOAT8 NOT NULL, doc TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS operator_meta (name TEXT PRIMARY KEY, doc TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS operator_actions (id BIGSERIAL PRIMARY KEY, "
    "origin TEXT NOT NULL, doc TEXT NOT NULL)",
)
_DDL_LOCK = 0x56414C4C4F44
_PUSH = ("INSERT INTO operator_events (ts, principal, account, source, operation, bucket, key, "
         "status, error, bytes_in, bytes_out, label, opaque) "
         "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)")
_PULL = ("SELECT id, ts, principal, account, source, operation, bucket, key, status, error, "
         "bytes_in, bytes_out, label, opaque FROM operator_events WHERE id > %s ORDER BY id "
         "LIMIT %s")


def _clean(value: Any) -> Any:
    return value.replace("\x00", "\ufffd") if type(value) is str else value


def _dumps(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True, default=str)


class PostgresStore:
    """One process's connection to the operator tables (autocommit; statements are short)."""

    shares_actions = True

    def __init__(self, url: str, adopt: Iterable[tuple[str, float, str]] = ()) -> None:
        """``adopt``: baselines (principal, updated, JSON doc) written if the table holds
        none yet, so a deployment moving here keeps what its principals normally do."""
        import psycopg

        self.url = url
        self._db = psycopg.connect(url, autocommit=True, connect_timeout=5)
        self._retry_at = 0.0
        self._fresh: Any = None             # a replacement connection, made by a thread
        try:
            with self.db.transaction():
                self.db.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
                for statement in DDL:
                    self.db.execute(statement)
                if self.db.execute("SELECT NOT EXISTS (SELECT 1 FROM operator_baselines)"
                                   ).fetchone() == (True,):
                    with self.db.cursor() as cur:
                        cur.executemany("INSERT INTO operator_baselines VALUES (%s, %s, %s)",
                                        [(_clean(p), ts, _clean(d)) for p, ts, d in adopt])
        except BaseException:
            self._db.close()
            raise
        self.origin = secrets.token_hex(8)      # this process, on any host (pids repeat)
        self._leading = False

    @property
    def db(self) -> Any:
        """The connection. A lost one is replaced by a thread (the callers run on the event
        loop, which must not wait for a connect), at most once a RECONNECT seconds; calls
        meanwhile fail at once. A detector whose lock went with the lost connection takes it
        again or logs that it no longer holds it."""
        import psycopg

        fresh, self._fresh = self._fresh, None
        if fresh is not None:
            self._db.close()
            self._db = fresh
            if self._leading:
                self._leading = False
                if not self.lead():
                    log.error("operator: the detector lock was lost with the database connection")
        if not (self._db.closed or self._db.broken):
            return self._db
        now = time.monotonic()
        if now >= self._retry_at:
            self._retry_at = now + RECONNECT
            threading.Thread(target=self._reconnect, name="vallum-operator-pg", daemon=True).start()
        raise psycopg.OperationalError("operator database connection lost; reconnecting")

    def _reconnect(self) -> None:
        import psycopg

        try:
            self._fresh = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
        except psycopg.Error as exc:
            log.warning("operator database still unavailable: %s", type(exc).__name__)

    # -- the detector lock -----------------------------------------------------------
    def lead(self) -> bool:
        if not self._leading:
            row = self.db.execute("SELECT pg_try_advisory_lock(%s)", (DETECTOR_LOCK,)).fetchone()
            self._leading = bool(row and row[0])
        return self._leading

    def peers(self) -> int:
        """Gateway processes serving on this database, every host's (meta/pgshared)."""
        row = self.db.execute(*pgshared.SERVING).fetchone()
        return int(row[0]) if row else 0

    # -- the shared event feed -------------------------------------------------------
    def push(self, events: Sequence[RequestEvent]) -> None:
        with self.db.cursor() as cur:
            cur.executemany(_PUSH, [tuple(_clean(v) for v in ev) for ev in events])

    def pull(self, after: int, limit: int = 4096) -> tuple[list[RequestEvent], int]:
        rows = self.db.execute(_PULL, (after, limit)).fetchall()
        if not rows:
            return [], after
        new = tuple.__new__
        return [new(RequestEvent, r[1:]) for r in rows], int(rows[-1][0])

    def last_event(self) -> int:
        row = self.db.execute("SELECT COALESCE(MAX(id), 0) FROM operator_events").fetchone()
        return int(row[0]) if row else 0

    def prune(self, upto: int) -> None:
        self.db.execute("DELETE FROM operator_events WHERE id <= %s", (upto,))

    # -- baselines ---------------------------------------------------------------------
    def save(self, docs: Iterable[tuple[str, float, dict[str, Any]]], meta: dict[str, Any]) -> None:
        with self.db.transaction(), self.db.cursor() as cur:
            cur.executemany(
                "INSERT INTO operator_baselines (principal, updated, doc) VALUES (%s,%s,%s) "
                "ON CONFLICT (principal) DO UPDATE SET updated = excluded.updated, doc = excluded.doc",
                [(_clean(p), ts, _dumps(d)) for p, ts, d in docs])
            cur.executemany(
                "INSERT INTO operator_meta (name, doc) VALUES (%s,%s) "
                "ON CONFLICT (name) DO UPDATE SET doc = excluded.doc",
                [(k, _dumps(v)) for k, v in meta.items()])

    def baselines(self) -> Iterable[tuple[str, dict[str, Any]]]:
        for principal, doc in self.db.execute("SELECT principal, doc FROM operator_baselines"):
            try:
                yield principal, json.loads(doc)
            except ValueError:
                continue

    def meta(self, name: str) -> Any:
        row = self.db.execute("SELECT doc FROM operator_meta WHERE name = %s", (name,)).fetchone()
        try:
            return json.loads(row[0]) if row else None
        except ValueError:
            return None

    # -- the action journal ------------------------------------------------------------
    def append_action(self, record: dict[str, Any]) -> None:
        self.db.execute("INSERT INTO operator_actions (origin, doc) VALUES (%s, %s)",
                        (self.origin, _dumps(record).replace("\\u0000", "\\ufffd")))

    def actions_after(self, after: int) -> tuple[list[dict[str, Any]], int]:
        """Actions other processes journalled after id ``after`` (oldest first), and the
        last id read."""
        rows = self.db.execute("SELECT id, origin, doc FROM operator_actions WHERE id > %s "
                               "ORDER BY id", (after,)).fetchall()
        out = []
        for _, origin, doc in rows:
            if origin == self.origin:
                continue
            try:
                out.append(json.loads(doc))
            except ValueError:
                continue
        return out, int(rows[-1][0]) if rows else after

    def close(self) -> None:
        """Give the detector lock up at once (a closed connection's backend releases it only
        once it notices), then close."""
        import psycopg

        try:
            if self._leading and not (self._db.closed or self._db.broken):
                self._db.execute("SELECT pg_advisory_unlock_all()")
        except psycopg.Error:
            pass
        self._leading = False
        self._db.close()
        fresh, self._fresh = self._fresh, None
        if fresh is not None:
            fresh.close()


def read_actions(url: str) -> list[dict[str, Any]]:
    """The whole action journal, oldest first (`vallum operator status` and `release`)."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        if conn.execute("SELECT to_regclass('operator_actions')").fetchone() == (None,):
            return []
        rows = conn.execute("SELECT doc FROM operator_actions ORDER BY id").fetchall()
    out = []
    for (doc,) in rows:
        try:
            out.append(json.loads(doc))
        except ValueError:
            continue
    return out


def journal_action(url: str, record: dict[str, Any]) -> None:
    """Append ``record`` to the action journal from outside a gateway (`vallum operator
    release`): every gateway applies it at its next poll."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
            for statement in DDL:
                conn.execute(statement)
        conn.execute("INSERT INTO operator_actions (origin, doc) VALUES (%s, %s)",
                     ("cli", _dumps(record)))
