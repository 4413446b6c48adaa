from vallum.operator.request_events import RequestEvent
from vallum.operator.signals import (
    SPREAD,
    WHO,
    WHO_FIELDS,
    Distinct,
    Signals,
    Window,
    run_counts,
)


def ev(ts, op="GetObject", key="a/b", principal="AK1", **kw):
    return RequestEvent(ts=ts, principal=principal, account="acct", source="10.0.0.1",
                        operation=op, bucket="bkt", key=key, **kw)


def test_window_counts_expire_after_sixty_seconds():
    s = Signals()
    for i in range(10):
        s.update_run((ev(1000.0 + i, bytes_out=100),))
    w = s.principals["AK1"]
    assert w.value("requests") == 10 and w.value("reads") == 10 and w.value("bytes_out") == 1000
    s.update_run((ev(1000.0 + 65, op="PutObject", bytes_in=5),))
    assert w.value("requests") == 1 and w.value("reads") == 0 and w.value("bytes_in") == 5


def test_distinct_keys_and_prefixes_slide():
    s = Signals()
    for i in range(30):
        s.update_run((ev(0.0 + i, key=f"p{i % 3}/k{i}"),))
    w = s.principals["AK1"]
    assert w.value("keys") == 30 and w.value("prefixes") == 3 and w.value("buckets") == 1
    s.update_run((ev(85.0, key="p0/k0"),))        # everything before t=25 has left the window
    assert w.value("keys") == 5 and w.value("prefixes") == 3


def test_distinct_keeps_value_seen_again_inside_window():
    d = Distinct(10.0)
    d.add_all(("x",), 0.0)
    d.add_all(("x",), 8.0)
    d.expire(12.0)
    assert len(d) == 1
    d.expire(18.5)
    assert len(d) == 0


def test_minute_sample_is_the_peak_of_the_finished_minute():
    w = Window()
    counts, distinct = run_counts((ev(0.0),))
    for t in (60.0, 61.0, 62.0):
        assert w.add(t, counts, distinct) is None or t == 60.0
    sample = w.add(125.0, counts, distinct)
    assert sample is not None
    peaks, minute = sample
    assert minute == 1 and peaks[0] == 3.0


def test_auth_failures_count_per_address_not_principal():
    s = Signals()
    for i in range(5):
        s.update_run((RequestEvent(ts=float(i), principal=f"AKBAD{i}", source="203.0.113.9",
                              operation="ListBuckets", status=403, error="InvalidAccessKeyId"),))
    assert s.principals == {}
    a = s.addresses["203.0.113.9"]
    assert a.value("auth_failures") == 5 and a.value("failed_keys") == 5


def test_denied_and_not_found_are_counted():
    counts, distinct = run_counts((ev(0.0, error="AccessDenied", status=403),))
    assert (7, 1.0) in counts and (3, ["GetObject"]) in distinct
    counts, _ = run_counts((ev(0.0, error="NoSuchKey", status=404),))
    assert (8, 1.0) in counts


def test_run_end_compares_the_caller_fields_as_one_slice():
    assert RequestEvent._fields[WHO] == WHO_FIELDS


def test_a_keys_prefix_is_its_bucket_and_first_path_component():
    run = [RequestEvent(0.0, "AK1", bucket="b", key=k, operation="GetObject")
           for k in ("x/y/z", "x/w", "flat", "x/v")]
    _, distinct = run_counts(run)
    sets = dict(distinct)
    assert sets[1] == ["b/x/", "b/", "b/x/"]             # consecutive repeats once
    assert sets[SPREAD] == [("b/x/", 2), ("b/", 1), ("b/x/", 1)]   # every read weighed


# --- runs: a batch's alike events counted at once -----------------------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from vallum.operator.detector import Detector  # noqa: E402
from vallum.operator.signals import NC, run_end  # noqa: E402

