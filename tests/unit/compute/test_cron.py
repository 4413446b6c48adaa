import datetime as dt

import pytest

from vallum.compute.cron import CronError, parse


def ts(*args):
    return dt.datetime(*args, tzinfo=dt.timezone.utc).timestamp()


def test_every_minute_is_the_next_minute():
    assert parse("* * * * *").next_after(ts(2026, 1, 1, 10, 0, 30)) == ts(2026, 1, 1, 10, 1)


def test_steps_ranges_and_lists():
    c = parse("*/15 9-17 * * 1-5")
    # Saturday 2026-01-03 -> Monday 2026-01-05 09:00
    assert c.next_after(ts(2026, 1, 3, 12, 0)) == ts(2026, 1, 5, 9, 0)
    assert c.next_after(ts(2026, 1, 5, 9, 0)) == ts(2026, 1, 5, 9, 15)
    assert parse("5,10 * * * *").next_after(ts(2026, 1, 1, 0, 7)) == ts(2026, 1, 1, 0, 10)


def test_nicknames_and_sunday_as_7():
    assert parse("@daily").next_after(ts(2026, 1, 1, 0, 0)) == ts(2026, 1, 2, 0, 0)
    assert parse("0 0 * * 7") == parse("0 0 * * 0")


def test_day_of_month_or_weekday():
    # 1st of the month OR a Monday (Vixie semantics)
    c = parse("0 0 1 * 1")
    assert c.next_after(ts(2026, 1, 1, 0, 0)) == ts(2026, 1, 5, 0, 0)


def test_leap_day():
    assert parse("0 0 29 2 *").next_after(ts(2026, 1, 1)) == ts(2028, 2, 29)


@pytest.mark.parametrize("bad", ["", "* * * *", "60 * * * *", "*/0 * * * *", "a * * * *",
                                 "5-1 * * * *", "* * 0 * *"])
def test_refuses_malformed(bad):
    with pytest.raises(CronError):
        parse(bad)
