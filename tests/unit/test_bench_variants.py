"""The variant-costs arithmetic: rotation, per-round ratios, medians, CPU cost, report rows."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.report import variant_label, variant_rows
from bench.variants import (
    COMPARISONS,
    VARIANTS,
    Comparison,
    Sample,
    compare,
    cost_pct,
    rotate,
    summarize,
)


def test_rotate_moves_the_first_variant_each_round():
    names = ["a", "b", "c"]
    assert rotate(names, 0) == ["a", "b", "c"]
    assert rotate(names, 1) == ["b", "c", "a"]
    assert rotate(names, 2) == ["c", "a", "b"]
    assert rotate(names, 3) == ["a", "b", "c"]
    assert rotate([], 4) == []


@given(st.lists(st.text(min_size=1), min_size=1, max_size=6, unique=True))
def test_rotate_puts_every_variant_in_every_position_over_len_rounds(names):
    rounds = [rotate(names, r) for r in range(len(names))]
    for order in rounds:
        assert sorted(order) == sorted(names)
    for pos in range(len(names)):
        assert sorted(order[pos] for order in rounds) == sorted(names)


def test_cost_pct_is_one_minus_ratio():
    assert cost_pct(0.8) == pytest.approx(20.0)
    assert cost_pct(1.1) == pytest.approx(-10.0)
    assert cost_pct(None) is None


def test_summarize_takes_the_median_of_per_round_ratios_not_the_ratio_of_medians():
    # Rounds where both sides drift together: the per-round ratio is steady at 0.8,
    # while the ratio of the two medians (800 / 1200 = 0.67) is not.
    variant = [Sample(800.0, None), Sample(1600.0, None), Sample(400.0, None)]
    base = [Sample(1000.0, None), Sample(2000.0, None), Sample(500.0, None)]
    s = summarize([variant[0], variant[1], variant[2]], [base[0], base[1], base[2]])
    assert s["ratios"] == pytest.approx([0.8, 0.8, 0.8])
    assert s["ratio"] == pytest.approx(0.8)
    assert s["cost_pct"] == pytest.approx(20.0)
    assert s["ratio_min"] == pytest.approx(0.8) and s["ratio_max"] == pytest.approx(0.8)
    assert s["variant_rate"] == 800.0 and s["base_rate"] == 1000.0
    assert s["cpu_ratio"] is None and s["cpu_cost_pct"] is None


def test_summarize_median_min_max_over_rounds():
    base = [Sample(100.0, None)] * 5
    variant = [Sample(v, None) for v in (90.0, 110.0, 70.0, 95.0, 100.0)]
    s = summarize(variant, base)
    assert s["rounds"] == 5
    assert s["ratio"] == pytest.approx(0.95)
    assert s["ratio_min"] == pytest.approx(0.70)
    assert s["ratio_max"] == pytest.approx(1.10)
    assert s["cost_pct"] == pytest.approx(5.0)


def test_summarize_cpu_per_request_cost_is_the_throughput_a_cpu_bound_server_loses():
    # 25% more CPU per request -> a CPU-bound server does 1/1.25 = 0.8 the requests: 20% cost.
    base = [Sample(1000.0, 400e-6), Sample(1000.0, 200e-6), Sample(1000.0, 100e-6)]
    variant = [Sample(900.0, 500e-6), Sample(900.0, 250e-6), Sample(900.0, 125e-6)]
    s = summarize(variant, base)
    assert s["cpu_ratios"] == pytest.approx([1.25, 1.25, 1.25])
    assert s["cpu_ratio"] == pytest.approx(1.25)
    assert s["cpu_cost_pct"] == pytest.approx(20.0)
    assert s["base_cpu_per_req"] == pytest.approx(200e-6)
    assert s["variant_cpu_per_req"] == pytest.approx(250e-6)


def test_summarize_skips_rounds_with_a_missing_side():
    base = [Sample(100.0, 1e-4), None, Sample(100.0, None), Sample(0.0, 1e-4)]
    variant = [Sample(50.0, 2e-4), Sample(100.0, 1e-4), Sample(80.0, 1e-4), Sample(70.0, 1e-4)]
    s = summarize(variant, base)
    assert s["ratios"] == pytest.approx([0.5, 0.8])   # round 2 failed, round 4's base is 0
    assert s["cpu_ratios"] == pytest.approx([2.0, 1.0])
    assert summarize([None, Sample(1.0, None)], [Sample(1.0, None), None]) is None


def test_summarize_refuses_mismatched_round_counts():
    with pytest.raises(ValueError):
        summarize([Sample(1.0, None)], [Sample(1.0, None), Sample(1.0, None)])


@given(st.lists(st.tuples(st.floats(1, 1e6), st.floats(1, 1e6)), min_size=1, max_size=9))
def test_summarize_median_lies_within_min_max(pairs):
    s = summarize([Sample(v, None) for v, _ in pairs], [Sample(b, None) for _, b in pairs])
    assert s["ratio_min"] <= s["ratio"] <= s["ratio_max"]
    assert s["cost_pct"] == pytest.approx(100.0 * (1.0 - s["ratio"]))


def test_compare_pairs_each_feature_with_its_base_and_budget():
    def rounds(rate, cpu):
        return [Sample(rate, cpu)] * 3

    samples = {
        "vallum": {"PUT": rounds(750.0, 4e-4), "GET_BIG": rounds(700.0, 1.0)},
        "vallum-plain": {"PUT": rounds(1000.0, 3e-4), "GET_BIG": rounds(1000.0, 0.5)},
        "vallum-plain-noscan": {"PUT": rounds(1250.0, 2.5e-4)},
    }
    out = compare(samples)
    enc = out["vallum/vallum-plain"]["ops"]
    assert set(enc) == {"PUT", "GET_BIG"}          # no data, no row
    assert enc["PUT"]["cost_pct"] == pytest.approx(25.0)
    assert enc["PUT"]["target_pct"] == 25.0
    assert enc["GET_BIG"]["target_pct"] == 30.0
    assert enc["GET_BIG"]["cpu_cost_pct"] == pytest.approx(50.0)
    scan = out["vallum-plain/vallum-plain-noscan"]["ops"]
    assert scan["PUT"]["ratio"] == pytest.approx(0.8)  # vallum-plain against its no-scan twin
    assert scan["PUT"]["target_pct"] == 15.0
    assert "GET_BIG" not in scan                     # the scan's budget is on text PUTs only


def test_compare_uses_the_rounds_both_sides_completed():
    c = Comparison("x", "y", "test", {}, ("PUT",))
    samples = {"x": {"PUT": [Sample(50.0, None), Sample(60.0, None)]},
               "y": {"PUT": [Sample(100.0, None)]}}
    assert compare(samples, [c])["x/y"]["ops"]["PUT"]["ratios"] == pytest.approx([0.5])


def test_comparisons_only_name_started_variants():
    for c in COMPARISONS:
        assert c.variant in VARIANTS and c.base in VARIANTS


def test_variant_rows_print_costs_next_to_targets():
    samples = {"vallum": {"PUT": [Sample(800.0, 500e-6)], "PUT_BIG": [Sample(280.0, 3.0)]},
               "vallum-plain": {"PUT": [Sample(1000.0, 400e-6)], "PUT_BIG": [Sample(400.0, 2.4)]},
               "vallum-plain-noscan": {}}
    body = variant_rows(compare(samples), "1 GiB")
    assert len(body) == 2
    put, big = body
    assert put[1] == "4 KiB PUT"
    assert put[2:8] == ["1,000 ops/s", "800 ops/s", "0.800", "0.80-0.80", "20.0%", "400 us"]
    assert put[8:] == ["500 us", "20.0%", "<= 25%", "yes, yes"]
    assert big[1] == "1 GiB single PUT"
    assert big[6] == "30.0%" and big[7] == "2.40 s" and big[10] == "<= 30%"
    assert big[11] == "yes, yes"


def test_variant_label():
    assert variant_label("HEAD", "64 MiB") == "4 KiB HEAD"
    assert variant_label("GET_BIG", "64 MiB") == "64 MiB single GET"


def test_the_variant_stage_text_body_is_scanned_in_full_and_carries_no_marking():
    """The spill-scan comparison is only meaningful if the scanner reads the body as text
    (random bytes are skipped as binary) and the PUT is accepted (no marking)."""
    from bench.workloads import prose
    from vallum.security.spill.markings import MarkingScanner
    for size in (1, 100, 4096, 70_000):
        body = prose(size)
        assert len(body) == size
        scanner = MarkingScanner()
        scanner.feed(body)
        assert scanner.finish() is None and scanner.kind == "text"
