"""Explicit detectors for the known abuse patterns.

Each rule compares the live 60-second window with thresholds of the form
``max(absolute floor, multiple x the entity's own 99th-percentile minute)`` and
returns a score (>= 1 fires) plus the facts that drove it. Floors stop a
principal with a near-empty history from alerting on its first busy minute;
multiples of its own quantiles stop a batch job from alerting on its usual run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from vallum.operator.alerts import human_bytes
from vallum.operator.events import LEVELS
from vallum.operator.profile import Profile, hour_of_week, network_of
from vallum.operator.signals import Window

Finding = tuple[float, str, dict]          # (score, reason, features)


@dataclass
class Tuning:
    """Every knob, in one place; tuned on the tuning seeds only (see docs/operator.md)."""
    q: float = 0.99
    min_samples: int = 30                  # own minutes needed before own quantiles count
    exfil_reads: float = 40.0
    exfil_bytes: float = 4 * 1024 * 1024
    exfil_keys: float = 30.0
    exfil_mult: float = 3.0
    exfil_prefixes: float = 3.0            # effective (read-weighted) prefixes
    exfil_bulk_keys: float = 120.0          # distinct objects a minute: more than any dataset pull
    exfil_burst: float = 40.0              # objects in 10 s: faster than a person's tools pull
    exfil_escalate: float = 2.0            # second bar: score that suspends (see containment)
    exfil_hammer: int = 30                 # reads refused in a minute while throttled: suspend
    enum_not_found: float = 20.0
    enum_lists: float = 30.0
    enum_prefixes: float = 25.0
    enum_buckets: float = 8.0
    enum_mult: float = 4.0
    probe_denied: float = 8.0
    probe_ops: float = 4.0
    probe_mult: float = 4.0
    stuff_keys: float = 4.0
    stuff_failures: float = 20.0
    stuff_mult: float = 4.0
    unusual_events: int = 3
    unusual_min_days: float = 2.0
    rare_minutes: int = 5                  # active minutes at an hour (+-1 h) that still count as rare
    climb_above: float = 4.0
    climb_levels: float = 2.0
    climb_single: float = 12.0
    climb_window: float = 900.0


def thr(profile: Profile, prior: Profile, feature: str, floor: float, mult: float, t: Tuning) -> float:
    base = profile if profile.samples >= t.min_samples else prior
    return max(floor, mult * base.quantile(feature, t.q))


def hour_thr(p: Profile, prior: Profile, feature: str, floor: float, mult: float, t: Tuning,
             hour: int) -> float:
    """Like thr(), but a principal with a mature profile is held to what it does at this
    hour of day: a nightly batch key reading at noon is judged by its noon self."""
    if p.samples < t.min_samples or p.days < t.unusual_min_days:
        return thr(p, prior, feature, floor, mult, t)
    return max(floor, mult * p.hourly(feature, hour))


def exfiltration(w: Window, p: Profile, prior: Profile, t: Tuning) -> Finding | None:
    """Objects actually read (successful GETs: failed guesses are enumeration, not a
    leak) far above the key's own busiest minute at this hour, and spread wide: over many
    prefixes by weight (one dataset pull plus some ordinary work is ~1-2), too many
    distinct objects for one dataset pull, or read in a burst (a copy tool walking the
    bucket in key order stays in one prefix at a time, but it is fast)."""
    reads, keys, out = w.value("gets"), w.value("got_keys"), w.value("bytes_out")
    if reads < t.exfil_reads or out < t.exfil_bytes:
        return None                                        # cheap early exit
    hour = hour_of_week(w.last_ts) % 24
    tr = hour_thr(p, prior, "gets", t.exfil_reads, t.exfil_mult, t, hour)
    tk = hour_thr(p, prior, "got_keys", t.exfil_keys, t.exfil_mult, t, hour)
    tb = hour_thr(p, prior, "bytes_out", t.exfil_bytes, t.exfil_mult, t, hour)
    prefixes = w.spread.effective()
    burst = w.recent("gets", 10.0)
    spread = max(prefixes / t.exfil_prefixes, keys / max(t.exfil_bulk_keys, tk),
                 burst / t.exfil_burst)
    score = min(max(reads / tr, out / tb, keys / tk), spread)
    if score < 1.0:
        return None
    reason = (f"read {reads:.0f} objects ({human_bytes(out)}) from about {prefixes:.0f} prefixes in "
              f"the last minute; its usual busiest minute is {p.quantile('gets', t.q):.0f} reads "
              f"({human_bytes(p.quantile('bytes_out', t.q))})")
    return score, reason, {"reads": reads, "bytes_out": out, "distinct_keys": keys,
                           "effective_prefixes": round(prefixes, 2),
                           "usual_reads_p99": p.quantile("gets", t.q)}


def enumeration(w: Window, p: Profile, prior: Profile, t: Tuning) -> Finding | None:
    nf, lists, prefixes, buckets = (w.value("not_found"), w.value("lists"), w.value("prefixes"),
                                    w.value("buckets"))
    if nf < t.enum_not_found and lists < t.enum_lists and buckets < t.enum_buckets:
        return None
    guess = min(nf / thr(p, prior, "not_found", t.enum_not_found, t.enum_mult, t),
                w.value("keys") / t.enum_not_found)
    # A listing's "key" is its prefix parameter: a walk lists many distinct prefixes.
    walk = min(lists / thr(p, prior, "lists", t.enum_lists, t.enum_mult, t),
               w.value("keys") / hour_thr(p, prior, "keys", t.enum_prefixes, t.enum_mult, t,
                                          hour_of_week(w.last_ts) % 24))
    fails = nf + w.value("denied")
    sweep = min(buckets / thr(p, prior, "buckets", t.enum_buckets, t.enum_mult, t), nf / 5.0)
    score = max(guess, walk, sweep)
    if score < 1.0:
        return None
    how = {guess: f"asked for {nf:.0f} keys that do not exist",
           walk: f"listed {lists:.0f} times under {w.value('keys'):.0f} different prefixes",
           sweep: f"touched {buckets:.0f} buckets, {fails:.0f} of the requests failing"}[score]
    return score, f"{how} in the last minute (key/bucket enumeration)", {
        "not_found": nf, "lists": lists, "prefixes": prefixes, "buckets": buckets}


def privilege_probing(w: Window, p: Profile, prior: Profile, t: Tuning) -> Finding | None:
    denied = w.value("denied")
    if denied < t.probe_denied:
        return None
    ops = w.value("denied_ops")
    score = min(denied / thr(p, prior, "denied", t.probe_denied, t.probe_mult, t),
                ops / thr(p, prior, "denied_ops", t.probe_ops, t.probe_mult, t))
    if score < 1.0:
        return None
    examples = sorted(w.sets[3])[:5]
    return score, (f"was refused {denied:.0f} times across {ops:.0f} different actions in the "
                   f"last minute ({', '.join(examples)})"), {
        "denied": denied, "denied_actions": ops, "examples": examples}


def credential_stuffing(w: Window, p: Profile, prior: Profile, t: Tuning) -> Finding | None:
    fails = w.value("auth_failures")
    if fails < t.stuff_keys:
        return None
    keys = w.value("failed_keys")
    stuffing = keys / thr(p, prior, "failed_keys", t.stuff_keys, t.stuff_mult, t)
    brute = fails / thr(p, prior, "auth_failures", t.stuff_failures, t.stuff_mult, t)
    score = max(stuffing, brute)
    if score < 1.0:
        return None
    what = "credential stuffing" if stuffing >= brute else "brute force"
    return score, (f"{fails:.0f} failed sign-ins with {keys:.0f} different access keys from this "
                   f"address in the last minute ({what})"), {"auth_failures": fails, "failed_keys": keys}


def unusual_access(ts: float, source: str, novel_events: int, p: Profile, t: Tuning) -> Finding | None:
    """A network this principal never used, at an hour of day it is never active."""
    if novel_events < t.unusual_events or p.days < t.unusual_min_days or not source:
        return None
    net = network_of(source)
    if net in p.networks:
        return None
    hour = hour_of_week(ts) % 24
    if p.active_at_hour(hour) > t.rare_minutes:
        return None
    score = 1.0 + min(novel_events, 50) / 50.0
    return score, (f"used from {source}, a network it never used before ({len(p.networks)} known), at "
                   f"{hour:02d}:00 UTC, an hour it is almost never active"), {
        "source": source, "hour_utc": hour, "known_networks": len(p.networks),
        "requests_from_new_network": novel_events}


def label_climbing(above: Iterable[tuple[float, int]], p: Profile, t: Tuning) -> Finding | None:
    """Reads above the principal's usual label level in the last ``climb_window`` seconds."""
    usual = p.usual_label()
    count = 0
    levels: set[int] = set()
    for _, level in above:
        count += 1
        levels.add(level)
    score = max(min(count / t.climb_above, len(levels) / t.climb_levels), count / t.climb_single)
    if score < 1.0:
        return None
    usual_name = LEVELS[usual] if usual >= 0 else "nothing labelled"
    top = LEVELS[max(levels)]
    return score, (f"read {count} objects above its usual level ({usual_name}) in the last "
                   f"{t.climb_window / 60:.0f} minutes, climbing {len(levels)} level(s) up to {top}"), {
        "reads_above_usual": count, "levels_above": len(levels), "usual_level": usual_name,
        "highest": top}
