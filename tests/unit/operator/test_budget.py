"""Counts over hours and days (budget.py): what expires, what is recorded as normal."""

from vallum.operator.budget import DAY, HOUR, Distinct, ReadBudget

T0 = 1704067200.0          # Monday 00:00 UTC


def test_distinct_forgets_after_its_horizon():
    d = Distinct(HOUR)
    for i in range(10):
        d.add(T0 + i * 60, f"k{i % 4}")
    assert (d.events, d.distinct) == (10, 4)
    d.add(T0 + HOUR + 5 * 60, "k9")            # minutes 0-4 have expired
    assert (d.events, d.distinct) == (6, 5)    # k1 k2 k3 k0 k1 (minutes 5-9) and k9


def test_read_budget_records_clean_days_only_and_keeps_24_hours():
    b = ReadBudget()
    for d in range(3):
        for h in range(9, 17):
            b.add(T0 + d * DAY + h * HOUR, 10)   # 80 reads a day
    b.add(T0 + 3 * DAY + 9 * HOUR, 1)
    assert (b.days_seen, b.busiest_day) == (3, 80)
    b.add(T0 + 3 * DAY + 10 * HOUR, 500)
    b.taint()                                   # that day raised an alert: not a norm
    b.add(T0 + 4 * DAY + 9 * HOUR, 1)
    assert b.busiest_day == 80 and b.days_seen == 3
    assert b.last_day() == 501                  # the 24 whole hours up to now
    b.add(T0 + 5 * DAY + 12 * HOUR, 1)
    assert b.last_day() == 1                    # everything older than 24 hours is gone


def test_coverage_records_the_clean_days_and_forgets_after_a_day():
    from vallum.operator.coverage import BucketCoverage, BucketSizes, score
    c = BucketCoverage()
    for d in range(2):
        for i in range(50):
            c.add(T0 + d * DAY + 9 * HOUR + i * 60, f"k{i}", learning=False)
    assert (c.peak_day, c.peak_hour) == (50, 50)          # day 0 committed when day 1 began
    c.add(T0 + 2 * DAY + 9 * HOUR, "k0", learning=False)
    c.tainted = True                                     # day 2 alerted: not a norm
    for i in range(300):
        c.add(T0 + 2 * DAY + 10 * HOUR + i * 10, f"x{i}", learning=False)
    c.add(T0 + 3 * DAY + 23 * HOUR, "k1", learning=False)
    assert c.peak_day == 50 and c.day.distinct == 1      # 300 forgotten, not learned
    sizes = BucketSizes()
    for i in range(1000):
        sizes.see("b", f"k{i % 400}")
    assert sizes.size("b") == 400
    for i in range(120):
        c.add(T0 + 3 * DAY + 23 * HOUR + i, f"y{i}", learning=False)
    s, window, n, bar = score(c, sizes.size("b"), 30.0, 0.15, 2.0)
    assert (window, n, bar) == ("hour", 121, 100.0) and s == 1.21   # 2 x its best hour of 50


def test_a_restart_keeps_the_coverage_record_and_the_bucket_sizes():
    from vallum.operator.detector import Detector
    from vallum.operator.request_events import RequestEvent
    det = Detector(anomaly=False)
    for d in range(3):                           # 120 of a 400-object bucket, every night
        for i in range(120):
            det.observe(RequestEvent(T0 + d * DAY + 2 * HOUR + i, "AKB", "acct", "10.0.0.9",
                                     "GetObject", "vault", f"k{(i + d * 120) % 400}", 200, "", 0, 1000))
    doc = det.baseline("AKB")
    peak_hour, peak_day, size = doc["coverage"]["vault"]
    assert (peak_hour, size) == (120, 360) and 120 <= peak_day <= 240
    again = Detector(anomaly=False)
    again.restore("AKB", doc)
    cov = again.principals["AKB"].coverage["vault"]
    assert (cov.peak_hour, cov.peak_day, again.sizes.size("vault")) == (peak_hour, peak_day, 360)
