"""One scaling decision per service and minute (control_plane/autoscale/decide.py): pure, the code the
live Autoscaler and bench/autoscale's simulator share."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from control_plane.autoscale.agent import AgentConfig
from control_plane.autoscale.decide import Decider, choose, ranked, sites_for
from control_plane.autoscale.optimiser import Config, Site
from control_plane.placement.types import Demand, NodeView, Used

SMALL = Config("small", 1.0, 1024, 1, 60.0)
LARGE = Config("large", 2.0, 2048, 2, 114.0)
QUARTER = Config("quarter", 0.25, 512, 1, 12.0)
EDGE = Site("edge", 2.0, 4096)
POOL = Site("cloud", 2.0, 8192, price_per_hour=0.0832, max_vms=10)
BIG = Site("big", 8.0, 16384, price_per_hour=0.34, max_vms=4)


def test_owned_room_first_then_the_pool_one_size_for_every_replica():
    c = choose(100, [SMALL, LARGE], [EDGE, POOL])
    assert (c.config, c.replicas, c.sites, c.vms, c.cost_per_hour) == (SMALL, 2, {"edge": 2}, {}, 0.0)
    c = choose(200, [SMALL, LARGE], [EDGE, POOL])
    # 2 on the edge box (free) and 2 on one VM: 240; two large replicas (228) cost the same VM but
    # serve less on the same cores
    assert (c.config, c.replicas, c.sites, c.vms) == (SMALL, 4, {"cloud": 2, "edge": 2}, {"cloud": 1})
    assert c.capacity_rpm == 240 and c.cost_per_hour == pytest.approx(0.0832) and c.covers


def test_the_cheaper_size_wins_over_the_one_with_fewer_cores():
    # 300 req/min: small needs 5 replicas (edge 2 + 2 VMs), large 3 (edge 1 + 2 VMs): the same two
    # VMs. Where large would need one VM less, it wins on cost.
    fast = Config("large", 2.0, 2048, 2, 160.0)
    c = choose(300, [SMALL, fast], [EDGE, POOL])
    assert c.config == fast and c.vms == {"cloud": 1} and c.replicas == 2


def test_equal_cost_goes_to_fewer_cores_then_more_replicas():
    # all on the free edge box: 4 x 0.25 (48) and 1 x 1 core (60) both take 40 on one core: more replicas
    c = choose(40, [QUARTER, SMALL], [EDGE])
    assert (c.config, c.replicas) == (QUARTER, 4)
    assert [x.config for x in ranked(40, [QUARTER, SMALL], [EDGE])] == [QUARTER, SMALL]


def test_bounds_hold_and_a_choice_that_cannot_take_the_demand_comes_last():
    c = choose(0, [SMALL], [EDGE, POOL], lo=2, hi=5)
    assert c.replicas == 2 and c.sites == {"edge": 2}  # min 2, on the free room
    got = ranked(1000, [SMALL, LARGE], [EDGE, POOL], lo=1, hi=4)
    assert all(not x.covers and x.replicas == 4 for x in got)
    assert got[0].config == LARGE  # the most capacity first when none takes it
    c = choose(150, [SMALL, LARGE], [EDGE], lo=1, hi=8)  # only 2 cores anywhere
    assert not c.covers and c.sites == {"edge": 2}


def test_without_sites_the_count_alone():
    c = choose(130, [SMALL], None, lo=1, hi=8)
    assert (c.replicas, c.capacity_rpm, c.cost_per_hour, c.sites) == (3, 180, 0.0, {})
    assert choose(10_000, [SMALL], None, lo=1, hi=8).replicas == 8
    assert choose(5, [], [EDGE]).replicas == 0


@settings(max_examples=200, deadline=None)
@given(need=st.floats(0, 3000), lo=st.integers(0, 4), extra=st.integers(0, 40))
def test_the_first_choice_covers_when_any_does_and_is_cheapest_among_those_that_do(need, lo, extra):
    hi = lo + extra
    got = ranked(need, [QUARTER, SMALL, LARGE], [EDGE, POOL, BIG], lo, hi)
    assert all(min(max(lo, 0), hi) <= x.replicas <= hi for x in got)
    covering = [x for x in got if x.covers]
    if covering:
        assert got[0].covers and got[0].capacity_rpm >= need - 1e-6
        assert got[0].cost_per_hour <= min(x.cost_per_hour for x in covering) + 1e-9
    for x in covering:  # where it says, and what it says, add up
        assert sum(x.sites.values()) == x.replicas
        assert x.cost_per_hour == pytest.approx(sum(s.price_per_hour * x.vms.get(s.name, 0) for s in (POOL, BIG)))


def arrivals(minutes: int, seed: int = 0) -> np.ndarray:
    t = np.arange(minutes)
    rate = 150 + 100 * np.sin(2 * math.pi * t / 1440)
    return np.random.default_rng(seed).poisson(rate).astype(float)


def test_reactive_is_the_last_minute_at_70_percent_held_5_minutes():
    d = Decider("reactive", lead=3)
    d.observe(9, 350)
    assert d.need(10, 0.0)[0] == pytest.approx(500)
    d.observe(10, 70)
    assert d.need(11, 500.0)[0] == pytest.approx(500)  # held
    d.observe_to(16, [(15, 70)])  # minutes 11-14 had no requests
    assert d.seen == 15 and d.need(16, 500.0)[0] == pytest.approx(100)


def test_the_same_minutes_make_the_same_decisions_however_they_are_fed():
    """The live loop feeds minutes as (minute, requests) lists with gaps, asks several times a minute;
    the simulator feeds each minute once: the decisions are the same."""
    a = arrivals(900)
    a[100:110] = 0  # a quiet spell: missing from the live series
    live, sim = Decider("predictive", 5), Decider("predictive", 5)
    series = [(m, float(x)) for m, x in enumerate(a) if x > 0]
    cap_live = cap_sim = 0.0
    for now in range(1, 900):
        sim.observe(now - 1, a[now - 1])
        ds = sim.decide(now, cap_sim, [SMALL, LARGE], [EDGE, POOL])
        for _ in range(3):  # ticks within the minute
            live.observe_to(now, [x for x in series if x[0] < now])
            dl = live.decide(now, cap_live, [SMALL, LARGE], [EDGE, POOL])
        assert (dl.choice, dl.need_rpm, dl.why) == (ds.choice, ds.need_rpm, ds.why), now
        cap_live, cap_sim = dl.choice.capacity_rpm, ds.choice.capacity_rpm
    assert len(sim.forecaster._errors[0]) == len(live.forecaster._errors[0])  # each minute scored once


def test_predictive_provisions_ahead_of_a_rise_and_the_net_catches_a_miss():
    a = arrivals(3 * 1440)
    d = Decider("predictive", 5, AgentConfig(max_utilisation=0.9))
    cap, short = 0.0, 0
    for now in range(1, len(a)):
        d.observe(now - 1, a[now - 1])
        x = d.decide(now, cap, [SMALL], [EDGE, POOL])
        if now > 1440 and x.choice.capacity_rpm < a[now]:
            short += 1
        cap = x.choice.capacity_rpm
    assert short <= 0.005 * 2 * 1440, short
    d.observe(len(a), 900)  # far above anything forecast
    need, why = d.need(len(a) + 1, cap)
    assert need >= 900 / 0.9 and why.endswith("reactive")


def test_bad_input_is_refused_naming_it():
    with pytest.raises(ValueError, match="unknown scaling mode 'magic'"):
        Decider("magic", 3)
    with pytest.raises(ValueError, match="lead 0"):
        Decider("predictive", 0)
    d = Decider("reactive", 2)
    d.observe(5, 1)
    with pytest.raises(ValueError, match="minute 5 is not after 5"):
        d.observe(5, 1)


def test_sites_are_the_eligible_nodes_room_and_each_pool_as_vms():
    nodes = [NodeView("n1", "edge-1", "edge", {}, "x86_64", 4.0, 8192),
             NodeView("n2", "edge-2", "edge", {}, "x86_64", 2.0, 4096),
             NodeView("n3", "fog-1", "fog", {}, "x86_64", 8.0, 16384),  # not a tier it takes
             NodeView("n4", "edge-3", "edge", {}, "x86_64", 4.0, 8192, ready=False),
             NodeView("vm1", "burst-a", "edge", {"stratum.io/pool": "burst"}, "x86_64", 2.0, 1024),  # joined
             NodeView("pool:burst#new1", "burst (new VM 1)", "edge", {}, "x86_64", 2.0, 1024, pool="burst",
                      price_per_hour=0.02),
             NodeView("pool:burst#new2", "burst (new VM 2)", "edge", {}, "x86_64", 2.0, 1024, pool="burst",
                      price_per_hour=0.02)]
    used = {"n1": Used(cpu=3.0, memory_mb=1024)}  # other work on edge-1
    got = sites_for(Demand(cpu=1.0, memory_mb=512, tiers=("edge",)), nodes, used, {"burst": 0.02}, "stratum.io/pool")
    assert got == [Site("edge-1", 1.0, 7168), Site("edge-2", 2.0, 4096),
                   Site("burst", 2.0, 1024, price_per_hour=0.02, max_vms=3)]