_event = st.builds(
    RequestEvent,
    ts=st.floats(0.0, 50.0, allow_nan=False),
    principal=st.sampled_from(["AK1", "AK2", ""]),
    account=st.sampled_from(["acct", ""]),
    source=st.sampled_from(["10.0.0.1", "10.0.0.2"]),
    operation=st.sampled_from(["GetObject", "PutObject", "HeadObject", "ListObjectsV2", "DeleteObject",
                               "DeleteObjects", "CopyObject"]),
    bucket=st.sampled_from(["bkt", "other", ""]),
    key=st.sampled_from(["", "a/1", "a/2", "b/1", "k"]),
    status=st.just(200),
    error=st.sampled_from(["", "", "NoSuchKey", "AccessDenied", "SignatureDoesNotMatch"]),
    bytes_in=st.integers(0, 5000), bytes_out=st.integers(0, 5000),
    label=st.integers(-1, 4))
# mostly alike events, so that long runs occur
_alike = st.builds(
    RequestEvent, ts=st.floats(0.0, 50.0, allow_nan=False), principal=st.just("AK1"),
    account=st.just("acct"), source=st.just("10.0.0.1"),
    operation=st.sampled_from(["GetObject", "GetObject", "PutObject"]), bucket=st.just("bkt"),
    key=st.sampled_from(["a/1", "a/2", "b/1"]), status=st.just(200),
    error=st.sampled_from(["", "", "", "NoSuchKey"]), bytes_in=st.integers(0, 5000),
    bytes_out=st.integers(0, 5000), label=st.sampled_from([-1, -1, 2]))
_events = st.lists(st.one_of(_event, _alike, _alike), max_size=60)


def _state(s: Signals):
    out = {}
    for table in ("principals", "addresses", "accounts"):
        for name, w in getattr(s, table).items():
            out[(table, name)] = (w.totals, w.peak, w.minute, [sorted(d.last) for d in w.sets],
                                  w.spread.total, w.spread.squares)
    return out


def _counters(s: Signals):
    return {(table, name): (w.totals, w.peak[:NC], w.minute, w.head)
            for table in ("principals", "addresses", "accounts")
            for name, w in getattr(s, table).items()}


def _count(events, chunk, *, spread=1.0):
    events = sorted((e._replace(ts=e.ts * spread) for e in events), key=lambda e: e.ts)
    alone, runs = Signals(), Signals()
    for e in events:
        alone.update_run((e,))
    for start in range(0, len(events), chunk):
        batch = events[start:start + chunk]
        i = 0
        while i < len(batch):
            j = run_end(batch, i, runs.slot)
            run = batch[i:j]
            assert all(int(e.ts // 5) == int(run[0].ts // 5) and e.principal == run[0].principal
                       and e.operation == run[0].operation and e.error == run[0].error for e in run)
            runs.update_run(run)
            i = j
    return alone, runs


@settings(max_examples=300, deadline=None)
@given(_events, st.integers(1, 40))
def test_counting_in_runs_matches_counting_one_by_one(events, chunk):
    """Within one window (no expiry), the counters, minute peaks and distinct sets are the
    same whether a batch's runs are counted at once or every event alone."""
    alone, runs = _count(events, chunk)
    assert _state(runs) == _state(alone)


@settings(max_examples=300, deadline=None)
@given(_events, st.integers(1, 40))
def test_runs_never_cross_a_slot_or_a_minute(events, chunk):
    """Over several minutes the counters, their minute peaks and the slots match exactly
    (distinct values may expire up to one slot later in a run: not compared here)."""
    alone, runs = _count(events, chunk, spread=6.0)
    assert _counters(runs) == _counters(alone)


def test_a_batch_raises_the_alerts_one_by_one_would_and_at_the_same_event():
    t = 1_800_000_000.0
    evs = [RequestEvent(t + i / 3000.0, "AK1", "acct", "10.0.0.1", "GetObject", "bkt",
                        f"p{i % 7}/k{i % 640}", 200, "", 0, 4096) for i in range(6000)]
    one, batched = Detector(), Detector()
    alone = [a for e in evs for a in one.observe(e)]
    together = [a for s in range(0, len(evs), 32) for a in batched.observe_batch(evs[s:s + 32])]
    # a key with no history: the tight bar of an unfamiliar caller, then the escalation
    assert [a.kind for a in alone] == [a.kind for a in together] == ["exfiltration"] * 2
    assert together[0].features.get("tight") and together[1].features.get("escalated")
    # the batch's alerts come at the end of the run holding the event that raised them
    for a, b in zip(alone, together, strict=True):
        assert 0 <= b.ts - a.ts < 32 / 3000.0
