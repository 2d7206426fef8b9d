"""Replica sizes (control_plane/autoscale/vertical.py): pure."""

from __future__ import annotations

from hypothesis import given, strategies as st

from control_plane.autoscale.vertical import Size, options, refine, sizes_of

VERSION = {"sizes": [
    {"cpu": 1.0, "workers": 1, "memory_mb": 320, "capacity_rps": 10.0, "p95_ms": 80.0},
    {"cpu": 0.5, "workers": 1, "memory_mb": 320, "capacity_rps": 5.0, "p95_ms": 150.0},
    {"cpu": 0.25, "workers": 1, "memory_mb": 320, "capacity_rps": 2.5, "p95_ms": 400.0},
    {"cpu": 2.0, "workers": 2, "memory_mb": 576, "capacity_rps": 19.0, "p95_ms": 90.0},
]}


def test_sizes_are_taken_at_the_objective_and_rescaled_to_a_target():
    sizes = sizes_of(VERSION, slo_ms=200)
    by = {(z.cpu, z.workers): z.capacity_rpm for z in sizes}
    assert by[(1.0, 1)] == 600 and by[(0.5, 1)] == 300  # within the objective at full load
    assert by[(0.25, 1)] == 150 * 200 / 400  # p95 400 ms at full load: half the throughput at 200 ms
    assert [z.cpu for z in sizes] == [0.25, 0.5, 1.0, 2.0]
    scaled = {(z.cpu, z.workers): z.capacity_rpm for z in sizes_of(VERSION, target_rpm=60)}
    assert scaled[(1.0, 1)] == 60 and scaled[(2.0, 2)] == 60 * 19 / 10  # the measured ratio is kept
    assert sizes_of({}, 200) == [] and sizes_of(None) == []
    assert sizes_of({"sizes": [{"cpu": 1.0, "capacity_rps": 0}]}) == []  # not measured: not offered


def test_the_fewest_cores_win_and_ties_go_to_more_replicas():
    sizes = sizes_of(VERSION, target_rpm=60)  # 15, 30, 60 and 114 req/min
    assert options(10, sizes, 1, 4)[0] == (sizes[0], 1)  # 0.25 core holds 10 req/min
    # 50: 4 x 0.25, 2 x 0.5 and 1 x 1 core all reserve 1 core; most replicas first
    assert [(z.cpu, k) for z, k in options(50, sizes, 1, 4)[:3]] == [(0.25, 4), (0.5, 2), (1.0, 1)]
    # 100: 0.25 core cannot within 4 replicas; 2 cores three ways, then 2 x 2 cores
    assert [(z.cpu, k) for z, k in options(100, sizes, 1, 4)] == [(0.5, 4), (1.0, 2), (2.0, 1), (0.25, 4)]
    assert [(z.cpu, k) for z, k in options(100, sizes, 2, 4)][2] == (2.0, 2)  # min 2: 4 cores


def test_when_nothing_takes_the_load_the_largest_at_max_come_last_in_order():
    sizes = sizes_of(VERSION, target_rpm=60)
    got = options(10_000, sizes, 1, 3)
    assert [(z.cpu, n) for z, n in got][:2] == [(2.0, 3), (1.0, 3)]  # most capacity first
    assert all(n == 3 for _, n in got)


@given(need=st.floats(0, 2000), lo=st.integers(1, 4), extra=st.integers(0, 6))
def test_options_stay_within_bounds_and_the_first_covers_when_anything_can(need, lo, extra):
    sizes = sizes_of(VERSION, target_rpm=60)
    hi = lo + extra
    got = options(need, sizes, lo, hi)
    assert got and all(lo <= n <= hi for _, n in got)
    best, n = got[0]
    if any(z.capacity_rpm * hi >= need for z in sizes):
        assert best.capacity_rpm * n >= need - 1e-6
        covering = [(z, k) for z, k in got if z.capacity_rpm * k >= need - 1e-6]
        assert best.cpu * n == min(z.cpu * k for z, k in covering)


def test_refine_learns_from_minutes_at_the_ceiling_only():
    # replicas held the objective at 90 req/min each, more than the 60 believed: raise
    cap = refine(60, [(180, 120)] * 10, replicas=2, slo_ms=200, base=60)
    assert 85 < cap <= 90
    # over the objective at 40 each: lower
    cap = refine(60, [(80, 350)] * 10, replicas=2, slo_ms=200, base=60)
    assert 40 <= cap < 45
    # light load within the objective says nothing about the ceiling
    assert refine(60, [(20, 50)] * 10, replicas=2, slo_ms=200, base=60) == 60
    # no objective or no replicas: nothing to learn against
    assert refine(60, [(500, 900)], replicas=2, slo_ms=0, base=60) == 60
    assert refine(60, [(500, 900)], replicas=0, slo_ms=200, base=60) == 60
    # kept within a band of the measured figure
    assert refine(60, [(10_000, 10)] * 50, replicas=1, slo_ms=200, base=60) == 240


def test_size_as_dict_round_trips_the_fields_the_assignment_needs():
    d = Size(0.5, 320, 1, 29.99999).as_dict()
    assert d == {"cpu": 0.5, "memory_mb": 320, "workers": 1, "capacity_rpm": 30.0}


def test_the_lead_time_is_the_replica_start_plus_a_vm_boot_on_pools():
    from control_plane.autoscale.loop import VM_BOOT_S, lead_minutes
    from stratum.clock import MINUTE_S

    assert lead_minutes({"load_time_s": 2.1}, False) == 2  # starts within the minute, serves the next
    assert lead_minutes({"load_time_s": 2.1}, True) == 1 + -(-(2.1 + VM_BOOT_S) // MINUTE_S)
    assert lead_minutes(None, False) == 2  # not measured: about 2 s
