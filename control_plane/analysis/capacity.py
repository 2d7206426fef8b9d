"""Whole-plan capacity check: do all services of a plan fit together?

`analyse` checks one service at a time, so ten services that each fit on an edge box can still,
together, need more than it has.  `check_plan` packs every replica of every service onto the nodes
that service may use (first-fit decreasing by memory, then cpu, then GPUs; nodes in name order),
and reports each service left with replicas that found no room, naming the services that compete
for the same nodes and the shortfall in total (demand against free capacity), so the message says
how much is missing even when the total would fit and only the packing failed.

A service that no node can run at all is left to `analyse` (its violations say why) and skipped here.
Pool templates (NodeView.pool != "") stand for fresh VMs of the pool's size: up to pool_vms[pool]
of them, unbounded when the pool is not named.  Deterministic: same input, same answer, whatever
the order of the nodes or services.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from control_plane.analysis.requirements import (
    INF, ServiceNeeds, Violation, _gpu_ok, _n, _names, _plural, available, free_gpus, gpus_needed, port_violations, unmet)
from control_plane.placement.types import Demand, NodeView, Used

__all__ = ["check_plan", "plan_packing"]


@dataclass
class _Bin:
    key: str  # node id, or "<template id>#<k>" for the k-th VM a pool starts
    node: NodeView
    cpu: float
    memory_mb: int
    gpus: list = field(default_factory=list)  # free GPUs
    ports: dict = field(default_factory=dict)  # fixed port -> who holds it

    def take(self, d: Demand, holder: str = "") -> bool:
        """Place one replica here if it fits."""
        need = gpus_needed(d)
        ok = [i for i, g in enumerate(self.gpus) if _gpu_ok(g, d)][:need]
        if self.cpu < d.cpu - 1e-9 or self.memory_mb < d.memory_mb or len(ok) < need or set(self.ports) & set(d.ports):
            return False
        self.cpu -= d.cpu
        self.memory_mb -= d.memory_mb
        self.gpus = [g for i, g in enumerate(self.gpus) if i not in ok]
        self.ports.update({p: holder for p in d.ports})
        return True


@dataclass
class _Packing:
    placed: dict[str, dict[str, int]]  # service -> bin key -> replicas
    unplaced: dict[str, int]  # service -> replicas that found no room
    eligible: dict[str, list[NodeView]]  # service -> nodes whose capacity and capabilities fit it
    bins: dict[str, list[_Bin]]  # node id -> its bins (one, or a pool's VMs)


def _pack(services: list[ServiceNeeds], nodes: list[NodeView], used: dict[str, Used] | None,
          pool_vms: dict[str, int] | None) -> _Packing:
    used, pool_vms = used or {}, pool_vms or {}
    avail = available(nodes)
    eligible = {s.name: [n for n in avail if not unmet(n, s.demand)] for s in services}
    bins: dict[str, list[_Bin]] = {}
    for n in avail:
        u = used.get(n.id, Used())
        bins[n.id] = [] if n.pool else [_Bin(n.id, n, n.cpu - u.cpu, n.memory_mb - u.memory_mb,
                                             list(free_gpus(n, u)), dict(u.ports))]
    # Largest replicas first; ties by service name so the input order does not matter.
    items = sorted(((s, i) for s in services if eligible[s.name] for i in range(max(s.replicas, 0))),
                   key=lambda t: (-t[0].demand.memory_mb, -t[0].demand.cpu, -gpus_needed(t[0].demand), t[0].name, t[1]))
    placed = {s.name: {} for s in services if eligible[s.name]}
    unplaced: dict[str, int] = {}
    for s, _ in items:
        b = _first_fit(s.demand, eligible[s.name], bins, pool_vms, s.name)
        if b is None:
            unplaced[s.name] = unplaced.get(s.name, 0) + 1
        else:
            placed[s.name][b.key] = placed[s.name].get(b.key, 0) + 1
    return _Packing(placed, unplaced, eligible, bins)


def _first_fit(d: Demand, nodes: list[NodeView], bins: dict[str, list[_Bin]], pool_vms: dict[str, int],
               holder: str = "") -> _Bin | None:
    for n in nodes:
        for b in bins[n.id]:
            if b.take(d, holder):
                return b
        if n.pool and len(bins[n.id]) < pool_vms.get(n.pool, INF):
            vm = _Bin(f"{n.id}#{len(bins[n.id]) + 1}", n, n.cpu, n.memory_mb, list(n.gpus))
            if vm.take(d, holder):  # a pool only starts a VM for a replica that fits on it
                bins[n.id].append(vm)
                return vm
    return None


def plan_packing(services: list[ServiceNeeds], nodes: list[NodeView], used: dict[str, Used] | None = None,
                 pool_vms: dict[str, int] | None = None) -> dict[str, dict[str, int]]:
    """The packing `check_plan` found: service -> node id -> replicas.  A pool's VMs appear as
    "<template id>#1", "#2", ... (how many VMs the plan needs); a service short of room has fewer
    replicas here than asked, and one that no node can run is absent."""
    return _pack(services, nodes, used, pool_vms).placed


def check_plan(services: list[ServiceNeeds], nodes: list[NodeView], used: dict[str, Used] | None = None,
               pool_vms: dict[str, int] | None = None) -> list[Violation]:
    """A `replicas` violation for each service with replicas that found no room; [] when all fit.
    `used`: what services outside the plan hold per node id."""
    p = _pack(services, nodes, used, pool_vms)
    if not p.unplaced:
        return []
    out = []
    for s in services:
        if p.unplaced.get(s.name) and s.demand.ports:
            out += _port_clash(s, p)
    clashed = {v.service for v in out}
    for group in _groups([s for s in services if s.name in p.placed and s.name not in clashed], p.eligible):
        if not any(s.name in p.unplaced for s in group):
            continue
        why = _shortfall(group, p.eligible, used or {}, pool_vms or {})
        for s in group:
            if k := p.unplaced.get(s.name):
                out.append(Violation(
                    "replicas", str(s.replicas),
                    f"replicas = {s.replicas}: {k} of {_plural(s.replicas, 'replica')} of {s.name} "
                    f"found no room; {why}",
                    _left(s, p), s.name))
    return out


def _port_clash(s: ServiceNeeds, p: _Packing) -> list[Violation]:
    """A fixed port every eligible node already has taken, by the plan's other workloads or by what runs."""
    nodes = [n for n in p.eligible[s.name] if not n.pool]
    if len(nodes) < len(p.eligible[s.name]):
        return []  # a pool can start a fresh VM: room is what failed, not a port
    return port_violations(s, nodes, lambda n, port: next((b.ports[port] for b in p.bins[n.id] if port in b.ports), None))


