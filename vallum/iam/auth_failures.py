"""Failed-authentication rate limits, per (access key, source address) and per address.

Why: SigV4 secrets cannot be brute-forced, but a flood of bad signatures or guessed
key ids is an attack signal. After ``max_per_key`` failures inside ``window`` seconds
for one key from one address (or ``max_per_address`` from one address), further
*failures* from there are answered SlowDown, one answer for a wrong key id and a wrong
signature alike, and are no longer written down. The gate asks only once a request
has failed: a correctly signed request is never refused, so nobody can lock out a key
(the platform root's included) by sending bad signatures for it.
This class counts in one process (the in-memory IAM service, and the fallback of
iam/lockouts.py, which shares the counts between the gateway processes of one database).
"""

from __future__ import annotations

import logging
import time
from collections import deque

log = logging.getLogger("vallum.security")


def counters(access_key: str | None, address: str) -> tuple[str | None, str | None]:
    """The (key at this address, address) counter names a failure counts against."""
    return (f"k:{access_key}@{address}" if access_key else None,
            f"a:{address}" if address else None)


class FailureLimiter:
    def __init__(self, *, max_per_key: int = 20, max_per_address: int = 50,
                 window: float = 60.0, max_tracked: int = 100_000) -> None:
        self.max_per_key = max_per_key
        self.max_per_address = max_per_address
        self.window = window
        self.max_tracked = max_tracked
        self._fails: dict[str, deque[float]] = {}
        self.lockouts = 0            # refused requests (for metrics and tests)

    def _recent(self, who: str, now: float) -> int:
        q = self._fails.get(who)
        if not q:
            return 0
        while q and q[0] <= now - self.window:
            q.popleft()
        if not q:
            del self._fails[who]
            return 0
        return len(q)

    def blocked(self, access_key: str | None, address: str, now: float | None = None) -> str | None:
        """What is locked out ("key" / "address"), or None."""
        now = time.monotonic() if now is None else now
        pair, addr = counters(access_key, address)
        if pair and self._recent(pair, now) >= self.max_per_key:
            what = "key"
        elif addr and self._recent(addr, now) >= self.max_per_address:
            what = "address"
        else:
            return None
        self.lockouts += 1
        log.warning("authentication locked out (%s): access_key=%s address=%s", what,
                    access_key, address)
        return what

    def failed(self, access_key: str | None, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._count(access_key, address, now)
        log.warning("authentication failed: access_key=%s address=%s", access_key, address)

    def _count(self, access_key: str | None, address: str, now: float) -> None:
        if len(self._fails) >= self.max_tracked:
            self._fails.clear()          # bounded memory beats perfect accounting under a flood
        for who in counters(access_key, address):
            if who:
                self._fails.setdefault(who, deque()).append(now)

    def close(self) -> None:
        """Nothing to release here (the shared limiter holds a connection)."""
