"""Scoring detections against labelled incidents: precision, recall, F1, time to detect,
false quarantines. Pure functions, so the arithmetic is unit-tested on its own.

Matching: an alert of kind K is a true positive when it names the entity of an
incident that truly is of kind K (its primary kind or one it also is) and falls
between the incident's start and ``grace`` seconds after its end. An incident is
detected when an alert of its primary kind matches it; time to detect is from its
first malicious request to that alert. A quarantine (throttle, suspend, block) is
false when it matches no incident at all.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from vallum.operator.alerts import ANOMALY, KINDS, Alert
from vallum.operator.containment import Action
from vallum.operator.simulate import Incident

GRACE = 900.0


@dataclass
class KindScore:
    kind: str
    incidents: int = 0
    detected: int = 0
    alerts: int = 0
    true_alerts: int = 0
    ttd: list[float] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.true_alerts / self.alerts if self.alerts else 1.0

    @property
    def recall(self) -> float:
        return self.detected / self.incidents if self.incidents else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def median_ttd(self) -> float | None:
        return statistics.median(self.ttd) if self.ttd else None

    def merge(self, other: KindScore) -> None:
        self.incidents += other.incidents
        self.detected += other.detected
        self.alerts += other.alerts
        self.true_alerts += other.true_alerts
        self.ttd += other.ttd


def _matches(entity: str, ts: float, inc: Incident, grace: float) -> bool:
    return entity == inc.entity and inc.start <= ts <= inc.end + grace


def score_alerts(alerts: list[Alert], incidents: list[Incident], grace: float = GRACE
                 ) -> dict[str, KindScore]:
    by_entity: dict[str, list[Incident]] = {}
    for inc in incidents:
        by_entity.setdefault(inc.entity, []).append(inc)
    scores = {k: KindScore(k) for k in (*KINDS, ANOMALY)}
    for a in alerts:
        s = scores.setdefault(a.kind, KindScore(a.kind))
        s.alerts += 1
        for inc in by_entity.get(a.entity, ()):
            if _matches(a.entity, a.ts, inc, grace) and (a.kind == ANOMALY or a.kind in inc.kinds):
                s.true_alerts += 1
                break
    for inc in incidents:
        s = scores[inc.kind]
        s.incidents += 1
        hits = [a.ts for a in alerts if a.kind == inc.kind and _matches(a.entity, a.ts, inc, grace)]
        if hits:
            s.detected += 1
            s.ttd.append(max(0.0, min(hits) - inc.start))
    anomaly = scores[ANOMALY]             # the model's recall: any principal incident it saw
    for inc in incidents:
        if inc.kind == "credential_stuffing":
            continue
        anomaly.incidents += 1
        hits = [a.ts for a in alerts if a.kind == ANOMALY and _matches(a.entity, a.ts, inc, grace)]
        if hits:
            anomaly.detected += 1
            anomaly.ttd.append(max(0.0, min(hits) - inc.start))
    return scores


def false_quarantines(actions: list[Action], incidents: list[Incident], grace: float = GRACE
                      ) -> list[Action]:
    """Quarantine actions that match no incident."""
    out = []
    for act in actions:
        if act.action == "release":
            continue
        if not any(_matches(act.entity, act.ts, inc, grace) for inc in incidents):
            out.append(act)
    return out


def per_thousand(count: int, principal_days: float) -> float:
    return 1000.0 * count / principal_days if principal_days else 0.0
