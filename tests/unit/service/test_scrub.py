"""The scrubber's rate limit and cursor file (pure logic; the walk itself runs on a real
data directory in tests/functional/test_scrub.py)."""

from __future__ import annotations

import asyncio

import pytest

from vallum.service import scrub


def test_rate_limit_sleeps_to_keep_the_average(monkeypatch):
    now = [0.0]
    slept = []

    async def fake_sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(scrub.asyncio, "sleep", fake_sleep)
    limit = scrub.RateLimit(1000, clock=lambda: now[0])

    async def main():
        await limit.spend(500)          # 0.5 s of budget used at t=0: wait it out
        now[0] += 2.0                   # a slow read: the budget is already spent
        await limit.spend(500)
        await limit.spend(3000)

    asyncio.run(main())
    assert slept == pytest.approx([0.5, 1.5])
    assert limit.done == 4000


def test_unlimited_rate_never_sleeps(monkeypatch):
    monkeypatch.setattr(scrub.asyncio, "sleep", lambda s: pytest.fail("slept"))
    asyncio.run(scrub.RateLimit(0).spend(10 ** 12))


def test_cursor_round_trip_and_refusals(tmp_path):
    path = tmp_path / "cursor.json"
    assert scrub.load_cursor(path) == scrub.Progress()
    p = scrub.Progress(bucket="b", key="k", version_id="v", versions=3, bytes=10,
                       findings=[scrub.Finding("b", "k", "v", "corrupt", "0" * 32, "bad tag")])
    scrub.save_cursor(path, p)
    assert path.stat().st_mode & 0o777 == 0o600
    assert scrub.load_cursor(path) == p
    p.complete = True
    scrub.save_cursor(path, p)
    assert scrub.load_cursor(path) == scrub.Progress()      # a finished pass: start anew
    path.write_text('{"not": "a cursor"}')
    with pytest.raises(ValueError):
        scrub.load_cursor(path)
    path.write_text("{")
    with pytest.raises(ValueError):
        scrub.load_cursor(path)
