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
from vallum.operator.profile import Profile, hour_of_week, network_of
from vallum.operator.request_events import LEVELS
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
    climb_learn: float = 1800.0            # a level is usual only once read for this long
    climb_refused: bool = True             # refused reads count as a climb's top
    # destruction: objects deleted / overwritten / copied over in a minute
    destroy_floor: float = 10.0
    destroy_mult: float = 2.0              # x the most it ever destroyed in a learned minute
    # read budget (slow-and-low): reads in the last 24 h against its busiest day on record
    budget_day_floor: float = 150.0
    budget_mult: float = 3.0
    budget_days: int = 2                   # whole days on record before budgets apply
    # ... and reads in the last hour (sliding) against its busiest clean hour on record
    budget_hour_floor: float = 300.0
    budget_hour_mult: float = 4.0
    # coverage budget: distinct objects of one bucket read in an hour / a day (coverage.py)
    cover_floor: float = 30.0              # objects: below this no bucket's share counts
    cover_share: float = 0.2               # of the bucket's known size
    cover_mult: float = 3.0                # x the most of it covered in a clean hour / day
    # label first touches: reads at levels never read before, counted over hours
    climb_long_window: float = 6 * 3600.0
    climb_long_reads: float = 6.0
    # an unfamiliar caller (new network, or no mature history) gets a tight exfiltration bar
    tight_reads: float = 12.0
    tight_bytes: float = 1024 * 1024
    tight_burst: float = 12.0              # objects in 10 s
    # slow stuffing / probing, counted over an hour
    slow_stuff_keys: float = 20.0          # distinct failed keys from one /24
    slow_probe_denied: float = 30.0        # refusals of one key
    slow_probe_ops: float = 3.0
    slow_probe_source: float = 30.0        # refusals through one address, any key
    veteran_days: float = 3.0              # clean history that earns "alert, not contain"
    # credential minting: admin calls that create keys or widen grants, in a minute
    mint_floor: float = 8.0
    mint_mult: float = 2.0                 # x the most it ever did in a learned minute


def thr(profile: Profile, prior: Profile, feature: str, floor: float, mult: float, t: Tuning) -> float:
    base = profile if profile.samples >= t.min_samples else prior
    return max(floor, mult * base.quantile(feature, t.q))


def hour_thr(p: Profile, prior: Profile, feature: str, floor: float, mult: float, t: Tuning,
             hour: int) -> float:
    """Like thr(), but a principal with days of history is held to what it does at this
    hour of day: a nightly batch key reading at noon is judged by its noon self. Days,
    not only minutes: a backup busy three minutes a night never has many minutes, but
    it has the same three minutes every night."""
    if p.days < t.unusual_min_days or (p.samples < t.min_samples
                                        and p.active_at_hour(hour) < t.rare_minutes):
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


def exfiltration_tight(w: Window, p: Profile, t: Tuning) -> Finding | None:
    """An unfamiliar caller (a network this key never used, a key with no mature
    history, or a bucket it never read before) sweeping objects: a tight bar before volume evidence exists, so a stolen
    key's bulk copy is slowed in its first seconds. Only at a machine's pace (a dozen
    objects in 10 s): a person on a new network is not a sweep. The containment is a throttle,
    which a person's tools live with and which a sweep hammers into a suspension."""
    reads, keys, out = w.value("gets"), w.value("got_keys"), w.value("bytes_out")
    if reads < t.tight_reads or keys < t.tight_reads or out < t.tight_bytes:
        return None
    burst = w.recent("gets", 10.0)
    score = min(keys / t.tight_reads, burst / t.tight_burst)     # at a machine's pace
    if score < 1.0:
        return None
    return score, (f"read {keys:.0f} distinct objects ({human_bytes(out)}) in the last minute, "
                   f"{burst:.0f} in the last 10 s, from a network or a bucket it never used, or with "
                   f"no history of its own (tight budget for an unfamiliar caller)"), {
        "reads": reads, "distinct_keys": keys, "bytes_out": out, "burst_10s": burst,
        "tight": True}


