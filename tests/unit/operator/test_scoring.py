from vallum.operator.alerts import Alert
from vallum.operator.containment import Action
from vallum.operator.scoring import false_quarantines, per_thousand, score_alerts
from vallum.operator.simulate import Incident


def a(kind, entity, ts):
    return Alert(ts=ts, kind=kind, entity=entity, entity_type="principal", score=1.0, reason="")


def test_precision_recall_f1_and_ttd():
    incidents = [Incident("exfiltration", "AK1", 100.0, 200.0),
                 Incident("exfiltration", "AK2", 1000.0, 1100.0),
                 Incident("enumeration", "AK3", 500.0, 600.0, also=["exfiltration"])]
    alerts = [a("exfiltration", "AK1", 130.0),        # TP, TTD 30
              a("exfiltration", "AK1", 5000.0),       # FP: long after
              a("exfiltration", "AK3", 550.0),        # TP: AK3's incident is also exfiltration
              a("exfiltration", "AK9", 120.0)]        # FP: wrong entity
    s = score_alerts(alerts, incidents, grace=300.0)["exfiltration"]
    assert (s.incidents, s.detected, s.alerts, s.true_alerts) == (2, 1, 4, 2)
    assert s.precision == 0.5 and s.recall == 0.5 and s.f1 == 0.5
    assert s.median_ttd == 30.0


def test_alert_within_grace_after_end_counts():
    inc = [Incident("enumeration", "AK1", 0.0, 10.0)]
    s = score_alerts([a("enumeration", "AK1", 300.0)], inc, grace=300.0)["enumeration"]
    assert s.detected == 1 and s.true_alerts == 1
    s = score_alerts([a("enumeration", "AK1", 311.0)], inc, grace=300.0)["enumeration"]
    assert s.detected == 0 and s.true_alerts == 0


def test_empty_is_perfect_precision_and_recall():
    s = score_alerts([], [])["label_climbing"]
    assert s.precision == 1.0 and s.recall == 1.0 and s.median_ttd is None


def test_false_quarantines_and_rate():
    inc = [Incident("exfiltration", "AK1", 0.0, 100.0)]
    acts = [Action(50.0, "suspend", "AK1", "principal", ""),
            Action(50.0, "throttle", "AK2", "principal", ""),
            Action(60.0, "release", "AK2", "principal", "")]
    false = false_quarantines(acts, inc)
    assert [f.entity for f in false] == ["AK2"]
    assert per_thousand(1, 500.0) == 2.0
