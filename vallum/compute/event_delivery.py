"""The loop that sends pending deliveries to their targets, with retries and dead letters.

Why a separate loop: the S3 request path only writes the outbox; a slow or dead target
delays nothing but its own deliveries. Each round claims at most BATCH due rows (memory
stays bounded whatever the backlog) by pushing their ``next_try`` a lease ahead, so a
second gateway does not send them too and a crashed sender's rows come back when the
lease ends (at least once). A row waits while an older row for the same target and key
is pending, so one key's events arrive in order unless a target dead-letters one.
Failures back off exponentially (``backoff_s * 2**(attempt-1)``, capped at MAX_BACKOFF);
after ``max_attempts`` the row moves to the dead letters.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from vallum.compute.event_senders import SendError, Senders
from vallum.compute.event_target_store import EventTargetStore

log = logging.getLogger("vallum.events")
BATCH = 64
LEASE_S = 120.0
MAX_BACKOFF = 600.0


def claim(conn: Any, now: float) -> list[tuple[int, str, str, int]]:
    """(id, target, body, attempts) of up to BATCH due rows, each first of its key."""
    rows = conn.execute(
        "SELECT d.id, d.target, d.body, d.attempts FROM event_deliveries d WHERE d.next_try<=? "
        "AND NOT EXISTS (SELECT 1 FROM event_deliveries e WHERE e.target=d.target AND "
        "e.bucket=d.bucket AND e.key=d.key AND e.id<d.id) ORDER BY d.id LIMIT ?",
        (now, BATCH)).fetchall()
    # Conditional, row by row: on PostgreSQL a second gateway's UPDATE waits for the first
    # to commit, sees the moved next_try and takes nothing (SQLite serializes writers).
    return [(r[0], r[1], r[2], r[3]) for r in rows
            if conn.execute("UPDATE event_deliveries SET next_try=? WHERE id=? AND next_try<=?",
                            (now + LEASE_S, r[0], now)).rowcount == 1]


def settle(conn: Any, results: list[tuple[int, str | None]], targets: dict[str, Any],
           now: float) -> int:
    """Record a round: sent rows go, failed ones back off or become dead letters."""
    dead = 0
    for delivery_id, error in results:
        if error is None:
            conn.execute("DELETE FROM event_deliveries WHERE id=?", (delivery_id,))
            continue
        row = conn.execute("SELECT target, bucket, key, label, body, attempts FROM "
                           "event_deliveries WHERE id=?", (delivery_id,)).fetchone()
        if row is None:
            continue
        target, bucket, key, label, body, attempts = row
        attempts += 1
        conn.execute("UPDATE event_targets SET failed=failed+1 WHERE arn=?", (target,))
        t = targets.get(target)
        if t is None or attempts >= t["max_attempts"]:
            account = t["account"] if t else target.split(":")[4]
            conn.execute("INSERT INTO event_dead_letters (target, account, bucket, key, label, "
                         "body, attempts, error, created) VALUES (?,?,?,?,?,?,?,?,?)",
                         (target, account, bucket, key, label, body, attempts, error, now))
            conn.execute("DELETE FROM event_deliveries WHERE id=?", (delivery_id,))
            dead += 1
            continue
        delay = min(MAX_BACKOFF, t["backoff_s"] * 2 ** (attempts - 1))
        conn.execute("UPDATE event_deliveries SET attempts=?, next_try=? WHERE id=?",
                     (attempts, now + delay, delivery_id))
    return dead


class Deliverer:
    def __init__(self, db: Any, store: EventTargetStore) -> None:
        self.db = db
        self.store = store
        self.senders = Senders()
        self.wake = asyncio.Event()

    async def loop(self) -> None:
        try:
            while True:
                self.wake.clear()
                try:
                    if await self.round():
                        continue
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("event delivery round failed")
                try:
                    await asyncio.wait_for(self.wake.wait(), 0.5)
                except asyncio.TimeoutError:
                    pass
        finally:
            await self.senders.close()

    async def round(self) -> int:
        """Send one batch (targets in parallel, one target's rows in order); rows sent."""
        batch = await self.db.write(lambda c: claim(c, time.time()))
        if not batch:
            return 0
        targets: dict[str, Any] = {}
        by_target: dict[str, list[tuple[int, str]]] = {}
        for delivery_id, arn, body, _attempts in batch:
            if arn not in targets:
                targets[arn] = await asyncio.to_thread(self.store.target, arn)
            by_target.setdefault(arn, []).append((delivery_id, body))
        results: list[tuple[int, str | None]] = []

        async def send_all(arn: str, rows: list[tuple[int, str]]) -> None:
            for delivery_id, body in rows:
                t = targets[arn]
                if t is None:
                    results.append((delivery_id, "the target was deleted"))
                    continue
                try:
                    await self.senders.send(t, delivery_id, body.encode())
                    results.append((delivery_id, None))
                except SendError as exc:
                    log.info("event delivery %d to %s failed: %s", delivery_id, arn, exc)
                    results.append((delivery_id, str(exc)))

        try:
            await asyncio.gather(*(send_all(a, rows) for a, rows in by_target.items()))
        finally:
            await self.senders.end_round()
        dead = await self.db.write(lambda c: settle(c, results, targets, time.time()))
        if dead:
            log.warning("event deliveries: %d moved to dead letters", dead)
        return sum(1 for _, e in results if e is None) or len(results)
