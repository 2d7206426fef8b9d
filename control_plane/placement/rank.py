"""Ranking placement (Nomad style): feasibility filters, then the best-ranked node for each replica.

Pure functions over plain values (types.py), deterministic: nodes are sorted by name (then id)
first, so the order they are given in never matters and ties go to the first name.

Filters: exactly `first_fit.why_not` (ready, tier, labels, arch, zone, dataset, GPUs, cpu, memory),
evaluated as vector operations over the whole fleet; the reasons it gives are what callers see.

Rank: each node that can take one more replica gets a score tuple, compared in this order, so a
criterion only decides between nodes that tie on every criterion above it:

  1. enrolled nodes before cloud pool templates (a VM costs money), then the cheapest pool;
  2. spread: fewest replicas of this service already there (a node going down takes one replica);
  3. anti-affinity: holds none of the services named in `Preferences.anti_affinity`;
  4. tier: earlier in `Preferences.prefer_tiers`;
  5. data locality: the node holds the dataset `Preferences.data`;
  6. affinity: most `Preferences.affinity` (label, value) pairs matched;
  7. zone: in `Preferences.zone`;
  8. bin packing, best fit: the node left fullest, keeping its cpu and memory shares in step
     (`_Fleet.packing`);
  9. node name.

    placement, reasons = place_service("web", Demand(cpu=0.5, memory_mb=256), 2, nodes, used={})
    placements, reasons = place_all({"web": (Demand(cpu=0.5), 2, Preferences())}, nodes)
    placements = rebalance(services, nodes, placements)     # after a node went down or joined
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from control_plane.placement.first_fit import why_not
from control_plane.placement.types import Demand, NodeView, Used

__all__ = ["Preferences", "place_service", "place_all", "rebalance"]


@dataclass(frozen=True)
class Preferences:
    """Soft wishes: they order the nodes that pass the filters, never make a node infeasible."""
    spread: bool = True  # replicas of one service on distinct nodes when possible
    prefer_tiers: tuple = ()  # earlier is better
    affinity: tuple = ()  # (label key, value) pairs preferred
    anti_affinity: tuple = ()  # service names whose nodes to avoid
    data: str = ""  # dataset name: nodes holding it (NodeView.datasets) first
    zone: str = ""  # nodes in this zone first


class _Fleet:
    """The nodes as arrays in name order (index order is the tie-break order) and what is used on
    each, so ranking one replica over 10,000 nodes is a few vector operations."""

    def __init__(self, nodes: list[NodeView], used: dict[str, Used]):
        self.nodes = sorted(nodes, key=lambda n: (n.name, n.id))
        self.index = {n.id: i for i, n in enumerate(self.nodes)}
        self.cpu = np.array([n.cpu for n in self.nodes], float)
        self.mem = np.array([n.memory_mb for n in self.nodes], float)
        self.ready = np.array([n.ready for n in self.nodes], bool)
        self.pool = np.array([bool(n.pool) for n in self.nodes], bool)
        self.price = np.array([n.price_per_hour for n in self.nodes], float)
        self.used = np.zeros((3, len(self.nodes)))  # cpu, memory, gpus
        self.ports: list[dict] = [{} for _ in self.nodes]  # fixed port -> holder, per node (apps)
        for node_id, u in used.items():
            if node_id in self.index:
                self.used[:, self.index[node_id]] += (u.cpu, u.memory_mb, u.gpus)
                self.ports[self.index[node_id]].update(u.ports)
        self._masks: dict = {}
        r = self.ready
        self.mean = tuple(max(float(a[r].mean()), 1e-9) if r.any() else 1.0 for a in (self.cpu, self.mem))
        self.total = tuple(max(float(a[r].sum()), 1e-9) for a in (self.cpu, self.mem))

    def weight(self, d: Demand) -> float:
        """What one placed replica is worth when not everything fits: its cpu and memory as shares
        of the ready fleet's (the objective bench/placement compares with the optimum)."""
        return d.cpu / self.total[0] + d.memory_mb / self.total[1]

    def size(self, d: Demand) -> float:
        """The share of an average ready node one replica takes (GPUs count whole)."""
        return d.cpu / self.mean[0] + d.memory_mb / self.mean[1] + d.gpus_held

    def mask(self, key, test, dtype=bool) -> np.ndarray:
        """test(node) for every node, computed once per key (few distinct tiers, labels, datasets)."""
        if key not in self._masks:
            self._masks[key] = np.array([test(n) for n in self.nodes], dtype=dtype)
        return self._masks[key]

    def any_of(self, kind, values, attr) -> np.ndarray:
        return np.logical_or.reduce([self.mask((kind, v), lambda n: attr(n) == v) for v in values])

    def label(self, k, v) -> np.ndarray:
        return self.mask(("label", k, v), lambda n: n.labels.get(k) == v)

    def dataset(self, name) -> np.ndarray:
        return self.mask(("data", name), lambda n: name in n.datasets)

    def gpu_table(self, d: Demand) -> np.ndarray:
        """[node, taken]: GPUs matching d among node.gpus[taken:], as why_not counts them (GPUs are
        handed out in the node's order)."""
        key = ("gpus", d.gpu_model.lower(), d.gpu_memory_mb)
        if key not in self._masks:
            table = np.zeros((len(self.nodes), max((len(n.gpus) for n in self.nodes), default=0) + 1), int)
            for j, n in enumerate(self.nodes):
                ok = [key[1] in g.model.lower() and g.memory_mb >= key[2] for g in n.gpus]
                table[j, :len(ok)] = np.cumsum(ok[::-1])[::-1]
            self._masks[key] = table
        return self._masks[key]

    def eligible(self, d: Demand) -> np.ndarray:
        """Indices of the nodes that pass every filter but capacity (which changes as replicas land)."""
        m = self.ready.copy()
        if d.tiers:
            m &= self.any_of("tier", d.tiers, lambda n: n.tier)
        for k, v in d.labels:
            m &= self.label(k, v)
        if d.arch:
            m &= self.any_of("arch", (d.arch,), lambda n: n.arch)
        if d.zone:
            m &= self.any_of("zone", (d.zone,), lambda n: n.zone)
        if d.data:
            m &= self.dataset(d.data)
        if d.binaries:
            need = frozenset(d.binaries)
            m &= self.mask(("binaries", need), lambda n: need <= n.binaries)
        if d.gpus or d.gpu_model or d.gpu_memory_mb:
            m &= self.gpu_table(d)[:, 0] >= max(d.gpus, 1)
        return np.flatnonzero(m)

    def room(self, d: Demand, i: np.ndarray) -> np.ndarray:
        """Which of the nodes i can take one more replica now: the same tests as why_not."""
        ok = np.ones(len(i), bool)
        if d.gpus or d.gpu_model or d.gpu_memory_mb:
            table = self.gpu_table(d)
            ok &= table[i, np.minimum(self.used[2, i].astype(int), table.shape[1] - 1)] >= max(d.gpus, 1)
        if d.cpu:
            ok &= self.cpu[i] - self.used[0, i] >= d.cpu - 1e-9
        if d.memory_mb:
            ok &= self.mem[i] - self.used[1, i] >= d.memory_mb
        if d.ports:  # fixed ports: one listener per port and node
            ok &= np.array([not any(p in self.ports[j] for p in d.ports) for j in i], bool)
        return ok

    def packing(self, d: Demand, i: np.ndarray) -> np.ndarray:
        """Best fit on nodes i, higher is better: the mean share of capacity used once a replica
        lands, over the resources it needs; needing cpu and memory, less twice the growth of the gap
        between the two shares: a memory-heavy replica must not fill a node's memory and strand its
        cores (or the reverse)."""
        need = [(k, v, np.maximum(cap[i], 1e-9)) for k, v, cap in ((0, d.cpu, self.cpu), (1, d.memory_mb, self.mem)) if v]
        if not need:
            return np.zeros(len(i))
        before = np.stack([self.used[k, i] / cap for k, _, cap in need])
        after = before + np.stack([v / cap for _, v, cap in need])
        score = after.mean(axis=0)
        if len(need) == 2:
            score -= 2 * (np.abs(after[0] - after[1]) - np.abs(before[0] - before[1]))
        return score

    def preference(self, i: np.ndarray, p: Preferences, avoid: np.ndarray) -> np.ndarray:
        """The static part of the score tuple (criteria 3-7) for nodes i, as one integer per node:
        a mixed-radix number, so comparing integers compares the tuples."""
        rank = np.zeros(len(i), np.int64)
        for j, t in enumerate(p.prefer_tiers):  # first listed tier gets the highest rank
            rank[self.any_of("tier", (t,), lambda n: n.tier)[i] & (rank == 0)] = len(p.prefer_tiers) - j
        terms = [(~avoid[i], 2), (rank, len(p.prefer_tiers) + 1),
                 (self.dataset(p.data)[i] if p.data else 0, 2),
                 (sum((self.label(k, v)[i] for k, v in p.affinity), np.zeros(len(i), np.int64)), len(p.affinity) + 1),
                 (self.any_of("zone", (p.zone,), lambda n: n.zone)[i] if p.zone else 0, 2)]
        key = np.zeros(len(i), np.int64)
        for value, base in terms:
            key = key * base + value
        return key

    def holding(self, placements: dict[str, dict[str, int]], names) -> np.ndarray:
        """Mask of the nodes holding a replica of any of the named services."""
        m = np.zeros(len(self.nodes), bool)
        for s in names:
            for node_id, k in placements.get(s, {}).items():
                if k > 0 and node_id in self.index:
                    m[self.index[node_id]] = True
        return m

    def choose(self, d: Demand, elig: np.ndarray, pref: np.ndarray, count: np.ndarray | None) -> int | None:
        """The best-ranked node of elig (pref aligned with it) with room for one replica, or None.
        count: this service's replicas per node, when spreading."""
        p = np.flatnonzero(self.room(d, elig))
        if p.size == 0:
            return None
        enrolled = ~self.pool[elig[p]]
        if enrolled.any():
            p = p[enrolled]
        else:  # only cloud pool templates have room: the cheapest
            price = self.price[elig[p]]
            p = p[price == price.min()]
        if count is not None:  # spread, then the preferences: each keeps the nodes tying on its best value
            p = p[count[elig[p]] == count[elig[p]].min()]
        p = p[pref[p] == pref[p].max()]
        return int(elig[p[np.argmax(self.packing(d, elig[p]))]])  # argmax: first of equals, i.e. by name

    def add(self, i: int, d: Demand, k: int = 1) -> None:
        self.used[:, i] += (k * d.cpu, k * d.memory_mb, k * d.gpus_held)
        for port in d.ports:
            if k > 0:
                self.ports[i][port] = ""
            else:
                self.ports[i].pop(port, None)

    def why_not(self, i: int, d: Demand) -> str | None:
        cpu, mem, gpus = (float(x) for x in self.used[:, i])
        return why_not(self.nodes[i], d, Used(cpu, int(mem) if mem.is_integer() else mem, int(round(gpus)), self.ports[i]))

    def reasons(self, d: Demand) -> list[str]:
        """Why each node (in name order) cannot take one more replica."""
        return [self.why_not(i, d) or "" for i in range(len(self.nodes))] or ["no node has enrolled"]

    def counts(self, placement: dict[str, int]) -> np.ndarray:
        count = np.zeros(len(self.nodes), np.int64)
        for n, k in placement.items():
            if n in self.index:
                count[self.index[n]] = k
        return count

    def place(self, d: Demand, replicas: int, p: Preferences, current: dict[str, int], avoid: np.ndarray) -> dict[str, int]:
        """Place one service on top of what is used (adding its replicas to it), as many replicas as fit."""
        count = np.zeros(len(self.nodes), np.int64)

        def take(i):
            count[i] += 1
            self.add(i, d)

        # Keep current replicas where they still fit: a move costs a restart. One per node per round,
        # so when scaling down the kept ones stay spread.
        left = {self.index[n]: k for n, k in current.items() if n in self.index and k > 0}
        while left and count.sum() < replicas:
            for i in sorted(left):
                if count.sum() < replicas and left[i] and self.why_not(i, d) is None:
                    take(i)
                    left[i] -= 1
                else:
                    left[i] = 0
            left = {i: k for i, k in left.items() if k}

        elig = self.eligible(d)
        pref = self.preference(elig, p, avoid)
        while count.sum() < replicas and (i := self.choose(d, elig, pref, count if p.spread else None)) is not None:
            take(i)
        return {self.nodes[i].id: int(count[i]) for i in np.flatnonzero(count)}