def _groups(services: list[ServiceNeeds], eligible: dict[str, list[NodeView]]) -> list[list[ServiceNeeds]]:
    """Services that compete for capacity: connected through nodes they may share."""
    parent = {s.name: s.name for s in services}

    def root(x: str) -> str:
        while parent[x] != x:
            x = parent[x]
        return x
    owner: dict[str, str] = {}
    for s in sorted(services, key=lambda s: s.name):
        for n in eligible[s.name]:
            if n.id in owner:
                a, b = sorted((root(owner[n.id]), root(s.name)))
                parent[b] = a
            else:
                owner[n.id] = s.name
    groups: dict[str, list[ServiceNeeds]] = {}
    for s in sorted(services, key=lambda s: s.name):
        groups.setdefault(root(s.name), []).append(s)
    return list(groups.values())


def _qty(x: float, unit: str) -> str:
    return _plural(int(x), "GPU") if unit == "GPU" and x != INF else f"{_n(x)} {unit}"


def _amount(group: list[ServiceNeeds], per, unit: str) -> str:
    """'6 x 512 MiB' when every replica asks the same, else the total."""
    sizes = {per(s.demand) for s in group if s.replicas > 0}
    count = sum(max(s.replicas, 0) for s in group)
    total = sum(per(s.demand) * max(s.replicas, 0) for s in group)
    return f"{count} x {_n(sizes.pop())} {unit}" if len(sizes) == 1 and unit != "GPU" else _qty(total, unit)


def _shortfall(group: list[ServiceNeeds], eligible: dict[str, list[NodeView]], used: dict[str, Used],
               pool_vms: dict[str, int]) -> str:
    """Total demand of the group against the total free capacity of the nodes it may use."""
    nodes = {n.id: n for s in group for n in eligible[s.name]}
    nodes_sorted = sorted(nodes.values(), key=lambda n: (n.name, n.id))
    resources = [("MiB", lambda d: d.memory_mb, lambda n: n.memory_mb, lambda u: u.memory_mb),
                 ("cores", lambda d: d.cpu, lambda n: n.cpu, lambda u: u.cpu),
                 ("GPU", gpus_needed, lambda n: len(n.gpus), lambda u: u.gpus)]
    need, free, short = [], [], []
    for unit, per, cap, held in resources:
        total = sum(per(s.demand) * max(s.replicas, 0) for s in group)
        if not total:
            continue
        have = 0.0
        for n in nodes_sorted:
            if n.pool:
                have += cap(n) * pool_vms.get(n.pool, INF) if cap(n) else 0
            else:
                have += max(0, cap(n) - held(used.get(n.id, Used())))
        need.append(_amount(group, per, unit))
        free.append(_qty(have, unit))
        if total > have + 1e-9:
            short.append(_qty(round(total - have, 6), unit))
    names = ", ".join(s.name for s in group)
    head = (f"service {names} needs" if len(group) == 1 else f"services {names} need")
    tail = (f"short by {' and '.join(short)}" if short else
            "enough in total, but no single node has room left for the rest once the larger replicas are placed")
    return f"{head} {' and '.join(need)} on {_names(nodes_sorted)}, which have {' and '.join(free)} free: {tail}"


def _room(memory_mb: float, cpu: float, gpus: int, d: Demand) -> str:
    """The resources `d` asks for, e.g. '512 MiB and 0.5 cores'."""
    parts = [(d.memory_mb, f"{memory_mb} MiB"), (d.cpu, f"{_n(cpu)} cores"), (gpus_needed(d), _plural(gpus, "GPU"))]
    return " and ".join(text for asked, text in parts if asked) or "nothing"


def _left(s: ServiceNeeds, p: _Packing) -> tuple:
    """The service's 3 roomiest eligible nodes after packing, and what each has left."""
    d = s.demand

    def roomiest(n: NodeView) -> _Bin | None:
        return min(p.bins[n.id], key=lambda b: (-b.memory_mb, -b.cpu), default=None)

    def key(n: NodeView):
        b = roomiest(n)
        return (b is None, -(b.memory_mb if b else 0), -(b.cpu if b else 0), n.name, n.id)

    out = []
    for n in sorted(p.eligible[s.name], key=key)[:3]:
        b = roomiest(n)
        if b is None:
            out.append((n.name, f"pool {n.pool} may start no VM"))
            continue
        what = f"the roomiest of the {len(p.bins[n.id])} VMs of pool {n.pool} " if n.pool else ""
        out.append((n.name, f"{what}has {_room(b.memory_mb, b.cpu, len(b.gpus), d)} left after the plan's "
                            f"other replicas, needs {_room(d.memory_mb, d.cpu, gpus_needed(d), d)}"))
    return tuple(out)
