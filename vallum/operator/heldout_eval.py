"""Replay held-out traces (heldout.py) through the real detector and containment, and
score what an operator is for: was each attack seen, how soon was it contained, and
how much of its bucket left or was destroyed first; was any automation contained.

Frozen with heldout.py (see there). Contained callers are answered as the gateway
answers them (SlowDown / AccessDenied, no data), so an attack stopped early leaks
less; the attackers do not back off, like a copy tool retrying.

Scoring: an attack is *detected* by an alert of a kind in ACCEPT[its kind] on one of
its entities between its start and GRACE seconds after its end; *contained* by the
first throttle, suspension or address block on one of its entities in that span
(*stopped* by the first suspension or block). An alert is true, for its kind's
precision, when it names an attack's entity in that span, whatever the attack's kind.
A containment of anything else is false; false ones on automation are named.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vallum.operator.alerts import Alert
from vallum.operator.containment import Action
from vallum.operator.detector import Detector
from vallum.operator.heldout import ATTACKS, HeldoutTrace, Scenario, generate
from vallum.operator.live import Live

GRACE = 900.0
ACCEPT = {"bulk_exfil": {"exfiltration"}, "slow_exfil": {"exfiltration"},
          "paced_copy": {"exfiltration"}, "label_climb": {"label_climbing"},
          "overwrite": {"destruction"}, "wiper": {"destruction"}, "copy_in_place": {"destruction"},
          "slow_stuffing": {"credential_stuffing"}, "slow_probing": {"privilege_probing"}}
LEAKS = frozenset({"bulk_exfil", "slow_exfil", "paced_copy"})
DESTROYS = frozenset({"overwrite", "wiper", "copy_in_place"})


@dataclass
class KindFigures:
    incidents: int = 0
    detected: int = 0
    contained: int = 0
    stopped: int = 0
    ttd: list[float] = field(default_factory=list)
    ttc: list[float] = field(default_factory=list)
    damage: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        def med(xs: list[float]) -> float | None:
            return round(statistics.median(xs), 1) if xs else None
        return {"incidents": self.incidents, "detected": self.detected,
                "recall": round(self.detected / self.incidents, 3) if self.incidents else None,
                "contained": self.contained, "stopped": self.stopped,
                "median_ttd_s": med(self.ttd), "median_ttc_s": med(self.ttc),
                "mean_damage": round(statistics.fmean(self.damage), 3) if self.damage else None,
                "max_damage": round(max(self.damage), 3) if self.damage else None}


@dataclass
class HeldoutResult:
    seeds: list[int] = field(default_factory=list)
    kinds: dict[str, KindFigures] = field(default_factory=dict)
    alert_kinds: dict[str, list[int]] = field(default_factory=dict)     # kind -> [alerts, true]
    false_containments: list[dict[str, Any]] = field(default_factory=list)
    automation_refused: dict[str, int] = field(default_factory=dict)
    events: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"seeds": self.seeds, "events": self.events, "replay_seconds": round(self.seconds, 1),
                "attacks": {k: self.kinds[k].to_dict() for k in ATTACKS if k in self.kinds},
                "alerts": {k: {"alerts": n, "true": t, "precision": round(t / n, 3) if n else None}
                           for k, (n, t) in sorted(self.alert_kinds.items())},
                "false_containments": self.false_containments,
                "automation_refused_requests": self.automation_refused}


def _inside(ts: float, sc: Scenario) -> bool:
    return sc.start <= ts <= sc.end + GRACE


def replay(trace: HeldoutTrace, detector: Detector | None = None
           ) -> tuple[list[Alert], list[Action], list[bool]]:
    """Every event through the live path (live.Live.replay: the gateway's admission,
    batching, detector, journal and containment, in event time), contain mode from the
    end of the warm-up, contained callers refused. Returns the scored alerts, the
    actions, and per event whether it was served (not refused)."""
    quiet = logging.getLogger("vallum.operator")
    level = quiet.level
    quiet.setLevel(logging.ERROR)           # the journal has every alert and action
    with tempfile.TemporaryDirectory(prefix="vallum-heldout-") as tmp:
        hook = Live(Path(tmp), None, "contain", sinks_from_env=False)
        if detector is not None:
            hook.detector = detector
        try:
            alerts, served = hook.replay(trace.events, contain_from=trace.scored_from)
        finally:
            hook.close()
            quiet.setLevel(level)
    scored = [a for a in alerts if a.ts >= trace.scored_from]
    return scored, [a for a in hook.policy.actions if a.action != "release"], served


def damage(trace: HeldoutTrace, sc: Scenario, served: list[bool]) -> float | None:
    """Fraction of the target bucket that left (reads served) or was destroyed
    (overwrites, deletes, copies onto itself, DeleteObjects batches served)."""
    if not sc.bucket_size:
        return None
    who = set(sc.entities)
    batches = {ts: n for ts, n in sc.batches}
    hit: set[str] = set()
    wiped = 0.0
    for ev, ok in zip(trace.events, served, strict=True):
        if not ok or ev.principal not in who or ev.bucket != sc.bucket or not _inside(ev.ts, sc):
            continue
        if sc.kind in LEAKS and ev.operation == "GetObject" and not ev.error:
            hit.add(ev.key)
        elif sc.kind in DESTROYS:
            if ev.operation == "DeleteObjects":
                wiped += batches.get(ev.ts, 0.0)
            elif ev.operation in ("PutObject", "DeleteObject", "CopyObject") and not ev.key.endswith(".locked"):
                hit.add(ev.key)
    return min(1.0, (len(hit) + wiped) / sc.bucket_size)


def score(trace: HeldoutTrace, alerts: list[Alert], actions: list[Action], served: list[bool],
          result: HeldoutResult) -> None:
    for sc in trace.attacks:
        fig = result.kinds.setdefault(sc.kind, KindFigures())
        fig.incidents += 1
        mine = [a for a in alerts if a.entity in sc.entities and _inside(a.ts, sc)]
        hits = [a.ts for a in mine if a.kind in ACCEPT[sc.kind]]
        if hits:
            fig.detected += 1
            fig.ttd.append(max(0.0, min(hits) - sc.start))
        acts = [a for a in actions if a.entity in sc.entities and _inside(a.ts, sc)]
        if acts:
            fig.contained += 1
            fig.ttc.append(max(0.0, min(a.ts for a in acts) - sc.start))
        if any(a.action in ("suspend", "block_address") for a in acts):
            fig.stopped += 1
        d = damage(trace, sc, served)
        if d is not None:
            fig.damage.append(d)
    for a in alerts:
        row = result.alert_kinds.setdefault(a.kind, [0, 0])
        row[0] += 1
        row[1] += any(a.entity in sc.entities and _inside(a.ts, sc) for sc in trace.attacks)
    auto = {sc.entities[0]: sc.kind for sc in trace.automation}
    for act in actions:
        if not any(act.entity in sc.entities and _inside(act.ts, sc) for sc in trace.attacks):
            result.false_containments.append({"action": act.action, "kind": act.kind,
                                              "entity": act.entity,
                                              "automation": auto.get(act.entity, "")})
    for sc in trace.automation:
        n = sum(1 for ev, ok in zip(trace.events, served, strict=True)
                if not ok and ev.principal in sc.entities and sc.start <= ev.ts <= sc.end)
        result.automation_refused[sc.kind] = result.automation_refused.get(sc.kind, 0) + n


def run(seeds: list[int] | tuple[int, ...], people: int = 30, days: int = 6,
        warmup_days: int = 4) -> HeldoutResult:
    result = HeldoutResult()
    for seed in seeds:
        trace = generate(seed, people, days, warmup_days)
        started = time.perf_counter()
        alerts, actions, served = replay(trace)
        result.seconds += time.perf_counter() - started
        result.events += len(trace.events)
        result.seeds.append(seed)
        score(trace, alerts, actions, served, result)
    return result


def table(result: HeldoutResult) -> str:
    """Per attack kind: recall, time to detect / contain, damage; per alert kind: precision."""
    d = result.to_dict()
    rows = ["| attack | n | detected | recall | contained | stopped | median TTD (s) | median TTC (s) | "
            "mean leaked/destroyed | max |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for kind, f in d["attacks"].items():
        cells = [f["incidents"], f["detected"], f"{f['recall']:.2f}", f["contained"], f["stopped"],
                 "-" if f["median_ttd_s"] is None else f"{f['median_ttd_s']:.0f}",
                 "-" if f["median_ttc_s"] is None else f"{f['median_ttc_s']:.0f}",
                 "-" if f["mean_damage"] is None else f"{100 * f['mean_damage']:.0f}%",
                 "-" if f["max_damage"] is None else f"{100 * f['max_damage']:.0f}%"]
        rows.append(f"| {kind} | " + " | ".join(str(c) for c in cells) + " |")
    rows += ["", "| alert kind | alerts | true | precision |", "|---|---:|---:|---:|"]
    for kind, a in d["alerts"].items():
        rows.append(f"| {kind} | {a['alerts']} | {a['true']} | {a['precision']:.2f} |")
    rows.append("")
    fc = d["false_containments"]
    rows.append(f"false containments: {len(fc)}" + "".join(
        f"; {c['action']} {c['entity']} for {c['kind']}" + (f" ({c['automation']})" if c["automation"] else "")
        for c in fc))
    rows.append("automation requests refused: " + ", ".join(
        f"{k} {v}" for k, v in sorted(d["automation_refused_requests"].items())))
    rows.append(f"seeds {','.join(map(str, d['seeds']))}; {d['events']} events")
    return "\n".join(rows)
