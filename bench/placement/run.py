"""How fast does ranking placement place a large fleet, and how well does it pack small ones?

    python -m bench.placement.run [--services 1000] [--nodes 10000] [--instances 20] [--seed 0]

1. Scale: 1,000 services on 10,000 generated nodes (seeded: edge/fog/cloud sizes, arches, zones,
   datasets, GPUs, three cloud pool templates; services with tier, label, arch and GPU
   requirements and every kind of preference). Times `rank.place_all`, and as the baseline in the
   same run `first_fit.place` service after service. Checks that no node is over capacity. Then
   1 % of the nodes holding replicas go down: times `rebalance`, and checks that nothing is left on
   them, nothing is over capacity, and every service on two or more nodes kept a replica in place.
2. Quality: small instances (8 nodes, 12 services) solved exactly by HiGHS (an integer program
   under the same filters and capacities), three families:
   - fit:  mixed edge/fog nodes, tier requirements, the scarcer resource demanded at 90 % of
           capacity. Objective: demand placed (a replica weighs its cpu and memory as shares of
           the instance's capacity). Quality = ours / optimum.
   - over: the same at 120 %: which replicas are left out matters too.
   - bins: identical nodes (one VM size, as in a cloud pool), 70 %, every replica must be
           placed. Objective: nodes used. Quality = optimum / ours (0 when ours left one out).
   Columns: "ours" = place_all with packing alone (spread off), "ours+spread" = default
   preferences, "ours 1-by-1" = place_service one service at a time in arrival order (what the
   control plane does on each apply), "first fit" = first_fit.place in arrival order.
Prints tables, then one JSON object with every figure as the last line. Exit status 1 when the
mean quality of "ours" is under the 0.95 target in any family.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time

import highspy

from control_plane.placement import first_fit
from control_plane.placement.rank import Preferences, place_all, place_service, rebalance
from control_plane.placement.types import Demand, Gpu, NodeView, Used

TARGET = 0.95
# family: (objective, load of the scarcer resource, identical nodes)
FAMILIES = {"fit": ("fill", 0.9, False), "over": ("fill", 1.2, False), "bins": ("bins", 0.7, True)}
TIERS = {"edge": ([1, 2, 4], [1024, 2048, 4096, 8192]), "fog": ([4, 8, 16], [8192, 16384, 32768]),
         "cloud": ([8, 16, 32, 64], [32768, 65536, 131072])}
ZONES, DATASETS = "abcde", ["traffic", "weather", "video", "audio"]


def fleet(n: int, rng: random.Random) -> list[NodeView]:
    nodes = []
    for i in range(n):
        tier = rng.choices(list(TIERS), [5, 3, 2])[0]
        cpus, mems = TIERS[tier]
        gpus = tuple(Gpu(rng.choice(["NVIDIA T4", "NVIDIA A100"]), 16384) for _ in range(rng.choice([1, 2, 4]))) \
            if tier != "edge" and rng.random() < 0.1 else ()
        zone = rng.choice(ZONES)
        nodes.append(NodeView(f"n{i}", f"{tier}-{i:05d}", tier, {"zone": zone, "site": f"s{rng.randrange(20)}"},
                              rng.choices(["x86_64", "aarch64"], [4, 1])[0], cpu=rng.choice(cpus),
                              memory_mb=rng.choice(mems), ready=rng.random() > 0.02, gpus=gpus, zone=zone,
                              datasets=tuple(sorted(rng.sample(DATASETS, rng.randrange(3))))))
    for j, (size, price) in enumerate([(8, 0.34), (16, 0.68), (32, 1.36)]):  # cloud pool templates
        nodes.append(NodeView(f"pool{j}", f"burst-{size}", "cloud", {}, "x86_64", cpu=size, memory_mb=size * 4096,
                              pool="burst", price_per_hour=price))
    return nodes


def workload(n: int, rng: random.Random) -> dict:
    services = {}
    for i in range(n):
        tiers = tuple(sorted(rng.sample(list(TIERS), rng.randrange(1, 3)))) if rng.random() < 0.6 else ()
        d = Demand(cpu=rng.choice([0.25, 0.5, 1, 2, 4]), memory_mb=rng.choice([256, 512, 1024, 2048, 4096]),
                   tiers=tiers, labels=(("zone", rng.choice(ZONES)),) if rng.random() < 0.1 else (),
                   arch="aarch64" if rng.random() < 0.05 else "", gpus=int(rng.random() < 0.03))
        p = Preferences(prefer_tiers=tuple(rng.sample(list(TIERS), 2)) if rng.random() < 0.5 else (),
                        affinity=(("site", f"s{rng.randrange(20)}"),) if rng.random() < 0.2 else (),
                        anti_affinity=(f"svc-{rng.randrange(n)}",) if rng.random() < 0.2 else (),
                        data=rng.choice(DATASETS) if rng.random() < 0.3 else "",
                        zone=rng.choice(ZONES) if rng.random() < 0.3 else "")
        services[f"svc-{i}"] = (d, rng.randint(1, 5), p)
    return services


def first_fit_all(services: dict, nodes: list[NodeView]) -> dict:
    """The baseline: first_fit.place for each service in arrival order, counting what earlier ones hold."""
    used: dict[str, Used] = {}
    out = {}
    for s, (d, replicas, _) in services.items():
        out[s], _ = first_fit.place(nodes, d, replicas, used)
        hold(used, d, out[s])
    return out


def hold(used: dict[str, Used], d: Demand, placement: dict[str, int]) -> None:
    for n, k in placement.items():
        u = used.setdefault(n, Used())
        u.cpu += d.cpu * k
        u.memory_mb += d.memory_mb * k
        u.gpus += d.gpus * k


def over_capacity(services: dict, nodes: list[NodeView], placements: dict) -> list[str]:
    load: dict[str, list[float]] = {}
    for s, pl in placements.items():
        d = services[s][0]
        for n, k in pl.items():
            u = load.setdefault(n, [0.0, 0, 0])
            u[0] += d.cpu * k
            u[1] += d.memory_mb * k
            u[2] += d.gpus * k
    by_id = {n.id: n for n in nodes}
    return [n for n, (c, m, g) in load.items()
            if c > by_id[n].cpu + 1e-6 or m > by_id[n].memory_mb or g > len(by_id[n].gpus)]


def scale(n_services: int, n_nodes: int, seed: int) -> dict:
    rng = random.Random(seed)
    nodes, services = fleet(n_nodes, rng), workload(n_services, rng)
    t0 = time.perf_counter()
    ours, reasons = place_all(services, nodes)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    ff = first_fit_all(services, nodes)
    t_ff = time.perf_counter() - t0

    # 1 % of the nodes holding replicas go down: rebalance, and check every service that had
    # replicas on two or more nodes still has one where it was (it kept answering).
    holding = sorted({n for p in ours.values() for n in p})
    down = set(rng.sample(holding, max(1, len(holding) // 100)))
    after_nodes = [NodeView(**{**n.__dict__, "ready": n.ready and n.id not in down}) for n in nodes]
    t0 = time.perf_counter()
    after = rebalance(services, after_nodes, ours)
    t_rebalance = time.perf_counter() - t0
    lost = sum(k for p in ours.values() for n, k in p.items() if n in down)
    moved = sum(max(k - after[s].get(n, 0), 0) for s, p in ours.items() for n, k in p.items() if n not in down)
    answering = all(any(after[s].get(n) for n in p if n not in down) for s, p in ours.items() if len(p) >= 2)

    def spread(placements):  # of the services with two or more replicas placed, the share on two or more nodes
        multi = [s for s in services if sum(placements[s].values()) >= 2]
        return round(sum(len(placements[s]) >= 2 for s in multi) / len(multi), 3)

    return {"services": n_services, "nodes": len(nodes), "replicas": sum(r for _, r, _ in services.values()),
            "ours_s": round(t_ours, 3), "ours_ms_per_service": round(1000 * t_ours / n_services, 3),
            "first_fit_s": round(t_ff, 3), "first_fit_ms_per_service": round(1000 * t_ff / n_services, 3),
            "ours_over_first_fit_time": round(t_ours / t_ff, 2),
            "ours_placed": sum(sum(p.values()) for p in ours.values()), "ours_short_services": len(reasons),
            "first_fit_placed": sum(sum(p.values()) for p in ff.values()),
            "ours_nodes_used": len({n for p in ours.values() for n in p}),
            "first_fit_nodes_used": len({n for p in ff.values() for n in p}),
            "ours_spread": spread(ours), "first_fit_spread": spread(ff),
            "ours_over_capacity": len(over_capacity(services, nodes, ours)),
            "ours_pool_replicas": sum(k for p in ours.values() for n, k in p.items() if n.startswith("pool")),
            "down_nodes": len(down), "rebalance_s": round(t_rebalance, 3), "rebalance_lost": lost, "rebalance_moved_live": moved,
            "rebalance_replicas_on_down": sum(k for p in after.values() for n, k in p.items() if n in down),
            "rebalance_over_capacity": len(over_capacity(services, after_nodes, after)),
            "rebalance_placed": sum(sum(p.values()) for p in after.values()), "kept_answering": answering}


def small(rng: random.Random, load: float, identical: bool) -> tuple[list[NodeView], dict]:
    """8 nodes and 12 services whose demand is about `load` times the capacity of the scarcer
    resource. identical: every node of one VM size (a cloud pool), all services on any node."""
    if identical:
        cpu, mem = rng.choice([(4, 8192), (8, 8192), (8, 16384), (4, 16384)])
        nodes = [NodeView(f"n{i}", f"vm-{i}", "cloud", cpu=cpu, memory_mb=mem) for i in range(8)]
    else:
        nodes = [NodeView(f"n{i}", f"node-{i}", rng.choice(["edge", "fog"]), cpu=rng.choice([2, 4, 8]),
                          memory_mb=rng.choice([2048, 4096, 8192, 16384])) for i in range(8)]
    shapes = [Demand(cpu=rng.choice([0.25, 0.5, 1, 1.5, 2, 3]), memory_mb=rng.choice([256, 512, 1024, 2048, 3072, 4096]),
                     tiers=(rng.choice(["edge", "fog"]),) if not identical and rng.random() < 0.3 else ())
              for _ in range(12)]
    replicas = [rng.randint(1, 4) for _ in shapes]
    cap_c, cap_m = sum(n.cpu for n in nodes), sum(n.memory_mb for n in nodes)
    share = max(sum(r * d.cpu for d, r in zip(shapes, replicas)) / cap_c,
                sum(r * d.memory_mb for d, r in zip(shapes, replicas)) / cap_m)
    replicas = [max(1, round(r * load / share)) for r in replicas]
    return nodes, {f"s{i:02d}": (d, r, Preferences()) for i, (d, r) in enumerate(zip(shapes, replicas))}


def optimum(h: highspy.Highs, nodes: list[NodeView], services: dict, objective: str) -> tuple[float | None, bool]:
    """Exact optimum (or the best proven bound when the time limit hits first): fill = most weighted
    demand placed, bins = fewest nodes used with every replica placed."""
    h.clearModel()
    cap_c, cap_m = sum(n.cpu for n in nodes), sum(n.memory_mb for n in nodes)
    x = {(s, n.id): h.addIntegral(lb=0, ub=r if first_fit.why_not(n, d) is None else 0)
         for s, (d, r, _) in services.items() for n in nodes}
    y = {n.id: h.addBinary() for n in nodes}
    for n in nodes:
        on = y[n.id] if objective == "bins" else 1
        h.addConstr(h.qsum(d.cpu * x[s, n.id] for s, (d, _, _) in services.items()) <= n.cpu * on)
        h.addConstr(h.qsum(d.memory_mb * x[s, n.id] for s, (d, _, _) in services.items()) <= n.memory_mb * on)
    for s, (_, r, _) in services.items():
        placed = h.qsum(x[s, n.id] for n in nodes)
        h.addConstr(placed == r if objective == "bins" else placed <= r)
    if objective == "bins":
        h.minimize(h.qsum(y.values()))
    else:
        h.maximize(h.qsum(x[s, n.id] * (d.cpu / cap_c + d.memory_mb / cap_m) for s, (d, _, _) in services.items() for n in nodes))
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kInfeasible:
        return None, True
    exact = status == highspy.HighsModelStatus.kOptimal
    info = h.getInfo()
    return (info.objective_function_value if exact else info.mip_dual_bound), exact


def value(nodes, services, placements, objective) -> float:
    if objective == "bins":  # nodes used, or infinity when a replica was left out
        if any(sum(placements.get(s, {}).values()) < r for s, (_, r, _) in services.items()):
            return float("inf")
        return len({n for p in placements.values() for n in p})
    cap_c, cap_m = sum(n.cpu for n in nodes), sum(n.memory_mb for n in nodes)
    return sum(k * (services[s][0].cpu / cap_c + services[s][0].memory_mb / cap_m)
               for s, p in placements.items() for k in p.values())


def one_at_a_time(services, nodes):
    """ours as the control plane calls it: one service at a time, in arrival order."""
    out, used = {}, {}
    for s, (d, r, p) in services.items():
        out[s], _ = place_service(s, d, r, nodes, used, p, others=out)
        hold(used, d, out[s])
    return out


def quiet_highs() -> highspy.Highs:
    """HiGHS prints a banner from C++ when constructed: keep it out of the table."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            return highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def quality(instances: int, seed: int, time_limit: float) -> list[dict]:
    h = quiet_highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", time_limit)
    h.setOptionValue("threads", 1)
    rows = []
    for family, (objective, load, identical) in FAMILIES.items():
        k = 0
        while sum(r["family"] == family for r in rows) < instances:
            rng = random.Random(f"{seed}-{family}-{k}")
            k += 1
            nodes, services = small(rng, load, identical)
            t0 = time.perf_counter()
            opt, exact = optimum(h, nodes, services, objective)
            ilp_s = time.perf_counter() - t0
            if opt is None:  # bins: not every replica fits; draw another instance
                continue
            nospread = {s: (d, r, Preferences(spread=False)) for s, (d, r, _) in services.items()}
            got = {"ours": value(nodes, services, place_all(nospread, nodes)[0], objective),
                   "ours+spread": value(nodes, services, place_all(services, nodes)[0], objective),
                   "ours 1-by-1": value(nodes, services, one_at_a_time(services, nodes), objective),
                   "first fit": value(nodes, services, first_fit_all(services, nodes), objective)}
            q = {name: round((v / opt) if objective == "fill" else (opt / v), 4) for name, v in got.items()}
            rows.append({"family": family, "instance": k - 1, "optimum": round(opt, 4), "exact": exact,
                         "ilp_s": round(ilp_s, 2), **q})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--nodes", type=int, default=10000)
    ap.add_argument("--instances", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ilp-time-limit", type=float, default=60.0)
    a = ap.parse_args(argv)

    big = scale(a.services, a.nodes, a.seed)
    print(f"scale: {big['services']} services ({big['replicas']} replicas) on {big['nodes']} nodes")
    for who, key in (("ours", "ours"), ("first fit", "first_fit")):
        print(f"  {who:9} {big[key + '_s']:7.2f} s {big[key + '_ms_per_service']:7.2f} ms/service  placed "
              f"{big[key + '_placed']}  on {big[key + '_nodes_used']} nodes  spread {big[key + '_spread']:.1%}")
    print(f"  time ours / first fit: {big['ours_over_first_fit_time']}; ours over capacity on "
          f"{big['ours_over_capacity']} nodes; {big['ours_short_services']} service(s) short")
    print(f"  {big['down_nodes']} nodes down: rebalance {big['rebalance_s']:.2f} s, {big['rebalance_lost']} replicas re-placed, "
          f"{big['rebalance_moved_live']} live ones moved, "
          f"{big['rebalance_placed']} placed, {big['rebalance_replicas_on_down']} left on down nodes, over capacity on "
          f"{big['rebalance_over_capacity']}, every service on 2+ nodes kept answering: {big['kept_answering']}")

    rows = quality(a.instances, a.seed, a.ilp_time_limit)
    names = ["ours", "ours+spread", "ours 1-by-1", "first fit"]
    print(f"\nquality against the HiGHS optimum ({a.instances} instances per family, 8 nodes x 12 services; "
          "* = time limit hit, against the proven bound)")
    print(f"{'family':7} {'#':>3} {'optimum':>8}  {'ilp s':>6} " + " ".join(f"{n:>12}" for n in names))
    for r in rows:
        print(f"{r['family']:7} {r['instance']:3d} {r['optimum']:8.3f}{' ' if r['exact'] else '*'} {r['ilp_s']:6.2f} "
              + " ".join(f"{r[n]:12.3f}" for n in names))
    summary = {}
    for family in FAMILIES:
        sel = [r for r in rows if r["family"] == family]
        summary[family] = {n: {"mean": round(statistics.mean(r[n] for r in sel), 4),
                               "min": round(min(r[n] for r in sel), 4)} for n in names}
        summary[family]["exact"] = sum(r["exact"] for r in sel)
        for stat in ("mean", "min"):
            print(f"{family:7} {stat:>4} {'':15}" + " ".join(f"{summary[family][n][stat]:12.3f}" for n in names))
    met = {f: summary[f]["ours"]["mean"] >= TARGET for f in FAMILIES}
    ok = all(met.values())
    print(f"target: mean quality of ours >= {TARGET}: " + ", ".join(f"{f} {'met' if m else 'NOT met'}" for f, m in met.items()))
    print(json.dumps({"date": time.strftime("%Y-%m-%d"), "scale": big, "quality": summary, "target": TARGET,
                      "target_met": met, "instances": rows}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