def place_service(name: str, demand: Demand, replicas: int, nodes: list[NodeView], used: dict[str, Used],
                  prefs: Preferences = Preferences(), *, current: dict[str, int] | None = None,
                  others: dict[str, dict[str, int]] | None = None) -> tuple[dict[str, int], list[str]]:
    """Replicas per node id for one service, and the reason each node was passed over (in name
    order) when not all replicas fit ([] when they did).

    used: what other services hold per node id (not this one's current replicas; not modified).
    current: this service's placement now; replicas stay on nodes that are ready and still fit.
    others: other services' placements, for anti-affinity."""
    fleet = _Fleet(nodes, used)
    avoid = fleet.holding({s: pl for s, pl in (others or {}).items() if s != name}, prefs.anti_affinity)
    placement = fleet.place(demand, replicas, prefs, current or {}, avoid)
    return placement, fleet.reasons(demand) if sum(placement.values()) < replicas else []


Services = dict  # service name -> (Demand, replicas, Preferences)


def _largest_first(services: Services, fleet: _Fleet) -> list[str]:
    """First-fit decreasing order, size measured against the capacity a service may use: big
    replicas, and replicas only a few nodes can take, go first while there is room for them."""
    total = fleet.cpu[fleet.ready].sum(), fleet.mem[fleet.ready].sum()

    def key(s):
        d, replicas, _ = services[s]
        e = fleet.eligible(d)
        share = sum(a[e].sum() / t for a, t in ((fleet.cpu, total[0]), (fleet.mem, total[1])) if t) / 2
        return -fleet.size(d) / max(share, 1e-9), -replicas, s
    return sorted(services, key=key)


