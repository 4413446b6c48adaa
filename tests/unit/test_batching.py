"""BatchThread's two paths: commits on the event loop while they are fast, on the
writer thread once they are slow, and back again; every caller answered either way."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from vallum.batching import BatchThread, CommitPace


def test_pace_leaves_at_twice_the_bar_and_returns_at_the_bar():
    pace = CommitPace(0.001)
    for _ in range(50):
        pace.observe(0.0001)
    assert pace.inline
    seen = []
    for _ in range(50):
        pace.observe(0.004)
        seen.append(pace.inline)
    assert seen[-1] is False and pace.average > 0.002
    flips = sum(a != b for a, b in zip(seen, seen[1:]))
    assert flips == 1                          # left once, did not flap
    back = []
    for _ in range(100):
        pace.observe(0.0001)
        back.append((pace.inline, pace.average))
    first_inline = next(avg for inline, avg in back if inline)
    assert first_inline <= 0.001               # returns only once the average is under the bar
    assert all(avg > 0.001 for inline, avg in back if not inline)


class Recorder:
    """A commit that sleeps ``delay`` seconds (a slow disk) and notes which thread ran it."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.threads: list[str] = []
        self.payloads: list[int] = []

    def __call__(self, payloads: list[int]) -> list[tuple[bool, object]]:
        self.threads.append(threading.current_thread().name)
        if self.delay:
            time.sleep(self.delay)
        self.payloads.extend(payloads)
        return [(True, p * 2) if p >= 0 else (False, ValueError(p)) for p in payloads]


def test_fast_commits_run_on_the_loop_slow_ones_move_to_the_thread_and_come_back():
    rec = Recorder()
    batcher = BatchThread("test-batch", rec, inline_below=0.001)
    batcher.start()

    async def burst(base: int) -> list[object]:
        return await asyncio.gather(*(batcher.submit(base + i) for i in range(8)))

    async def main() -> None:
        loop_thread = threading.current_thread().name
        for r in range(5):
            assert await burst(100 * r) == [2 * (100 * r + i) for i in range(8)]
        assert set(rec.threads) == {loop_thread} and batcher.inline_batches == 5

        rec.delay = 0.01                       # the disk turns slow
        for r in range(5, 30):
            assert await burst(100 * r) == [2 * (100 * r + i) for i in range(8)]
        assert rec.threads[-1] == "test-batch" and not batcher.pace.inline

        rec.delay = 0.0                        # and fast again
        for r in range(30, 80):
            assert await burst(100 * r) == [2 * (100 * r + i) for i in range(8)]
        assert rec.threads[-1] == loop_thread and batcher.pace.inline

        with pytest.raises(ValueError):        # a failed item still reaches its caller inline
            await batcher.submit(-1)

    try:
        asyncio.run(main())
    finally:
        batcher.stop()
    assert sorted(p for p in rec.payloads if p >= 0) == sorted(
        100 * r + i for r in range(80) for i in range(8))


def test_without_a_bar_every_batch_goes_to_the_thread():
    rec = Recorder()
    batcher = BatchThread("test-batch", rec)
    batcher.start()

    async def main() -> list[object]:
        return await asyncio.gather(*(batcher.submit(i) for i in range(20)))

    try:
        assert asyncio.run(main()) == [2 * i for i in range(20)]
    finally:
        batcher.stop()
    assert set(rec.threads) == {"test-batch"} and batcher.inline_batches == 0
