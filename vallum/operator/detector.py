"""The detection engine: request events in (one by one or in batches), alerts out.

Why per-event rule checks but per-minute learning: a rule check is a handful of
comparisons against cached thresholds, so it can run on every request (or every run
of alike requests in a batch) and fire seconds into an attack; learning (histograms, the forest) happens once per active
minute per entity, and not at all for minutes that raised an alert, so an attack
does not become the baseline it is judged against.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from vallum.operator import abuse_rules as rules
from vallum.operator import shared_state as state
from vallum.operator.alerts import ANOMALY, Alert
from vallum.operator.anomaly import SCORE_BINS, AnomalyModel, RobustModel, normalised
from vallum.operator.budget import DAY, Distinct, ReadBudget
from vallum.operator.coverage import MAX_COVERED, BucketCoverage, BucketSizes
from vallum.operator.coverage import score as coverage_score
from vallum.operator.profile import Profile, network_of
from vallum.operator.request_events import AUTH_FAILURES, READ_OPS, TARGETED, RequestEvent
from vallum.operator.signals import DISTINCT, FEATURES, IDX, Signals, Window, run_end
from vallum.operator.signals import GETS as GET_OPS

REFUSED = frozenset({"SlowDown"})      # what a throttled request is answered with
# Served requests that show an object exists (the bucket sizes coverage is judged on).
OBJECT_OPS = READ_OPS | {"PutObject", "CopyObject", "CompleteMultipartUpload"}
GETS, BYTES_OUT, NOT_FOUND, LISTS, DENIED, DESTROYS, OPAQUE, MINTS = (
    IDX[f] for f in ("gets", "bytes_out", "not_found", "lists", "denied", "destroys", "opaque_writes",
                     "mints"))
BUCKETS = DISTINCT.index("buckets")
# How the gateway hands requests to the detector (gateway.py), and the replay too
# (evaluate.py): batches of at most CHUNK events, none waiting over MAX_DELAY seconds.
CHUNK = 32
MAX_DELAY = 0.05
MAX_TOUCHES = 4096                      # first touches kept per principal (a hammering caller)
PRINCIPAL_RULES = (("exfiltration", rules.exfiltration), ("enumeration", rules.enumeration),
                   ("privilege_probing", rules.privilege_probing))


@dataclass
class PrincipalState:
    profile: Profile = field(default_factory=Profile)
    account: str = ""
    minute_addresses: set[str] = field(default_factory=set)
    alerted_until: float = 0.0          # no learning before this time (an alert is recent)
    above: deque = field(default_factory=deque)   # (ts, level) of reads above its usual level
    novel_net: str = ""
    novel_count: int = 0
    novel_since: float = 0.0
    exfil_at: float = 0.0               # last exfiltration alert (escalation follows it)
    escalated: bool = True
    refused: deque = field(default_factory=deque)  # ts of reads refused since (throttled)
    budget: ReadBudget = field(default_factory=ReadBudget)
    budget_next: float = 1.0            # read-budget score that raises the next alert
    denied: Distinct = field(default_factory=Distinct)     # refused actions, last hour
    last_incident: float = 0.0          # last alert other than the model's (0: none)
    before_episode: float = 0.0         # ... the last before the current episode of alerts
    allowed: set[str] = field(default_factory=set)          # operations it has been served
    buckets: dict[str, float] = field(default_factory=dict)  # bucket -> its first object read
    coverage: dict[str, BucketCoverage] = field(default_factory=dict)  # bucket -> what it read
    touches: deque = field(default_factory=deque)  # (ts, level, key): first touches of levels
    touched_at: float = float("-inf")   # the last labelled first touch


def _what(ev: RequestEvent) -> str:
    """What a refusal refused: the action, and for AssumeRole the role too (a prober
    tries role after role with one action)."""
    return f"{ev.operation} {ev.key}" if ev.operation in TARGETED else ev.operation


class Detector:
    def __init__(self, tuning: rules.Tuning | None = None, *, cooldown: float = 1800.0,
                 anomaly: bool = True, anomaly_threshold: float = 0.95, seed: int = 7,
                 model: str = "robust") -> None:
        self.tuning = tuning or rules.Tuning()
        self.signals = Signals()
        self.principals: dict[str, PrincipalState] = {}
        self.address_profiles: dict[str, Profile] = {}
        self.prior = Profile()                  # everybody's minutes: the new principal's baseline
        self.address_prior = Profile()
        self.cooldown = cooldown
        self.last_alert: dict[tuple[str, str], float] = {}
        # The unsupervised model: "robust" (per-principal robust z-scores, the default) or
        # "hst" (river Half-Space Trees on normalised minutes; kept for comparison).
        self.model = AnomalyModel(seed=seed) if anomaly and model == "hst" else None
        self.robust = RobustModel() if anomaly and model == "robust" else None
        self.anomaly_threshold = anomaly_threshold
        self.last_anomaly: dict[str, float] = {}
        self._networks: dict[str, str] = {}
        self.failed_nets: dict[str, Distinct] = {}        # /24 -> failed keys, last hour
        self.source_denied: dict[str, Distinct] = {}      # address -> refused keys, last hour
        self.dirty: set[str] = set()        # principals whose baseline changed since the last save
        self.sizes = BucketSizes()          # objects seen per bucket (coverage budgets)

    # ------------------------------------------------------------------ events
    def observe(self, ev: RequestEvent) -> list[Alert]:
        """One event in, its alerts out."""
        return self._observe_run((ev,))

    def observe_batch(self, events: Sequence[RequestEvent]) -> list[Alert]:
        """A batch of events in order, each run of events alike (``run_end``: one caller,
        operation, outcome and bucket within one window slot) counted at once and the
        rules checked once, at its last event.

        Why: the gateway hands its requests over in batches anyway (gateway.py), and
        every alert of a batch takes effect when the batch is done, whichever of its
        events raised it; counting a run at once does the per-event work (window slots,
        rule floors, label and network checks) once per run. The replay (evaluate.py)
        feeds its trace through here in the gateway's batches."""
        alerts: list[Alert] = []
        slot = self.signals.slot
        i, n = 0, len(events)
        while i < n:
            j = run_end(events, i, slot)
            alerts += self._observe_run(events[i:j])
            i = j
        return alerts

    def _observe_run(self, run: Sequence[RequestEvent]) -> list[Alert]:
        pw, psample, aw, asample = self.signals.update_run(run)
        ev, count = run[-1], len(run)
        alerts: list[Alert] = []
        if aw is not None:
            ap = self.address_profiles.get(ev.source)
            if ap is None:
                ap = self.address_profiles[ev.source] = Profile()
            if asample is not None:
                ap.learn(asample[0], asample[1] * 60.0)
                self.address_prior.learn(asample[0], asample[1] * 60.0)
            if ev.error in AUTH_FAILURES:
                found = rules.credential_stuffing(aw, ap, self.address_prior, self.tuning)
                if not found:
                    found = self._slow_stuffing(ev)
                if found:
                    self._emit(alerts, ev, "credential_stuffing", ev.source, "address", found)
        if pw is None:
            return alerts
        if not ev.error and ev.key and ev.operation in OBJECT_OPS:
            see, bucket = self.sizes.see, ev.bucket
            for e in run:
                see(bucket, e.key)
        st = self.principals.get(ev.principal)
        if st is None:
            st = self.principals[ev.principal] = PrincipalState(account=ev.account)
        if psample is not None:
            self._learn(ev, st, psample, alerts)
        if ev.source:
            st.minute_addresses.add(ev.source)
        p, t = st.profile, self.tuning
        # The rules' own cheap early exits, checked here on the running totals so the
        # common case (nothing near any floor) costs a few comparisons and no calls.
        tot = pw.totals
        for kind, rule in PRINCIPAL_RULES:
            if kind == "exfiltration":
                if tot[GETS] < t.exfil_reads or tot[BYTES_OUT] < t.exfil_bytes:
                    continue
            elif kind == "enumeration":
                if tot[NOT_FOUND] < t.enum_not_found and tot[LISTS] < t.enum_lists \
                        and len(pw.sets[BUCKETS].last) < t.enum_buckets:
                    continue
            elif tot[DENIED] < t.probe_denied:
                continue
            # In its cool-down an alert would be dropped by _emit anyway: skip the rule (and
            # its sentence) unless an exfiltration alert may still escalate.
            last = self.last_alert.get((ev.principal, kind))
            if last is not None and ev.ts - last < self.cooldown \
                    and (kind != "exfiltration" or st.escalated):
                continue
            found = rule(pw, p, self.prior, t)
            if found:
                if kind == "exfiltration" and not st.escalated and found[0] >= t.exfil_escalate \
                        and ev.ts - st.exfil_at < self.cooldown:
                    self._escalate(alerts, ev, st, found[0], found[2],
                                   f"kept reading after the alert: {found[1]}")
                    continue
                n = len(alerts)
                self._emit(alerts, ev, kind, ev.principal, "principal", found)
                if kind == "exfiltration" and len(alerts) > n:
                    st.exfil_at, st.escalated = ev.ts, found[0] >= t.exfil_escalate
                    st.refused.clear()
        if tot[DESTROYS] >= t.destroy_floor or tot[OPAQUE] >= t.destroy_floor:
            found = rules.destruction(pw, p, t)
            if found:
                self._emit(alerts, ev, "destruction", ev.principal, "principal", found)
        if tot[MINTS] >= t.mint_floor:
            found = rules.credential_minting(pw, p, t)
            if found:
                self._emit(alerts, ev, "credential_minting", ev.principal, "principal", found)
        if ev.operation in GET_OPS and (not ev.error or ev.error in REFUSED):
            self._budgets(alerts, ev, st, pw, run)
        if not ev.error:
            st.allowed.add(_what(ev))
        elif ev.error == "AccessDenied" and _what(ev) not in st.allowed:
            self._slow_probing(alerts, ev, st, run)
        if not st.escalated and ev.error in REFUSED and ev.operation in READ_OPS:
            refused = st.refused
            refused.extend(e.ts for e in run)
            while refused[0] < ev.ts - 60.0:
                refused.popleft()
            if len(refused) >= t.exfil_hammer and ev.ts - st.exfil_at < self.cooldown:
                self._escalate(alerts, ev, st, len(refused) / t.exfil_hammer,
                               {"refused_reads_last_minute": len(refused)},
                               f"kept requesting objects while throttled after an exfiltration alert: "
                               f"{len(refused)} refused reads in the last minute")
        if ev.operation in GET_OPS and p.samples >= t.min_samples and (
                (ev.label > 0 and not ev.error) or (t.climb_refused and ev.error == "AccessDenied")):
            # Object contents read above the habitual level (one read for 30 minutes at
            # least): not writes, not HEADs (an ingest service
            # verifying its uploads), never UNCLASSIFIED (reading it climbs nothing). A
            # refused read is a climb's top: counted at its label (MAC notes it), or,
            # unlabelled, while reads above the habit are already in the window.
            above = st.above
            if ev.label > 0:
                if ev.label > p.usual_label(3, ev.ts - t.climb_learn):
                    above.extend((e.ts, ev.label) for e in run)
            elif above:
                above.extend((e.ts, -1) for e in run)
            while above and above[0][0] < ev.ts - t.climb_window:
                above.popleft()
            found = rules.label_climbing(above, p, t) if above else None
            if not found:
                found = self._first_touches(ev, st, run)
            if found:
                self._emit(alerts, ev, "label_climbing", ev.principal, "principal", found)
        if ev.source:
            net = self._network_of(ev.source)
            if net not in p.networks:
                if net != st.novel_net or ev.ts - st.novel_since > 600:
                    st.novel_net, st.novel_count, st.novel_since = net, 0, ev.ts
                st.novel_count += count
                found = rules.unusual_access(ev.ts, ev.source, st.novel_count, p, t)
                if found:
                    self._emit(alerts, ev, "unusual_access", ev.principal, "principal", found)
        if alerts:
            self.dirty.add(ev.principal)
            st.alerted_until = ev.ts + self.cooldown
            st.budget.taint()
            for cov in st.coverage.values():      # this episode is known: until the day window
                cov.tainted, cov.quiet_until = True, ev.ts + DAY    # forgets it, only a second bar speaks
            if any(a.kind != ANOMALY for a in alerts):
                if not st.last_incident or ev.ts - st.last_incident > self.cooldown:
                    st.before_episode = st.last_incident
                st.last_incident = ev.ts
        return alerts

    # ------------------------------------------------------------ what a restart keeps
    def baseline(self, principal: str) -> dict:
        """What a restart must not forget about a principal: its profile, read budget,
        alert record (cool-downs, the veteran's clean history), the actions it was served
        and the buckets it read, and its anomaly bar. Not its live windows (a minute)."""
        st = self.principals[principal]
        doc = {"account": st.account, "profile": state.dump_profile(st.profile),
               "budget": state.dump_budget(st.budget), "budget_next": min(st.budget_next, 1e9),
               "last_incident": st.last_incident, "before_episode": st.before_episode,
               "alerted_until": st.alerted_until, "exfil_at": st.exfil_at, "escalated": st.escalated,
               "allowed": sorted(st.allowed),
               "buckets": dict(list(st.buckets.items())[:state.MAX_BUCKETS]),
               "coverage": {b: [c.peak_hour, c.peak_day, self.sizes.size(b)]
                            for b, c in list(st.coverage.items())[:state.MAX_BUCKETS]},
               "last_alert": {k: ts for (e, k), ts in self.last_alert.items() if e == principal}}
        if self.robust is not None and principal in self.robust.history:
            doc["robust"] = self.robust.history[principal]
        return doc

    def restore(self, principal: str, doc: dict) -> None:
        """Take a principal's baseline back (``baseline``); a malformed one is skipped."""
        try:
            st = PrincipalState(account=str(doc.get("account", "")),
                                profile=state.load_profile(doc.get("profile") or {}),
                                budget=state.load_budget(doc.get("budget") or {}))
            st.budget_next = float(doc.get("budget_next", 1.0))
            st.last_incident = float(doc.get("last_incident", 0.0))
            st.before_episode = float(doc.get("before_episode", 0.0))
            st.alerted_until = float(doc.get("alerted_until", 0.0))
            st.exfil_at = float(doc.get("exfil_at", 0.0))
            st.escalated = bool(doc.get("escalated", True))
            st.allowed = {str(o) for o in doc.get("allowed", [])}
            st.buckets = {str(b): float(t) for b, t in (doc.get("buckets") or {}).items()}
            sizes: dict[str, int] = {}
            for b, (peak_hour, peak_day, size) in (doc.get("coverage") or {}).items():
                cov = st.coverage[str(b)] = BucketCoverage()
                cov.peak_hour, cov.peak_day = float(peak_hour), float(peak_day)
                sizes[str(b)] = int(size)
            last = {(principal, str(k)): float(t) for k, t in (doc.get("last_alert") or {}).items()}
            robust = doc.get("robust")
            if self.robust is not None and isinstance(robust, list) and len(robust) == SCORE_BINS:
                self.robust.history[principal] = [int(n) for n in robust]
        except (TypeError, ValueError, AttributeError):
            return
        self.principals[principal] = st
        self.last_alert.update(last)
        floor = self.sizes.floor
        for b, size in sizes.items():
            floor[b] = max(floor.get(b, 0), size)

    # ------------------------------------------------------------ slow and budgeted
    def _budgets(self, alerts: list[Alert], ev: RequestEvent, st: PrincipalState, pw: Window,
                 run: Sequence[RequestEvent]) -> None:
        """Objects asked for (served, or refused while throttled: a reader that does not
        back off keeps spending its budget) in the last 24 hours against the busiest day
        on its record; and, for an unfamiliar caller, a tight bar on the first seconds of
        a sweep (a network it never used, under 2 days of history, or a bucket it first
        read under 30 minutes ago). A read-budget alert is raised once more, past the cool-down, when its
        score doubles (the containment escalates with it)."""
        t, p, b = self.tuning, st.profile, st.budget
        b.add(ev.ts, len(run))
        first = st.buckets.get(ev.bucket)
        if first is None and not ev.error:
            if len(st.buckets) < 4096:
                st.buckets[ev.bucket] = ev.ts
            first = ev.ts
        if not ev.error and ev.key and self._coverage(alerts, ev, st, run):
            return
        if b.days_seen >= t.budget_days:
            day, hour = b.last_day(), b.last_hour(ev.ts)
            found = rules.read_budget(day, b.busiest_day, t) if day >= t.budget_day_floor else None
            if hour >= t.budget_hour_floor:
                by_hour = rules.read_budget_hour(hour, b.busiest_hour, t)
                if by_hour and (found is None or by_hour[0] > found[0]):
                    found = by_hour
            if found is not None:
                if found[0] >= st.budget_next:
                    score, reason, features = found
                    st.budget_next = 2.0 if score < 2.0 else float("inf")
                    last = self.last_alert.get((ev.principal, "exfiltration"))
                    # In the cool-down of an exfiltration alert, only an escalation speaks.
                    if last is None or ev.ts - last >= self.cooldown \
                            or (not st.escalated and score >= 2.0):
                        alert = self._alert(ev, "exfiltration", score, reason, features)
                        alerts.append(alert)
                        self.last_alert[(ev.principal, "exfiltration")] = ev.ts
                        st.exfil_at = ev.ts
                        st.escalated = score >= 2.0
                    return
        if ev.error or not ev.source or pw.totals[GETS] < t.tight_reads:
            return
        net = self._network_of(ev.source)
        new_bucket = first is not None and ev.ts - first < t.climb_learn
        if net in p.networks and p.days >= t.unusual_min_days and not new_bucket:
            return                          # a familiar caller on a familiar bucket
        found = rules.exfiltration_tight(pw, p, t)
        if found:
            n = len(alerts)
            self._emit(alerts, ev, "exfiltration", ev.principal, "principal", found)
            if len(alerts) > n:
                st.exfil_at, st.escalated = ev.ts, False
                st.refused.clear()

    def _coverage(self, alerts: list[Alert], ev: RequestEvent, st: PrincipalState,
                  run: Sequence[RequestEvent]) -> bool:
        """Distinct objects of this bucket read in the last hour / day against its size and
        the principal's own record for it (coverage.py); True when it raised an alert.
        Judged once the principal has ``budget_days`` whole days on record (until then
        every day is learned, alerted or not); raised again, past the cool-down, at twice
        the bar (the containment suspends there)."""
        t, bucket = self.tuning, ev.bucket
        cov = st.coverage.get(bucket)
        if cov is None:
            if len(st.coverage) >= MAX_COVERED:
                return False
            cov = st.coverage[bucket] = BucketCoverage()
        learning = st.budget.days_seen < t.budget_days
        for e in run:
            cov.add(e.ts, e.key, learning)
        if learning or len(cov.day.counts) < t.cover_floor:
            return False                    # (the day window holds the hour's objects too)
        score, window, covered, bar = coverage_score(cov, self.sizes.size(bucket), t.cover_floor,
                                                     t.cover_share, t.cover_mult)
        if score < (cov.next_score if ev.ts >= cov.quiet_until else max(cov.next_score, 2.0)):
            return False
        peak = cov.peak_hour if window == "hour" else cov.peak_day
        found = rules.coverage(bucket, score, window, covered, bar, self.sizes.size(bucket), peak)
        if found is None:
            return False
        cov.next_score = 2.0 if score < 2.0 else float("inf")
        last = self.last_alert.get((ev.principal, "exfiltration"))
        # In the cool-down of an exfiltration alert, only an escalation speaks.
        if last is not None and ev.ts - last < self.cooldown and (st.escalated or score < 2.0):
            return False
        alerts.append(self._alert(ev, "exfiltration", *found))
        self.last_alert[(ev.principal, "exfiltration")] = ev.ts
        st.exfil_at, st.escalated = ev.ts, score >= 2.0
        return True

    def _first_touches(self, ev: RequestEvent, st: PrincipalState,
                       run: Sequence[RequestEvent]) -> rules.Finding | None:
        """Reads at levels the principal never read (in a learned minute, ``climb_long_window``
        ago at least), and refused reads of unknown label within ``climb_window`` of such
        a read, over ``climb_long_window``: a climb too patient for the 15-minute window."""
        t, touches = self.tuning, st.touches
        if st.profile.days < t.unusual_min_days:
            return None                     # no history yet to be a first against
        if ev.label >= 0:
            # Known only once first read a whole window ago: the climb is not its own habit.
            if ev.label <= st.profile.usual_label(1, ev.ts - t.climb_long_window):
                return None
            st.touched_at = ev.ts
        elif ev.error != "AccessDenied" or ev.ts - st.touched_at > t.climb_window:
            # A refusal alone says nothing about levels; beside a labelled first touch it
            # is a climb's top. Hours later (the operator's own suspension answering with
            # AccessDenied) it is not.
            return None
        if len(touches) < MAX_TOUCHES:
            touches.extend((e.ts, ev.label, e.key) for e in run)
        while touches and touches[0][0] < ev.ts - t.climb_long_window:
            touches.popleft()
        return rules.label_first_touch(touches, t) if len(touches) >= t.climb_long_reads else None

    def _slow_probing(self, alerts: list[Alert], ev: RequestEvent, st: PrincipalState,
                      run: Sequence[RequestEvent]) -> None:
        """Refusals of actions this key was never served: probing is trying what one may
        not do. Refusals of its everyday actions (a policy change, or the operator's own
        suspension answering every request) are not counted."""
        src = None
        if ev.source:
            src = self.source_denied.get(ev.source)
            if src is None:
                if len(self.source_denied) >= 65536:
                    self.source_denied.clear()
                src = self.source_denied[ev.source] = Distinct()
        for e in run:
            st.denied.add(e.ts, _what(e))
            if src is not None:
                src.add(e.ts, e.principal)
        others = src.events - src.counts.get(ev.principal, 0) if src is not None else 0
        found = rules.slow_probing(st.denied.events, st.denied.distinct, others, self.tuning)
        if found:
            self._emit(alerts, ev, "privilege_probing", ev.principal, "principal", found)

    def _slow_stuffing(self, ev: RequestEvent) -> rules.Finding | None:
        """Failed sign-ins counted per /24 (per /48) over an hour, across its addresses."""
        if not ev.source:
            return None
        net = ev.source.rsplit(".", 1)[0] if ":" not in ev.source else network_of(ev.source)
        d = self.failed_nets.get(net)
        if d is None:
            if len(self.failed_nets) >= 65536:
                self.failed_nets.clear()
            d = self.failed_nets[net] = Distinct()
        d.add(ev.ts, ev.principal)
        return rules.slow_stuffing(net, d.distinct, d.events, self.tuning)

    def veteran(self, principal: str, ts: float) -> bool:
        """A long, clean, steady history: seen for ``veteran_days`` and no alert (but the
        model's) in as long. When in doubt, such a principal is alerted on, not contained."""
        st = self.principals.get(principal)
        if st is None:
            return False
        span = self.tuning.veteran_days * DAY
        # The alerts of the episode under way do not count against it (its escalation is
        # judged by the record it had when the episode began).
        last = st.before_episode if st.last_incident and ts - st.last_incident <= self.cooldown \
            else st.last_incident
        return st.profile.days * DAY >= span and (not last or ts - last >= span)

    def _network_of(self, source: str) -> str:
        """network_of() memoised: a gateway sees the same few addresses over and over."""
        net = self._networks.get(source)
        if net is None:
            if len(self._networks) >= 65536:
                self._networks.clear()
            net = self._networks[source] = network_of(source)
        return net

    def _learn(self, ev: RequestEvent, st: PrincipalState, sample: tuple[list[float], int],
               alerts: list[Alert]) -> None:
        """Learn the finished minute, unless it raised an alert."""
        peaks_list, minute = sample
        addresses, st.minute_addresses = st.minute_addresses, set()
        ts = minute * 60.0
        p = st.profile
        mature = p.samples >= self.tuning.min_samples and p.days >= self.tuning.unusual_min_days
        skip = mature and st.alerted_until - self.cooldown < ts + 60.0 and ts < st.alerted_until
        if self.robust is not None and p.samples >= self.tuning.min_samples:
            # Scored even when a rule already fired (so its recall is measured like the
            # rules'), but such a minute is not learned.
            peaks = dict(zip(FEATURES, peaks_list, strict=False))
            score, bar, z = self.robust.score(ev.principal, peaks, p)
            if bar is not None and score >= bar:
                top = sorted(z.items(), key=lambda kv: -kv[1])[:3]
                words = ", ".join(f"{k} {peaks[k]:.0f} (usual median {p.quantile(k, 0.5):.0f})"
                                  for k, _ in top)
                self._emit(alerts, ev, ANOMALY, ev.principal, "principal",
                           (score / bar, f"had a minute unlike its own history (robust score "
                            f"{score:.1f}, its bar {bar:.1f}; most unusual: {words})",
                            {k: round(v, 2) for k, v in z.items()}))
            elif not skip:
                self.robust.learn(ev.principal, score)
        if skip:
            return          # while still learning, everything is learned: no baseline yet to protect
        if self.model is not None:
            peaks = dict(zip(FEATURES, peaks_list, strict=False))
            x = normalised(peaks, st.profile, self.prior, ts)
            score = self.model.score_and_learn(x)
            if score >= self.anomaly_threshold and st.profile.samples >= self.tuning.min_samples:
                ranked = sorted(((v, k) for k, v in x.items()), reverse=True)[:3]
                words = ", ".join(f"{k} {peaks[k]:.0f}" if k in peaks else "time of day"
                                  for _, k in ranked)
                self._emit(alerts, ev, ANOMALY, ev.principal, "principal",
                           (score / self.anomaly_threshold,
                            f"had a minute unlike its usual behaviour (model score {score:.2f}; "
                            f"most unusual: {words})", {k: round(v, 3) for k, v in x.items()}))
        st.profile.learn(peaks_list, ts, addresses)
        self.prior.learn(peaks_list, ts)
        self.dirty.add(ev.principal)

    def _escalate(self, alerts: list[Alert], ev: RequestEvent, st: PrincipalState, score: float,
                  features: dict, reason: str) -> None:
        """The second bar of exfiltration: one more alert, past the cool-down, that suspends."""
        st.escalated = True
        self.last_alert[(ev.principal, "exfiltration")] = ev.ts
        alerts.append(self._alert(ev, "exfiltration", score, reason, {**features, "escalated": True}))

    def _alert(self, ev: RequestEvent, kind: str, score: float, reason: str, features: dict) -> Alert:
        """A principal alert, marked with whether the principal is a veteran."""
        return Alert(ts=ev.ts, kind=kind, entity=ev.principal, entity_type="principal",
                     score=round(score, 3), reason=f"access key {ev.principal} {reason}",
                     account=ev.account, source=ev.source,
                     features={**features, "veteran": self.veteran(ev.principal, ev.ts)})

    def _emit(self, alerts: list[Alert], ev: RequestEvent, kind: str, entity: str, etype: str,
              found: rules.Finding) -> None:
        key = (entity, kind)
        last = self.last_alert.get(key)
        if last is not None and ev.ts - last < self.cooldown:
            return
        self.last_alert[key] = ev.ts
        score, reason, features = found
        if etype == "principal":
            alerts.append(self._alert(ev, kind, score, reason, features))
            return
        alerts.append(Alert(ts=ev.ts, kind=kind, entity=entity, entity_type=etype,
                            score=round(score, 3), reason=f"address {entity} {reason}",
                            account=ev.account, source=ev.source, features=features))
