"""The operator's live decision path, one per gateway process: requests in (as events),
decisions out (alerts journalled, containment applied).

Why apart from gateway.py (the request adapter): the same path runs live and in
replay (``replay``: recorded events in their own time, faster than real time), so an
evaluation measures what a gateway does, batching and containment included.

One detector per data directory (state.py): the process holding the detector lock
decides; with ``--workers N`` the others feed their requests to it through the
operator database, so it sees all of a principal's traffic. Its baselines are saved
there as they change and restored at start (and by the process that takes over when
it dies).

Every action (suspension, throttle, address block, release) is applied in the deciding
process at once and written to the action journal, which every gateway polls four
times a second; a suspension also makes the key Inactive in IAM (every gateway re-reads
keys when the IAM generation moves; STS session keys have no IAM row, the journal
carries theirs). Alerts and actions are counted in Prometheus.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

from prometheus_client import Counter

from vallum.metrics import REGISTRY
from vallum.operator import journal, sinks
from vallum.operator import shared_state as state
from vallum.operator.alerts import Alert
from vallum.operator.containment import Action, Containment, refused
from vallum.operator.detector import CHUNK, MAX_DELAY, Detector
from vallum.operator.request_events import AUTH_FAILURES, RequestEvent

log = logging.getLogger("vallum.operator")
POLL_EVERY = 0.25       # actions journalled by other processes: two stat() calls when none
PEERS_EVERY = 2.0       # count the gateway processes; take the detector over if its process died
IDLE_TICK = 1.0         # how often an idle detector looks for requests other processes fed in
SAVE_EVERY = 30.0       # baselines that changed are written at most this often (and at exit)
# Requests are queued and handed to the detector in batches: at most BATCH at a time, and
# none waits more than MAX_DELAY seconds (the containment test's copier gets ~10 more
# objects out per 50 ms of delay at one client's pace) ...
BATCH = 256
# ... and processed CHUNK at a time (detector.py; the replay batches the same way), one
# loop turn each, so the event loop never stalls for a whole batch (256 requests at 11-18
# us each, cache-cold, held it for up to ~4 ms).

ALERTS = Counter("vallum_operator_alerts_total", "Operator alerts by kind", ["kind"], registry=REGISTRY)
ACTIONS = Counter("vallum_operator_actions_total", "Operator containment actions", ["action"],
                  registry=REGISTRY)


class Live:
    def __init__(self, data_dir: Path, iam: Any, default_mode: str, root_key: str = "", *,
                 sinks_from_env: bool = True, persist: bool = True) -> None:
        self.dir = journal.directory(data_dir)
        self.data_dir = Path(data_dir)
        self.iam = iam
        self.root_key = root_key
        self.pid = os.getpid()
        self.detector = Detector()
        self.policy = Containment(default_mode=default_mode, sink=self._record,
                                  suspender=self._suspend_key)
        self._env_default = default_mode
        self._offset = 0
        self._actions_size = -1
        self._modes_mtime = -1.0
        self._next_poll = 0.0
        self._next_peers = 0.0
        self._next_save = time.monotonic() + SAVE_EVERY
        self._pending: list[RequestEvent] = []
        self._draining = False
        self._ticking = False
        self._fed_at = 0.0              # when other processes last fed this detector
        self._collected: list[Alert] | None = None     # replay: the alerts raised
        self._last_ts = 0.0
        self.peers = 1                  # gateway processes running the operator
        self.cursor = 0                 # the last shared event this detector read
        self.store: Any = None         # state.Store, or pg_state.PostgresStore
        self._action_id = 0             # the last shared action applied (PostgreSQL journal)
        self.leader = True              # this process runs the detector
        if persist:
            try:
                self.store = state.open_store(self.dir)
                self.leader = self.store.lead()
            except _OPEN_ERRORS as exc:     # decide alone, from nothing, rather than not at all
                log.error("operator state unavailable, baselines start empty: %s", exc)
                self.store, self.leader = None, True
            if self.leader:
                self._restore()
        try:
            journal.announce(self.data_dir, self.pid, default_mode)
        except OSError as exc:          # status then cannot tell; the gateway still runs
            log.warning("operator could not record its mode: %s", exc)
        self.sinks: list[Any] = []
        if sinks_from_env:
            try:
                self.sinks = sinks.from_env(os.environ)
            except ValueError as exc:       # a bad sink setting must not take the gateway down
                log.error("operator sink not started: %s", exc)
        self.poll(force=True)

    # -- state: restored at start, saved as it changes, shared by every process --------------
    def _restore(self) -> None:
        """Baselines (and the prior) back from the database, and the shared feed's cursor."""
        store = self.store
        if store is None:
            return
        try:
            n = 0
            for principal, doc in store.baselines():
                self.detector.restore(principal, doc)
                n += 1
            prior = store.meta(state.PRIOR)
            if isinstance(prior, dict):
                self.detector.prior = state.load_profile(prior)
            cursor = store.meta(state.CURSOR)
            self.cursor = int(cursor) if isinstance(cursor, int) else store.last_event()
        except state.ERRORS as exc:
            log.error("operator could not restore its baselines: %s", exc)
            return
        if n:
            log.info("operator restored the baselines of %d principals", n)

    def save(self) -> None:
        """Write the baselines that changed (one transaction), the prior and the cursor;
        then drop the shared events already read."""
        store = self.store
        if store is None or not self.leader:
            return
        det = self.detector
        dirty, det.dirty = det.dirty, set()
        docs = [(p, det.principals[p].profile.last_ts, det.baseline(p))
                for p in dirty if p in det.principals]
        try:
            store.save(docs, {state.PRIOR: state.dump_profile(det.prior), state.CURSOR: self.cursor})
            store.prune(self.cursor)
        except state.ERRORS as exc:
            det.dirty |= dirty                      # kept for the next save
            log.warning("operator could not save its baselines: %s", exc)

    def close(self) -> None:
        """Decide on what is queued, save, and give up the detector lock."""
        try:
            self.flush()
            self.save()
        finally:
            if self.store is not None:
                self.store.close()
                self.store = None

    # -- journal ---------------------------------------------------------------
    def _record(self, action: Action) -> None:
        ACTIONS.labels(action.action).inc()
        record = {**action.to_dict(), "pid": self.pid}
        journal.append(self.dir / journal.ACTIONS, record)
        if self.store is not None and self.store.shares_actions:
            try:                        # the other hosts' gateways apply it from there
                self.store.append_action(record)
            except state.ERRORS as exc:
                log.error("operator could not share action %s %s: %s", action.action,
                          action.entity, exc)
        log.warning("operator %s %s: %s", action.action, action.entity, action.reason)

    def _suspend_key(self, key: str, suspend: bool) -> None:
        if self.iam is None or key.startswith("ASIA") or ":" in key:
            return                      # session keys and federated people: the journal carries it
        try:
            self.iam.directory.set_key_status(key, "Inactive" if suspend else "Active")
        except Exception:  # noqa: BLE001 - an unknown key still stays suspended locally
            log.warning("operator could not change IAM status of %s", key)

    def poll(self, force: bool = False) -> None:
        """Apply actions other processes journalled (every kind), re-read per-account
        modes; every few seconds count the gateway processes, take the detector over if
        its process is gone, and save the baselines."""
        now = time.monotonic()
        if not force and now < self._next_poll:
            return
        self._next_poll = now + POLL_EVERY
        if self.store is not None and self.store.shares_actions:
            self._poll_shared(force)
        else:
            self._poll_file(force)
        try:
            mtime = (self.dir / journal.MODES).stat().st_mtime
        except FileNotFoundError:
            mtime = 0.0
        if mtime != self._modes_mtime:
            self._modes_mtime = mtime
            modes = journal.load_modes(self.data_dir)
            self.policy.default_mode = modes["default"] or self._env_default
            self.policy.modes = modes["accounts"]
        if now >= self._next_peers or force:
            self._next_peers = now + PEERS_EVERY
            self.peers = max(1, self._count_peers())
            if not self.leader and self.store is not None and self.store.lead():
                log.warning("operator: this process now runs the detector")
                self.detector = Detector()
                self.leader = True
                self._restore()
        if now >= self._next_save:
            self._next_save = now + SAVE_EVERY
            self.save()

    def _count_peers(self) -> int:
        """Gateway processes running: every host's on PostgreSQL, else this data directory's."""
        if self.store is not None and self.store.shares_actions:
            try:
                return int(self.store.peers())
            except state.ERRORS as exc:
                log.warning("operator could not count the gateways: %s", exc)
        return len(journal.running_gateways(self.data_dir))

    def _poll_file(self, force: bool) -> None:
        """Actions other processes of this data directory appended to the journal file."""
        path = self.dir / journal.ACTIONS
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size != self._actions_size or force:
            self._actions_size = size
            records, self._offset = journal.read(path, self._offset)
            self._apply(rec for rec in records if rec.get("pid") != self.pid or force)

    def _poll_shared(self, force: bool) -> None:
        """Actions other gateway processes (any host) journalled in PostgreSQL; at start
        (``force``) the whole journal, so a new process applies what is in force."""
        try:
            records, self._action_id = self.store.actions_after(0 if force else self._action_id)
        except state.ERRORS as exc:
            log.warning("operator could not read the shared action journal: %s", exc)
            return
        self._apply(records)

    def _apply(self, records: Iterable[dict[str, Any]]) -> None:
        wall = time.time()
        for rec in records:
            action = _action(rec)
            if action is not None:
                self.policy.apply(action, wall)

    # -- per request ---------------------------------------------------------------
    def _enqueue(self, item: RequestEvent) -> None:
        pending = self._pending
        pending.append(item)
        if self._draining:
            return                      # the drain under way reaches this one too
        if len(pending) >= BATCH:
            self._drain()
        elif len(pending) == 1:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:        # no event loop (called from a plain thread): no batching
                self.flush()
                return
            loop.call_later(MAX_DELAY, self._drain)
            if self.leader and self.store is not None and not self._ticking:
                self._ticking = True
                loop.call_later(MAX_DELAY, self._tick)

    def _drain(self) -> None:
        """Run the detector over the oldest CHUNK queued requests, and come back on the next
        loop turn for the rest; requests queued meanwhile join the same drain, in order."""
        pending = self._pending
        items = pending[:CHUNK]
        del pending[:CHUNK]
        self._process(items)
        self._draining = bool(pending)
        if pending:
            asyncio.get_running_loop().call_soon(self._drain)

    def _tick(self) -> None:
        """The detector's process reads what the other processes fed in: every MAX_DELAY
        seconds while they do (or while there are other processes), else every IDLE_TICK."""
        if not self.leader or self.store is None:
            self._ticking = False
            return
        self._process([], pull=True)
        busy = self._shared()
        asyncio.get_running_loop().call_later(MAX_DELAY if busy else IDLE_TICK, self._tick)

    def flush(self) -> None:
        """Run the detector over every queued request, oldest first."""
        pending, self._pending = self._pending, []
        self._process(pending)

    def _shared(self) -> bool:
        """Other processes feed this detector (or did in the last IDLE_TICK seconds)."""
        return self.peers > 1 or time.monotonic() - self._fed_at < IDLE_TICK

    def _process(self, pending: list[RequestEvent], pull: bool = False) -> None:
        """The hand-over: in the detector's process, decide on these requests and on the
        ones other processes fed in meanwhile (in time order); elsewhere, feed them in."""
        store = self.store
        if not self.leader and store is not None:
            if pending:
                try:
                    store.push(pending)
                except state.ERRORS as exc:
                    log.warning("operator could not feed %d requests to the detector: %s",
                                len(pending), exc)
            return
        if store is not None and (pull or self._shared()):
            try:
                shared, self.cursor = store.pull(self.cursor)
            except state.ERRORS as exc:
                log.warning("operator could not read the other processes' requests: %s", exc)
                shared = []
            if shared:
                self._fed_at = time.monotonic()
                pending = sorted([*shared, *pending], key=_TS)
        if pending:
            self.decide(pending)

    def decide(self, events: Sequence[RequestEvent]) -> None:
        """The live decision path: events (in time order) through the detector, alerts
        journalled and acted on. An event older than one already decided on (another
        process's, late) is taken at that time: the detector's clock never runs back."""
        last = self._last_ts
        if events[0].ts < last:         # (each process's events, and a merge, are in time order)
            events = [ev._replace(ts=last) if ev.ts < last else ev for ev in events]
        self._last_ts = events[-1].ts
        try:
            alerts = self.detector.observe_batch(events)
        except Exception:  # noqa: BLE001 - the operator must never break the gateway
            log.exception("operator failed to observe %d requests", len(events))
            return
        for alert in alerts:
            self._alert(alert)

    # -- event-time replay through the live path ---------------------------------------
    def replay(self, events: Iterable[RequestEvent], contain_from: float = 0.0
               ) -> tuple[list[Alert], list[bool]]:
        """Drive this hook with recorded events in their own time, faster than real time:
        each event is admitted as ``admit`` admits a request (a contained caller's event is
        answered as the gateway answers it: SlowDown / AccessDenied, no data), queued as
        ``observe`` queues it, and handed to the detector in the gateway's batches (CHUNK
        events, none waiting over MAX_DELAY of event time); alerts go through the same
        journal and containment. Before ``contain_from`` the default mode is observe.
        Returns the alerts and, per event, whether it was served."""
        alerts: list[Alert] = []
        self._collected = alerts
        served: list[bool] = []
        policy = self.policy
        mode = policy.default_mode
        pending = self._pending
        try:
            for ev in events:
                if pending and (len(pending) >= CHUNK or ev.ts - pending[0].ts > MAX_DELAY):
                    policy.default_mode = mode if pending[0].ts >= contain_from else "observe"
                    self.flush()
                    pending = self._pending
                ok = True
                if policy.suspended or policy.throttled or policy.blocked:
                    # (the gateway authenticates before it admits)
                    verdict = policy.admit(None if ev.error in AUTH_FAILURES else ev.principal,
                                           ev.source, ev.ts)
                    if verdict is not None:
                        ev, ok = refused(ev, verdict), False
                served.append(ok)
                pending.append(ev)
            if pending:
                policy.default_mode = mode if pending[0].ts >= contain_from else "observe"
                self.flush()
        finally:
            policy.default_mode = mode
            self._collected = None
        return alerts, served

    def _alert(self, alert: Alert) -> None:
        if self._collected is not None:
            self._collected.append(alert)
        ALERTS.labels(alert.kind).inc()
        journal.append(self.dir / journal.ALERTS, alert.to_dict())
        log.warning("operator alert %s on %s: %s", alert.kind, alert.entity, alert.reason)
        record = alert.to_dict()
        for sink in self.sinks:         # enqueue only: a slow receiver never delays a request
            sink.submit(record)
        if alert.entity == self.root_key:
            return                      # never lock the platform root out: alert only
        self.policy.on_alert(alert)


_TS = itemgetter(0)
_OPEN_ERRORS: tuple[type[Exception], ...] = (OSError, *state.ERRORS)


def _action(rec: dict[str, Any]) -> Action | None:
    """An action journalled by another process; None for a record that is not one (a
    torn or edited line must not put a malformed rate into an admission check)."""
    try:
        fields = {k: rec[k] for k in Action.__dataclass_fields__ if k in rec}
        action = Action(**fields)
        action.ts, action.rate = float(action.ts), float(action.rate or 0.0)
        if not (isinstance(action.entity, str) and isinstance(action.action, str)) \
                or action.rate < 0 or action.rate != action.rate:
            return None
        return action
    except (TypeError, ValueError):
        return None
