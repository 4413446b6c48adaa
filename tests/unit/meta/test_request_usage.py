"""The request_usage rows on every backend: a day's rows add up, totals sum the days, and
one account's rows are not another's."""

from __future__ import annotations

import pytest

from vallum.meta.base import MetaStore

from . import BACKENDS, run_on


def row(day: str, account: str, bucket: str, *counts: int) -> dict:
    names = ("reads", "writes", "lists", "others", "bytes_in", "bytes_out", "cpu_ms")
    return {"day": day, "account": account, "bucket": bucket, **dict(zip(names, counts, strict=True))}


@pytest.mark.parametrize("kind", BACKENDS)
def test_rows_add_up_by_day_and_in_total(kind, tmp_path):
    async def body(s: MetaStore):
        await s.add_request_usage([row("2026-12-07", "A", "b", 1, 2, 3, 4, 5, 6, 7),
                                   row("2026-12-07", "B", "b", 9, 9, 9, 9, 9, 9, 9)])
        await s.add_request_usage([row("2026-12-07", "A", "b", 1, 0, 0, 0, 10, 100, 0),
                                   row("2026-12-08", "A", "b", 0, 1, 0, 0, 0, 7, 0),
                                   row("2026-12-08", "A", "", 0, 0, 0, 2, 30, 40, 1500)])
        day = await s.request_usage(["A"], "2026-12-07")
        total = await s.request_usage(["A"], None)
        everyone = await s.request_usage(None, "2026-12-07")
        nobody = await s.request_usage([], None)
        return day, total, everyone, nobody

    day, total, everyone, nobody = run_on(kind, tmp_path, body)
    assert [tuple(r) for r in day] == [("2026-12-07", "A", "b", 2, 2, 3, 4, 15, 106, 7)]
    assert [tuple(r) for r in total] == [("", "A", "", 0, 0, 0, 2, 30, 40, 1500),
                                         ("", "A", "b", 2, 3, 3, 4, 15, 113, 7)]
    assert [r[1] for r in everyone] == ["A", "B"]
    assert nobody == []
