"""Rate limits: the admin API's input, the token bucket, and two processes' limiters on one
data directory sharing one account's rate through the operator's database."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from vallum.s3.errors import S3Error
from vallum.server import rate_limits
from vallum.server.rate_limits import Bucket, Limiter, parse_limit


@pytest.mark.parametrize("args,expected", [
    ({"rps": 5}, (5.0, 5.0)), ({"rps": 0.5}, (0.5, 1.0)), ({"rps": 2, "burst": 10}, (2.0, 10.0)),
    ({"rps": None}, None), ({}, None)])
def test_parse_limit(args, expected):
    assert parse_limit(args) == expected


@pytest.mark.parametrize("args", [{"rps": 0}, {"rps": -2}, {"rps": float("nan")}, {"rps": float("inf")},
                                  {"rps": "5"}, {"rps": False}, {"rps": 1, "burst": 0},
                                  {"burst": 3}, {"rps": 2e6}])
def test_parse_limit_refuses(args):
    with pytest.raises(ValueError):
        parse_limit(args)


def test_bucket_refills_at_its_rate():
    b = Bucket(2.0, 2.0, now=0.0)
    assert [b.take(0.0), b.take(0.0)] == [0.0, 0.0]
    assert b.take(0.0) == pytest.approx(0.5)
    assert b.take(0.5) == 0.0


def test_two_processes_share_one_rate(tmp_path):
    one, two = Limiter(tmp_path), Limiter(tmp_path)
    two.pid = one.pid + 1                 # two gateway workers on one data directory
    try:
        one.set("A", (1.0, 10.0))
        now = 1000.0
        assert all(one.check("A", now) == 0.0 for _ in range(10))    # one spends the burst
        assert one.check("A", now) > 0.0
        one.sync(now)                                                # ... and publishes it
        assert two.check("B", now) == 0.0                             # no limit on B
        two.sync(now)          # two's first look: its baseline of what the others let through
        assert one.check("A", now + 1.0) == 0.0                       # a token refilled
        one.sync(now + 1.0)
        two.sync(now + 1.0)
        # two had its own full burst; the request one let through since is taken out of it.
        assert sum(two.check("A", now + 1.0) == 0.0 for _ in range(20)) == 9
        one.set("A", None)
        two.sync(now + 2.0)
        assert all(two.check("A", now + 2.0) == 0.0 for _ in range(50))   # lifted everywhere
    finally:
        one.close()
        two.close()


def test_no_database_refuses_rather_than_lets_through(tmp_path):
    (tmp_path / "operator").write_text("not a directory")
    rate_limits.shutdown()
    with pytest.raises(S3Error) as err:
        rate_limits.current(SimpleNamespace(config=SimpleNamespace(data_dir=tmp_path)))
    assert (err.value.code, err.value.status) == ("ServiceUnavailable", 503)
    assert rate_limits._limiter is None