def read_budget(last_day: float, busiest_day: float, t: Tuning) -> Finding | None:
    """Slow-and-low: objects read in the last 24 hours far past the busiest day on the
    principal's own record, however slowly they came. Days, not hours: an analyst's
    hour holds a dataset pull now and then, its days are steadier."""
    bar = max(t.budget_day_floor, t.budget_mult * busiest_day)
    score = last_day / bar
    if score < 1.0:
        return None
    return score, (f"read {last_day:.0f} objects in the last 24 hours; its busiest day on record "
                   f"is {busiest_day:.0f} (read volume budget: slow-and-low exfiltration)"), {
        "reads_last_day": round(last_day), "busiest_day": busiest_day, "budget": "day"}


def read_budget_hour(last_hour: float, busiest_hour: float, t: Tuning) -> Finding | None:
    """Slow-and-low, sooner: objects read in the last hour far past the busiest clean
    hour on the principal's own record (a steady reader far under every per-minute bar
    still reads an hour's worth no day of its own ever held)."""
    bar = max(t.budget_hour_floor, t.budget_hour_mult * busiest_hour)
    score = last_hour / bar
    if score < 1.0:
        return None
    return score, (f"read {last_hour:.0f} objects in the last hour; its busiest hour on record "
                   f"is {busiest_hour:.0f} (read volume budget: slow-and-low exfiltration)"), {
        "reads_last_hour": round(last_hour), "busiest_hour": busiest_hour, "budget": "hour"}


def coverage(bucket: str, score: float, window: str, covered: float, bar: float, size: int,
             peak: float) -> Finding | None:
    """Slow-and-low by share: distinct objects of one bucket read in the last hour / day
    against max(floor, a share of the bucket, a multiple of the most of it this principal
    covered in a clean window of that length). Scales with the damage possible: a
    bucket's size, not the reader's pace."""
    if score < 1.0:
        return None
    share = covered / max(size, covered, 1.0)
    return score, (f"read {covered:.0f} distinct objects of bucket {bucket} ({100 * share:.0f}% of the "
                   f"{max(size, int(covered))} objects known there) in the last {window}; the most of it "
                   f"it read in a clean {window} on record is {peak:.0f} (coverage budget: slow-and-low "
                   f"exfiltration)"), {
        "budget": "coverage", "bucket": bucket, "window": window, "objects": round(covered),
        "bucket_size": max(size, int(covered)), "share": round(share, 3), "usual": peak,
        "bar": round(bar, 1)}


def label_first_touch(touches: Iterable[tuple[float, int, str]], t: Tuning) -> Finding | None:
    """Reads at label levels the principal never read before (or refused, label unknown),
    of distinct objects, counted over hours: a climb paced under the 15-minute window."""
    keys: set[str] = set()
    levels: set[int] = set()
    for _, level, key in touches:
        keys.add(key)
        if level >= 0:
            levels.add(level)
    score = len(keys) / t.climb_long_reads
    if score < 1.0:
        return None
    top = LEVELS[max(levels)] if levels else "unknown (refused)"
    return score, (f"read or was refused {len(keys)} objects at label levels it never read before, "
                   f"up to {top}, in the last {t.climb_long_window / 3600:.0f} hours (first touches)"), {
        "first_touches": len(keys), "levels": sorted(levels), "highest": top,
        "window_hours": t.climb_long_window / 3600}


GUIDANCE = ("Contain first, then restore: turn on bucket versioning (and object lock for data "
            "that must not be destroyed) so overwritten or deleted objects keep their previous "
            "versions, and restore them from there or from backup.")


def destruction(w: Window, p: Profile, t: Tuning) -> Finding | None:
    """Objects deleted, overwritten after being read, or copied over (re-encryption in
    place, a rename) in the last minute, far past the most this key ever destroyed in a
    minute: ransomware and wipers. Judged against its own record only: a purge job
    that deletes every night learns its own norm."""
    d, opaque = w.value("destroys"), w.value("opaque_writes")
    if d < t.destroy_floor and opaque < t.destroy_floor:
        return None
    bar = max(t.destroy_floor, t.destroy_mult * p.quantile("destroys", 1.0))
    score = d / bar
    # The entropy jump: a key whose writes were text (never an incompressible body in a
    # learned minute) writing ciphertext-like bodies in bulk. A key that uploads archives
    # or media learns that as its own norm; a key with no history is not judged on it.
    jump = (p.samples >= t.min_samples and p.quantile("opaque_writes", 1.0) == 0.0
            and opaque >= t.destroy_floor)
    if jump and opaque / t.destroy_floor > score:
        return opaque / t.destroy_floor, (
            f"wrote {opaque:.0f} objects whose contents look encrypted (incompressible) in the last "
            f"minute; it never wrote one before (ciphertext replacing its data?). {GUIDANCE}"), {
            "opaque_writes_last_minute": opaque, "destroyed_last_minute": d, "entropy_jump": True}
    if score < 1.0:
        return None
    return score, (f"deleted, overwrote or copied over {d:.0f} objects in the last minute; the most "
                   f"it ever did in a minute is {p.quantile('destroys', 1.0):.0f}. {GUIDANCE}"), {
        "destroyed_last_minute": d, "usual_max": p.quantile("destroys", 1.0)}