def _avoid(fleet: _Fleet, services: Services, placements: dict, name: str) -> np.ndarray:
    # Anti-affinity both ways: nodes of the services this one names, and of those naming this one.
    names = set(services[name][2].anti_affinity) | {s for s in placements if name in services[s][2].anti_affinity}
    return fleet.holding(placements, sorted(names - {name}))


def place_all(services: Services, nodes: list[NodeView], used: dict[str, Used] | None = None
              ) -> tuple[dict[str, dict[str, int]], dict[str, list[str]]]:
    """Place many services from scratch, largest replicas first, then make room for replicas that
    found none by moving one replica of another service each (`_make_room`), then choose which
    replicas to leave out so more demand is placed (`_repair`). Returns placements per service,
    and the reasons for each service not fully placed."""
    fleet = _Fleet(nodes, used or {})
    out: dict[str, dict[str, int]] = {}
    order = _largest_first(services, fleet)
    for s in order:
        d, replicas, prefs = services[s]
        out[s] = fleet.place(d, replicas, prefs, {}, _avoid(fleet, services, out, s))
    short = [s for s in order if sum(out[s].values()) < services[s][1]]
    if short:
        on: dict[int, dict[str, int]] = {}  # node index -> replicas per service, for finding what to move
        for s, pl in out.items():
            for n, k in pl.items():
                on.setdefault(fleet.index[n], {})[s] = k
        for s in short:
            while sum(out[s].values()) < services[s][1] and _make_room(fleet, services, out, on, s):
                pass
        _repair(fleet, services, out, on)
    # every service, not only `short`: _repair may leave out a replica of one that was fully placed
    reasons = {s: fleet.reasons(services[s][0]) for s in order if sum(out[s].values()) < services[s][1]}
    return out, reasons


