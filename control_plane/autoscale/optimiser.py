"""The cheapest set of replicas that serves a demand at the latency objective.

    alloc = cheapest(demand_rpm=900, configs=[Config("small", 1, 512, 1, 300), Config("large", 2, 1024, 2, 650)],
                     sites=[Site("edge-1", 2, 2048), Site("burst", 4, 8192, price_per_hour=0.17, max_vms=10)])
    alloc.replicas     # {("edge-1", "large"): 1, ("burst", "small"): 1}
    alloc.vms          # {"burst": 1}
    alloc.cost_per_hour, alloc.capacity_rpm

A configuration is what one replica gets (cpu quota, memory, workers) and how many requests a
minute it serves within the objective (its profile, measured when packaged, refined from live
metrics). A site is an enrolled node (its free capacity; free of charge) or a cloud pool (VMs of
one size at a price per hour, up to max_vms). Each unit (an owned node's room, or one VM) is
filled with a pattern of replicas (`patterns`: mixes of configs too), so a replica never straddles
VMs.

`cheapest` is the heuristic the agent runs every minute: owned nodes first, each with the pattern
of the fewest cores that covers what is left (else its fullest); then full VMs of the pool with
the lowest price per request, and for the last VM the cheapest pattern that covers the rest.
`optimum` solves the same problem exactly as an integer program (HiGHS) to measure the gap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache


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


@dataclass(frozen=True)
class Pattern:
    counts: tuple  # replicas of each config, in the order given
    capacity_rpm: float
    cores: float


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


MAX_PER_CONFIG = 256  # replicas of one config in one unit: bounds the enumeration below
MAX_PATTERNS = 20_000


@lru_cache(maxsize=4096)
def patterns(configs: tuple[Config, ...], cpu: float, mem: int) -> tuple[Pattern, ...]:
    """Every way to fill one unit (a VM, or an owned node's free room) with replicas of `configs`:
    mixes too, because one config may run out of cores while another runs out of memory (two
    0.5-core replicas, one light and one heavy, fill a VM that neither fills alone). Capped at
    MAX_PATTERNS, enumerated from the most replicas of the first config down."""
    out: list[Pattern] = []

    def fill(i: int, counts: tuple[int, ...], cpu_left: float, mem_left: int) -> None:
        if len(out) >= MAX_PATTERNS:
            return
        if i == len(configs):
            if any(counts):
                out.append(Pattern(counts, sum(n * c.capacity_rpm for n, c in zip(counts, configs)),
                                   sum(n * c.cpu for n, c in zip(counts, configs))))
            return
        c = configs[i]
        for n in range(min(per_unit(c, max(cpu_left, 0.0), max(mem_left, 0)), MAX_PER_CONFIG), -1, -1):
            fill(i + 1, counts + (n,), cpu_left - n * c.cpu, mem_left - n * c.memory_mb)

    fill(0, (), float(cpu), int(mem))
    return tuple(out)


def _fullest(pats: tuple[Pattern, ...]) -> Pattern | None:
    return max(pats, key=lambda p: (p.capacity_rpm, -p.cores), default=None)


def _cover(pats: tuple[Pattern, ...], left: float) -> Pattern | None:
    """The pattern that serves `left` with the fewest cores; on a tie the one that serves more
    (two 1-core replicas may serve more than one 2-worker one), then the fewest replicas."""
    fits = [p for p in pats if p.capacity_rpm >= left - 1e-9]
    return min(fits, key=lambda p: (p.cores, -p.capacity_rpm, sum(p.counts)), default=None)


def vm_capacity(configs: list[Config], site: Site) -> float:
    """Requests per minute one VM (or an owned node's room) serves when filled the fullest way."""
    best = _fullest(patterns(tuple(configs), site.cpu, site.memory_mb))
    return best.capacity_rpm if best else 0.0


def cheapest(demand_rpm: float, configs: list[Config], sites: list[Site]) -> Allocation:
    cfg = {c.name: c for c in configs}
    st = {s.name: s for s in sites}
    key = tuple(configs)
    out = Allocation()
    left = max(demand_rpm, 0.0)

    def take(site: Site, p: Pattern, units: int = 1) -> None:
        for n, c in zip(p.counts, configs):
            if n:
                out.replicas[(site.name, c.name)] = out.replicas.get((site.name, c.name), 0) + n * units
        if site.pool:
            out.vms[site.name] = out.vms.get(site.name, 0) + units

    # 1. Owned capacity (free): the fewest cores that cover what is left, else the fullest fill.
    for s in sorted((s for s in sites if not s.pool), key=lambda s: s.name):
        if left <= 0:
            break
        pats = patterns(key, s.cpu, s.memory_mb)
        p = _cover(pats, left) or _fullest(pats)
        if p is None:
            continue
        take(s, p)
        left -= p.capacity_rpm
    # 2. Pool VMs: full VMs of the lowest price per request, then the cheapest VM that covers the rest.
    while left > 1e-9:
        options = []
        for s in (s for s in sites if s.pool and out.vms.get(s.name, 0) < s.max_vms):
            best = _fullest(patterns(key, s.cpu, s.memory_mb))
            if best is not None:
                options.append((s.price_per_hour / best.capacity_rpm, s.name, s, best))
        if not options:
            out.short_rpm = left
            break
        _, _, s, best = min(options, key=lambda o: o[:2])
        if best.capacity_rpm < left:
            n = min(s.max_vms - out.vms.get(s.name, 0), math.floor(left / best.capacity_rpm))
            take(s, best, n)
            left -= n * best.capacity_rpm
            continue
        # the last VM: whichever single VM covers what is left for the least money
        lasts = [(o[2].price_per_hour, p.cores, -p.capacity_rpm, o[1], o[2], p) for o in options
                 if (p := _cover(patterns(key, o[2].cpu, o[2].memory_mb), left))]
        *_, s, p = min(lasts, key=lambda o: o[:4])
        take(s, p)
        left -= p.capacity_rpm
    return _summ(out, cfg, st)


def optimum(demand_rpm: float, configs: list[Config], sites: list[Site], time_limit: float = 30.0) -> Allocation:
    """The exact minimum-cost allocation (integer program, HiGHS), for measuring cheapest's gap.
    One variable per site and pattern: how many VMs of a pool are filled that way (an owned node:
    whether its room is), so replicas never straddle VMs. Ties in cost go to fewer cores."""
    import highspy

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", float(time_limit))
    key = tuple(configs)
    cols: list[tuple[Site, Pattern]] = []
    for s in sites:
        pats = patterns(key, s.cpu, s.memory_mb)
        first = h.getNumCol()
        for p in pats:
            h.addVar(0, s.max_vms if s.pool else 1)
            h.changeColIntegrality(h.getNumCol() - 1, highspy.HighsVarType.kInteger)
            h.changeColCost(h.getNumCol() - 1, s.price_per_hour + 1e-6 * p.cores)
            cols.append((s, p))
        if pats:  # at most max_vms VMs of a pool; one pattern for an owned node's room
            idx = list(range(first, h.getNumCol()))
            h.addRow(0, s.max_vms if s.pool else 1, len(idx), idx, [1.0] * len(idx))
    out = Allocation()
    if not cols:
        out.short_rpm = demand_rpm
        return out
    h.addRow(demand_rpm, highspy.kHighsInf, len(cols), list(range(len(cols))), [p.capacity_rpm for _, p in cols])
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        out.short_rpm = demand_rpm
        return out
    x = h.getSolution().col_value
    for (s, p), v in zip(cols, x):
        units = int(round(v))
        for n, c in zip(p.counts, configs):
            if n and units:
                out.replicas[(s.name, c.name)] = out.replicas.get((s.name, c.name), 0) + n * units
        if s.pool and units:
            out.vms[s.name] = out.vms.get(s.name, 0) + units
    return _summ(out, {c.name: c for c in configs}, {s.name: s for s in sites})
