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


def test_the_local_level_follows_a_swing_the_seasonal_terms_cannot():
    # a 5-hour swing of +-40 on top of the day: only the recent residuals know where it stands
    rng = np.random.default_rng(4)
    n = 4 * DAY
    s = rng.poisson(seasonal(n) + 40 * np.sin(2 * math.pi * np.arange(n) / 300)).astype(float)
    without = mape(*run(Forecaster(horizon=3, local=0), s, warm=3 * DAY, step=2)[:2][::-1])
    with_level = mape(*run(Forecaster(horizon=3), s, warm=3 * DAY, step=2)[:2][::-1])
    assert with_level < 0.8 * without, (with_level, without)


def test_the_boosted_stage_is_kept_only_when_it_beats_the_level():
    rng = np.random.default_rng(2)
    n = 4 * DAY
    shift = np.repeat(rng.choice([0.0, 120.0], size=n // 180 + 1), 180)[:n]
    f = Forecaster(horizon=3, comp_refit_every=120)
    run(f, rng.poisson(seasonal(n) + shift).astype(float), warm=n)
    assert 0 < f.comp_kept <= f.comp_fits


def test_the_bound_is_wider_where_poisson_noise_is():
    s = np.random.default_rng(5).poisson(seasonal(4 * DAY)).astype(float)
    p, a, u = run(Forecaster(horizon=3, quantile=0.95), s, warm=3 * DAY, step=2)
    rate = seasonal(4 * DAY)[3 * DAY + 3:][:len(u)]
    spread = u - p
    ratio = spread[rate > 250].mean() / spread[rate < 150].mean()
    assert ratio > 1.15  # sqrt(280 / 120) = 1.5
    assert 0.9 <= float(np.mean(a <= u)) <= 0.99
    fp, _, fu = run(Forecaster(horizon=3, quantile=0.95, scaled=False), s, warm=3 * DAY, step=2)
    flat = fu - fp  # unscaled: about one spread for every rate
    assert flat[rate > 250].mean() / flat[rate < 150].mean() < ratio - 0.1


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
    for local in (1, -5):  # a line needs two points; 0 turns the level off
        with pytest.raises(ValueError, match="local 0 \\(off\\) or >= 2"):
            Forecaster(local=local)
    assert Forecaster(local=0).local == 0


def test_mape_ignores_minutes_without_arrivals():
    assert mape([0, 100, 200], [5, 110, 180]) == pytest.approx(10.0)


def test_the_base_curve_ahead_follows_the_season_an_hour_out():
    s = seasonal(4 * DAY, trend=0.01)
    f = Forecaster(horizon=3, compensator=False)
    for t, y in enumerate(s[:3 * DAY]):
        f.observe(t, y)
    ahead = f.base_ahead(120)
    assert ahead.shape == (120,)
    assert mape(s[3 * DAY:3 * DAY + 120], ahead) < 1.0
    assert np.allclose(ahead[:3], f.forecast().mean)  # without a compensator, the forecast is the base
    with pytest.raises(ValueError, match="no data"):
        Forecaster().base_ahead(10)


def test_the_peak_bound_covers_about_its_quantile_of_the_highest_minute_of_the_horizon():
    rng = np.random.default_rng(4)
    s = rng.poisson(seasonal(4 * DAY)).astype(float)
    f = Forecaster(horizon=4, compensator=False, quantile=0.9)
    covered, per_step_max_covered = [], []
    for t, y in enumerate(s):
        f.observe(t, y)
        if t >= 3 * DAY and t + 4 < len(s):
            fc = f.forecast()
            assert fc.peak >= fc.mean.max()
            covered.append(s[t + 1:t + 5].max() <= fc.peak)
            per_step_max_covered.append(s[t + 1:t + 5].max() <= fc.upper.max())
    # the per-step bounds cover each minute at 90 %, so the highest of four minutes less often
    assert 0.84 <= np.mean(covered) <= 0.96, np.mean(covered)
    assert np.mean(per_step_max_covered) < np.mean(covered)


def test_a_cold_start_follows_a_ramp_before_the_compensator_exists():
    # 5 hours flat, then a steep ramp: the base of an hour ago would still say 100
    s = np.concatenate([np.full(300, 100.0), 100 + 2.0 * np.arange(1, 101)])
    f = Forecaster(horizon=3)
    for t, y in enumerate(s[:350]):
        f.observe(t, y)
    assert f.comp_fits == 0  # too little history for the compensator yet
    # a base last fitted at minute 300 would be about 100 off; refitted each minute, it has followed
    assert abs(f.forecast().mean[0] - s[350]) < 60, f.forecast().mean