def _make_room(fleet: _Fleet, services: Services, out: dict, on: dict, s: str, tries: int = 256) -> bool:
    """One more replica of s where no node has room: on one of the first `tries` nodes in s's rank
    order, move one replica of another service to a node with room for it, if that leaves room for
    s. The moved replica never joins a node holding one of its own service when that one spreads."""
    d, _, p = services[s]
    elig = fleet.eligible(d)
    count = fleet.counts(out[s])
    pref = fleet.preference(elig, p, _avoid(fleet, services, out, s))
    rank = np.lexsort((elig, -pref, count[elig] if p.spread else 0 * elig, fleet.pool[elig]))
    for i in elig[rank[:tries]]:
        for v in sorted(set(on.get(i, {})) - {s}, key=lambda v: (fleet.size(services[v][0]), v)):
            dv, _, pv = services[v]
            fleet.add(i, dv, -1)
            if fleet.room(d, np.array([i]))[0]:
                cv = fleet.counts(out[v])
                e = fleet.eligible(dv)
                e = e[(e != i) & ((cv[e] == 0) if pv.spread else True)]
                j = fleet.choose(dv, e, fleet.preference(e, pv, _avoid(fleet, services, out, v)), cv if pv.spread else None)
                if j is not None:
                    fleet.add(j, dv)
                    fleet.add(i, d)
                    for svc, frm, to in ((v, i, j), (s, None, i)):
                        pl = out[svc]
                        if frm is not None:
                            pl[fleet.nodes[frm].id] -= 1
                            on[frm][svc] -= 1
                        pl[fleet.nodes[to].id] = pl.get(fleet.nodes[to].id, 0) + 1
                        on.setdefault(to, {})[svc] = on.get(to, {}).get(svc, 0) + 1
                    out[v] = {n: k for n, k in out[v].items() if k}
                    on[i] = {x: k for x, k in on[i].items() if k}
                    return True
            fleet.add(i, dv)
    return False