def credential_minting(w: Window, p: Profile, t: Tuning) -> Finding | None:
    """Keys created, rotated or re-enabled, users and roles created, policies attached or
    boundaries removed in the last minute, far past the most this key ever did in one: a
    stolen admin key building itself ways back in. Judged against its own record (an
    onboarding script that creates users every Monday learns its norm)."""
    m = w.value("mints")
    if m < t.mint_floor:
        return None
    usual = p.quantile("mints", 1.0)
    score = m / max(t.mint_floor, t.mint_mult * usual)
    if score < 1.0:
        return None
    return score, (f"created or widened {m:.0f} credentials, users, roles or grants in the last "
                   f"minute; the most it ever did in a minute is {usual:.0f}"), {
        "mints_last_minute": m, "usual_max": usual}


def slow_stuffing(network: str, failed_keys: int, failures: int, t: Tuning) -> Finding | None:
    """Sign-ins with many different keys from one /24 over an hour, however slowly
    and from however many of its addresses: a forgotten cron retries one dead key, a
    typo one real one; a stuffing list tries many."""
    if failed_keys < t.slow_stuff_keys:
        return None
    return failed_keys / t.slow_stuff_keys, (
        f"is in {network}, from which {failures} sign-ins with {failed_keys} different access keys "
        f"failed in the last hour (slow credential stuffing)"), {
        "network": network, "failed_keys_last_hour": failed_keys, "auth_failures_last_hour": failures}


def slow_probing(denied: int, ops: int, source_denied: int, t: Tuning) -> Finding | None:
    """Refusals over an hour: of this key (across several actions), or, once it is
    refused a few times itself, of other keys through its address (a second stolen key
    probing from where the first one did)."""
    own = min(denied / t.slow_probe_denied, ops / t.slow_probe_ops)
    shared = source_denied / t.slow_probe_source if denied >= 5 else 0.0
    score = max(own, shared)
    if score < 1.0:
        return None
    return score, (f"was refused {denied} times across {ops} actions in the last hour; "
                   f"{source_denied} refusals of other keys through its address (slow privilege "
                   f"probing)"), {"denied_last_hour": denied, "denied_actions_last_hour": ops,
                                  "source_denied_last_hour": source_denied, "slow": True}


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
    style, how = {guess: ("guess", f"asked for {nf:.0f} keys that do not exist"),
                  walk: ("walk", f"listed {lists:.0f} times under {w.value('keys'):.0f} different prefixes"),
                  sweep: ("sweep", f"touched {buckets:.0f} buckets, {fails:.0f} of the requests failing")}[score]
    return score, f"{how} in the last minute (key/bucket enumeration)", {
        "not_found": nf, "lists": lists, "prefixes": prefixes, "buckets": buckets, "style": style}


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
        if level >= 0:                      # (-1: a refused read whose label is not known)
            levels.add(level)
    if not levels:
        return None
    score = max(min(count / t.climb_above, len(levels) / t.climb_levels), count / t.climb_single)
    if score < 1.0:
        return None
    usual_name = LEVELS[usual] if usual >= 0 else "nothing labelled"
    top = LEVELS[max(levels)]
    return score, (f"read {count} objects above its usual level ({usual_name}) in the last "
                   f"{t.climb_window / 60:.0f} minutes, climbing {len(levels)} level(s) up to {top}"), {
        "reads_above_usual": count, "levels_above": len(levels), "usual_level": usual_name,
        "highest": top}
