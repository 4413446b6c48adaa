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
