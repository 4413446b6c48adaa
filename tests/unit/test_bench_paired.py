"""The paired stage's arithmetic and report rows."""

import pytest

from bench.paired import PAIRS, Pair, Sample, compare, summarize
from bench.report import paired_rows


def test_summarize_takes_medians_of_per_round_ratios():
    variant = [Sample(330e-6, 2.2), Sample(310e-6, 2.0), Sample(400e-6, 3.0)]
    base = [Sample(300e-6, 2.0), Sample(300e-6, 2.0), Sample(320e-6, 2.0)]
    s = summarize(variant, base)
    assert s["rounds"] == 3
    assert s["cpu_ratios"] == pytest.approx([1.1, 310 / 300, 1.25])
    assert s["cpu_ratio"] == pytest.approx(1.1)
    assert (s["cpu_ratio_min"], s["cpu_ratio_max"]) == pytest.approx((310 / 300, 1.25))
    assert s["cost_pct"] == pytest.approx(100 * (1 - 1 / 1.1))   # capacity lost, not CPU added
    assert s["p50_ratio"] == pytest.approx(1.1)
    assert s["base_cpu_per_req"] == pytest.approx(300e-6)


def test_summarize_leaves_out_rounds_missing_a_side():
    s = summarize([None, Sample(2.0, 1.0), Sample(3.0, 1.0)], [Sample(1.0, 1.0), None, Sample(2.0, 1.0)])
    assert s["rounds"] == 1 and s["cpu_ratios"] == [1.5]
    assert summarize([None], [Sample(1.0, 1.0)]) is None


def test_compare_gives_each_op_its_budget_and_the_control_none():
    one = (Sample(105e-6, 1.0), Sample(100e-6, 1.0))
    samples = {p.key: {"PUT": [one, one]} for p in PAIRS}
    out = compare(samples)
    op = out["vallum-plain-operator/vallum-plain"]["ops"]["PUT"]
    assert op["target_pct"] == 5.0 and op["cost_pct"] == pytest.approx(100 * (1 - 1 / 1.05))
    assert out["vallum-plain/vallum-plain"]["ops"]["PUT"]["target_pct"] is None
    assert compare({}, [Pair("a", "b", "x", {})]) == {"a/b": {"what": "x", "variant": "a",
                                                              "base": "b", "ops": {}}}


def test_paired_rows_judge_the_printed_cost():
    rounds = [(Sample(210e-6, 2.1), Sample(200e-6, 2.0))]
    rows = paired_rows(compare({"vallum-plain-operator/vallum-plain": {"GET": rounds}}))
    assert rows == [["operator hook, observe (issue 6): vallum-plain-operator/vallum-plain",
                     "4 KiB GET", "200 us", "210 us", "1.050", "1.05-1.05", "4.8%", "1.050",
                     "<= 5%", "yes"]]
