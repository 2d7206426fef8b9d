"""Replica counts from arrivals (control_plane/autoscale/horizontal.py): pure."""

from __future__ import annotations

import math

import pytest

from control_plane.autoscale.horizontal import ServiceScaler


def diurnal(minute: int) -> float:
    return 300 + 250 * math.sin(2 * math.pi * minute / 1440)


def test_fixed_keeps_the_count():
    assert ServiceScaler("fixed", 1, 5, 100).decide(10, [(9, 10_000)], 3) == (3, "fixed")


def test_reactive_follows_the_last_minute_within_bounds_and_holds_scale_in():
    s = ServiceScaler("reactive", 1, 6, 100)
    assert s.decide(10, [(9, 350)], 1)[0] == 5  # 350 / 0.7 = 500 -> 5
    assert s.decide(11, [(10, 70)], 5)[0] == 5  # lower, but held for 5 minutes
    assert s.decide(16, [(15, 70)], 5)[0] == 1
    assert s.decide(17, [(16, 10_000)], 1)[0] == 6  # capped at max


def test_predictive_scales_ahead_of_a_daily_rise():
    s = ServiceScaler("predictive", 1, 20, 60, lead=3)
    arrivals = [(m, diurnal(m)) for m in range(3 * 1440)]
    counts = []
    for now in range(2 * 1440, 2 * 1440 + 400, 1):  # the morning rise of day 3
        n, why = s.decide(now, [a for a in arrivals if a[0] < now], counts[-1] if counts else 1)
        counts.append(n)
        assert n * 60 >= diurnal(now) * 0.95, (now, n, why)  # capacity keeps up with the rise
    assert counts[-1] > counts[0]


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown scaling mode 'magic'"):
        ServiceScaler("magic", 1, 2, 10)


def test_scaling_spec_validation_and_the_count_to_run():
    from control_plane.services import replicas_of, validate_spec
    from stratum.v1 import models_pb2 as m

    def problems(**kw):
        return [p for p, _ in validate_spec(m.ServiceSpec(name="s", model="m", scaling=m.Scaling(**kw)))]

    assert problems(mode="predictive", min=1, max=4) == []
    assert problems(mode="magic") == ["scaling.mode"]
    assert problems(mode="reactive", min=3, max=2) == ["scaling.max"]
    assert problems(mode="reactive", min=65) == ["scaling.min"]
    assert problems(mode="reactive", target_rpm=-1) == ["scaling.target_rpm"]
    fixed = m.ServiceSpec(name="s", model="m", replicas=3)
    assert replicas_of(fixed, {"scaled": 7}) == 3  # the autoscaler's count applies only with a scaling mode
    auto = m.ServiceSpec(name="s", model="m", replicas=2, scaling=m.Scaling(mode="reactive", min=1, max=4))
    assert replicas_of(auto) == 2 and replicas_of(auto, {"scaled": 3}) == 3 and replicas_of(auto, {"scaled": 9}) == 4


def test_predictive_starts_from_a_few_sparse_minutes_within_bounds():
    # a new service: three minutes seen, two of them without requests (missing from the series)
    s = ServiceScaler("predictive", 1, 4, 60, lead=2)
    for now, arrivals in ((3, [(2, 30.0)]), (6, [(2, 30.0), (5, 200.0)]), (7, [(2, 30.0), (5, 200.0), (6, 250.0)])):
        n, why = s.decide(now, arrivals, 1)
        assert 1 <= n <= 4, (now, n, why)
    assert n == 4 and "reactive" in why  # 250 live against 60 of capacity: the safety net, capped at max
    need, _ = s.need(8, [(7, 0.0)], 240.0)
    assert need >= 250 / 0.9  # scale-in waits for the cool-down
