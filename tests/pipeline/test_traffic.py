"""apps/traffic.py against data/generate.py: the same constants, the same rule from counts to
congestion, and a queue length that the batch job turns back into exactly generate.py's label."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import traffic

from tests.pipeline.conftest import EXAMPLE


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("smart_traffic_generate_for_apps", EXAMPLE / "data" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_constants_are_generate_py_s(gen):
    assert traffic.INTERSECTIONS == gen.INTERSECTIONS and traffic.NAMES == gen.NAMES
    assert traffic.WEATHER == gen.WEATHER and traffic.LEVELS == gen.LEVELS
    assert traffic.WEATHER_MIX == gen.WEATHER_MIX["normal"]
    for name in ("CAPACITY_FACTOR", "EXPOSED_FACTOR", "EXPOSED", "DEMAND_FACTOR", "TEMP_OFFSET", "LOW_MEDIUM",
                 "MEDIUM_HIGH", "CROWD", "RUSH_FACTOR", "SCHOOL_FACTOR", "WORKS_FACTOR", "ICY_FACTOR",
                 "VEHICLE_NOISE", "PEDESTRIAN_NOISE", "LOAD_NOISE", "SCHOOL", "NIGHTLIFE", "ROAD_WORKS"):
        assert getattr(traffic, name) == getattr(gen, name), name
    assert traffic.QUEUE_LOW_MEDIUM == traffic.LOW_MEDIUM * traffic.QUEUE_PER_LOAD
    assert traffic.QUEUE_MEDIUM_HIGH == traffic.MEDIUM_HIGH * traffic.QUEUE_PER_LOAD


def test_demand_profile_matches(gen):
    hours, days = np.meshgrid(np.arange(24), np.arange(7))
    want = gen.demand_profile(hours.ravel(), days.ravel())
    got = [traffic.demand_profile(int(h), int(d)) for h, d in zip(hours.ravel(), days.ravel())]
    assert np.allclose(got, want, rtol=0, atol=1e-12)


def test_rule_reproduces_generate_py_labels(gen, monkeypatch):
    """Without generate.py's load noise its label is level(vehicles / effective capacity): every row
    whose inputs are not within rounding of a threshold must get the same label from traffic.py."""
    monkeypatch.setattr(gen, "LOAD_NOISE", 0.0)
    df = gen.generate(rows=4000, seed=11)
    checked = 0
    for r in df.itertuples(index=False):
        ped_peak = traffic.INTERSECTIONS[r.intersection][2]
        temp = None if math.isnan(r.temperature_c) else float(r.temperature_c)
        # the file rounds to 0.1: skip rows that rounding could move across a threshold
        if temp is None or abs(temp - 1.0) <= 0.1 or abs(r.pedestrians_per_min - traffic.CROWD * ped_peak) <= 0.1:
            continue
        load = r.vehicles_per_min / traffic.effective_capacity(r.intersection, int(r.hour), int(r.weekday), r.weather,
                                                               temp, float(r.pedestrians_per_min))
        if min(abs(load - traffic.LOW_MEDIUM), abs(load - traffic.MEDIUM_HIGH)) <= 0.01:
            continue
        assert traffic.level(load) == r.congestion, r
        checked += 1
    assert checked >= 0.9 * len(df)


def test_queue_length_and_its_label_around_the_thresholds():
    for t in (traffic.LOW_MEDIUM, traffic.MEDIUM_HIGH):
        for x in (math.nextafter(t, 0), t, math.nextafter(t, 2)):
            assert traffic.level_of_queue(traffic.queue_length(x)) == traffic.level(x), x
    assert traffic.level_of_queue(8.9) == "low" and traffic.level_of_queue(9.0) == "medium"
    assert traffic.level_of_queue(15.99) == "medium" and traffic.level_of_queue(16.0) == "high"


@given(st.floats(min_value=0.0, max_value=5.0, allow_nan=False))
def test_queue_label_is_the_load_label(load):
    assert traffic.level_of_queue(traffic.queue_length(load)) == traffic.level(load)


def test_readings_are_deterministic_and_plausible():
    a = traffic.reading(7, "i-01", 42)
    assert a == traffic.reading(7, "i-01", 42)
    assert a != traffic.reading(8, "i-01", 42)
    assert set(a) == {"intersection", "seq", "slot", "hour", "weekday", "weather", "temperature_c",
                      "vehicles_per_min", "pedestrians_per_min", "queue_length"}
    # the weather is the city's, whichever sensor reports it
    assert {traffic.reading(7, n, 42)["weather"] for n in traffic.NAMES} == {a["weather"]}
    # Monday from 07:00, one simulated minute per reading: seq 61 is 08:00 and seq 1201 is 03:00 on Tuesday
    assert (traffic.reading(7, "i-01", 61)["hour"], traffic.reading(7, "i-01", 61)["weekday"]) == (8, 0)
    assert (traffic.reading(7, "i-01", 1201)["hour"], traffic.reading(7, "i-01", 1201)["weekday"]) == (3, 1)

    def mean_vehicles(start_seq):
        return np.mean([traffic.reading(s, "i-04", start_seq + k)["vehicles_per_min"] for s in range(5) for k in range(60)])

    assert mean_vehicles(1) > 2 * mean_vehicles(1201)  # morning rush against the small hours
    day = [traffic.reading(3, n, s) for n in traffic.NAMES for s in range(1, 24 * 60, 15)]
    assert {traffic.level_of_queue(r["queue_length"]) for r in day} == set(traffic.LEVELS)
    assert all(r["vehicles_per_min"] >= 0 and r["queue_length"] >= 0 for r in day)
    assert any(r["temperature_c"] is None for n in traffic.NAMES for r in [traffic.reading(3, n, s) for s in range(1, 400)])
    with pytest.raises(ValueError, match="unknown intersection"):
        traffic.reading(1, "i-99", 1)