def _repair(fleet: _Fleet, services: Services, out: dict, on: dict, rounds: int = 8, tries: int = 256,
            held_max: int = 8) -> None:
    """Local search once replicas are still left out. Largest first may fill one resource and leave
    the other idle, where a different choice of what to leave out fills both. On one node at a time:
    take out up to two placed replicas, fill the node with left-out replicas (heaviest first), put
    the ones taken out elsewhere if they fit; keep the best such change when it places more weight
    (`_Fleet.weight`). Every kept change strictly adds weight, so it ends. Bounded: `rounds` passes
    over at most `tries` nodes, taking out only the `held_max` heaviest replicas of a node."""
    missing = {s: r - sum(out[s].values()) for s, (_, r, _) in services.items()}
    weight = {s: fleet.weight(services[s][0]) for s in services}
    masks: dict[str, np.ndarray] = {}

    def ok(s: str) -> np.ndarray:  # nodes passing s's filters, capacity aside
        if s not in masks:
            masks[s] = np.zeros(len(fleet.nodes), bool)
            masks[s][fleet.eligible(services[s][0])] = True
        return masks[s]

    def elsewhere(v: str, i: int) -> int | None:  # where v's replica taken off node i would go
        dv, _, pv = services[v]
        e = np.flatnonzero(ok(v))
        e = e[e != i]
        cv = fleet.counts(out[v])
        return fleet.choose(dv, e, fleet.preference(e, pv, _avoid(fleet, services, out, v)), cv if pv.spread else None)

    def try_move(i: int, taken: tuple, left: list, ok_i: np.ndarray, need: np.ndarray) -> tuple[float, list]:
        """Take `taken` off node i, fill it from `left` (ok_i: their filters on i; need: their cpu
        and memory), re-place `taken`; undo. Returns (gain in weight, steps)."""
        steps: list = [(v, i, None) for v in taken]  # (service, from node or None, to node or None)
        for v in taken:
            fleet.add(i, services[v][0], -1)
        free = [fleet.cpu[i] - fleet.used[0, i] + 1e-9, fleet.mem[i] - fleet.used[1, i]]
        for x in np.flatnonzero(ok_i & (need <= np.array(free)[:, None]).all(axis=0)):
            s, d = left[x], services[left[x]][0]
            for _ in range(missing[s] if s not in taken else 0):
                # cpu and memory as plain numbers first (cheap), then the same test as why_not (GPUs)
                if d.cpu > free[0] or d.memory_mb > free[1] or not fleet.room(d, np.array([i]))[0]:
                    break
                fleet.add(i, d)
                free[0] -= d.cpu
                free[1] -= d.memory_mb
                steps.append((s, None, i))
        gain = sum(weight[s] for s, frm, _ in steps if frm is None) - sum(weight[v] for v in taken)
        if len(steps) > len(taken):  # something was added: worth looking for room for what was taken
            for k, v in enumerate(taken):
                if (j := elsewhere(v, i)) is not None:
                    fleet.add(j, services[v][0])
                    steps[k] = (v, i, j)
                    gain += weight[v]
        for s, frm, to in reversed(steps):
            if to is not None:
                fleet.add(to, services[s][0], -1)
            if frm is not None:
                fleet.add(frm, services[s][0])
        return gain, steps

    for _ in range(rounds):
        # Left out now, heaviest first. One that a change below leaves out waits for the next round.
        left = sorted((s for s, k in missing.items() if k > 0), key=lambda s: (-weight[s], s))
        if not left:
            return
        oks = np.stack([ok(s) for s in left])
        need = np.array([[services[s][0].cpu, services[s][0].memory_mb] for s in left], float).T
        cand = np.flatnonzero(oks.any(axis=0))[:tries]
        improved = False
        for i in cand:
            i = int(i)
            ok_i = oks[:, i] & np.array([missing[s] > 0 for s in left])
            if not ok_i.any():
                continue
            held = sorted((v for v, k in on.get(i, {}).items() for _ in range(min(k, 2))),
                          key=lambda v: (-weight[v], v))[:held_max]
            sets = sorted({()} | {(v,) for v in held} | {(a, b) for x, a in enumerate(held) for b in held[x + 1:]})
            best = (1e-9, None)
            for taken in sets:
                gain, steps = try_move(i, taken, left, ok_i, need)
                if gain > best[0]:
                    best = (gain, steps)
            if best[1] is None:
                continue
            improved = True
            for s, frm, to in best[1]:  # apply: fleet, placements, node contents, what is missing
                for node, k in ((frm, -1), (to, 1)):
                    if node is None:
                        continue
                    fleet.add(node, services[s][0], k)
                    nid = fleet.nodes[node].id
                    out[s][nid] = out[s].get(nid, 0) + k
                    on.setdefault(node, {})[s] = on.get(node, {}).get(s, 0) + k
                    if not out[s][nid]:
                        del out[s][nid]
                    if not on[node][s]:
                        del on[node][s]
                missing[s] += (frm is not None) - (to is not None)
        if not improved:
            return


