"""Ranking placement: one concrete case per criterion, plus keeping, reasons and rebalancing."""

from __future__ import annotations

from control_plane.placement.rank import Preferences, place_all, place_service, rebalance
from control_plane.placement.types import Demand, Gpu, NodeView, Used

NO_SPREAD = Preferences(spread=False)


def node(i, tier="edge", cpu=4, memory_mb=4096, **kw):
    return NodeView(f"n{i}", f"node-{i}", tier, cpu=cpu, memory_mb=memory_mb, **kw)


def test_best_fit_prefers_the_node_left_fullest():
    nodes = [node(1), node(2)]
    placement, reasons = place_service("a", Demand(cpu=1, memory_mb=1024), 1, nodes, {"n2": Used(2, 2048)})
    assert placement == {"n2": 1} and reasons == []  # first fit would take node-1


def test_best_fit_keeps_cpu_and_memory_in_step():
    # node-1 is cpu-rich and memory-poor: a memory-heavy replica there would strand its cores.
    nodes = [node(1, cpu=8, memory_mb=2048), node(2, cpu=4, memory_mb=8192)]
    placement, _ = place_service("a", Demand(cpu=1, memory_mb=2048), 1, nodes, {}, NO_SPREAD)
    assert placement == {"n2": 1}


def test_spread_puts_replicas_on_distinct_nodes_and_packs_without_it():
    nodes = [node(i) for i in range(3)]
    assert place_service("a", Demand(cpu=1), 3, nodes, {})[0] == {"n0": 1, "n1": 1, "n2": 1}
    assert place_service("a", Demand(cpu=1), 3, nodes, {}, NO_SPREAD)[0] == {"n0": 3}
    # more replicas than nodes: as even as it gets
    assert place_service("a", Demand(cpu=1), 4, nodes[:2], {})[0] == {"n0": 2, "n1": 2}


def test_tier_preference_in_order():
    nodes = [node(1, "edge"), node(2, "fog"), node(3, "cloud")]
    prefs = Preferences(prefer_tiers=("fog", "cloud"))
    assert place_service("a", Demand(cpu=1), 2, nodes, {}, prefs)[0] == {"n2": 1, "n3": 1}
    assert place_service("a", Demand(cpu=1), 1, nodes, {}, Preferences(prefer_tiers=("cloud", "fog")))[0] == {"n3": 1}


def test_affinity_prefers_matching_labels():
    nodes = [node(1, labels={"site": "a"}), node(2, labels={"site": "b", "rack": "r1"}), node(3, labels={"site": "b"})]
    assert place_service("a", Demand(cpu=1), 1, nodes, {}, Preferences(affinity=(("site", "b"),)))[0] == {"n2": 1}
    both = Preferences(affinity=(("site", "b"), ("rack", "r1")))
    assert place_service("a", Demand(cpu=1), 1, nodes, {}, both)[0] == {"n2": 1}
    assert place_service("a", Demand(cpu=1), 1, [nodes[0], nodes[2]], {}, both)[0] == {"n3": 1}


def test_anti_affinity_avoids_nodes_of_named_services():
    nodes = [node(1), node(2)]
    prefs = Preferences(anti_affinity=("db",))
    assert place_service("web", Demand(cpu=1), 1, nodes, {}, prefs, others={"db": {"n1": 1}})[0] == {"n2": 1}
    # a preference, not a filter: with no other node, it still lands
    assert place_service("web", Demand(cpu=1), 1, nodes[:1], {}, prefs, others={"db": {"n1": 1}})[0] == {"n1": 1}


def test_anti_affinity_works_both_ways_in_place_all():
    nodes = [node(1, cpu=8), node(2, cpu=2)]
    services = {"db": (Demand(cpu=4), 1, Preferences()),
                "web": (Demand(cpu=1), 1, Preferences(anti_affinity=("db",))),
                "cache": (Demand(cpu=1), 1, Preferences())}
    placements, reasons = place_all(services, nodes)
    assert reasons == {} and placements["db"] == {"n1": 1} and placements["web"] == {"n2": 1}
    # db is placed first (largest) and names web: web still avoids it
    services["db"] = (Demand(cpu=4), 1, Preferences(anti_affinity=("web",)))
    services["web"] = (Demand(cpu=1), 1, Preferences())
    assert place_all(services, nodes)[0]["web"] == {"n2": 1}


def test_data_locality_and_zone_preferences():
    nodes = [node(1, datasets=("weather",), zone="a"), node(2, datasets=("traffic",), zone="b"), node(3, zone="b")]
    assert place_service("a", Demand(cpu=1), 1, nodes, {}, Preferences(data="traffic"))[0] == {"n2": 1}
    assert place_service("a", Demand(cpu=1), 1, nodes, {}, Preferences(zone="a"))[0] == {"n1": 1}
    # data locality outranks zone
    assert place_service("a", Demand(cpu=1), 1, nodes, {}, Preferences(data="traffic", zone="a"))[0] == {"n2": 1}


