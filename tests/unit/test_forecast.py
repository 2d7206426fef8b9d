"""The per-minute forecaster (control_plane/autoscale/forecast.py): pure, over generated series."""

from __future__ import annotations

import math

import numpy as np
import pytest

from control_plane.autoscale.forecast import DAY, Forecaster, mape


def seasonal(n: int, trend: float = 0.0) -> np.ndarray:
    t = np.arange(n)
    return 200 + 80 * np.sin(2 * math.pi * t / DAY) + 30 * np.sin(2 * math.pi * t / (7 * DAY) + 1) + trend * t


def run(f: Forecaster, series, warm: int, step: int = 0):
    """Feed the series; from `warm` on, collect the forecast for h = step+1 and what happened."""
    preds, acts, uppers = [], [], []
    for t, y in enumerate(series):
        f.observe(t, y)
        if t >= warm and t + step + 1 < len(series):
            fc = f.forecast()
            preds.append(fc.mean[step])
            uppers.append(fc.upper[step])
            acts.append(series[t + step + 1])
    return np.array(preds), np.array(acts), np.array(uppers)


def test_a_clean_seasonal_series_with_trend_is_forecast_closely():
    s = seasonal(4 * DAY, trend=0.01)
    p, a, _ = run(Forecaster(horizon=3, compensator=False), s, warm=3 * DAY, step=2)
    assert mape(a, p) < 1.0


def test_the_upper_bound_covers_about_its_quantile_of_noisy_arrivals():
    rng = np.random.default_rng(1)
    s = rng.poisson(seasonal(4 * DAY)).astype(float)
    p, a, u = run(Forecaster(horizon=2, compensator=False, quantile=0.9), s, warm=3 * DAY, step=1)
    assert (u >= p).all()
    covered = float(np.mean(a <= u))
    assert 0.82 <= covered <= 0.97, covered


def test_the_compensator_follows_what_the_seasonal_curve_cannot():
    # a level shift that persists for hours at a time (a regime the Fourier terms cannot know)
    rng = np.random.default_rng(2)
    n = 4 * DAY
    shift = np.repeat(rng.choice([0.0, 120.0], size=n // 180 + 1), 180)[:n]
    s = rng.poisson(seasonal(n) + shift).astype(float)
    without = mape(*run(Forecaster(horizon=3, compensator=False), s, warm=3 * DAY, step=2)[:2][::-1])
    with_comp = mape(*run(Forecaster(horizon=3, comp_refit_every=120), s, warm=3 * DAY, step=2)[:2][::-1])
    assert with_comp < 0.8 * without, (with_comp, without)


def test_same_input_same_forecast():
    s = np.random.default_rng(3).poisson(seasonal(DAY)).astype(float)
    a, b = Forecaster(horizon=4), Forecaster(horizon=4)
    for t, y in enumerate(s):
        a.observe(t, y)
        b.observe(t, y)
    fa, fb = a.forecast(), b.forecast()
    assert np.array_equal(fa.mean, fb.mean) and np.array_equal(fa.upper, fb.upper)


def test_a_gap_is_filled_with_the_last_count_and_minutes_must_increase():
    f = Forecaster(horizon=1, compensator=False)
    f.observe(0, 10)
    f.observe(5, 20)  # minutes 1..4 missing: held at 10
    assert list(f.y) == [10, 10, 10, 10, 10, 20]
    with pytest.raises(ValueError, match="minute 5 is not after 5"):
        f.observe(5, 1)
    with pytest.raises(ValueError, match="no data"):
        Forecaster().forecast()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        Forecaster(horizon=0)
    with pytest.raises(ValueError):
        Forecaster(quantile=1.0)


def test_mape_ignores_minutes_without_arrivals():
    assert mape([0, 100, 200], [5, 110, 180]) == pytest.approx(10.0)
