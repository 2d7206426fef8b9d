"""Property tests of ranking placement: never over capacity (cpu, memory, GPUs) and never on a node
the filters reject, also after rebalancing; every shortfall explained node by node; the same
answer for the same input in any order; replicas spread; a node going down moves only its own
replicas, so a service with replicas on two or more nodes keeps answering."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.placement.first_fit import why_not
from control_plane.placement.rank import Preferences, place_all, place_service, rebalance
from control_plane.placement.types import Demand, Gpu, NodeView, Used

FAST = settings(max_examples=60, deadline=None)
NAMES = ["web", "api", "db", "cache", "etl"]

gpus = st.lists(st.builds(Gpu, st.sampled_from(["Tesla T4", "A100"]), st.sampled_from([16384, 40960])), max_size=2).map(tuple)


@st.composite
def node_lists(draw, min_size=0, max_size=6):
    out = []
    for i in range(draw(st.integers(min_size, max_size))):
        zone = draw(st.sampled_from(["", "a", "b"]))
        out.append(NodeView(
            f"n{i}", draw(st.sampled_from(["p", "q", "r", "s"])),  # names may repeat: ties go by id
            draw(st.sampled_from(["edge", "fog", "cloud"])), {"zone": zone, "rack": draw(st.sampled_from(["r1", "r2"]))},
            draw(st.sampled_from(["x86_64", "aarch64"])), cpu=draw(st.sampled_from([0, 1, 2, 4, 8])),
            memory_mb=draw(st.sampled_from([0, 1024, 2048, 8192])), ready=draw(st.booleans() | st.just(True)),
            gpus=draw(gpus), zone=zone, datasets=tuple(draw(st.lists(st.sampled_from(["d1", "d2"]), unique=True, max_size=2))),
            pool=(pool := draw(st.sampled_from(["", "", "", "burst"]))), price_per_hour=0.5 if pool else 0.0))
    return out


demands = st.builds(
    Demand, cpu=st.sampled_from([0, 0.25, 0.5, 1, 3]), memory_mb=st.sampled_from([0, 256, 1024, 4096]),
    tiers=st.lists(st.sampled_from(["edge", "fog", "cloud"]), unique=True, max_size=2).map(tuple),
    labels=st.sampled_from([(), (("rack", "r1"),)]), arch=st.sampled_from(["", "", "x86_64"]),
    gpus=st.sampled_from([0, 0, 0, 1, 2]), gpu_model=st.sampled_from(["", "", "a100"]),
    zone=st.sampled_from(["", "", "a"]), data=st.sampled_from(["", "", "d1"]))

prefs = st.builds(
    Preferences, spread=st.booleans() | st.just(True),
    prefer_tiers=st.lists(st.sampled_from(["edge", "fog", "cloud"]), unique=True, max_size=2).map(tuple),
    affinity=st.sampled_from([(), (("rack", "r2"),), (("rack", "r1"), ("zone", "b"))]),
    anti_affinity=st.lists(st.sampled_from(NAMES), unique=True, max_size=2).map(tuple),
    data=st.sampled_from(["", "d1", "d2"]), zone=st.sampled_from(["", "a", "b"]))


@st.composite
def useds(draw, nodes):
    """What other services hold: within each node's capacity."""
    out = {}
    for n in nodes:
        if draw(st.booleans()):
            out[n.id] = Used(draw(st.sampled_from([0, n.cpu / 2, n.cpu])), draw(st.sampled_from([0, n.memory_mb // 2])),
                             draw(st.integers(0, len(n.gpus))))
    return out


services = st.dictionaries(st.sampled_from(NAMES), st.tuples(demands, st.integers(0, 4), prefs), max_size=5)


def load(placements: dict, svcs: dict, used: dict | None = None) -> dict[str, list[float]]:
    total = {n: [u.cpu, u.memory_mb, u.gpus] for n, u in (used or {}).items()}
    for s, pl in placements.items():
        d = svcs[s][0]
        for n, k in pl.items():
            t = total.setdefault(n, [0.0, 0, 0])
            t[0], t[1], t[2] = t[0] + k * d.cpu, t[1] + k * d.memory_mb, t[2] + k * d.gpus_held  # a GPU model or memory ask holds one
    return total


def assert_within_capacity(nodes, placements, svcs, used=None):
    by_id = {n.id: n for n in nodes}
    for n, (cpu, mem, g) in load(placements, svcs, used).items():
        node = by_id[n]
        assert cpu <= node.cpu + 1e-6 and mem <= node.memory_mb and g <= len(node.gpus), (n, cpu, mem, g)


def assert_allowed(nodes, placements, svcs, used=None):
    """Every replica passes the filters: down nodes and nodes failing a requirement get none."""
    by_id = {n.id: n for n in nodes}
    for s, pl in placements.items():
        d = svcs[s][0]
        for n, k in pl.items():
            assert k > 0 and by_id[n].ready
            before = load({s: {n: k - 1}}, svcs, {n: (used or {}).get(n, Used())})[n]  # others + all but the last
            assert why_not(by_id[n], d, Used(before[0], before[1], before[2])) is None


@FAST
@given(st.data())
def test_place_service_within_capacity_and_explains_every_shortfall(data):
    nodes = data.draw(node_lists())
    used = data.draw(useds(nodes))
    d, replicas, p = data.draw(demands), data.draw(st.integers(0, 5)), data.draw(prefs)
    others = {"db": {n.id: 1 for n in nodes[:2]}}
    placement, reasons = place_service("web", d, replicas, nodes, used, p, others=others)
    svcs = {"web": (d, replicas, p)}
    assert sum(placement.values()) <= replicas
    assert_within_capacity(nodes, {"web": placement}, svcs, used)
    assert_allowed(nodes, {"web": placement}, svcs, used)
    if sum(placement.values()) == replicas:
        assert reasons == []
    else:  # one reason per node, in name order, each what why_not says now: no node had room left
        final = load({"web": placement}, svcs, used)
        order = sorted(nodes, key=lambda n: (n.name, n.id))
        assert reasons == ([why_not(n, d, Used(*final.get(n.id, [0, 0, 0]))) for n in order] or ["no node has enrolled"])
        assert all(reasons)


@FAST
@given(st.data())
def test_place_service_same_answer_in_any_node_order(data):
    nodes = data.draw(node_lists())
    used = data.draw(useds(nodes))
    d, replicas, p = data.draw(demands), data.draw(st.integers(0, 5)), data.draw(prefs)
    ids = [n.id for n in nodes]
    current = {i: 1 for i in data.draw(st.lists(st.sampled_from(ids), unique=True, max_size=3))} if ids else {}
    first = place_service("web", d, replicas, nodes, used, p, current=current)
    shuffled = nodes[:]
    random.Random(data.draw(st.integers(0, 999))).shuffle(shuffled)
    assert place_service("web", d, replicas, shuffled, dict(reversed(list(used.items()))), p, current=current) == first
    assert place_service("web", d, replicas, nodes, used, p, current=current) == first


@FAST
@given(st.data())
def test_replicas_spread_when_two_enrolled_nodes_fit(data):
    nodes = data.draw(node_lists(min_size=2))
    used = data.draw(useds(nodes))
    d, replicas = data.draw(demands), data.draw(st.integers(2, 5))
    p = data.draw(prefs.map(lambda p: Preferences(**{**p.__dict__, "spread": True})))
    fits = [n for n in nodes if not n.pool and why_not(n, d, used.get(n.id, Used())) is None]
    placement, _ = place_service("web", d, replicas, nodes, used, p)
    if len(fits) >= 2:
        assert len(placement) >= 2


@FAST
@given(st.data())
def test_place_all_within_capacity_deterministic_and_explained(data):
    nodes = data.draw(node_lists())
    svcs = data.draw(services)
    placements, reasons = place_all(svcs, nodes)
    assert set(placements) == set(svcs)
    assert_within_capacity(nodes, placements, svcs)
    assert_allowed(nodes, placements, svcs)
    assert set(reasons) == {s for s, (_, r, _) in svcs.items() if sum(placements[s].values()) < r}
    for s, why in reasons.items():
        assert len(why) == max(len(nodes), 1) and all(why)
    shuffled = nodes[::-1]
    assert place_all(dict(reversed(list(svcs.items()))), shuffled) == (placements, reasons)


@FAST
@given(st.data())
def test_rebalance_within_capacity_on_live_nodes_and_deterministic(data):
    nodes = data.draw(node_lists())
    svcs = data.draw(services)
    ids = [n.id for n in nodes] + ["gone"]
    # any placements at all, even over capacity or on nodes that left: rebalance repairs them
    placements = {s: data.draw(st.dictionaries(st.sampled_from(ids), st.integers(1, 3), max_size=3)) for s in svcs}
    after = rebalance(svcs, nodes, placements, max_moves=data.draw(st.integers(0, 4)))
    assert set(after) == set(svcs)
    assert all(sum(after[s].values()) <= r for s, (_, r, _) in svcs.items())
    assert_within_capacity(nodes, after, svcs)
    assert_allowed(nodes, after, svcs)
    assert rebalance(dict(reversed(list(svcs.items()))), nodes[::-1], placements) == rebalance(svcs, nodes, placements)


@FAST
@given(st.data())
def test_node_down_moves_only_its_replicas_and_spread_services_keep_answering(data):
    nodes = data.draw(node_lists(min_size=2).map(lambda ns: [NodeView(**{**n.__dict__, "ready": True}) for n in ns]))
    svcs = data.draw(services)
    placements, _ = place_all(svcs, nodes)
    down_id = data.draw(st.sampled_from([n.id for n in nodes]))
    after_nodes = [NodeView(**{**n.__dict__, "ready": n.id != down_id}) for n in nodes]
    max_moves = data.draw(st.integers(0, 3))
    after = rebalance(svcs, after_nodes, placements, max_moves=max_moves)
    assert_within_capacity(after_nodes, after, svcs)
    assert_allowed(after_nodes, after, svcs)
    moved_by_improvement = 0
    for s, (_, replicas, _) in svcs.items():
        before = placements[s]
        live = {n: k for n, k in before.items() if n != down_id}
        lost = sum(max(k - after[s].get(n, 0), 0) for n, k in live.items())
        assert lost <= 1  # at most the one improvement move per service
        moved_by_improvement += lost
        assert sum(after[s].values()) >= sum(live.values())  # never fewer replicas than survived
        if len(before) >= 2:  # replicas on two nodes: one survives the failure and stays put
            assert any(after[s].get(n) for n in live)
    assert moved_by_improvement <= max_moves