def test_spread_outranks_preferences():
    nodes = [node(1, "fog"), node(2, "edge")]
    placement, _ = place_service("a", Demand(cpu=1), 2, nodes, {}, Preferences(prefer_tiers=("fog",)))
    assert placement == {"n1": 1, "n2": 1}


def test_cloud_pool_only_when_enrolled_nodes_are_full_and_cheapest_first():
    enrolled = node(1, cpu=2)
    pools = [node(8, "cloud", cpu=8, pool="big", price_per_hour=0.68), node(9, "cloud", cpu=8, pool="small", price_per_hour=0.34)]
    assert place_service("a", Demand(cpu=1), 2, [enrolled, *pools], {})[0] == {"n1": 2}  # stacks rather than pay
    assert place_service("a", Demand(cpu=1), 3, [enrolled, *pools], {})[0] == {"n1": 2, "n9": 1}


def test_gpu_zone_and_data_requirements_filter():
    a100 = node(1, "fog", gpus=(Gpu("NVIDIA A100", 81920),), zone="a", datasets=("traffic",))
    t4 = node(2, "fog", gpus=(Gpu("Tesla T4", 16384), Gpu("Tesla T4", 16384)), zone="b")
    assert place_service("a", Demand(cpu=1, gpus=1, gpu_model="a100"), 1, [a100, t4], {})[0] == {"n1": 1}
    assert place_service("a", Demand(cpu=1, gpus=2), 1, [a100, t4], {})[0] == {"n2": 1}
    placement, reasons = place_service("a", Demand(cpu=1, gpus=1, gpu_memory_mb=40000), 2, [a100, t4], {}, NO_SPREAD)
    assert placement == {"n1": 1} and reasons == ["node-1 has 0 free GPU(s) matching any model with 40000 MiB, needs 1",
                                                   "node-2 has 0 free GPU(s) matching any model with 40000 MiB, needs 1"]
    assert place_service("a", Demand(cpu=1, gpus=1), 3, [t4], {"n2": Used(gpus=0)})[0] == {"n2": 2}
    assert place_service("a", Demand(cpu=1, zone="b"), 1, [a100, t4], {})[0] == {"n2": 1}
    assert place_service("a", Demand(cpu=1, data="traffic"), 1, [a100, t4], {})[0] == {"n1": 1}


def test_reasons_name_every_node_when_replicas_do_not_fit():
    nodes = [node(2, cpu=2), node(1, "fog"), node(3, ready=False)]
    placement, reasons = place_service("a", Demand(cpu=2, tiers=("edge",)), 2, nodes, {})
    assert placement == {"n2": 1}
    assert reasons == ["node-1 is fog, not edge", "node-2 has 0 of 2 cores free, needs 2", "node-3 is down"]
    assert place_service("a", Demand(cpu=1), 1, [], {}) == ({}, ["no node has enrolled"])


def test_current_placement_is_kept_while_it_fits():
    nodes = [node(1), node(2), node(3, ready=False)]
    # n1 is not where a fresh placement would go (n2 is fuller), but moving is not free
    placement, _ = place_service("a", Demand(cpu=1), 1, nodes, {"n2": Used(2)}, current={"n1": 1})
    assert placement == {"n1": 1}
    # the replica on the down node moves; the other stays
    placement, _ = place_service("a", Demand(cpu=1), 2, nodes, {}, current={"n1": 1, "n3": 1})
    assert placement == {"n1": 1, "n2": 1}
    # no longer fits (others took the room): moves
    placement, _ = place_service("a", Demand(cpu=2), 1, nodes, {"n1": Used(3)}, current={"n1": 1})
    assert placement == {"n2": 1}
    # scale down keeps the kept replicas spread
    placement, _ = place_service("a", Demand(cpu=1), 2, nodes, {}, current={"n1": 2, "n2": 1})
    assert placement == {"n1": 1, "n2": 1}


def test_place_all_largest_first_and_reports_what_is_left_out():
    nodes = [node(1, cpu=4), node(2, cpu=2)]
    services = {"small": (Demand(cpu=2), 1, Preferences()), "big": (Demand(cpu=4), 1, Preferences()),
                "huge": (Demand(cpu=16), 1, Preferences())}
    placements, reasons = place_all(services, nodes)
    assert placements == {"huge": {}, "big": {"n1": 1}, "small": {"n2": 1}}  # arrival order would strand "big"
    assert reasons == {"huge": ["node-1 has 0 of 4 cores free, needs 16", "node-2 has 0 of 2 cores free, needs 16"]}


