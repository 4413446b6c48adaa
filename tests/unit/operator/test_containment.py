from vallum.operator.alerts import Alert
from vallum.operator.containment import Containment


def alert(kind, entity="AK1", ts=100.0, score=1.2, account="acct", etype="principal"):
    return Alert(ts=ts, kind=kind, entity=entity, entity_type=etype, score=score,
                 reason="because", account=account)


def test_observe_mode_only_alerts():
    c = Containment(default_mode="observe")
    assert c.on_alert(alert("exfiltration")) == []
    assert c.admit("AK1", "10.0.0.1", 101.0) is None


def test_exfiltration_throttles_first_then_suspends_on_escalation():
    calls = []
    c = Containment(default_mode="contain", suspender=lambda k, s: calls.append((k, s)))
    [first] = c.on_alert(alert("exfiltration"))
    assert first.action == "throttle" and "exfiltration" in first.reason and calls == []
    assert sum(c.admit("AK1", "10.0.0.1", 100.0 + i * 0.01) is None for i in range(50)) == 5
    second = alert("exfiltration", ts=130.0)
    second.features = {"escalated": True}
    [action] = c.on_alert(second)
    assert action.action == "suspend" and calls == [("AK1", True)]
    assert c.admit("AK1", "10.0.0.1", 131.0) == "suspended"
    assert c.admit("AK2", "10.0.0.1", 131.0) is None


def test_exfiltration_far_past_the_bar_suspends_at_once():
    c = Containment(default_mode="contain")
    [action] = c.on_alert(alert("exfiltration", score=2.5))
    assert action.action == "suspend"


def test_probing_throttles_then_suspends_on_repeat():
    c = Containment(default_mode="contain")
    [first] = c.on_alert(alert("enumeration"))
    assert first.action == "throttle"
    allowed = sum(c.admit("AK1", "", 100.0 + i * 0.01) is None for i in range(50))
    assert allowed == 5                      # the burst, then refused
    [second] = c.on_alert(alert("privilege_probing", ts=200.0))
    assert second.action == "suspend"


def test_throttle_expires():
    c = Containment(default_mode="contain", throttle_for=60.0)
    c.on_alert(alert("unusual_access"))
    assert c.admit("AK1", "", 200.0) is None and "AK1" not in c.throttled


def test_per_account_mode():
    c = Containment(default_mode="observe", modes={"hot": "contain"})
    assert c.on_alert(alert("label_climbing", account="cold")) == []
    assert c.on_alert(alert("label_climbing", account="hot"))[0].action == "suspend"


def test_stuffing_blocks_the_address_and_release_lifts_it():
    sink = []
    c = Containment(default_mode="contain", sink=sink.append)
    c.on_alert(alert("credential_stuffing", entity="203.0.113.7", etype="address", account=""))
    assert c.admit(None, "203.0.113.7", 150.0) == "blocked"
    rel = c.release("203.0.113.7", by="ops", reason="false alarm", now=160.0)
    assert rel is not None and rel.action == "release" and rel.by == "ops"
    assert c.admit(None, "203.0.113.7", 161.0) is None
    assert [a.action for a in sink] == ["block_address", "release"]


def test_release_of_suspended_key_reactivates_it():
    calls = []
    c = Containment(default_mode="contain", suspender=lambda k, s: calls.append((k, s)))
    c.on_alert(alert("label_climbing"))
    c.release("AK1", by="ops", reason="ok", now=200.0)
    assert calls == [("AK1", True), ("AK1", False)] and c.admit("AK1", "", 201.0) is None
    assert c.release("AK1", by="ops", reason="again") is None


def test_anomaly_alone_takes_no_action():
    c = Containment(default_mode="contain")
    assert c.on_alert(alert("behaviour_anomaly", score=5.0)) == []


def flagged(kind, score=1.2, **features):
    a = alert(kind, score=score)
    a.features = features
    return a


def test_a_veteran_in_doubt_is_alerted_on_not_contained():
    c = Containment(default_mode="contain")
    for kind in ("exfiltration", "enumeration", "privilege_probing", "unusual_access", "label_climbing"):
        assert c.on_alert(flagged(kind, veteran=True)) == [], kind
    # ... but not past the suspension score, nor escalated, nor on the tight bar
    assert c.on_alert(flagged("exfiltration", veteran=True, tight=True))[0].action == "throttle"
    c = Containment(default_mode="contain")
    assert c.on_alert(flagged("exfiltration", score=2.5, veteran=True))[0].action == "suspend"
    c = Containment(default_mode="contain")
    assert c.on_alert(flagged("exfiltration", veteran=True, escalated=True))[0].action == "suspend"


def test_destruction_suspends_even_a_veteran():
    c = Containment(default_mode="contain")
    [action] = c.on_alert(flagged("destruction", veteran=True))
    assert action.action == "suspend"


def test_a_listing_walk_alerts_without_containment():
    c = Containment(default_mode="contain")
    assert c.on_alert(flagged("enumeration", style="walk")) == []
    assert c.on_alert(flagged("enumeration", style="guess"))[0].action == "throttle"


def test_read_budget_throttles_below_the_pace_then_suspends():
    c = Containment(default_mode="contain")
    assert c.on_alert(flagged("exfiltration", budget="day", veteran=True)) == []   # in doubt
    [first] = c.on_alert(flagged("exfiltration", budget="day"))
    assert first.action == "throttle"
    served = sum(c.admit("AK1", "", 100.0 + i) is None for i in range(120))   # 1/s for 2 min
    assert served <= 5 + 12 + 1                        # burst, then 0.1/s
    [second] = c.on_alert(flagged("exfiltration", score=2.0, budget="day", escalated=True))
    assert second.action == "suspend"
