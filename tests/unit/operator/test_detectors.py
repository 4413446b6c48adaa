"""Detectors on crafted streams: a learned normal, then one abuse pattern each."""

import random

import pytest

from vallum.operator.detector import Detector
from vallum.operator.request_events import RequestEvent

DAY = 86400.0
T0 = 1704067200.0          # Monday 00:00 UTC


def normal_history(det: Detector, principal="AKNORMAL", days=3, seed=1, label=0):
    """Working hours 09-17 on weekdays, ~2 requests/min, from one office network."""
    rng = random.Random(seed)
    for d in range(days):
        t = T0 + d * DAY + 9 * 3600
        while t < T0 + d * DAY + 17 * 3600:
            t += rng.expovariate(2 / 60)
            op = rng.choice(("GetObject", "GetObject", "PutObject", "ListObjectsV2"))
            det.observe(RequestEvent(t, principal, "acct", "10.1.2.3", op, "bkt",
                                     f"p{rng.randint(0, 2)}/k{rng.randint(0, 50)}",
                                     bytes_out=50_000 if op == "GetObject" else 0, label=label))
    return T0 + days * DAY


def kinds(alerts):
    return {a.kind for a in alerts}


def run(det, events):
    out = []
    for e in events:
        out += det.observe(e)
    return out


@pytest.fixture
def trained():
    det = Detector(anomaly=False)
    end = normal_history(det)
    return det, end


def test_normal_day_raises_nothing(trained):
    det, end = trained
    rng = random.Random(9)
    alerts = []
    t = end + 9 * 3600
    while t < end + 17 * 3600:
        t += rng.expovariate(2 / 60)
        alerts += det.observe(RequestEvent(t, "AKNORMAL", "acct", "10.1.2.3", "GetObject", "bkt",
                                           f"p1/k{rng.randint(0, 50)}", bytes_out=50_000, label=0))
    assert alerts == []


def test_bulk_exfiltration_is_detected_within_a_minute(trained):
    det, end = trained
    start = end + 11 * 3600
    events = [RequestEvent(start + i * 0.3, "AKNORMAL", "acct", "10.1.2.3", "GetObject", "bkt",
                           f"d{i % 12}/obj{i}", bytes_out=1_000_000) for i in range(400)]
    alerts = run(det, events)
    exfil = [a for a in alerts if a.kind == "exfiltration"]
    assert exfil and exfil[0].ts - start < 60
    assert "read" in exfil[0].reason and exfil[0].features["reads"] >= 40


def test_key_guessing_is_enumeration(trained):
    det, end = trained
    start = end + 10 * 3600
    events = [RequestEvent(start + i, "AKNORMAL", "acct", "10.1.2.3", "HeadObject", "bkt",
                           f"secret/{i:x}", status=404, error="NoSuchKey") for i in range(60)]
    assert "enumeration" in kinds(run(det, events))


def test_many_denied_actions_is_privilege_probing(trained):
    det, end = trained
    ops = ["PutBucketPolicy", "DeleteBucket", "GetBucketAcl", "PutBucketVersioning", "CreateBucket"]
    events = [RequestEvent(end + 3600 * 10 + i * 2, "AKNORMAL", "acct", "10.1.2.3", ops[i % 5],
                           f"other{i}", status=403, error="AccessDenied") for i in range(25)]
    found = run(det, events)
    assert "privilege_probing" in kinds(found)
    assert "enumeration" not in kinds(found)


def test_repeated_denial_of_one_action_is_not_probing(trained):
    det, end = trained
    events = [RequestEvent(end + 3600 * 10 + i * 2, "AKNORMAL", "acct", "10.1.2.3", "PutObject",
                           "bkt", "x", status=403, error="AccessDenied") for i in range(25)]
    assert "privilege_probing" not in kinds(run(det, events))


def test_credential_stuffing_from_one_address():
    det = Detector(anomaly=False)
    events = [RequestEvent(T0 + i, f"AKIAGUESS{i:04d}", "", "203.0.113.7", "ListBuckets",
                           status=403, error="InvalidAccessKeyId") for i in range(20)]
    found = run(det, events)
    stuffing = [a for a in found if a.kind == "credential_stuffing"]
    assert stuffing and stuffing[0].entity == "203.0.113.7" and stuffing[0].entity_type == "address"


def test_new_network_at_night_is_unusual_access(trained):
    det, end = trained
    night = end + 3 * 3600
    events = [RequestEvent(night + i * 10, "AKNORMAL", "acct", "198.51.100.4", "GetObject", "bkt",
                           f"p1/k{i}", bytes_out=50_000) for i in range(5)]
    found = [a for a in run(det, events) if a.kind == "unusual_access"]
    assert found and "198.51.100.4" in found[0].reason


def test_new_network_in_working_hours_is_not_unusual(trained):
    det, end = trained
    noon = end + 12 * 3600
    events = [RequestEvent(noon + i * 10, "AKNORMAL", "acct", "198.51.100.4", "GetObject", "bkt",
                           f"p1/k{i}", bytes_out=50_000) for i in range(5)]
    assert "unusual_access" not in kinds(run(det, events))


