"""Task credentials live exactly as long as their task: revoked when it ends.

Why: a task's STS session is a self-contained token that stays valid until it expires
(the wall time plus a margin, 12 h for a network function's warm worker), so a task
that leaked its key kept the owner's scoped rights after its job ended or was
cancelled. Revoking marks the key in this process at once and durably in the compute
database, which every gateway process reads on each request signed with a temporary
key (one indexed lookup); rows are purged once the credentials would have expired.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

TEMP_PREFIX = "ASIA"      # vallum.iam.sts: temporary access key ids


def insert(conn: sqlite3.Connection, creds: Any) -> None:
    """Record ``creds`` (TaskCredentials) as revoked inside the caller's transaction.
    Long-term keys (StaticMinter: no session token) are never revoked here."""
    if creds is not None and creds.session_token:
        conn.execute("INSERT INTO compute_revoked (akid, until) VALUES (?, ?) "
                     "ON CONFLICT DO NOTHING",
                     (creds.access_key_id, creds.expires))


def purge(conn: sqlite3.Connection, now: float) -> None:
    conn.execute("DELETE FROM compute_revoked WHERE until < ?", (now,))


class Revocations:
    """The revoked task keys this process knows of, backed by the compute database."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self._here: dict[str, float] = {}        # akid -> expiry: revoked by this process

    def note(self, creds: Any) -> None:
        """Refuse ``creds`` in this process from now on (before the durable write lands)."""
        if creds is not None and creds.session_token:
            now = time.time()
            if len(self._here) >= 4096:
                self._here = {k: t for k, t in self._here.items() if t > now}
            self._here[creds.access_key_id] = creds.expires

    async def revoke(self, *creds: Any) -> None:
        for c in creds:
            self.note(c)

        def insert_all(conn: sqlite3.Connection) -> None:
            for c in creds:
                insert(conn, c)

        await self.db.write(insert_all)

    def revoked(self, akid: str) -> bool:
        if not akid.startswith(TEMP_PREFIX):
            return False
        if akid in self._here:
            return True
        row = self.db.reader().execute("SELECT 1 FROM compute_revoked WHERE akid=?",
                                       (akid,)).fetchone()
        return row is not None
