"""The arithmetic behind the benchmark report: percentiles, rates, ratios, sizes."""

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.report import Figure, ratios, rows
from bench.stats import (
    MIB,
    human_size,
    latency_summary,
    mib_per_s,
    parse_size,
    percentile,
    rate,
    ratio,
    split_evenly,
)

finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)


def test_percentile_of_1_to_100_interpolates():
    data = list(range(1, 101))
    assert percentile(data, 50) == pytest.approx(50.5)
    assert percentile(data, 99) == pytest.approx(99.01)
    assert percentile(data, 0) == 1
    assert percentile(data, 100) == 100


def test_percentile_ignores_input_order():
    assert percentile([5, 1, 4, 2, 3], 50) == 3
    assert percentile([10.0, 0.0], 25) == pytest.approx(2.5)


def test_percentile_of_one_sample_is_that_sample():
    assert percentile([7.5], 99) == 7.5


@pytest.mark.parametrize("pct", [-0.1, 100.1])
def test_percentile_rejects_out_of_range(pct):
    with pytest.raises(ValueError):
        percentile([1, 2, 3], pct)


def test_percentile_rejects_empty_sample():
    with pytest.raises(ValueError):
        percentile([], 50)


@given(st.lists(finite, min_size=2, max_size=200))
def test_percentile_matches_statistics_inclusive_quantiles(data):
    cuts = statistics.quantiles(data, n=100, method="inclusive")
    for pct in (1, 25, 50, 75, 99):
        assert percentile(data, pct) == pytest.approx(cuts[pct - 1], rel=1e-9, abs=1e-6)


@given(st.lists(finite, min_size=1, max_size=100), st.floats(0, 100), st.floats(0, 100))
def test_percentile_is_monotonic_and_bounded(data, a, b):
    lo, hi = sorted((a, b))
    assert min(data) <= percentile(data, lo) <= percentile(data, hi) <= max(data)


def test_latency_summary_in_milliseconds():
    summary = latency_summary([0.001] * 98 + [0.010, 0.020])
    assert summary["p50_ms"] == pytest.approx(1.0)
    assert summary["max_ms"] == pytest.approx(20.0)
    assert 1.0 < summary["p99_ms"] <= 20.0


def test_rate_and_mib_per_s():
    assert rate(3000, 1.5) == 2000
    assert mib_per_s(1024 * MIB, 4.0) == 256
    with pytest.raises(ValueError):
        rate(10, 0)
    with pytest.raises(ValueError):
        mib_per_s(10, -1)


def test_ratio_is_vallum_over_peer_and_none_when_unknown():
    assert ratio(300.0, 150.0) == 2.0
    assert ratio(50.0, 200.0) == 0.25
    assert ratio(None, 1.0) is None
    assert ratio(1.0, None) is None
    assert ratio(1.0, 0.0) is None
    assert ratio(0.0, 5.0) == 0.0


@given(st.integers(0, 100_000), st.integers(1, 64))
def test_split_evenly_covers_total_with_spread_at_most_one(total, parts):
    shares = split_evenly(total, parts)
    assert len(shares) == parts
    assert sum(shares) == total
    assert max(shares) - min(shares) <= 1


def test_split_evenly_rejects_nonsense():
    with pytest.raises(ValueError):
        split_evenly(10, 0)
    with pytest.raises(ValueError):
        split_evenly(-1, 2)


@pytest.mark.parametrize("text, expected", [
    ("1GiB", 1024 * MIB), ("1G", 1024 * MIB), ("512MiB", 512 * MIB), ("64m", 64 * MIB),
    ("4KiB", 4096), ("4096", 4096), ("1.5GiB", 1536 * MIB), (" 2 GiB ", 2048 * MIB),
])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "GiB", "1TB", "-1GiB", "0", "abc"])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError):
        parse_size(text)


def test_human_size():
    assert human_size(1024 * MIB) == "1 GiB"
    assert human_size(64 * MIB) == "64 MiB"
    assert human_size(4096) == "4 KiB"
    assert human_size(1000) == "1000 B"
    assert human_size(1536 * MIB) == "1536 MiB"


def test_report_ratios_and_rows():
    figs = [Figure("put_ops", "4 KiB PUT", "ops/s", True),
            Figure("rss_growth_mib", "RSS", "MiB", False)]
    results = {
        "vallum": {"figures": {"put_ops": 900.0, "rss_growth_mib": 10.0}},
        "moto": {"figures": {"put_ops": 300.0}},
        "seaweedfs": {"figures": {"put_ops": 1800.0, "rss_growth_mib": 40.0}},
    }
    table = ratios(results, figs, ["moto", "seaweedfs"])
    assert table["vallum/moto"]["put_ops"] == pytest.approx(3.0)
    assert table["vallum/moto"]["rss_growth_mib"] is None
    assert table["vallum/seaweedfs"]["put_ops"] == pytest.approx(0.5)
    assert table["vallum/seaweedfs"]["rss_growth_mib"] == pytest.approx(0.25)
    # vallum/best: against whichever peer did best on the row (max for ↑, min for ↓)
    assert table["vallum/best"]["put_ops"] == pytest.approx(0.5)
    assert table["vallum/best"]["rss_growth_mib"] == pytest.approx(0.25)
    body = rows(results, figs, ["vallum", "moto", "seaweedfs"], table)
    assert body[0] == ["4 KiB PUT", "ops/s ↑", "900", "300", "1,800", "3.00", "0.50", "0.50"]
    assert body[1][-3:] == ["-", "0.25", "0.25"]
    # Vallum in front of SeaweedFS, against SeaweedFS alone (issue 19)
    results["vallum-upstream"] = {"figures": {"put_ops": 1260.0}}
    assert ratios(results, figs, ["seaweedfs"])["vallum-upstream/seaweedfs"]["put_ops"] \
        == pytest.approx(0.7)


def test_report_rows_mark_tiny_ratios_instead_of_rounding_to_zero():
    figs = [Figure("rss_growth_mib", "RSS", "MiB", False)]
    results = {"vallum": {"figures": {"rss_growth_mib": 0.01}},
               "moto": {"figures": {"rss_growth_mib": 4096.0}}}
    body = rows(results, figs, ["vallum", "moto"], ratios(results, figs, ["moto"]))
    assert body[0] == ["RSS", "MiB ↓", "0.01", "4,096", "<0.01"]
