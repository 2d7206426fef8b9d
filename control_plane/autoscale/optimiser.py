"""The cheapest set of replicas that serves a demand at the latency objective.

    alloc = cheapest(demand_rpm=900, configs=[Config("small", 1, 512, 1, 300), Config("large", 2, 1024, 2, 650)],
                     sites=[Site("edge-1", 2, 2048), Site("burst", 4, 8192, price_per_hour=0.17, max_vms=10)])
    alloc.replicas     # {("edge-1", "large"): 1, ("burst", "small"): 1}
    alloc.vms          # {"burst": 1}
    alloc.cost_per_hour, alloc.capacity_rpm

A configuration is what one replica gets (cpu quota, memory, workers) and how many requests a
minute it serves within the objective (its profile, measured when packaged, refined from live
metrics). A site is an enrolled node (its free capacity; free of charge) or a cloud pool (VMs of
one size at a price per hour, up to max_vms). Capacity is aggregated per site: the VMs of a pool
are one bin of vms x size, so a replica never straddles VMs only approximately (configs are
small next to VM sizes).

`cheapest` is the heuristic the agent runs every minute: fill owned capacity first with the
configuration that gives it the most requests, then rent the pool VMs with the lowest price per
request, and for the last, partly used VM the cheapest option that covers the rest.
`optimum` solves the same problem exactly as an integer program (HiGHS) to measure the gap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Config:
    name: str
    cpu: float
    memory_mb: int
    workers: int
    capacity_rpm: float  # requests per minute one replica serves within the objective


@dataclass(frozen=True)
class Site:
    name: str
    cpu: float  # free cores (enrolled node) or cores per VM (pool)
    memory_mb: int
    price_per_hour: float = 0.0  # per VM; 0: an enrolled node, capacity already paid for
    max_vms: int = 1  # a pool's VMs; an enrolled node is one

    @property
    def pool(self) -> bool:
        return self.price_per_hour > 0


@dataclass
class Allocation:
    replicas: dict = field(default_factory=dict)  # (site, config) -> replicas
    vms: dict = field(default_factory=dict)  # pool site -> VMs
    cost_per_hour: float = 0.0
    capacity_rpm: float = 0.0
    short_rpm: float = 0.0  # demand left unserved: nothing could take it


def per_unit(c: Config, cpu: float, mem: int) -> int:
    """How many replicas of c fit in cpu cores and mem MiB."""
    n = [math.floor(cpu / c.cpu + 1e-9) if c.cpu else 10**6, math.floor(mem / c.memory_mb) if c.memory_mb else 10**6]
    return max(min(n), 0)


def _summ(a: Allocation, configs: dict[str, Config], sites: dict[str, Site]) -> Allocation:
    a.capacity_rpm = sum(configs[c].capacity_rpm * k for (_, c), k in a.replicas.items())
    a.cost_per_hour = sum(sites[s].price_per_hour * v for s, v in a.vms.items())
    return a


def cheapest(demand_rpm: float, configs: list[Config], sites: list[Site]) -> Allocation:
    cfg = {c.name: c for c in configs}
    st = {s.name: s for s in sites}
    out = Allocation()
    left = max(demand_rpm, 0.0)
    # 1. Owned capacity: the config that serves the most there; replicas until the demand is met.
    for s in sorted((s for s in sites if not s.pool), key=lambda s: s.name):
        if left <= 0:
            break
        best = max(configs, key=lambda c: (per_unit(c, s.cpu, s.memory_mb) * c.capacity_rpm, -c.cpu, c.name))
        fit = per_unit(best, s.cpu, s.memory_mb)
        if not fit:
            continue
        # fewest replicas of any config that still covers what is left, else all that fit of the best
        options = [(math.ceil(left / c.capacity_rpm), c) for c in configs
                   if per_unit(c, s.cpu, s.memory_mb) >= math.ceil(left / c.capacity_rpm)]
        if options:
            # fewest cores; on a tie the most requests (two 1-core replicas may serve more than one 2-worker one)
            k, c = min(options, key=lambda o: (o[0] * o[1].cpu, -o[0] * o[1].capacity_rpm, o[0], o[1].name))
        else:
            k, c = fit, best
        out.replicas[(s.name, c.name)] = k
        left -= k * c.capacity_rpm
    # 2. Pool VMs: full VMs of the lowest price per request, then the cheapest cover of the rest.
    pools = [s for s in sites if s.pool]
    while left > 1e-9:
        options = []
        for s in pools:
            used = out.vms.get(s.name, 0)
            if used >= s.max_vms:
                continue
            for c in configs:
                k = per_unit(c, s.cpu, s.memory_mb)
                if k:
                    serve = k * c.capacity_rpm
                    need = min(k, math.ceil(left / c.capacity_rpm))
                    options.append((s.price_per_hour / serve, s, c, k, need, serve))
        if not options:
            out.short_rpm = left
            break
        rate, s, c, k, need, serve = min(options, key=lambda o: (o[0], o[1].name, o[2].name))
        if serve < left:
            n = min(s.max_vms - out.vms.get(s.name, 0), math.floor(left / serve))
            out.vms[s.name] = out.vms.get(s.name, 0) + n
            out.replicas[(s.name, c.name)] = out.replicas.get((s.name, c.name), 0) + n * k
            left -= n * serve
            continue
        # the last VM: whichever single VM covers what is left for the least money
        last = min(((o[1].price_per_hour, o[4] * o[2].cpu, -o[4] * o[2].capacity_rpm, o[1].name, o[2].name), o)
                   for o in options
                   if o[4] * o[2].capacity_rpm >= left - 1e-9)
        _, (_, s, c, k, need, _) = last
        out.vms[s.name] = out.vms.get(s.name, 0) + 1
        out.replicas[(s.name, c.name)] = out.replicas.get((s.name, c.name), 0) + need
        left -= need * c.capacity_rpm
    return _summ(out, cfg, st)


def optimum(demand_rpm: float, configs: list[Config], sites: list[Site], time_limit: float = 30.0) -> Allocation:
    """The exact minimum-cost allocation (integer program, HiGHS), for measuring cheapest's gap.
    Ties in cost are broken towards fewer cores."""
    import highspy

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", float(time_limit))
    inf = highspy.kHighsInf
    n_idx, v_idx = {}, {}
    for s in sites:
        for c in configs:
            n_idx[(s.name, c.name)] = h.getNumCol()
            h.addVar(0, inf)
            h.changeColIntegrality(n_idx[(s.name, c.name)], highspy.HighsVarType.kInteger)
            h.changeColCost(n_idx[(s.name, c.name)], 1e-6 * c.cpu)
        if s.pool:
            v_idx[s.name] = h.getNumCol()
            h.addVar(0, s.max_vms)
            h.changeColIntegrality(v_idx[s.name], highspy.HighsVarType.kInteger)
            h.changeColCost(v_idx[s.name], s.price_per_hour)
    idx = list(n_idx.values())
    h.addRow(demand_rpm, inf, len(idx), idx, [c.capacity_rpm for s in sites for c in configs])
    for s in sites:
        cols = [n_idx[(s.name, c.name)] for c in configs]
        for attr, cap in (("cpu", s.cpu), ("memory_mb", s.memory_mb)):
            coef = [getattr(c, attr) for c in configs]
            if s.pool:  # sum of replicas' needs <= cap x VMs
                h.addRow(-inf, 0, len(cols) + 1, cols + [v_idx[s.name]], coef + [-cap])
            else:
                h.addRow(-inf, cap, len(cols), cols, coef)
    h.run()
    out = Allocation()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        out.short_rpm = demand_rpm
        return out
    x = h.getSolution().col_value
    for key, i in n_idx.items():
        if round(x[i]):
            out.replicas[key] = int(round(x[i]))
    for s, i in v_idx.items():
        if round(x[i]):
            out.vms[s] = int(round(x[i]))
    return _summ(out, {c.name: c for c in configs}, {s.name: s for s in sites})