def test_label_climbing():
    det = Detector(anomaly=False)
    end = normal_history(det, label=0)
    start = end + 11 * 3600
    events = [RequestEvent(start + i * 5, "AKNORMAL", "acct", "10.1.2.3", "GetObject", "bkt",
                           f"p1/k{i}", bytes_out=10_000, label=1 + i // 3) for i in range(9)]
    found = [a for a in run(det, events) if a.kind == "label_climbing"]
    assert found and found[0].features["levels_above"] >= 2


def test_alerts_respect_cooldown(trained):
    det, end = trained
    start = end + 11 * 3600
    events = [RequestEvent(start + i * 0.2, "AKNORMAL", "acct", "10.1.2.3", "GetObject", "bkt",
                           f"d{i % 12}/obj{i}", bytes_out=1_000_000) for i in range(1000)]
    assert sum(a.kind == "exfiltration" for a in run(det, events)) == 1


def test_anomaly_model_scores_in_unit_interval():
    from vallum.operator.anomaly import AnomalyModel
    m = AnomalyModel(window=16)
    rng = random.Random(1)
    for _ in range(64):
        m.score_and_learn({"a": rng.random() * 0.2, "b": rng.random() * 0.2})
    odd = m.score_and_learn({"a": 0.99, "b": 0.99})
    usual = m.score_and_learn({"a": 0.1, "b": 0.1})
    assert 0.0 <= usual < odd <= 1.0


def test_dataset_pull_from_one_prefix_is_not_exfiltration(trained):
    det, end = trained
    start = end + 11 * 3600
    events = [RequestEvent(start + i * 0.9, "AKNORMAL", "acct", "10.1.2.3", "GetObject", "bkt",
                           f"dataset/part{i:04d}", bytes_out=1_000_000) for i in range(65)]
    # ... with a little ordinary work on other prefixes at the same time
    events += [RequestEvent(start + i * 9.0 + 0.5, "AKNORMAL", "acct", "10.1.2.3", "GetObject", "bkt",
                            f"p{i}/k1", bytes_out=50_000) for i in range(6)]
    assert "exfiltration" not in kinds(run(det, sorted(events, key=lambda e: e.ts)))


def test_failed_guesses_are_not_exfiltration(trained):
    det, end = trained
    start = end + 11 * 3600
    events = [RequestEvent(start + i * 0.3, "AKNORMAL", "acct", "10.1.2.3", "GetObject", "bkt",
                           f"d{i % 12}/obj{i}", status=404, error="NoSuchKey", bytes_out=300)
              for i in range(200)]
    assert "exfiltration" not in kinds(run(det, events))


def test_exfiltration_escalates_when_the_key_hammers_its_throttle(trained):
    det, end = trained
    start = end + 11 * 3600
    # ~50 reads a minute over 8 prefixes: past the first bar (40), not the second (80)
    events = [RequestEvent(start + i * 1.2, "AKNORMAL", "acct", "10.1.2.3", "GetObject", "bkt",
                           f"d{i % 8}/obj{i}", bytes_out=100_000) for i in range(70)]
    first = [a for a in run(det, events) if a.kind == "exfiltration"]
    assert len(first) == 1 and 1.0 <= first[0].score < 2.0 and not first[0].features.get("escalated")
    t = events[-1].ts
    # throttled: the gateway answers SlowDown; a few retries are not enough to escalate ...
    refused = [RequestEvent(t + 1 + i * 0.05, "AKNORMAL", "acct", "10.1.2.3", "GetObject", "bkt",
                            f"d1/obj{70 + i}", status=503, error="SlowDown") for i in range(40)]
    found = run(det, refused[:10])
    assert found == []
    # ... hammering on is
    found = run(det, refused[10:])
    assert [a.kind for a in found] == ["exfiltration"] and found[0].features["escalated"]
    assert found[0].features["refused_reads_last_minute"] >= 30


def test_robust_model_learns_a_bar_per_principal():
    from vallum.operator.anomaly import MODEL_FEATURES, RobustModel
    from vallum.operator.profile import Profile
    from vallum.operator.signals import FEATURES
    rng = random.Random(3)
    profile, model = Profile(), RobustModel(floor=10.0, min_scored=50)

    def minute(reads, keys):
        peaks = dict.fromkeys(FEATURES, 0.0)
        peaks.update(requests=reads + 1, reads=reads, keys=keys, bytes_out=reads * 50_000.0)
        return peaks

    for i in range(330):
        peaks = minute(rng.randint(1, 4), rng.randint(1, 3))
        if i >= 30:                             # the detector scores once a profile has 30 minutes
            score, bar, _ = model.score_and_learn("AK", peaks, profile)
            assert bar is None if i < 80 else bar >= 10.0
        profile.learn([peaks[f] for f in FEATURES], T0 + i * 60)
    usual = model.score_and_learn("AK", minute(3, 2), profile)
    odd = model.score_and_learn("AK", minute(200, 180), profile)
    assert usual[0] < usual[1] <= odd[0]
    assert set(odd[2]) <= set(MODEL_FEATURES) and max(odd[2], key=odd[2].get) in ("reads", "keys", "bytes_out", "requests")
    assert model.score_and_learn("OTHER", minute(200, 180), profile)[1] is None   # no bar of its own yet
