"""First-fit placement of a service's replicas: feasibility filters, then first node that fits.

Pure functions over plain values, so tests drive them without processes.  Ranking (bin packing,
spread, affinity) is in rank.py, which uses these filters; this first fit is its baseline in bench/placement.

    nodes = [NodeView("node-1", "edge-1", "edge", {"zone": "a"}, "x86_64", cpu=4, memory_mb=8192, ready=True)]
    place(nodes, Demand(cpu=0.5, memory_mb=300, tiers=("edge",)), replicas=2, used={})  -> {"node-1": 2}
"""

from __future__ import annotations

from control_plane.placement.types import Demand, NodeView, Used

__all__ = ["Demand", "NodeView", "Used", "place", "why_not"]


def why_not(node: NodeView, d: Demand, used: Used | None = None) -> str | None:
    """Why this node cannot take one more replica, or None if it can."""
    used = used or Used()
    if not node.ready:
        return f"{node.name} is drained" if node.drained else f"{node.name} is down"
    if d.tiers and node.tier not in d.tiers:
        return f"{node.name} is {node.tier}, not {' or '.join(d.tiers)}"
    for k, v in d.labels:
        if node.labels.get(k) != v:
            return f"{node.name} lacks label {k}={v}"
    if d.arch and node.arch != d.arch:
        return f"{node.name} is {node.arch or 'of unknown arch'}, not {d.arch}"
    if d.zone and node.zone != d.zone:
        return f"{node.name} is in zone {node.zone or '(none)'}, not {d.zone}"
    if d.data and d.data not in node.datasets:
        return f"{node.name} does not hold dataset {d.data}"
    missing = [b for b in d.binaries if b not in node.binaries]
    if missing:
        return f"{node.name} lacks {', '.join(missing)}"
    if d.gpus or d.gpu_model or d.gpu_memory_mb:
        fitting = [g for g in node.gpus[used.gpus:] if d.gpu_model.lower() in g.model.lower()
                   and g.memory_mb >= d.gpu_memory_mb]
        if len(fitting) < max(d.gpus, 1):
            return (f"{node.name} has {len(fitting)} free GPU(s) matching "
                    f"{d.gpu_model or 'any model'}{f' with {d.gpu_memory_mb} MiB' if d.gpu_memory_mb else ''}, needs {max(d.gpus, 1)}")
    if d.cpu and node.cpu - used.cpu < d.cpu - 1e-9:
        return f"{node.name} has {node.cpu - used.cpu:g} of {node.cpu:g} cores free, needs {d.cpu:g}"
    if d.memory_mb and node.memory_mb - used.memory_mb < d.memory_mb:
        return f"{node.name} has {node.memory_mb - used.memory_mb} MiB free, needs {d.memory_mb}"
    taken = [p for p in d.ports if p in used.ports]
    if taken:
        return "; ".join(f"{node.name} has port {p} taken by {used.ports[p] or 'another instance'}" for p in taken)
    return None


def place(nodes: list[NodeView], d: Demand, replicas: int, used: dict[str, Used]) -> tuple[dict[str, int], list[str]]:
    """Replicas per node id, first fit in node-name order (all on one node while it fits), and the
    reasons each node was passed over when some replica found no room.  `used` is what other
    services already hold per node (not modified)."""
    order = sorted(nodes, key=lambda n: n.name)
    held = {n.id: Used(u.cpu, u.memory_mb, u.gpus, dict(u.ports)) for n in order for u in [used.get(n.id, Used())]}
    out: dict[str, int] = {}
    for _ in range(replicas):
        for n in order:
            if why_not(n, d, held[n.id]) is None:
                out[n.id] = out.get(n.id, 0) + 1
                held[n.id].add(d)
                break
        else:
            return out, [why_not(n, d, held[n.id]) or "" for n in order] or ["no node has enrolled"]
    return out, []
