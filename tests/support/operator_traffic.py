"""Request events for the operator's state tests: a veteran analyst's routine mornings."""

from __future__ import annotations

from vallum.operator.request_events import RequestEvent
from vallum.operator.simulate import START

DAY = 86400.0
VET = "AKIAVETERAN000000001"
HOME = "10.20.0.5"


def get(ts: float, key: str, who: str = VET, source: str = HOME, size: int = 100_000) -> RequestEvent:
    return RequestEvent(ts, who, "acct1", source, "GetObject", "data", key, 200, "", 0, size)


def routine(days: int = 4) -> list[RequestEvent]:
    """An analyst's hour every morning (09:00-10:00): 20 reads a minute over 10 prefixes."""
    out = []
    for d in range(days):
        for m in range(60):
            base = START + d * DAY + 9 * 3600 + m * 60
            out += [get(base + j * 3.0, f"p{j % 10}/d{d}-m{m}-{j}") for j in range(20)]
    return out
