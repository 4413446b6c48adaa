"""Containment: what the operator does about an alert, per account mode.

Modes: ``observe`` (alert only) and ``contain``. In contain mode the ladder is
throttle, then suspend: label climbing suspends the key at once; exfiltration
throttles at once (the leak slows to a trickle within the same second) and
suspends when the alert is far past its bar or the detector escalates it, so a
normal bulk read the baseline had not seen costs a throttle, not a lockout; probing kinds (enumeration, privilege probing, unusual access)
throttle first and suspend if the same key alerts again while throttled;
credential stuffing blocks the source address for a while (there is no key of
the attacker's to suspend). Destruction (deletes, overwrites, copies over)
suspends at once: a throttle is never the only answer to it. A read-budget alert
(slow-and-low) throttles below the reader's pace and suspends when its score
doubles. When in doubt (below the suspension score, not escalated, not the tight
bar of an unfamiliar caller), a veteran (a long clean history, see
Detector.veteran) is alerted on, not contained; so is a listing walk, which is what
sync tools do. The unsupervised model only alerts: it is not precise enough to act
alone. Every action, and every release, is recorded with its reason through the sink.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from vallum.operator.alerts import Alert
from vallum.operator.request_events import RequestEvent

SUSPEND_AT_ONCE = frozenset({"label_climbing", "destruction"})
THROTTLE_FIRST = frozenset({"enumeration", "privilege_probing", "unusual_access",
                            "credential_minting"})
# Throttle on the first alert; suspend when it is far past the bar (score >= suspend_score),
# when the detector escalates it (the volume kept climbing, or the key kept hammering
# through its throttle) or when it alerts again while throttled.
ESCALATING = frozenset({"exfiltration"})


@dataclass
class Action:
    ts: float
    action: str              # throttle | suspend | block_address | release
    entity: str
    entity_type: str         # principal | address
    reason: str
    account: str = ""
    kind: str = ""
    by: str = "operator"
    rate: float = 0.0        # a throttle's requests per second (every process applies it)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Bucket:
    """Token bucket: ``rate`` requests per second, ``burst`` at most."""
    rate: float
    burst: float
    until: float
    tokens: float = 0.0
    last: float = 0.0

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass
class Containment:
    default_mode: str = "observe"
    modes: dict[str, str] = field(default_factory=dict)        # account -> mode
    sink: Callable[[Action], None] | None = None
    suspender: Callable[[str, bool], None] | None = None       # (access key, suspend?) -> IAM
    suspend_score: float = 2.0        # an exfiltration alert this far past its bar suspends at once
    throttle_rate: float = 1.0
    slow_rate: float = 0.1            # a read-budget throttle: below any slow-and-low pace
    throttle_burst: float = 5.0
    throttle_for: float = 1800.0
    block_for: float = 900.0
    throttled: dict[str, Bucket] = field(default_factory=dict)
    suspended: dict[str, Action] = field(default_factory=dict)
    blocked: dict[str, float] = field(default_factory=dict)    # address -> until
    actions: list[Action] = field(default_factory=list)

    def mode_of(self, account: str) -> str:
        return self.modes.get(account, self.default_mode)

    def _record(self, action: Action) -> Action:
        self.actions.append(action)
        if self.sink is not None:
            self.sink(action)
        return action

    def on_alert(self, alert: Alert) -> list[Action]:
        if self.mode_of(alert.account) != "contain":
            return []
        now, entity = alert.ts, alert.entity
        why = f"{alert.kind} (score {alert.score:.2f}): {alert.reason}"
        if alert.entity_type == "address":
            if self.blocked.get(entity, 0.0) > now:
                return []
            self.blocked[entity] = now + self.block_for
            return [self._record(Action(now, "block_address", entity, "address", why, "", alert.kind))]
        if entity in self.suspended:
            return []
        throttled = self.throttled.get(entity)
        active = throttled is not None and throttled.until > now
        features = alert.features
        if alert.kind == "destruction":       # never only a throttle: destruction is not undone
            return [self.suspend(entity, alert.account, why, now, alert.kind)]
        if alert.kind == "enumeration" and features.get("style") == "walk":
            return []                         # listing what it may list: a sync tool's walk
        if features.get("budget"):
            # Slow-and-low: a throttle below its pace at once, suspension once the score
            # doubles; a veteran at the first bar (a batch job's big day) is only alerted on.
            if alert.score >= self.suspend_score:
                return [self.suspend(entity, alert.account, why, now, alert.kind)]
            if active or features.get("veteran"):
                return []
            return [self._throttle(entity, alert.account, why, now, alert.kind, self.slow_rate)]
        if features.get("veteran") and not features.get("tight") and not features.get("escalated") \
                and alert.score < self.suspend_score and not active:
            return []                         # a long clean history, in doubt: alert only
        if alert.kind in ESCALATING and (active or alert.score >= self.suspend_score
                                         or alert.features.get("escalated")):
            return [self.suspend(entity, alert.account, why, now, alert.kind)]
        if alert.kind in SUSPEND_AT_ONCE or (alert.kind in THROTTLE_FIRST and (active or alert.score >= 3.0)):
            return [self.suspend(entity, alert.account, why, now, alert.kind)]
        if (alert.kind in THROTTLE_FIRST or alert.kind in ESCALATING) and not active:
            # An unfamiliar caller sweeping is held below any copy tool's pace (a paced
            # copy at 1 object/s would live with 1 req/s); hammering then suspends it.
            rate = self.slow_rate if features.get("tight") else self.throttle_rate
            return [self._throttle(entity, alert.account, why, now, alert.kind, rate)]
        return []

    def _throttle(self, key: str, account: str, reason: str, now: float, kind: str,
                  rate: float) -> Action:
        self.throttled[key] = Bucket(rate, self.throttle_burst, now + self.throttle_for,
                                     self.throttle_burst, now)
        return self._record(Action(now, "throttle", key, "principal", reason, account, kind,
                                   rate=rate))

    def suspend(self, key: str, account: str, reason: str, now: float, kind: str = "",
                by: str = "operator") -> Action:
        action = self._record(Action(now, "suspend", key, "principal", reason, account, kind, by))
        self.suspended[key] = action
        self.throttled.pop(key, None)
        if self.suspender is not None:
            self.suspender(key, True)
        return action

    def release(self, entity: str, by: str, reason: str, now: float | None = None) -> Action | None:
        """Lift every restriction on a key or address; None if there was none."""
        now = time.time() if now is None else now
        was = self.suspended.pop(entity, None)
        hit = was is not None
        hit = self.throttled.pop(entity, None) is not None or hit
        hit = self.blocked.pop(entity, None) is not None or hit
        if was is not None and self.suspender is not None:
            self.suspender(entity, False)
        if not hit:
            return None
        etype = "address" if entity in self.blocked or "." in entity or ":" in entity else "principal"
        return self._record(Action(now, "release", entity, etype, reason,
                                   was.account if was else "", "", by))

    def apply(self, action: Action, now: float | None = None) -> None:
        """Mirror an action another gateway took (read from the shared action log): every
        kind, suspension, throttle, address block and release."""
        if action.action == "suspend":
            self.suspended[action.entity] = action
        elif action.action == "release":
            self.suspended.pop(action.entity, None)
            self.throttled.pop(action.entity, None)
            self.blocked.pop(action.entity, None)
        elif now is not None and action.ts + max(self.block_for, self.throttle_for) <= now:
            return                      # a block or throttle long over (read back at start)
        elif action.action == "block_address":
            self.blocked[action.entity] = action.ts + self.block_for
        elif action.action == "throttle" and action.entity not in self.suspended:
            # Each process holds its own token bucket at the decided rate (so N processes
            # together let through at most N x the rate), from the decision's time on.
            self.throttled[action.entity] = Bucket(action.rate or self.throttle_rate,
                                                   self.throttle_burst,
                                                   action.ts + self.throttle_for,
                                                   self.throttle_burst, action.ts)

    def admit(self, principal: str | None, source: str, now: float) -> str | None:
        """Why this request must be refused ('suspended' / 'throttled' / 'blocked'), or None."""
        if principal and principal in self.suspended:
            return "suspended"
        if source and self.blocked:
            until = self.blocked.get(source)
            if until is not None:
                if until > now:
                    return "blocked"
                del self.blocked[source]
        if principal and self.throttled:
            bucket = self.throttled.get(principal)
            if bucket is not None:
                if bucket.until <= now:
                    del self.throttled[principal]
                elif not bucket.take(now):
                    return "throttled"
        return None


def refused(ev: RequestEvent, verdict: str) -> RequestEvent:
    """The event as the gateway answers it once containment refuses the caller."""
    throttled = verdict in ("throttled", "blocked")
    return ev._replace(status=503 if throttled else 403,
                       error="SlowDown" if throttled else "AccessDenied",
                       bytes_out=0, bytes_in=0, label=-1)
