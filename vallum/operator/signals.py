"""Sliding-window signals per principal, source address and account.

Why slots: a window is a ring of fixed time slots (default 12 x 5 s = 60 s) with
running totals, so an update costs one slot add and, when time moves on, one slot
subtract per expired slot: O(1) amortised, no per-event history kept for counters.
Distinct counts (keys, prefixes, buckets, ...) keep value -> last-seen and a FIFO of
(time, values added then); expiry pops the FIFO, also O(1) amortised. One FIFO entry per
run of events (detector.observe_batch), not per value: a run's values share its time.

Every window also keeps the *peak* of each feature within the current minute; at a
minute change the peaks are handed out as one sample of "what this entity did in an
active minute", which is what the baselines learn from.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

from vallum.operator.request_events import (
    AUTH_FAILURES,
    DELETE_OPS,
    LIST_OPS,
    MINT_OPS,
    READ_OPS,
    WRITE_OPS,
    RequestEvent,
)

COUNTERS = ("requests", "reads", "writes", "lists", "deletes", "bytes_out", "bytes_in",
            "denied", "not_found", "auth_failures",
            "label0", "label1", "label2", "label3", "label4", "gets", "destroys", "opaque_writes",
            "mints")
DISTINCT = ("keys", "prefixes", "buckets", "denied_ops", "failed_keys", "got_keys")
GETS = frozenset({"GetObject", "SelectObjectContent"})
FEATURES = COUNTERS + DISTINCT
IDX = {name: i for i, name in enumerate(FEATURES)}
NC = len(COUNTERS)
GOT_KEYS = DISTINCT.index("got_keys")
SPREAD = -1         # in a run's distinct values: (read prefix, reads from it) pairs (Spread)
NOT_FOUND = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchVersion", "NoSuchUpload"})
DESTROYS = COUNTERS.index("destroys")
OPAQUE = COUNTERS.index("opaque_writes")
MINTS = COUNTERS.index("mints")
# Objects a request may destroy: a delete, a copy (the event has no copy source, and
# copy-in-place re-encryption or a server-side rename both look like this), and a
# DeleteObjects, whose keys are estimated from its XML body (about this many bytes a key).
REWRITES = frozenset({"DeleteObject", "CopyObject"})
BYTES_PER_DELETED_KEY = 64


class Distinct:
    """Distinct values seen in the last ``window`` seconds."""

    __slots__ = ("window", "last", "fifo")

    def __init__(self, window: float) -> None:
        self.window = window
        self.last: dict[str, float] = {}
        self.fifo: deque[tuple[float, Sequence[str]]] = deque()

    def add_all(self, values: Sequence[str], ts: float) -> None:
        last = self.last
        for value in values:
            last[value] = ts
        self.fifo.append((ts, values))

    def expire(self, now: float) -> None:
        horizon = now - self.window
        fifo, last = self.fifo, self.last
        while fifo and fifo[0][0] <= horizon:
            ts, values = fifo.popleft()
            for value in values:
                if last.get(value) == ts:
                    del last[value]

    def __len__(self) -> int:
        return len(self.last)

    def __iter__(self) -> Iterator[str]:
        return iter(self.last)


class Spread:
    """How many prefixes the data actually read in the window came from, weighted.

    Why weighted: an analyst pulling one dataset while doing a little ordinary work
    touches 6 prefixes but reads 95% of the bytes from one or two; an exfiltration
    drains many. ``effective()`` is (sum c)^2 / sum c^2 over per-prefix read counts
    (the inverse Simpson index): 1 for one prefix, n for n equally read ones.
    Running sums make an update O(1) amortised.
    """

    __slots__ = ("window", "counts", "fifo", "total", "squares")

    def __init__(self, window: float) -> None:
        self.window = window
        self.counts: dict[str, int] = {}
        self.fifo: deque[tuple[float, Sequence[tuple[str, int]]]] = deque()
        self.total = 0
        self.squares = 0

    def add_all(self, reads: Sequence[tuple[str, int]], ts: float) -> None:
        """``reads``: (prefix, reads from it) pairs; integer sums, so exactly the result of
        adding the reads one by one."""
        counts = self.counts
        squares = total = 0
        for prefix, k in reads:
            c = counts.get(prefix, 0)
            counts[prefix] = c + k
            squares += (2 * c + k) * k
            total += k
        self.squares += squares
        self.total += total
        self.fifo.append((ts, reads))

    def expire(self, now: float) -> None:
        horizon = now - self.window
        fifo, counts = self.fifo, self.counts
        while fifo and fifo[0][0] <= horizon:
            _, reads = fifo.popleft()
            for prefix, k in reads:
                c = counts[prefix]
                self.squares -= (2 * c - k) * k
                self.total -= k
                if c == k:
                    del counts[prefix]
                else:
                    counts[prefix] = c - k

    def effective(self) -> float:
        return self.total * self.total / self.squares if self.squares else 0.0


class Window:
    """One entity's sliding window of counters and distinct sets, plus minute peaks."""

    __slots__ = ("slot", "nslots", "slots", "totals", "head", "sets", "peak", "minute",
                 "last_ts", "spread")

    def __init__(self, window: float = 60.0, slot: float = 5.0) -> None:
        self.slot = slot
        self.nslots = max(1, int(round(window / slot)))
        self.slots = [[0.0] * NC for _ in range(self.nslots)]
        self.totals = [0.0] * NC
        self.head = -1                      # absolute slot number of the newest slot
        self.sets = tuple(Distinct(window) for _ in DISTINCT)
        self.spread = Spread(window)
        self.peak = [0.0] * len(FEATURES)
        self.minute = -1
        self.last_ts = 0.0

    def _advance(self, ts: float) -> None:
        n = int(ts // self.slot)
        if n <= self.head:
            return
        steps = min(n - self.head, self.nslots)
        totals = self.totals
        for k in range(1, steps + 1):
            old = self.slots[(self.head + k) % self.nslots]
            for i in range(NC):
                if old[i]:
                    totals[i] -= old[i]
                    old[i] = 0.0
        self.head = n
        for s in self.sets:
            s.expire(ts)
        self.spread.expire(ts)

    def add(self, ts: float, counts: Sequence[tuple[int, float]],
            distinct: Sequence[tuple[int, Sequence[Any]]]) -> tuple[list[float], int] | None:
        """Count one event (or run); when a minute ended, returns (its peaks, that minute's
        number). ``distinct`` pairs a set's index (or SPREAD) with the values it gets.

        Hot path (every run, three windows): attribute lookups are hoisted; the distinct
        sets take a run's values in one call each."""
        sample = None
        minute = int(ts // 60)
        if minute != self.minute:
            if self.minute >= 0:
                sample = (self.peak, self.minute)
                self.peak = [0.0] * len(FEATURES)
            self.minute = minute
        if int(ts // self.slot) > self.head:
            self._advance(ts)
        cur = self.slots[self.head % self.nslots]
        totals, peak = self.totals, self.peak
        # Only what this event raised can set a new peak (expiry only lowers totals).
        for i, v in counts:
            cur[i] += v
            t = totals[i] + v
            totals[i] = t
            if t > peak[i]:
                peak[i] = t
        if distinct:
            sets = self.sets
            for j, values in distinct:
                if j == SPREAD:
                    self.spread.add_all(values, ts)
                    continue
                s = sets[j]
                s.add_all(values, ts)
                n = len(s.last)
                if n > peak[NC + j]:
                    peak[NC + j] = n
        self.last_ts = ts
        return sample

    def recent(self, name: str, seconds: float) -> float:
        """A counter over only the newest slots covering ``seconds`` (a burst, not a minute)."""
        i = IDX[name]
        k = min(self.nslots, max(1, int(round(seconds / self.slot))))
        slots, n, head = self.slots, self.nslots, self.head
        return sum(slots[(head - j) % n][i] for j in range(k))

    def value(self, name: str) -> float:
        i = IDX[name]
        return self.totals[i] if i < NC else float(len(self.sets[i - NC]))

    def features(self) -> dict[str, float]:
        return {name: self.value(name) for name in FEATURES}


Kind = tuple[tuple[tuple[int, float], ...], bool, bool, str]
_KINDS: dict[tuple[str, str], Kind] = {}


def _kind(op: str, err: str) -> Kind:
    """What an (operation, error) pair always contributes, computed once per pair:
    (counter increments, is a read, is a successful GET, which distinct set the error feeds)."""
    counts: list[tuple[int, float]] = [(0, 1.0)]
    read = op in READ_OPS
    if read:
        counts.append((1, 1.0))
    elif op in WRITE_OPS:
        counts.append((2, 1.0))
    elif op in LIST_OPS:
        counts.append((3, 1.0))
    elif op in DELETE_OPS:
        counts.append((4, 1.0))
    got = op in GETS and not err
    if op in MINT_OPS and not err:
        counts.append((MINTS, 1.0))
    what = ""
    if err == "AccessDenied":
        counts.append((7, 1.0))
        what = "denied"
    elif err in NOT_FOUND:
        counts.append((8, 1.0))
    elif err in AUTH_FAILURES:
        counts.append((9, 1.0))
        what = "auth"
    kind = _KINDS[(op, err)] = (tuple(counts), read, got, what)
    return kind


def run_counts(run: Sequence[RequestEvent]) -> tuple[list[tuple[int, float]], list[tuple[int, list]]]:
    """The counter increments and distinct values of a run of events alike in all but
    key, bytes and time (``run_end``): the counters of one event times the run's length,
    the bytes summed, each event's key and prefix as distinct values (its key again as an
    object read, when it is one) and, for reads, (prefix, reads) pairs for the spread."""
    first, n = run[0], len(run)
    op, err, bucket = first.operation, first.error, first.bucket
    base, read, got, what = _KINDS.get((op, err)) or _kind(op, err)
    counts = [(i, v * n) for i, v in base] if n > 1 else list(base)
    if read and 0 <= first.label <= 4:
        counts.append((10 + first.label, float(n)))
    bytes_out = first.bytes_out if n == 1 else sum(e.bytes_out for e in run)
    if bytes_out:
        counts.append((5, float(bytes_out)))
    bytes_in = first.bytes_in if n == 1 else sum(e.bytes_in for e in run)
    if bytes_in:
        counts.append((6, float(bytes_in)))
    got = got and bool(first.key)
    if got:
        counts.append((15, float(n)))
    if not err:
        if op in WRITE_OPS and first.opaque >= 0:
            opaque = sum(1 for e in run if e.opaque == 1)
            if opaque:
                counts.append((OPAQUE, float(opaque)))
        if op in REWRITES:
            counts.append((DESTROYS, float(n)))
        elif op == "DeleteObjects":
            counts.append((DESTROYS, float(sum(max(1, e.bytes_in // BYTES_PER_DELETED_KEY)
                                               for e in run))))
    distinct: list[tuple[int, list]] = []
    if what:
        distinct.append((3, [op]) if what == "denied" else (4, [first.principal]))
    if bucket:
        distinct.append((2, [bucket]))
        if first.key:
            fulls: list[str] = []
            prefixes: list[str] = []      # consecutive repeats once: they change no distinct set
            repeats: list[int] = []       # ... but each read weighs in the spread
            last = None
            for e in run:
                key = e.key
                fulls.append(f"{bucket}/{key}")
                head, sep, _ = key.partition("/")
                prefix = f"{bucket}/{head}/" if sep else f"{bucket}/"     # its 'directory'
                if prefix == last:
                    repeats[-1] += 1
                else:
                    prefixes.append(prefix)
                    repeats.append(1)
                    last = prefix
            distinct.append((0, fulls))
            distinct.append((1, prefixes))
            if got:
                distinct.append((GOT_KEYS, fulls))
                distinct.append((SPREAD, list(zip(prefixes, repeats, strict=True))))
    return counts, distinct


def run_end(events: Sequence[RequestEvent], i: int, slot: float) -> int:
    """The end of the run starting at ``events[i]``: the following events counted together
    with it (``run_counts``) because they share its caller, operation, outcome, label and
    bucket, have a key if it has one, and fall in its window slot (and so its minute: a
    slot divides the minute). Failed sign-ins are runs of one (they feed the address
    windows one by one)."""
    first = events[i]
    n = len(events)
    j = i + 1
    principal = first.principal
    if not principal or first.error in AUTH_FAILURES:
        return j
    who = first[WHO]
    err, label, has_key = first.error, first.label, bool(first.key)
    start = int(first.ts // slot) * slot
    end = min(start + slot, (int(first.ts // 60) + 1) * 60.0)
    while j < n:
        e = events[j]
        if not (start <= e.ts < end and e[WHO] == who and e.error == err and e.label == label
                and bool(e.key) == has_key):
            break
        j += 1
    return j


# run_end compares these fields of RequestEvent as one slice (test_signals checks the order).
WHO = slice(1, 6)
WHO_FIELDS = ("principal", "account", "source", "operation", "bucket")
ONE_REQUEST = ((0, 1.0),)
AUTH_FAILURE = ((0, 1.0), (9, 1.0))
FAILED_KEYS = DISTINCT.index("failed_keys")


class Signals:
    """Windows for every principal, source address and account seen."""

    def __init__(self, window: float = 60.0, slot: float = 5.0) -> None:
        self.window, self.slot = window, slot
        self.principals: dict[str, Window] = {}
        self.addresses: dict[str, Window] = {}
        self.accounts: dict[str, Window] = {}

    def _get(self, table: dict[str, Window], name: str) -> Window:
        w = table.get(name)
        if w is None:
            w = table[name] = Window(self.window, self.slot)
        return w

    def update_run(self, run: Sequence[RequestEvent]
                   ) -> tuple[Window | None, tuple[list[float], int] | None, Window | None, tuple[list[float], int] | None]:
        """Count a run of events alike (``run_end``), all at the time of its last one:
        (principal window or None, its finished-minute sample, address window or None, its
        finished-minute sample). A run shares one window slot, so its distinct values
        expire at most one slot late; its counters land where one by one they would.

        Why the address and account windows get less than the principal's: the only
        reader of an address window is credential stuffing (sign-in failures and
        failed keys, plus the minute samples its baseline learns from), and account
        windows are counters for reporting; counting every distinct key three times
        was most of the operator's cost per request."""
        counts, distinct = run_counts(run)
        ev = run[-1]
        ts, principal, source, err = ev.ts, ev.principal, ev.source, ev.error
        pw: Window | None = None
        sample = None
        auth_failed = err in AUTH_FAILURES
        if principal and not auth_failed:
            pw = self.principals.get(principal) or self._get(self.principals, principal)
            if ev.operation == "PutObject" and not err and ev.key:
                # A write over an object this caller read in the window: encrypt in place.
                got = pw.sets[GOT_KEYS]
                read, window = got.last, got.window
                if read:
                    # Still in the window at the write's own time (the set itself may
                    # expire up to a slot late in a run): the count is the same however
                    # the events were grouped.
                    over = 0
                    for e in run:
                        seen = read.get(f"{e.bucket}/{e.key}")
                        if seen is not None and seen > e.ts - window:
                            over += 1
                    if over:
                        counts = [*counts, (DESTROYS, float(over))]
            sample = pw.add(ts, counts, distinct)
            if ev.account:
                acc = self.accounts.get(ev.account) or self._get(self.accounts, ev.account)
                acc.add(ts, counts, ())
        aw: Window | None = None
        asample = None
        if source:
            aw = self.addresses.get(source) or self._get(self.addresses, source)
            if auth_failed:
                asample = aw.add(ts, AUTH_FAILURE, ((FAILED_KEYS, (principal,)),))
            else:
                asample = aw.add(ts, ONE_REQUEST if len(run) == 1 else ((0, float(len(run))),), ())
        return pw, sample, aw, asample
