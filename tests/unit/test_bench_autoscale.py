"""bench/autoscale's simulator on two days of each built-in trace, with saved profiles: every policy
runs, the last line is the JSON of every figure, the bound policy knows the rate, bad input is
refused with a message."""

from __future__ import annotations

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


def test_every_policy_on_both_traces_and_json_last(profile, capsys):
    out = bench.main(["--profile", profile, "--days", "2", "--bound", "z=3"])
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last == json.loads(json.dumps(out))
    for name in ("generated", "taylor"):
        r = last["results"][name]
        assert set(r) == {"predictive", "reactive", "static_peak", "oracle", "bound"}
        # static peak never violates; the oracle never costs more than static peak; MAPE is measured
        assert r["static_peak"]["violating_minutes"] == 0
        assert r["oracle"]["cost"] <= r["static_peak"]["cost"]
        assert 0 < r["predictive"]["forecast_mape_pct"] < 50
        assert last["verdicts"][name]["cost_vs_oracle"] == round(r["predictive"]["cost"] / r["oracle"]["cost"], 3)


def test_the_bound_knows_the_rate_and_headroom_buys_fewer_violations(profile):
    args = ["--profile", profile, "--days", "2", "--only", "taylor"]
    tight = bench.main(args + ["--bound", "h=0"])["results"]["taylor"]["bound"]
    wide = bench.main(args + ["--bound", "h=120"])["results"]["taylor"]["bound"]
    assert wide["violating_minutes"] < tight["violating_minutes"] and wide["cost"] > tight["cost"]


def test_the_traces_are_their_rates_drawn_poisson():
    seasonal, bursts, counts = bench.generated_rates(2, seed=3)
    rate = np.clip(seasonal + bursts, 100, 400)
    assert np.array_equal(counts, bench.generated_trace(2, seed=3))
    assert abs(counts.mean() / rate.mean() - 1) < 0.02 and bursts.max() >= 40
    rate, counts = bench.taylor_rates(2, seed=3)
    assert 100 <= rate.min() and rate.max() <= 400 and abs(counts.mean() / rate.mean() - 1) < 0.02


@pytest.mark.parametrize("extra, message", [
    (["--bound", "q=3"], "--bound takes z=<number> or h=<number>"),
    (["--bound", "z=3", "--trace", "TRACE"], "a file has no known rate"),
    (["--trace", "BADTRACE"], "expected a CSV with header timestamp,requests"),
])
def test_bad_input_is_refused_with_what_is_wrong(profile, tmp_path, extra, message):
    good, bad = tmp_path / "t.csv", tmp_path / "bad.csv"
    good.write_text("timestamp,requests\n0,10\n1,12\n")
    bad.write_text("minute,count\n0,10\n")
    extra = [str(good) if x == "TRACE" else str(bad) if x == "BADTRACE" else x for x in extra]
    with pytest.raises(SystemExit, match=message):
        bench.main(["--profile", profile] + extra)
