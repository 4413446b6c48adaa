from vallum.operator.forecast import days_until, fit_predict, forecast, mape, synthetic_growth
from vallum.operator.scaling import Fixed, Predictive, Reactive, job_trace, simulate_pool


def test_days_until_interpolates():
    assert days_until([10, 20, 30], 25) == 2.5
    assert days_until([10, 20], 100) is None
    assert days_until([30], 25) == 1.0


def test_mape():
    assert mape([100, 200], [110, 180]) == 10.0


def test_holt_winters_beats_a_line_on_weekly_seasonal_growth():
    series = synthetic_growth(3, 70, growth=0.006, weekly=0.05)
    train, test = series[:56], series[56:]
    hw, model = fit_predict(train, 14)
    assert model.startswith("holt-winters")
    import numpy as np
    slope, icpt = np.polyfit(range(56), train, 1)
    line = [icpt + slope * (56 + i) for i in range(14)]
    assert mape(test, hw) < 2.0
    assert mape(test, hw) < mape(test, line)


def test_forecast_days_until_full():
    history = [100.0 + 10 * d for d in range(30)]
    fc = forecast(history, capacity=600.0, horizon=60)
    assert fc.days_until_full is not None and abs(fc.days_until_full - 21.0) < 0.5   # (600-390)/10
    assert forecast(history, capacity=100.0).days_until_full == 0.0


def test_short_history_falls_back_to_a_line():
    values, model = fit_predict([1.0, 2.0, 3.0], 2)
    assert model == "linear" and [round(v, 6) for v in values] == [4.0, 5.0]


def test_pool_simulator_accounting():
    jobs = [(float(t), 10.0) for t in range(0, 100, 10)]       # never more than one at a time
    r = simulate_pool(jobs, Fixed(1), initial=1, warmup=0.0)
    assert r.jobs == 10 and r.mean_wait == 0.0
    assert abs(r.worker_seconds - (jobs[-1][0] + 3600)) < 61


def test_predictive_waits_less_than_reactive_for_similar_cost():
    jobs = job_trace(5, days=8, peak_rate=1.0)
    reactive = simulate_pool(jobs, Reactive(2, 60))
    predictive = simulate_pool(jobs, Predictive(2, 60))
    fixed = simulate_pool(jobs, Fixed(20))
    assert predictive.mean_wait <= reactive.mean_wait
    assert predictive.worker_seconds < fixed.worker_seconds


def test_bounds_are_respected():
    p = Predictive(min_size=3, max_size=5)
    from vallum.operator.scaling import PoolState
    assert p.target(PoolState(60.0, 1000, 5, 5, 5000, 60.0, 20.0)) == 5
    assert Reactive(3, 5).target(PoolState(60.0, 0, 0, 3, 0, 60.0, 20.0)) == 3
