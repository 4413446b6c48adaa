"""PoolSizer: the predictive controller applied to a pool, tick by tick (no sockets)."""

from __future__ import annotations

from vallum.compute.sizing import Observation, PoolSizer, parse_bounds


def test_grows_under_a_queue_within_bounds_and_shrinks_when_idle():
    size = {"n": 1}
    sizer = PoolSizer(1, 4, lambda n: size.update(n=n), lambda: size["n"], interval=1.0)
    now = 1_000_000.0
    sizer.observe = lambda: Observation(queued=20, busy=size["n"], arrivals=20, mean_service=2.0)
    grown = [sizer.tick(now + i) for i in range(3)]
    assert grown[0] > 1 and max(grown) == 4 and size["n"] == 4      # capped at MAX
    sizer.observe = lambda: Observation(queued=0, busy=0, arrivals=0, mean_service=2.0)
    sizes = [sizer.tick(now + 3 + i) for i in range(40)]
    assert sizes[0] == 4                            # not at once: the cool-down holds it
    assert sizes[-1] == 1 and size["n"] == 1        # idle: back to MIN, never below
    assert all(b <= a for a, b in zip(sizes, sizes[1:], strict=False))


def test_parse_bounds():
    assert parse_bounds("2-8") == (2, 8)
    assert parse_bounds("4") is None
    for bad in ("0-2", "5-1"):
        try:
            parse_bounds(bad)
        except ValueError:
            continue
        raise AssertionError(bad)
