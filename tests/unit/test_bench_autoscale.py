"""bench/autoscale's simulator on two days of each built-in trace, with saved profiles: every policy
runs, the last line is the JSON of every figure, the bound policy knows the rate (a file's: its
moving average), the verdict applies the targets, bad input is refused with a message."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from bench.autoscale import run as bench

PROFILE = [{"name": "small", "cpu": 1, "memory_mb": 1024, "workers": 1, "capacity_rpm": 60.0},
           {"name": "large", "cpu": 2, "memory_mb": 2048, "workers": 2, "capacity_rpm": 114.0}]


@pytest.fixture
def profile(tmp_path):
    p = tmp_path / "profile.json"
    p.write_text(json.dumps(PROFILE))
    return str(p)


@pytest.fixture(scope="module")
def two_days(tmp_path_factory) -> tuple[dict, str]:
    """The bench on two days of every built-in trace, run once for the tests that read it: (its JSON, what it printed)."""
    p = tmp_path_factory.mktemp("bench") / "profile.json"
    p.write_text(json.dumps(PROFILE))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        out = bench.main(["--profile", str(p), "--days", "2"])
    return out, printed.getvalue()


def test_every_policy_on_every_trace_and_json_last(two_days):
    out, text = two_days
    last = json.loads(text.strip().splitlines()[-1])
    assert last == json.loads(json.dumps(out))
    assert set(last["results"]) == {"generated", "taylor", "daily"}
    for name, r in last["results"].items():
        assert set(r) == {"predictive", "reactive", "static_peak", "oracle", "bound"}
        # static peak never violates; the oracle never costs more than static peak; MAPE is measured
        assert r["static_peak"]["violating_minutes"] == 0
        assert r["oracle"]["cost"] <= r["static_peak"]["cost"]
        assert 0 < r["predictive"]["forecast_mape_pct"] < 50
        v = last["verdicts"][name]
        assert v["cost_vs_bound"] == round(r["predictive"]["cost"] / r["bound"]["cost"], 3)
        assert v["cost_vs_oracle"] == round(r["predictive"]["cost"] / r["oracle"]["cost"], 3)
        assert v["met"] == all(v["checks"].values())
        assert f"{v['cost_vs_bound']}x bound" in text


def test_the_verdict_applies_each_target():
    def r(pred_cost, pred_viol, reactive_viol=4):
        fig = lambda cost, viol: {"cost": cost, "violating_minutes": viol}  # noqa: E731
        return {"predictive": fig(pred_cost, pred_viol), "reactive": fig(150, reactive_viol), "static_peak": fig(160, 0),
                "oracle": fig(100, 1), "bound": fig(110, 2)}
    minutes = 40_320  # 0.01 % of them: 4.03 violating minutes over reactive's
    assert bench.judge(r(115, 8), minutes)["met"]
    assert bench.judge(r(116, 8), minutes)["checks"] == {"vs_bound": False, "vs_oracle": True, "vs_static_peak": True,
                                                         "violations": True}
    assert bench.judge(r(115, 9), minutes)["checks"]["violations"] is False
    assert bench.judge(r(115, 8, reactive_viol=5), minutes)["met"]


def test_the_bound_knows_the_rate_and_headroom_buys_fewer_violations(profile):
    args = ["--profile", profile, "--days", "2", "--only", "taylor"]
    tight = bench.main(args + ["--bound", "h=0"])["results"]["taylor"]["bound"]
    wide = bench.main(args + ["--bound", "h=120"])["results"]["taylor"]["bound"]
    assert wide["violating_minutes"] < tight["violating_minutes"] and wide["cost"] > tight["cost"]


def test_the_bound_with_the_predictive_forecasters_own_headroom(profile, two_days):
    own = bench.main(["--profile", profile, "--days", "2", "--only", "daily", "--bound", "spread"])["results"]["daily"]
    q = two_days[0]["results"]["daily"]  # the default bound, on the same two days
    assert own["predictive"] == {**q["predictive"], "seconds": own["predictive"]["seconds"],
                                 "decide_ms_per_minute": own["predictive"]["decide_ms_per_minute"]}
    assert own["bound"]["cost"] > 0 and own["bound"]["cost"] != q["bound"]["cost"]


def test_a_file_trace_gets_a_bound_from_its_moving_average(profile, tmp_path):
    counts = bench.taylor_trace(2, seed=1)
    f = tmp_path / "demand.csv"
    f.write_text("timestamp,requests\n" + "".join(f"{i * 60},{int(c)}\n" for i, c in enumerate(counts)))
    out = bench.main(["--profile", profile, "--trace", str(f)])
    r = out["results"]["file"]
    assert set(r) == set(bench.POLICIES) and r["bound"]["cost"] > 0
    assert out["verdicts"]["file"]["cost_vs_bound"] == round(r["predictive"]["cost"] / r["bound"]["cost"], 3)
    smooth = bench.smoothed(counts)
    assert len(smooth) == len(counts) and smooth[100] == pytest.approx(counts[93:108].mean())
    assert smooth[0] == pytest.approx(counts[:8].mean())  # fewer minutes at the ends


def test_the_traces_are_their_rates_drawn_poisson():
    seasonal, bursts, counts = bench.generated_rates(2, seed=3)
    rate = np.clip(seasonal + bursts, 100, 400)
    assert np.array_equal(counts, bench.generated_trace(2, seed=3))
    assert abs(counts.mean() / rate.mean() - 1) < 0.02 and bursts.max() >= 40
    rate, counts = bench.taylor_rates(2, seed=3)
    assert 100 <= rate.min() and rate.max() <= 400 and abs(counts.mean() / rate.mean() - 1) < 0.02


def test_the_daily_trace_has_quiet_nights_steep_mornings_and_strong_peaks():
    rate, counts = bench.daily_rates(7, seed=2)
    assert np.array_equal(counts, bench.daily_trace(7, seed=2))
    assert 10 <= rate.min() and rate.max() <= 360 and abs(counts.mean() / rate.mean() - 1) < 0.03
    day = rate[:1440]  # a weekday
    assert day[:5 * 60].max() <= 20 and day.max() >= 250  # quiet night, a strong peak
    assert day[8 * 60] - day[6 * 60] >= 200  # the morning ramp: 200 requests/min more in two hours
    assert rate[5 * 1440:6 * 1440].max() < day.max()  # a weekend day peaks lower


@pytest.mark.parametrize("extra, message", [
    (["--bound", "x=3"], "--bound 'x=3': give q, spread, z=<number> or h=<number>"),
    (["--trace", "BADTRACE"], "expected a CSV with header timestamp,requests"),
    (["--trace", "NEGTRACE"], "line 3: requests '-4' is not a count"),
    (["--trace", "MISSING"], "No such file"),
    (["--days", "0"], "--days 0: give at least 1"),
    (["--quantile", "1.5"], "--quantile 1.5"),
    (["--only", "taylor", "--trace", "TRACE"], "--only picks a built-in trace"),
])
def test_bad_input_is_refused_with_what_is_wrong(profile, tmp_path, extra, message):
    good, bad, neg = tmp_path / "t.csv", tmp_path / "bad.csv", tmp_path / "neg.csv"
    good.write_text("timestamp,requests\n0,10\n1,12\n")
    bad.write_text("minute,count\n0,10\n")
    neg.write_text("timestamp,requests\n0,10\n1,-4\n")
    names = {"TRACE": good, "BADTRACE": bad, "NEGTRACE": neg, "MISSING": tmp_path / "none.csv"}
    extra = [str(names[x]) if x in names else x for x in extra]
    with pytest.raises(SystemExit, match=message):
        bench.main(["--profile", profile] + extra)