def rebalance(services: Services, nodes: list[NodeView], placements: dict[str, dict[str, int]],
              *, max_moves: int = 16) -> dict[str, dict[str, int]]:
    """The placements to run next, for the services given.

    1. Replicas on nodes that are down, gone or no longer fit move to other nodes; every other
       replica stays. Missing replicas (a scale-up, or none fitted before) are placed.
    2. At most max_moves improvements, and at most one per service per call, so a service's other
       replicas keep answering while one moves: a replica on a cloud pool VM moves to an enrolled
       node with room; a replica sharing a node with another of its service moves to a node holding
       none (e.g. a node that joined). Call again to continue.
    Placements of services not in `services` are dropped. Never over capacity; deterministic."""
    fleet = _Fleet(nodes, {})
    out = {s: {n: k for n, k in placements.get(s, {}).items() if k > 0 and n in fleet.index} for s in services}
    for s, pl in out.items():
        for n, k in pl.items():
            fleet.add(fleet.index[n], services[s][0], k)
    order = _largest_first(services, fleet)
    for s in order:
        d, replicas, prefs = services[s]
        for n, k in out[s].items():
            fleet.add(fleet.index[n], d, -k)
        out[s] = fleet.place(d, replicas, prefs, out[s], _avoid(fleet, services, out, s))

    moves = 0
    for s in order:
        if moves >= max_moves:
            break
        d, _, prefs = services[s]
        count = fleet.counts(out[s])
        # Pool VMs first (dearest first), then the nodes holding the most replicas of this service.
        sources = sorted(np.flatnonzero(count), key=lambda i: (not fleet.pool[i], -fleet.price[i], -count[i], i))
        for src in sources:
            if fleet.pool[src]:
                allow = ~fleet.pool
            elif prefs.spread and count[src] >= 2:
                allow = (count == 0) & ~fleet.pool
            else:
                continue
            fleet.add(src, d, -1)
            elig = fleet.eligible(d)
            elig = elig[allow[elig]]
            dst = fleet.choose(d, elig, fleet.preference(elig, prefs, _avoid(fleet, services, out, s)),
                               count if prefs.spread else None)
            if dst is None:
                fleet.add(src, d)
                continue
            fleet.add(dst, d)
            count[src] -= 1
            count[dst] += 1
            out[s] = {fleet.nodes[i].id: int(count[i]) for i in np.flatnonzero(count)}
            moves += 1
            break
    return out
