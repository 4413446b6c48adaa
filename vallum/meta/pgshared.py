"""What the PostgreSQL stores other than the object metadata share: a synchronous pool opened
with the metadata store's limits and messages, and a follower that keeps a counter fresh.

Why a follower: gateways on several hosts share no memory, so the mapped change word of a
single host (meta/changes.py) cannot tell one gateway that another changed IAM or the
lockouts. A follower holds one connection of its own that LISTENs on a channel (writers
NOTIFY it in the transaction that makes the change, so the notification is delivered at
commit) and re-reads its counter after every notification, and at least every
``POLL_EVERY`` seconds whatever happens. ``fresh()`` is a memory load on the request path;
when the follower has not completed a read for ``STALE`` seconds (its connection lost, its
thread starved) callers read the database themselves, so a change committed at time T is
seen by every request that starts after T + STALE, notification or not.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from vallum.meta.postgres import MetaUnavailable, open_timeout, redacted

log = logging.getLogger("vallum.meta.postgres")
POLL_EVERY = 0.25       # seconds between the follower's reads when nothing is notified
STALE = 1.0             # a follower silent this long is not trusted: callers read themselves
RECONNECT = 0.5         # seconds between attempts while the database is unreachable


def open_pool(url: str, name: str, max_size: int = 4, wait: float = 10.0) -> Any:
    """A psycopg pool (autocommit connections), open, or MetaUnavailable naming the URL."""
    try:
        import psycopg
        from psycopg_pool import ConnectionPool
    except ImportError as exc:
        raise MetaUnavailable("the PostgreSQL stores need psycopg and psycopg_pool: "
                              "pip install 'vallum[postgres]'") from exc
    pool = ConnectionPool(url, min_size=1, max_size=max_size, open=False,
                          kwargs={"autocommit": True}, name=name, timeout=wait)
    try:
        pool.open(True, open_timeout())
    except psycopg.Error as exc:    # PoolTimeout included; libpq's text has no password
        pool.close()
        raise MetaUnavailable(f"PostgreSQL store {redacted(url)}: "
                              f"{type(exc).__name__}: {exc}") from None
    return pool


def create_schema(pool: Any, lock_id: int, ddl: list[str]) -> None:
    """Run ``ddl`` (idempotent statements) under an advisory lock: one gateway at a time."""
    with pool.connection() as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_id,))
        for statement in ddl:
            conn.execute(statement)


class Follower:
    """Keeps ``value`` (what ``read(conn)`` returns) fresh from a LISTEN connection."""

    def __init__(self, url: str, channel: str, read: Callable[[Any], Any], name: str,
                 confirm: Callable[[Any, Any], None] | None = None) -> None:
        """``confirm(conn, value)`` runs after each read once ``value`` is the one callers
        see (so what it records in the database is never ahead of this process)."""
        self.url = url
        self.channel = channel
        self.read = read
        self.confirm = confirm
        self.value: Any = None
        self.fresh_at = float("-inf")      # monotonic start of the last completed read
        self._stop = threading.Event()
        self._conn: Any = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def fresh(self) -> bool:
        return time.monotonic() - self.fresh_at <= STALE

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=POLL_EVERY * 4 + 5)

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {self.channel}")
                    while not self._stop.is_set():
                        started = time.monotonic()
                        self.value = self.read(conn)
                        self.fresh_at = started
                        if self.confirm is not None:
                            self.confirm(conn, self.value)
                        # Wakes at the first notification (or the poll interval): the next
                        # read then sees everything committed before it was sent.
                        for _ in conn.notifies(timeout=POLL_EVERY, stop_after=1):
                            pass
            except psycopg.Error as exc:
                log.warning("%s: change feed lost (%s), reconnecting", self.channel,
                            type(exc).__name__)
                self._stop.wait(RECONNECT)


# Held shared by every running gateway process, exclusively by a start-up sweep: blobs and
# temporary files not yet referenced by committed metadata belong to writes in flight on some
# gateway, so the sweep runs only when no gateway on the database is serving.
GATEWAY_LOCK = 0x56414C4C4757


class Presence:
    """This process serves: a connection of its own holds ``GATEWAY_LOCK`` shared (taken
    again after the connection is lost, checked every ``RECONNECT * 2`` seconds)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.held = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vallum-presence", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=RECONNECT * 4 + 5)

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute("SELECT pg_advisory_lock_shared(%s)", (GATEWAY_LOCK,))
                    self.held.set()
                    while not self._stop.wait(RECONNECT * 2):
                        conn.execute("SELECT 1")
                    # Given up now, not when the server notices the closed connection.
                    conn.execute("SELECT pg_advisory_unlock_shared(%s)", (GATEWAY_LOCK,))
            except psycopg.Error as exc:
                log.warning("gateway presence lost (%s), reconnecting", type(exc).__name__)
            self.held.clear()
            self._stop.wait(RECONNECT)


# The serving gateway processes of this database, on every host: holders of GATEWAY_LOCK.
SERVING = ("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
           "database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND "
           "classid = %s AND objid = %s AND objsubid = 1",
           (GATEWAY_LOCK >> 32, GATEWAY_LOCK & 0xFFFFFFFF))


def sole_gateway(url: str) -> Any:
    """A connection holding ``GATEWAY_LOCK`` exclusively (close it to release), or None when
    another gateway process is serving on this database."""
    import psycopg

    conn = psycopg.connect(url, autocommit=True, connect_timeout=int(open_timeout()) or 1)
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (GATEWAY_LOCK,)).fetchone()
    if row is not None and row[0]:
        return conn
    conn.close()
    return None
