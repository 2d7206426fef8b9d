"""Per-minute arrivals of one service, forecast over the provisioning lead time.

    f = Forecaster(horizon=5)
    for minute, count in history:
        f.observe(minute, count)          # O(1); refits when due (online)
    fc = f.forecast()                     # minutes now+1 .. now+horizon
    fc.mean, fc.upper                     # expected arrivals, and the `quantile` upper bound

Two parts, after Barista (a forecaster plus an error compensator trained on its recent errors):

1. Base: least squares over the last `window` minutes of a linear trend plus Fourier terms of
   the day (1,440 min) and the week (10,080 min). It is refit every `refit_every` minutes, a few
   milliseconds of numpy; every minute until the compensator exists (a cold start's ramp).
2. Compensator, on the base's residuals (what the smooth seasonal curve cannot follow: this day's
   level, bursts, regime changes), in two stages:
   a. Local level: a line through the last `local` residuals, extrapolated h minutes. Refit every
      minute (one small matrix product). Per-minute counts are Poisson, so one minute says little;
      an hour of them pins the level to a few requests (bench/autoscale README: it halved the
      level error on the Taylor trace).
   b. A gradient-boosted regressor (scikit-learn's HistGradientBoosting) that predicts what the
      level leaves, h minutes ahead, from the latest residuals, their means over `spans`, the
      step h and the time of day. It is refit every `comp_refit_every` minutes on the last
      `comp_window`, and kept only if it beats the level alone on the window's latest fifth: on
      smooth demand the level leaves only noise, and a model of noise adds its own.

The upper bound adds the `quantile` of the forecast errors actually made at each step `h` (kept
in a ring of the last `error_window` forecasts). With `scaled`, errors are kept divided by the
square root of their forecast and scaled back by the new one: Poisson noise grows with the rate,
so the bound is tighter at night and wider at the peak, where capacity runs out. Until enough
errors exist, it uses the base residuals' spread. `peak` bounds the highest minute of the whole
horizon instead: the forecast's highest mean plus the `quantile` of how far the highest actual
minute rose above it. That is what capacity must cover, and a burst shows in it whatever the step
it starts at.

`base_ahead(n)` evaluates the seasonal base alone n minutes ahead (the compensator only knows the
horizon): a cheap look at the next hour, for decisions such as renewing a VM's paid hour.
Pure: time is the minute index passed in, never read.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from itertools import islice

import numpy as np

DAY, WEEK = 1440, 10080
LEVEL_REACH = 240  # residuals the exponentially weighted levels read (0.02: the oldest weighs 1 %)
LEVEL_MEMORY = 720  # minutes over which a level candidate's squared errors are averaged
LEVEL_TRIAL = 360  # forecasts scored before the candidates' errors choose (until then, the line)


@dataclass(frozen=True)
class Forecast:
    minute: int  # the last observed minute; mean[i] is for minute + 1 + i
    mean: np.ndarray
    upper: np.ndarray
    peak: float = math.nan  # bound on the highest minute of the horizon (see the module's doc)


def _design(t: np.ndarray, daily: int, weekly: tuple, t0: float, scale: float) -> np.ndarray:
    """Level, trend, `daily` harmonics of the day and the harmonics `weekly` of the week."""
    cols = [np.ones_like(t, dtype=float), (t - t0) / scale]
    for k in range(1, daily + 1):
        w = 2 * math.pi * k * t / DAY
        cols += [np.sin(w), np.cos(w)]
    for k in weekly:
        w = 2 * math.pi * k * t / WEEK
        cols += [np.sin(w), np.cos(w)]
    return np.stack(cols, axis=1)


class Forecaster:
    def __init__(self, horizon: int = 5, *, daily: int = 10, weekly: int = 4, window: int = 14 * DAY,
                 refit_every: int = 60, compensator: bool = True, comp_window: int = 2 * DAY,
                 comp_refit_every: int = 6 * 60, lags: int = 10, quantile: float = 0.95, error_window: int = DAY,
                 ridge: float = 1.0, seed: int = 0, scaled: bool = True, spans: tuple = (30, 60), local: int = 60,
                 week_shapes: bool = True, smoothing: tuple = (0.02, 0.05, 0.1, 0.2, 0.4)):
        if horizon < 1 or window < 60 or not 0.5 <= quantile < 1 or local == 1 or local < 0:
            raise ValueError("horizon >= 1, window >= 60, 0.5 <= quantile < 1 and local 0 (off) or >= 2")
        self.horizon, self.daily, self.weekly, self.window = horizon, daily, weekly, window
        self.refit_every, self.comp_refit_every, self.comp_window = refit_every, comp_refit_every, comp_window
        self.use_comp, self.lags, self.quantile, self.ridge, self.seed = compensator, lags, quantile, ridge, seed
        self.scaled, self.spans = scaled, tuple(spans)
        # Once a week and a day are seen, the week's harmonics up to the day's resolution: each
        # weekday gets its own shape (a weekend's later ramp), not only its own level.
        self.week_shapes = week_shapes and window >= WEEK + DAY
        self._detailed = tuple(k for k in range(1, 7 * daily + 1) if k % 7) if self.week_shapes else ()
        self._sums: tuple | None = None  # (X'X, X'y) over the window, kept up to date in the detailed design
        self.local = local if compensator else 0
        self._history = max((self.lags, *self.spans, self.local))  # residuals the features and the line read
        # Local level candidates, each a kernel over the last `_reach` residuals (oldest first) per
        # step h: a least-squares line through the last `local`, extrapolated h minutes; and means
        # weighted exponentially with each of `smoothing`. Each forecast scores them all; each step
        # uses the one with the least squared error lately (see the module's doc).
        self.smoothing = tuple(smoothing) if self.local else ()
        if any(not 0 < a <= 1 for a in self.smoothing):
            raise ValueError(f"smoothing {smoothing}: weights in (0, 1]")
        if self.local:
            self._reach = max(self.local, LEVEL_REACH if self.smoothing else 0)
            x = np.arange(self.local, dtype=float) - (self.local - 1)
            pinv = np.linalg.pinv(np.stack([x, np.ones(self.local)], axis=1))
            line = np.zeros((horizon, self._reach))
            line[:, -self.local:] = np.stack([np.array([h, 1.0]) @ pinv for h in range(1, horizon + 1)])
            kernels = [line]
            for a in self.smoothing:
                w = a * (1 - a) ** np.arange(self._reach)[::-1]
                kernels.append(np.tile(w / w.sum(), (horizon, 1)))
            self._level_w = np.stack(kernels)  # (candidates, horizon, reach)
            self._level_mse = np.zeros((len(kernels), horizon))
            self._level_scored = np.zeros(horizon, int)
            self._level_made: deque = deque(maxlen=horizon + 1)  # (minute made, candidates' forecasts)
        self._rb: tuple | None = None  # (fit number, last minute, base values of the last `_reach` minutes)
        self.t: deque = deque(maxlen=window)
        self.y: deque = deque(maxlen=window)
        self._coef: np.ndarray | None = None
        self._t0 = 0.0
        self._daily_now, self._weekly_now = 0, ()
        self._fit_at = self._comp_at = -10**9
        self._comp = None  # a fitted HistGradientBoostingRegressor, once one is kept
        self._resid_sd = 0.0
        # forecasts made, to measure the errors actually made at each step h
        self._made: deque = deque(maxlen=horizon + 1)  # (minute made, mean array)
        self._errors = [deque(maxlen=error_window) for _ in range(horizon)]
        self._peak_errors: deque = deque(maxlen=error_window)  # max actual - max mean, per horizon
        self.fits = self.comp_fits = 0
        self.comp_kept = 0  # fits whose compensator beat the level alone on held-out minutes

    # -- data ---------------------------------------------------------------------------------
    def observe(self, minute: int, count: float) -> None:
        """Arrivals in `minute`; minutes must increase (a gap is filled with the last count)."""
        if self.t and minute <= self.t[-1]:
            raise ValueError(f"minute {minute} is not after {self.t[-1]}")
        if self.t and minute > self.t[-1] + 1:
            last = self.y[-1]
            for m in range(max(self.t[-1] + 1, minute - self.window), minute):
                self._append(m, last)
        self._append(minute, float(count))
        # Until the compensator follows what the base misses, refit the base every minute: on the
        # short history of a cold start that costs little, and a stale base misses a ramp.
        if minute - self._fit_at >= (self.refit_every if self.comp_fits or not self.use_comp else 1):
            self._fit()
        if self.use_comp and minute - self._comp_at >= self.comp_refit_every and len(self.t) >= max(DAY // 2, 4 * self.lags):
            self._fit_comp()

    def _append(self, minute: int, count: float) -> None:
        if self.local:
            for made, preds in self._level_made:  # score each level candidate's forecast of this minute
                h = minute - made - 1
                if 0 <= h < self.horizon:
                    self._level_mse[:, h] += ((count - preds[:, h]) ** 2 - self._level_mse[:, h]) / LEVEL_MEMORY
                    self._level_scored[h] += 1
        for made, mean in self._made:  # score the forecasts that covered this minute
            h = minute - made - 1
            if 0 <= h < self.horizon:
                err = count - mean[h]
                self._errors[h].append(err / math.sqrt(max(mean[h], 1.0)) if self.scaled else err)
            if h == self.horizon - 1:  # its whole horizon is now known: how far the peak rose above
                seen = max(islice(reversed(self.y), self.horizon - 1), default=count)
                self._peak_errors.append(max(seen, count) - float(mean.max()))
        if self._sums is not None:  # the minute leaving the window goes out of the sums, this one in
            XtX, Xty = self._sums
            if len(self.t) == self.window:
                old = _design(np.array([float(self.t[0])]), self._daily_now, self._weekly_now, self._t0, self.window)[0]
                XtX -= np.outer(old, old)
                Xty -= old * self.y[0]
            x = _design(np.array([float(minute)]), self._daily_now, self._weekly_now, self._t0, self.window)[0]
            XtX += np.outer(x, x)
            Xty += x * count
        self.t.append(minute)
        self.y.append(count)

    # -- base ---------------------------------------------------------------------------------
    def _base(self, t: np.ndarray) -> np.ndarray:
        X = _design(t.astype(float), self._daily_now, self._weekly_now, self._t0, self.window)
        return X @ self._coef

    def _fit(self) -> None:
        span = len(self.t)
        if self.week_shapes and span >= WEEK + DAY:
            if self._sums is None:  # from now on the design is fixed: keep X'X and X'y as minutes come and go
                t = np.fromiter(self.t, float, span)
                y = np.fromiter(self.y, float, span)
                self._daily_now, self._weekly_now, self._t0 = self.daily, self._detailed, float(t[0])
                X = _design(t, self._daily_now, self._weekly_now, self._t0, self.window)
                self._sums = (X.T @ X, X.T @ y)
                self._resid_sd = float((y - X @ self._solve()).std())
            self._coef = self._solve()
            self._fit_at = int(self.t[-1])
            self.fits += 1
            return
        t = np.fromiter(self.t, float, span)
        y = np.fromiter(self.y, float, span)
        # A harmonic needs history to be pinned down: the week's terms wait for two days of data.
        self._daily_now = self.daily if span >= DAY // 2 else min(self.daily, 2)
        self._weekly_now = tuple(range(1, self.weekly + 1)) if span >= 2 * DAY else ()
        self._t0 = float(t[-1])
        X = _design(t, self._daily_now, self._weekly_now, self._t0, self.window)
        reg = self.ridge * np.eye(X.shape[1])
        reg[0, 0] = 0.0  # no penalty on the level
        self._coef = np.linalg.solve(X.T @ X + reg, X.T @ y)
        resid = y - X @ self._coef
        self._resid_sd = float(resid.std()) if len(resid) > 1 else 0.0
        self._fit_at = int(t[-1])
        self.fits += 1

    def _solve(self) -> np.ndarray:
        XtX, Xty = self._sums
        reg = self.ridge * np.eye(len(Xty))
        reg[0, 0] = 0.0
        return np.linalg.solve(XtX + reg, Xty)

    # -- compensator --------------------------------------------------------------------------
    def _features(self, resid: np.ndarray, t: np.ndarray, idx: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Rows for predicting resid[idx + h] from what is known at idx."""
        lagged = np.stack([resid[idx - k] for k in range(self.lags)], axis=1)
        cum = np.concatenate([[0.0], np.cumsum(resid)])
        means = [lagged.mean(axis=1)] + [(cum[idx + 1] - cum[np.maximum(idx + 1 - s, 0)]) / np.minimum(idx + 1, s)
                                         for s in self.spans]
        day = 2 * math.pi * ((t[idx] + h) % DAY) / DAY
        return np.column_stack([lagged, *means, h, np.sin(day), np.cos(day)])

    def _chosen(self) -> np.ndarray:
        """The level candidate each step h uses: the least squared error lately, else the line."""
        best = self._level_mse.argmin(axis=0)
        return np.where(self._level_scored >= LEVEL_TRIAL, best, 0)

    def _level(self, resid: np.ndarray, idx: np.ndarray, h: int) -> np.ndarray:
        """The chosen local level's forecast of resid[idx + h] from the residuals up to idx."""
        if not self.local:
            return np.zeros(len(idx))
        w = self._level_w[self._chosen()[h - 1], h - 1]
        full = np.convolve(resid, w[::-1], mode="valid")  # full[i]: residuals i .. i + reach - 1
        return np.where(idx >= self._reach - 1, full[np.maximum(idx - (self._reach - 1), 0)], 0.0)

    def _fit_comp(self) -> None:
        n = min(len(self.t), self.comp_window)
        t = np.fromiter(self.t, float, len(self.t))[-n:]
        y = np.fromiter(self.y, float, len(self.y))[-n:]
        resid = y - self._base(t)
        idx = np.arange(max(self._history, self._reach if self.local else 0) - 1, n - 1)
        rows, target = [], []
        for h in range(1, self.horizon + 1):
            ok = idx[idx + h < n]
            rows.append(self._features(resid, t, ok, np.full(len(ok), h, float)))
            target.append(resid[ok + h] - self._level(resid, ok, h))
        X, Y = np.concatenate(rows), np.concatenate(target)
        # Keep it only if it beats the level alone on the latest fifth of the window: on smooth
        # demand the level already leaves only noise, and a model of noise adds its own.
        late = np.concatenate([np.arange(len(r)) >= 0.8 * len(r) for r in rows])
        from sklearn.ensemble import HistGradientBoostingRegressor  # on first fit: a control plane that scales nothing never pays for it

        model = HistGradientBoostingRegressor(max_iter=60, max_depth=4, learning_rate=0.1, random_state=self.seed)
        model.fit(X[~late], Y[~late])
        keep = np.mean((Y[late] - model.predict(X[late])) ** 2) < 0.98 * np.mean(Y[late] ** 2)
        self._comp = model.fit(X, Y) if keep else None
        self.comp_kept += bool(keep)
        self._comp_at = int(t[-1])
        self.comp_fits += 1

    # -- forecast -----------------------------------------------------------------------------
    def forecast(self) -> Forecast:
        if self._coef is None:
            raise ValueError("no data observed yet")
        now = int(self.t[-1])
        ahead = np.arange(now + 1, now + 1 + self.horizon, dtype=float)
        mean = self._base(ahead)
        if len(self.t) >= self._history and (self._comp is not None or self.local):
            n = min(len(self.t), max(self._history, self._reach if self.local else 0))
            t = np.fromiter(islice(reversed(self.t), n), float, n)[::-1]
            y = np.fromiter(islice(reversed(self.y), n), float, n)[::-1]
            resid = y - self._recent_base(t)
            if self.local:
                w = self._level_w[:, :, -n:]
                if n < self._reach:  # a young series: the exponential weights over what there is
                    w = w.copy()
                    w[1:] /= w[1:].sum(axis=2, keepdims=True)
                levels = w @ resid  # (candidates, horizon)
                self._level_made.append((now, mean + levels))
                mean = mean + levels[self._chosen(), np.arange(self.horizon)]
            if self._comp is not None:
                hs = np.arange(1, self.horizon + 1, dtype=float)
                rows = self._features(resid[-self._history:], t[-self._history:],
                                      np.full(self.horizon, self._history - 1), hs)
                mean = mean + self._comp.predict(rows)
        mean = np.maximum(mean, 0.0)
        spread = np.empty(self.horizon)
        for h in range(self.horizon):
            errs = self._errors[h]
            if len(errs) < 60:
                spread[h] = 1.645 * self._resid_sd
            else:
                q = float(np.quantile(np.fromiter(errs, float, len(errs)), self.quantile))
                spread[h] = q * math.sqrt(max(mean[h], 1.0)) if self.scaled else q
        upper = mean + np.maximum(spread, 0.0)
        pe = self._peak_errors
        peak = float(mean.max()) + (max(float(np.quantile(np.fromiter(pe, float, len(pe)), self.quantile)), 0.0)
                                    if len(pe) >= 60 else float(np.maximum(spread, 0.0).max()))
        self._made.append((now, mean))
        return Forecast(now, mean, upper, peak)

    def _recent_base(self, t: np.ndarray) -> np.ndarray:
        """The base at the latest minutes `t` (consecutive), computed once per minute and fit."""
        rb = self._rb
        end = int(t[-1])
        if rb is not None and rb[0] == self.fits and len(rb[2]) >= len(t):
            if rb[1] == end:
                return rb[2][-len(t):]
            if rb[1] == end - 1:
                values = np.append(rb[2][1:], self._base(t[-1:]))
                self._rb = (self.fits, end, values)
                return values[-len(t):]
        values = self._base(t)
        self._rb = (self.fits, end, values)
        return values

    def base_ahead(self, minutes: int) -> np.ndarray:
        """The seasonal base (trend + Fourier terms, no compensator) for the next `minutes` minutes
        after the last observed one, at least 0."""
        if self._coef is None:
            raise ValueError("no data observed yet")
        now = int(self.t[-1])
        return np.maximum(self._base(np.arange(now + 1, now + 1 + max(minutes, 0), dtype=float)), 0.0)


def mape(actual, predicted) -> float:
    """Mean absolute percentage error over minutes with arrivals, in percent."""
    a, p = np.asarray(actual, float), np.asarray(predicted, float)
    ok = a > 0
    return float(np.mean(np.abs(a[ok] - p[ok]) / a[ok]) * 100) if ok.any() else 0.0
