from vallum.operator.events import RequestEvent
from vallum.operator.signals import Distinct, Signals, Window, event_counts, prefix_of


def ev(ts, op="GetObject", key="a/b", principal="AK1", **kw):
    return RequestEvent(ts=ts, principal=principal, account="acct", source="10.0.0.1",
                        operation=op, bucket="bkt", key=key, **kw)


def test_window_counts_expire_after_sixty_seconds():
    s = Signals()
    for i in range(10):
        s.update(ev(1000.0 + i, bytes_out=100))
    w = s.principals["AK1"]
    assert w.value("requests") == 10 and w.value("reads") == 10 and w.value("bytes_out") == 1000
    s.update(ev(1000.0 + 65, op="PutObject", bytes_in=5))
    assert w.value("requests") == 1 and w.value("reads") == 0 and w.value("bytes_in") == 5


def test_distinct_keys_and_prefixes_slide():
    s = Signals()
    for i in range(30):
        s.update(ev(0.0 + i, key=f"p{i % 3}/k{i}"))
    w = s.principals["AK1"]
    assert w.value("keys") == 30 and w.value("prefixes") == 3 and w.value("buckets") == 1
    s.update(ev(85.0, key="p0/k0"))        # everything before t=25 has left the window
    assert w.value("keys") == 5 and w.value("prefixes") == 3


def test_distinct_keeps_value_seen_again_inside_window():
    d = Distinct(10.0)
    d.add("x", 0.0)
    d.add("x", 8.0)
    d.expire(12.0)
    assert len(d) == 1
    d.expire(18.5)
    assert len(d) == 0


def test_minute_sample_is_the_peak_of_the_finished_minute():
    w = Window()
    counts, distinct = event_counts(ev(0.0))
    for t in (60.0, 61.0, 62.0):
        assert w.add(t, counts, distinct) is None or t == 60.0
    sample = w.add(125.0, counts, distinct)
    assert sample is not None
    peaks, minute = sample
    assert minute == 1 and peaks[0] == 3.0


def test_auth_failures_count_per_address_not_principal():
    s = Signals()
    for i in range(5):
        s.update(RequestEvent(ts=float(i), principal=f"AKBAD{i}", source="203.0.113.9",
                              operation="ListBuckets", status=403, error="InvalidAccessKeyId"))
    assert s.principals == {}
    a = s.addresses["203.0.113.9"]
    assert a.value("auth_failures") == 5 and a.value("failed_keys") == 5


def test_denied_and_not_found_are_counted():
    counts, distinct = event_counts(ev(0.0, error="AccessDenied", status=403))
    assert (7, 1.0) in counts and (3, "GetObject") in distinct
    counts, _ = event_counts(ev(0.0, error="NoSuchKey", status=404))
    assert (8, 1.0) in counts


def test_prefix_of():
    assert prefix_of("b", "x/y/z") == "b/x/"
    assert prefix_of("b", "flat") == "b/"
