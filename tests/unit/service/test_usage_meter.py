"""The usage meter: request classes, counts per day/account/bucket, and a flush that keeps
its counts when the store refuses them."""

from __future__ import annotations

import asyncio

from vallum.meta.memory import MemoryMetaStore
from vallum.service.usage import Meter, request_class

DAY = 1796688000.0          # 2026-12-08T00:00:00Z


def test_request_classes():
    assert [request_class(op) for op in ("GetObject", "HeadObject", "ListObjectsV2",
                                         "PutObject", "CompleteMultipartUpload", "DeleteObjects",
                                         "CopyObject", "OptionsObject")] == [0, 0, 2, 1, 1, 1, 1, 3]


def test_counts_split_by_day_and_flush_adds_them():
    async def main():
        store = MemoryMetaStore()
        await store.open()
        meter = Meter()
        meter.add("A", "b", 0, 0, 100, now=DAY - 1)       # the last second of the 7th
        meter.add("A", "b", 1, 50, 0, now=DAY)
        meter.add("A", "b", 1, 25, 0, now=DAY + 5)
        await meter.flush(store)
        assert meter.counts == {}
        return await store.request_usage(["A"], "2026-12-07"), await store.request_usage(["A"], "2026-12-08")

    before, after = asyncio.run(main())
    assert before == [("2026-12-07", "A", "b", 1, 0, 0, 0, 0, 100, 0)]
    assert after == [("2026-12-08", "A", "b", 0, 2, 0, 0, 75, 0, 0)]


class Refusing(MemoryMetaStore):
    async def add_request_usage(self, rows):
        raise OSError("disk gone")


def test_a_refused_flush_keeps_the_counts_for_the_next():
    async def main():
        meter = Meter()
        meter.add("A", "", 3, 10, 20, now=DAY)
        await meter.flush(Refusing())
        meter.add("A", "", 3, 1, 2, now=DAY)
        store = MemoryMetaStore()
        await meter.flush(store)
        return await store.request_usage(None, None)

    assert asyncio.run(main()) == [("", "A", "", 0, 0, 0, 2, 11, 22, 0)]


def test_cpu_time_is_counted_in_milliseconds_under_no_bucket():
    async def main():
        meter = Meter()
        meter.add_cpu("A", 1.2344)
        meter.add_cpu("A", 0.5)
        store = MemoryMetaStore()
        await meter.flush(store)
        return await store.request_usage(["A"], None)

    assert asyncio.run(main()) == [("", "A", "", 0, 0, 0, 0, 0, 0, 1734)]