def test_place_all_makes_room_by_moving_one_replica():
    # c takes node-2, a node-0 (first by name); b, fog only, then fits nowhere until a moves to node-1.
    nodes = [NodeView("n0", "node-0", "fog", cpu=4, memory_mb=2048), NodeView("n1", "node-1", "edge", cpu=4, memory_mb=2048),
             NodeView("n2", "node-2", "fog", cpu=4, memory_mb=4096)]
    services = {"a": (Demand(cpu=3, memory_mb=2048), 1, NO_SPREAD),
                "b": (Demand(cpu=1, memory_mb=2048, tiers=("fog",)), 1, NO_SPREAD),
                "c": (Demand(cpu=3, memory_mb=3072, tiers=("fog",)), 1, NO_SPREAD)}
    assert place_all(services, nodes) == ({"c": {"n2": 1}, "a": {"n1": 1}, "b": {"n0": 1}}, {})


def test_place_all_repair_leaves_out_what_packs_worst():
    # Largest first puts "a" (3 cores, 3 GiB) on the only node: 1 core and 1 GiB stay idle and neither
    # "b" (2 cores, 2 GiB) fits. Leaving "a" out for two "b" fills the node: more demand placed.
    nodes = [node(1)]
    services = {"a": (Demand(cpu=3, memory_mb=3072), 1, NO_SPREAD), "b": (Demand(cpu=2, memory_mb=2048), 2, NO_SPREAD)}
    assert place_all(services, nodes) == ({"a": {}, "b": {"n1": 2}}, {"a": ["node-1 has 0 of 4 cores free, needs 3"]})
    # ... only when that places more: a bigger "a" (4 cores, 4 GiB) stays, and "b" is left out
    services["a"] = (Demand(cpu=4, memory_mb=4096), 1, NO_SPREAD)
    placements, reasons = place_all(services, nodes)
    assert placements == {"a": {"n1": 1}, "b": {}} and set(reasons) == {"b"}


SERVICES = {"web": (Demand(cpu=1, memory_mb=512), 2, Preferences()), "api": (Demand(cpu=1, memory_mb=512), 3, Preferences())}


def test_rebalance_moves_only_the_replicas_of_a_down_node():
    nodes = [node(1), node(2), node(3)]
    placements, _ = place_all(SERVICES, nodes)
    down = [node(1), NodeView("n2", "node-2", "edge", cpu=4, memory_mb=4096, ready=False), node(3)]
    after = rebalance(SERVICES, down, placements)
    for s, (_, replicas, _) in SERVICES.items():
        assert sum(after[s].values()) == replicas and "n2" not in after[s]
        kept = {n: k for n, k in placements[s].items() if n != "n2"}
        assert all(after[s].get(n, 0) >= k for n, k in kept.items())  # the live replicas never moved
        assert any(after[s].get(n) for n in kept)  # so the service answered throughout


def test_rebalance_spreads_onto_a_joining_node_a_bounded_number_of_replicas():
    stacked = {"web": {"n1": 2}, "api": {"n1": 3}}
    nodes = [node(1, cpu=8)]
    assert rebalance(SERVICES, nodes, stacked) == stacked  # nowhere to go
    joined = nodes + [node(2, cpu=8)]
    after = rebalance(SERVICES, joined, stacked)
    assert after == {"web": {"n1": 1, "n2": 1}, "api": {"n1": 2, "n2": 1}}  # one move per service per call
    assert rebalance(SERVICES, joined, stacked, max_moves=1) in (
        {"web": {"n1": 1, "n2": 1}, "api": {"n1": 3}}, {"web": {"n1": 2}, "api": {"n1": 2, "n2": 1}})
    assert rebalance(SERVICES, joined, after) == after  # api already on 2 nodes: stays


def test_rebalance_moves_off_cloud_pool_vms_when_an_enrolled_node_has_room():
    pool = node(9, "cloud", cpu=8, pool="burst", price_per_hour=0.34)
    services = {"web": (Demand(cpu=1), 2, Preferences())}
    placements = {"web": {"n1": 1, "n9": 1}}
    assert rebalance(services, [node(1, cpu=1), pool], placements) == placements  # no room elsewhere
    assert rebalance(services, [node(1, cpu=1), pool, node(2)], placements) == {"web": {"n1": 1, "n2": 1}}


def test_rebalance_places_missing_replicas_and_drops_deleted_services():
    after = rebalance({"web": (Demand(cpu=1), 2, Preferences())}, [node(1), node(2)], {"web": {"n1": 1}, "gone": {"n2": 4}})
    assert after == {"web": {"n1": 1, "n2": 1}}
