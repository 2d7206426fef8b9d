"""The reconciler's decision, as Nomad's evaluate -> plan: a pure function of a snapshot.

    p = plan(snapshot, place=("service/congestion",))   # one workload created, changed or scaled
    p = plan(snapshot, rebalance=True)                   # nodes went down or joined
    p.placements   key -> node id -> replicas, for every workload whose placement changes
    p.unplaced     key -> why each node was passed over, for a workload not every replica fits
    p.starts, p.stops, p.moves

Placing goes through control_plane/placement/rank.py (feasibility filters, then ranking) on top of
what every other workload holds, services and apps alike; rebalancing moves replicas of down
nodes and makes a bounded number of improving moves (rank.rebalance). A workload that does not
fit keeps its current placement: nothing is half applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from control_plane.placement.rank import place_service, rebalance as rank_rebalance
from control_plane.reconcile.snapshot import Snapshot, Workload


@dataclass
class Plan:
    before: dict[str, dict[str, int]]  # key -> placement in the snapshot
    placements: dict[str, dict[str, int]] = field(default_factory=dict)  # key -> new placement (changed only)
    unplaced: dict[str, list[str]] = field(default_factory=dict)  # key -> reasons, node by node

    def _diff(self, sign: int) -> list[tuple[str, str, int]]:
        out = []
        for key, after in sorted(self.placements.items()):
            old = self.before.get(key, {})
            for node in sorted(set(old) | set(after)):
                delta = (after.get(node, 0) - old.get(node, 0)) * sign
                if delta > 0:
                    out.append((key, node, delta))
        return out

    @property
    def starts(self) -> list[tuple[str, str, int]]:
        """(workload key, node id, replicas to start there)."""
        return self._diff(+1)

    @property
    def stops(self) -> list[tuple[str, str, int]]:
        """(workload key, node id, replicas to stop there)."""
        return self._diff(-1)

    @property
    def moves(self) -> list[tuple[str, str, str]]:
        """(workload key, from node, to node): a stop paired with a start of the same workload."""
        out = []
        for key in sorted(self.placements):
            gone = [n for k, n, d in self.stops if k == key for _ in range(d)]
            came = [n for k, n, d in self.starts if k == key for _ in range(d)]
            out += [(key, a, b) for a, b in zip(gone, came)]
        return out


def _place(snap: Snapshot, w: Workload) -> tuple[dict[str, int], list[str]]:
    return place_service(w.key, w.demand, w.replicas, snap.nodes, snap.used(exclude={w.key}), w.prefs,
                         current=w.placement if w.keep else None, others=snap.placements(exclude=w.key))


def plan(snap: Snapshot, place: tuple = (), rebalance: bool = False, max_moves: int = 16) -> Plan:
    """Placements for the workloads named in `place` (by key, in that order, each on top of the
    others), then, with `rebalance`, for every live workload."""
    out = Plan(before={k: dict(w.placement) for k, w in snap.workloads.items()})
    for key in place:
        w = snap.workloads[key]
        placement, reasons = _place(snap, w)
        if reasons:
            out.unplaced[key] = reasons
            continue
        if placement != w.placement:
            out.placements[key] = placement
            snap = snap.with_workload(Workload(w.kind, w.name, w.demand, w.replicas, w.prefs, placement, True, w.deleting))
    if rebalance:
        live = snap.live()
        if live:
            new = rank_rebalance({w.key: (w.demand, w.replicas, w.prefs) for w in live}, snap.nodes,
                                 {w.key: w.placement for w in live}, max_moves=max_moves)
            drained = {n.id for n in snap.nodes if n.drained}
            for w in live:
                placement = _keep_on_drained({n: k for n, k in new.get(w.key, {}).items() if k}, w, drained)
                if placement != w.placement:
                    out.placements[w.key] = placement
    return out


def _keep_on_drained(placement: dict[str, int], w: Workload, drained: set[str]) -> dict[str, int]:
    """A drained node is up: what runs there and fits nowhere else keeps running there (a down
    node's replicas are gone anyway, so those are simply placed again where they fit)."""
    short = w.replicas - sum(placement.values())
    for node, k in sorted(w.placement.items()):
        if short <= 0:
            break
        if node in drained:
            keep = min(k - placement.get(node, 0), short)
            if keep > 0:
                placement[node] = placement.get(node, 0) + keep
                short -= keep
    return placement
