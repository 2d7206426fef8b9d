"""What the reconciler plans over: plain values, no I/O.

A `Workload` is anything placed on nodes, a service's replicas or an app's instances alike: what
one of them needs (`Demand`), how many are wanted, the soft preferences, and where they are now.
A `Snapshot` holds the nodes (and cloud pool templates) as placement sees them and every
workload, built by reconcile/reconciler.py from the store; tests build them by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from control_plane.placement.rank import Preferences
from control_plane.placement.types import Demand, Gpu, NodeView, Used

KINDS = ("service", "app")


def key_of(kind: str, name: str) -> str:
    """Workloads of both kinds share one namespace in placement: "service/congestion", "app/broker"."""
    return f"{kind}/{name}"


@dataclass(frozen=True)
class Workload:
    kind: str  # "service" or "app"
    name: str
    demand: Demand  # one replica or instance
    replicas: int  # how many are wanted
    prefs: Preferences = Preferences()  # anti_affinity holds workload keys (see anti_affinity_keys)
    placement: dict = field(default_factory=dict)  # node id -> replicas, as stored now
    keep: bool = True  # replicas may stay where they are (false: requirements changed, place afresh)
    deleting: bool = False

    @property
    def key(self) -> str:
        return key_of(self.kind, self.name)


def anti_affinity_keys(names) -> tuple:
    """Users name the workloads to avoid; placement compares keys, so a name stands for either kind."""
    return tuple(key_of(kind, n) for n in names for kind in KINDS)


@dataclass
class Snapshot:
    nodes: list[NodeView]  # enrolled nodes, then pool templates (one per VM a pool may start)
    workloads: dict[str, Workload]  # by key
    pool_room: dict[str, int] = field(default_factory=dict)  # more VMs each pool may start (analysis)

    def live(self) -> list[Workload]:
        return [w for w in self.workloads.values() if not w.deleting]

    def used(self, exclude=()) -> dict[str, Used]:
        """What the live workloads (but those excluded, by key) hold on each node."""
        exclude = set(exclude)
        out: dict[str, Used] = {}
        for w in self.live():
            if w.key in exclude:
                continue
            for node_id, k in w.placement.items():
                if k:
                    out.setdefault(node_id, Used()).add(w.demand, k, holder=f"{w.kind} {w.name}")
        return out

    def placements(self, exclude: str = "") -> dict[str, dict[str, int]]:
        """Placements of the live workloads but one, by key (for anti-affinity)."""
        return {w.key: w.placement for w in self.live() if w.key != exclude}

    def with_workload(self, w: Workload) -> "Snapshot":
        return Snapshot(self.nodes, {**self.workloads, w.key: w}, self.pool_room)


def node_view(n) -> NodeView:
    """A stratum.v1.Node as placement sees it."""
    c = n.capabilities
    data = tuple(sorted(x.strip() for x in n.labels.get("data", "").split(",") if x.strip()))
    # A drained node takes nothing new, and what it holds moves off it as off a down node.
    return NodeView(n.id, n.name, n.tier, dict(n.labels), c.arch, float(c.cpu_cores), int(c.memory_mb),
                    n.state == "ready" and not n.drain,
                    gpus=tuple(Gpu(g.model, int(g.memory_mb)) for g in c.gpus), zone=n.labels.get("zone", ""), datasets=data,
                    binaries=frozenset(b.name for b in c.binaries), drained=n.drain)
