"""Property tests of analysis and placement: never over capacity, every violation reported (against
a brute-force check written independently here), deterministic for the same input in any order."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.analysis import ServiceNeeds, analyse, check_plan, plan_packing
from control_plane.placement.first_fit import place
from control_plane.placement.types import Demand, Gpu, NodeView, Used

FAST = settings(max_examples=60, deadline=None)  # keeps both files well under 10 s

gpus = st.lists(st.builds(Gpu, st.sampled_from(["Tesla T4", "A100", ""]), st.sampled_from([8192, 16384, 40960])),
                max_size=3).map(tuple)


@st.composite
def node_lists(draw, max_size=6):
    out = []
    for i in range(draw(st.integers(0, max_size))):
        labels = draw(st.fixed_dictionaries({}, optional={"rack": st.sampled_from(["r1", "r2"]),
                                                          "zone": st.sampled_from(["north", "east"])}))
        out.append(NodeView(
            f"n{i}", draw(st.sampled_from(["a", "b", "c", "d", "e"])),  # names may repeat: ties broken by id
            draw(st.sampled_from(["edge", "fog", "cloud"])), labels, draw(st.sampled_from(["", "x86_64", "aarch64"])),
            cpu=draw(st.sampled_from([0, 0.5, 1, 2, 4])), memory_mb=draw(st.sampled_from([0, 256, 512, 1024, 2048])),
            ready=draw(st.booleans()), gpus=draw(gpus), zone=draw(st.sampled_from(["", "", "north", "south"])),
            datasets=tuple(draw(st.lists(st.sampled_from(["d1", "d2"]), unique=True, max_size=2))),
            pool=draw(st.sampled_from(["", "", "", "p1", "p2"]))))
    return out


demands = st.builds(
    Demand, cpu=st.sampled_from([0, 0.5, 1, 3]), memory_mb=st.sampled_from([0, 256, 700, 2048, 4096]),
    tiers=st.lists(st.sampled_from(["edge", "fog", "cloud"]), unique=True, max_size=2).map(tuple),
    labels=st.sampled_from([(), (("rack", "r1"),), (("rack", "r2"), ("zone", "north"))]),
    arch=st.sampled_from(["", "x86_64", "aarch64", "arm64"]), gpus=st.integers(0, 2),
    gpu_model=st.sampled_from(["", "T4", "a100", "V100"]), gpu_memory_mb=st.sampled_from([0, 10000, 40000]),
    zone=st.sampled_from(["", "north", "east"]), data=st.sampled_from(["", "d1", "d3"]))


def needs_for(name: str):
    return st.builds(ServiceNeeds, st.just(name), demands, replicas=st.integers(0, 5),
                     model_memory_mb=st.sampled_from([0, 300]), model_p95_ms=st.sampled_from([0, 30]),
                     slo_p95_ms=st.sampled_from([0, 20, 50]), memory_explicit=st.booleans())


useds = st.dictionaries(st.sampled_from([f"n{i}" for i in range(6)]),
                        st.builds(Used, st.sampled_from([0, 1]), st.sampled_from([0, 512]), st.integers(0, 1)),
                        max_size=3)
pool_limits = st.one_of(st.none(), st.fixed_dictionaries({"p1": st.integers(0, 3)}))


# -- brute force, written without the implementation's helpers -----------------------------------

def available(nodes):
    return [n for n in nodes if n.ready or n.pool]


def need_gpus(d: Demand) -> int:
    return d.gpus or (1 if d.gpu_model or d.gpu_memory_mb else 0)


def good_gpu(g: Gpu, d: Demand) -> bool:
    return d.gpu_model.lower() in g.model.lower() and g.memory_mb >= d.gpu_memory_mb


def meets(n: NodeView, d: Demand) -> dict[str, bool]:
    """Requirement path -> whether node n meets it on its own (by total capacity), for each one asked."""
    ok = {}
    if d.tiers:
        ok["requirements.tiers"] = n.tier in d.tiers
    for k, v in d.labels:
        ok[f'requirements.labels["{k}"]'] = n.labels.get(k) == v
    if d.zone:
        ok["requirements.zone"] = (n.zone or n.labels.get("zone", "")) == d.zone
    if d.data:
        ok["requirements.data"] = d.data in n.datasets
    if d.arch:
        ok["requirements.arch"] = n.arch == d.arch
    if d.gpus:
        ok["requirements.gpu"] = len(n.gpus) >= d.gpus
    if d.gpu_model:
        ok["requirements.gpu_model"] = sum(d.gpu_model.lower() in g.model.lower() for g in n.gpus) >= need_gpus(d)
    if d.gpu_memory_mb:
        ok["requirements.gpu_memory_mb"] = sum(g.memory_mb >= d.gpu_memory_mb for g in n.gpus) >= need_gpus(d)
    if d.cpu:
        ok["requirements.cpu"] = n.cpu >= d.cpu
    if d.memory_mb:
        ok["requirements.memory_mb"] = n.memory_mb >= d.memory_mb
    return ok


def meets_all(n: NodeView, d: Demand) -> bool:
    """Every requirement, and enough GPUs of the model asked for with the memory asked for."""
    return all(meets(n, d).values()) and sum(good_gpu(g, d) for g in n.gpus) >= need_gpus(d)


def room(n: NodeView, d: Demand, used: dict, pool_vms) -> float:
    """Replicas of d that node n can still take."""
    if n.pool:
        u, vms = Used(), (pool_vms or {}).get(n.pool, math.inf)
    else:
        u, vms = used.get(n.id, Used()), 1
    per = math.inf
    if d.cpu:
        per = min(per, (n.cpu - u.cpu + 1e-9) // d.cpu)
    if d.memory_mb:
        per = min(per, (n.memory_mb - u.memory_mb) // d.memory_mb)
    if need_gpus(d):
        per = min(per, sum(good_gpu(g, d) for g in n.gpus[u.gpus:]) // need_gpus(d))
    per = max(per, 0)
    return 0 if per == 0 or vms == 0 else per * vms


# -- analyse -------------------------------------------------------------------------------------

@FAST
@given(node_lists(), needs_for("svc"), useds, pool_limits)
def test_every_unmet_requirement_is_reported(nodes, needs, used, pool_vms):
    vs = analyse(needs, nodes, used, pool_vms)
    paths = {v.path for v in vs}
    avail = available(nodes)
    d = needs.demand
    if not avail:
        assert "requirements" in paths
        return
    for path in meets(avail[0], d):
        if not any(meets(n, d)[path] for n in avail):
            assert path in paths, (path, [v.message for v in vs])
    for v in vs:
        assert v.message.startswith(f"{v.path} = {v.asked}: ")
        assert len(v.candidates) <= 3 and v.service == "svc"
        assert {name for name, _ in v.candidates} <= {n.name for n in avail}


@FAST
@given(node_lists(), needs_for("svc"), useds, pool_limits)
def test_nothing_reported_exactly_when_some_node_meets_everything(nodes, needs, used, pool_vms):
    d = needs.demand
    fitting = [n for n in available(nodes) if meets_all(n, d)]
    ok = (bool(fitting)
          and needs.replicas <= sum(room(n, d, used, pool_vms) for n in fitting)
          and not (needs.memory_explicit and 0 < d.memory_mb < needs.model_memory_mb)
          and not (0 < needs.slo_p95_ms < needs.model_p95_ms))
    assert (analyse(needs, nodes, used, pool_vms) == []) == ok


@FAST
@given(node_lists(), needs_for("svc"), useds, st.randoms(use_true_random=False))
def test_analyse_is_deterministic_in_any_node_order(nodes, needs, used, rnd):
    first = analyse(needs, nodes, used)
    assert analyse(needs, nodes, used) == first
    shuffled = list(nodes)
    rnd.shuffle(shuffled)
    assert analyse(needs, shuffled, used) == first


# -- the whole plan ------------------------------------------------------------------------------

plans = st.lists(st.sampled_from(["s1", "s2", "s3", "s4"]), unique=True, min_size=1, max_size=4).flatmap(
    lambda names: st.tuples(*[needs_for(n) for n in names])).map(list)


@FAST
@given(node_lists(), plans, useds, pool_limits)
def test_a_packing_never_exceeds_any_node(nodes, services, used, pool_vms):
    packing = plan_packing(services, nodes, used, pool_vms)
    by_id = {n.id: n for n in available(nodes)}
    demand = {s.name: s.demand for s in services}
    load: dict[str, list] = {}
    for svc, where in packing.items():
        for key, k in where.items():
            node_id, _, vm = key.partition("#")
            n = by_id[node_id]
            assert meets_all(n, demand[svc])  # only where the service may run
            assert bool(vm) == bool(n.pool)
            if vm:
                assert int(vm) <= (pool_vms or {}).get(n.pool, math.inf)
            d = demand[svc]
            load.setdefault(key, [0.0, 0, 0])
            load[key][0] += d.cpu * k
            load[key][1] += d.memory_mb * k
            load[key][2] += need_gpus(d) * k
    for key, (cpu, mem, g) in load.items():
        n = by_id[key.partition("#")[0]]
        u = Used() if n.pool else used.get(n.id, Used())
        assert cpu <= n.cpu - u.cpu + 1e-6
        assert mem <= n.memory_mb - u.memory_mb
        assert g <= len(n.gpus) - min(u.gpus, len(n.gpus))


@FAST
@given(node_lists(), plans, useds, pool_limits)
def test_plan_violations_name_exactly_the_services_short_of_room(nodes, services, used, pool_vms):
    packing = plan_packing(services, nodes, used, pool_vms)
    vs = check_plan(services, nodes, used, pool_vms)
    short = [s.name for s in services if s.name in packing and sum(packing[s.name].values()) < s.replicas]
    assert sorted(v.service for v in vs) == sorted(short)
    assert all(v.path == "replicas" and v.message.startswith(f"replicas = {v.asked}: ") for v in vs)
    for s in services:
        eligible = [n for n in available(nodes) if meets_all(n, s.demand)]
        assert (s.name in packing) == bool(eligible)
        # necessary condition: more memory than all its (enrolled, no pool) nodes have free is always reported
        if eligible and not any(n.pool for n in eligible) and s.demand.memory_mb and \
                s.replicas * s.demand.memory_mb > sum(n.memory_mb - used.get(n.id, Used()).memory_mb for n in eligible):
            assert s.name in short


@FAST
@given(node_lists(), needs_for("svc"), useds, pool_limits)
def test_one_service_plan_agrees_with_analyse(nodes, needs, used, pool_vms):
    # One service's replicas are all the same size, so first fit finds room whenever there is any.
    plan_ok = check_plan([needs], nodes, used, pool_vms) == []
    if any(meets_all(n, needs.demand) for n in available(nodes)):
        assert plan_ok == all(v.path != "replicas" for v in analyse(needs, nodes, used, pool_vms))
    else:
        assert plan_ok  # a service no node can run is left to analyse


@FAST
@given(node_lists(), plans, useds, st.randoms(use_true_random=False))
def test_plan_is_deterministic_in_any_order(nodes, services, used, rnd):
    first = (check_plan(services, nodes, used), plan_packing(services, nodes, used))
    ns, ss = list(nodes), list(services)
    rnd.shuffle(ns)
    rnd.shuffle(ss)
    assert (check_plan(ss, ns, used), plan_packing(ss, ns, used)) == first


# -- first-fit placement -------------------------------------------------------------------------

@FAST
@given(node_lists(), demands, st.integers(0, 6), useds, st.randoms(use_true_random=False))
def test_first_fit_never_over_capacity_and_deterministic(nodes, d, replicas, used, rnd):
    placement, reasons = place(nodes, d, replicas, used)
    by_id = {n.id: n for n in nodes}
    for node_id, k in placement.items():
        n, u = by_id[node_id], used.get(node_id, Used())
        assert n.ready
        assert k * d.cpu <= n.cpu - u.cpu + 1e-6 and k * d.memory_mb <= n.memory_mb - u.memory_mb
    assert (sum(placement.values()) == replicas) == (reasons == [])
    shuffled = list(nodes)
    rnd.shuffle(shuffled)
    if len({n.name for n in nodes}) == len(nodes):  # first fit orders by name alone
        assert place(shuffled, d, replicas, used) == (placement, reasons)
