"""One leader among the gateways sharing a PostgreSQL metadata database, by advisory lock.

Why: the lifecycle sweeper and cron must run on one gateway at a time, and with several
hosts no lock file is shared. ``pg_try_advisory_lock`` taken on a connection of its own is
held as long as that session lives: a gateway that dies (or loses its connection) gives
leadership up with it, and another takes it at its next ``held()``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any

log = logging.getLogger("vallum.meta")


def lock_id(name: str, database: str, schema: str) -> int:
    """A stable signed 64-bit advisory lock key for ``name`` in one deployment: advisory
    locks are per database server, so two deployments in two schemas must not share one."""
    text = "\x1f".join(("vallum-leader", name, database, schema)).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big", signed=True)


class AdvisoryLeader:
    """Leadership for ``name`` on one session kept open (a follower asks again on the same
    connection, so waiting costs no new connection per try)."""

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.name = name
        self.key: int | None = None       # known once connected (database and schema)
        self._conn: Any = None
        self._leading = False
        self._lock = threading.Lock()

    def held(self) -> bool:
        """Is this process the leader now? Takes leadership when it is free (blocking: call
        from a thread). Checks the session still lives, so a lost connection means not."""
        import psycopg

        with self._lock:
            try:
                if self._conn is None:
                    self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
                    where = self._conn.execute(
                        "SELECT current_database(), current_schema()").fetchone()
                    self.key = lock_id(self.name, *(str(v) for v in where or ()))
                if self._leading:
                    self._conn.execute("SELECT 1").fetchone()
                    return True
                row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
                self._leading = bool(row and row[0])
                if self._leading:
                    log.info("leader for %s on this process", self.name)
                return self._leading
            except psycopg.Error as exc:
                if self._leading:
                    log.warning("leadership for %s lost: %s", self.name, type(exc).__name__)
                self._drop()
                return False

    def release(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        conn, self._conn, self._leading = self._conn, None, False
        if conn is not None:
            try:
                conn.close()        # the session ends: the advisory lock goes with it
            except Exception:  # noqa: BLE001,S110 - already broken
                pass
