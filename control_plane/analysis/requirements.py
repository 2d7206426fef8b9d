"""Requirement–capability analysis of one service: can any ready node or cloud pool run it, and if
not, every reason why, each with the attribute path the user typed.

Pure functions over the plain values of control_plane/placement/types.py, so the provider can ask
at `terraform plan` and tests can drive it by hand:

    analyse(ServiceNeeds("api", Demand(memory_mb=4096, tiers=("edge",))), nodes)
    -> [Violation("requirements.memory_mb", "4096",
                  "requirements.memory_mb = 4096: largest edge node is jetson-03 with 2048 MiB", ...)]

How: the requirement dimensions are applied one by one, in a fixed order, as filters over the
ready nodes and pool templates.  A filter that would leave no node is reported (against the nodes
the earlier filters kept, so the message names the best of those) and then skipped, so the
following dimensions are still checked and every unmet one is reported, not just the first.
Because a node that meets everything survives every filter, the result is [] exactly when some
node meets every requirement and the replicas fit.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Callable

from control_plane.placement.types import Demand, Gpu, NodeView, Used

__all__ = ["ServiceNeeds", "Violation", "analyse", "available", "fits", "gpus_needed", "unmet"]

INF = math.inf
_MODEL = "requirements.gpu_model"
_NO_GPU = "has no GPU"
_ALIASES = {"amd64": "x86_64", "x86_64": "amd64", "arm64": "aarch64", "aarch64": "arm64"}


@dataclass(frozen=True)
class Violation:
    path: str  # attribute path, e.g. 'requirements.labels["zone"]'
    asked: str  # the value asked for, as HCL would show it
    message: str  # "<path> = <asked>: <why, naming the best candidate>"
    candidates: tuple[tuple[str, str], ...] = ()  # (node name, why it fails), the 3 closest
    service: str = ""  # the service the violation belongs to


@dataclass(frozen=True)
class ServiceNeeds:
    name: str
    demand: Demand  # one replica
    replicas: int = 1
    model_memory_mb: int = 0  # measured RSS of one replica (0: not measured)
    model_p95_ms: float = 0  # measured p95 latency when packaged (0: not measured)
    slo_p95_ms: float = 0  # slo.p95_latency_ms (0: none)
    memory_explicit: bool = True  # requirements.memory_mb was given (else it was derived from the RSS)
    port_names: tuple = ()  # (fixed port, its name) of an app, for messages on `ports["<name>"]`
    kind: str = "service"  # "service" or "app", for messages


# -- per-node facts ------------------------------------------------------------------------------

def available(nodes: list[NodeView]) -> list[NodeView]:
    """Ready nodes and pool templates (a pool can start a VM of its size), in name order so that
    every answer is the same whatever order the nodes came in."""
    return sorted((n for n in nodes if n.ready or n.pool), key=lambda n: (n.name, n.id))


def gpus_needed(d: Demand) -> int:
    """GPUs one replica takes: asking for a model or GPU memory implies at least one."""
    return d.gpus or (1 if d.gpu_model or d.gpu_memory_mb else 0)


def _gpu_ok(g: Gpu, d: Demand, model: bool = True) -> bool:
    return (not model or d.gpu_model.lower() in g.model.lower()) and g.memory_mb >= d.gpu_memory_mb


def _zone(n: NodeView) -> str:
    return n.zone or n.labels.get("zone", "")


def free_gpus(n: NodeView, used: Used | None) -> tuple:
    """`Used.gpus` counts GPUs, not which: they are taken from the start of the node's list."""
    return n.gpus[used.gpus:] if used and not n.pool else n.gpus


def fits(n: NodeView, d: Demand, used: Used | None = None, pool_vms: dict[str, int] | None = None) -> float:
    """How many replicas node `n` can still take (INF when the demand is nothing or a pool is
    unbounded).  A pool template stands for up to pool_vms[pool] fresh VMs of its size."""
    u = Used() if n.pool or used is None else used
    counts = []
    if d.cpu > 0:
        counts.append(math.floor((n.cpu - u.cpu) / d.cpu + 1e-9))
    if d.memory_mb > 0:
        counts.append((n.memory_mb - u.memory_mb) // d.memory_mb)
    if need := gpus_needed(d):
        counts.append(sum(_gpu_ok(g, d) for g in free_gpus(n, u)) // need)
    if d.ports:  # one instance per node and fixed port
        counts.append(0 if any(p in u.ports for p in d.ports) else 1)
    per = max(0, min(counts)) if counts else INF
    if n.pool:
        vms = (pool_vms or {}).get(n.pool, INF)
        return 0 if per == 0 or vms == 0 else per * vms
    return per


# -- requirement dimensions ----------------------------------------------------------------------

@dataclass(frozen=True)
class _Dim:
    path: str
    asked: str
    meets: Callable[[NodeView, bool], bool]  # (node, strict): strict=False relaxes gpu_memory's model match
    why: Callable[[NodeView], str]  # why a node fails it
    size: Callable[[NodeView], float]  # headroom on this dimension, to rank candidates
    scope: tuple[str, str]  # (adjective, phrase) describing the nodes that pass it
    explain: Callable[[list[NodeView], str], str]  # (nodes considered, their description) -> why none passes


def _q(s: str) -> str:
    return json.dumps(s)


def _n(x: float) -> str:
    """4 -> '4', 0.5 -> '0.5', 1048576 -> '1048576' (no exponent, unlike :g)."""
    if x == INF:
        return "unlimited"
    return str(int(x)) if float(x).is_integer() else repr(round(float(x), 6))


def _plural(k: int, word: str) -> str:
    return f"{k} {word}{'' if k == 1 else 's'}"


def _here(values, what: str, none: str) -> str:
    vals = sorted({v for v in values if v})
    return f"{what} here: {', '.join(vals)}" if vals else none


def _best(nodes: list[NodeView], key) -> NodeView:
    return max(nodes, key=key)  # max keeps the first of equals: name order


def _dims(d: Demand) -> list[_Dim]:
    """The dimensions a demand asks for, in the order they are applied."""
    dims: list[_Dim] = []
    mem = lambda n: n.memory_mb  # noqa: E731 - headroom for the yes/no dimensions
    if d.tiers:
        tiers = " or ".join(d.tiers)
        dims.append(_Dim(
            "requirements.tiers", json.dumps(list(d.tiers)), lambda n, s: n.tier in d.tiers,
            lambda n: f"is {n.tier}, not {tiers}", mem, (tiers, ""),
            lambda ns, p: f"no {p} is {tiers} ({_here((n.tier for n in ns), 'tiers', '')})"))
    for k, v in d.labels:
        def label_explain(ns, p, k=k, v=v):
            return f"no {p} has label {k}={v} ({_here((n.labels.get(k) for n in ns), k, f'no {p} has a {k} label')})"
        dims.append(_Dim(
            f'requirements.labels["{k}"]', _q(v), lambda n, s, k=k, v=v: n.labels.get(k) == v,
            lambda n, k=k, v=v: f"has {k}={n.labels[k]}, not {v}" if k in n.labels else f"lacks label {k}={v}",
            mem, ("", f"labelled {k}={v}"), label_explain))
    if d.zone:
        dims.append(_Dim(
            "requirements.zone", _q(d.zone), lambda n, s: _zone(n) == d.zone,
            lambda n: f"is in zone {_zone(n)}, not {d.zone}" if _zone(n) else f"has no zone, not {d.zone}",
            mem, ("", f"in zone {d.zone}"),
            lambda ns, p: f"no {p} is in zone {d.zone} ({_here(map(_zone, ns), 'zones', f'no {p} has a zone')})"))
    if d.data:
        def data_explain(ns, p):
            held = (x for n in ns for x in n.datasets)
            return f"no {p} is near dataset {d.data} ({_here(held, 'datasets', f'no {p} holds a dataset')})"
        dims.append(_Dim(
            "requirements.data", _q(d.data), lambda n, s: d.data in n.datasets,
            lambda n: f"is not near dataset {d.data}", mem, ("", f"near dataset {d.data}"), data_explain))
    if d.binaries:
        def lacks(n):
            return [b for b in d.binaries if b not in n.binaries]

        def binaries_explain(ns, p):
            have = {b for n in ns for b in n.binaries}
            missing = [b for b in d.binaries if b not in have] or list(d.binaries)
            return (f"no {p} has {', '.join(missing)} "
                    f"({_here(have, 'programs reported', f'no {p} reports any of the programs Stratum looks for')})")
        dims.append(_Dim(
            "requirements.binaries", json.dumps(list(d.binaries)), lambda n, s: not lacks(n),
            lambda n: f"lacks {', '.join(lacks(n))}", lambda n: len(d.binaries) - len(lacks(n)),
            ("", f"with {', '.join(d.binaries)}"), binaries_explain))
    if d.arch:
        def arch_explain(ns, p):
            have = {n.arch for n in ns}
            hint = f"; did you mean {_q(_ALIASES[d.arch])}?" if _ALIASES.get(d.arch) in have else ""
            return f"no {p} is {d.arch} ({_here(have, 'arch', f'no {p} reports its arch')}){hint}"
        dims.append(_Dim(
            "requirements.arch", _q(d.arch), lambda n, s: n.arch == d.arch,
            lambda n: f"is {n.arch or 'of unknown arch'}, not {d.arch}", mem, (d.arch, ""), arch_explain))
    dims += _gpu_dims(d)
    if d.cpu:
        def cpu_explain(ns, p):
            b = _best(ns, lambda n: n.cpu)
            return f"largest {p} is {b.name} with {_n(b.cpu)} cores"
        dims.append(_Dim(
            "requirements.cpu", _n(d.cpu), lambda n, s: n.cpu >= d.cpu - 1e-9,
            lambda n: f"has {_n(n.cpu)} cores, needs {_n(d.cpu)}", lambda n: n.cpu,
            ("", f"with {_n(d.cpu)} cores"), cpu_explain))
    if d.memory_mb:
        def memory_explain(ns, p):
            b = _best(ns, mem)
            return f"largest {p} is {b.name} with {b.memory_mb} MiB"
        dims.append(_Dim(
            "requirements.memory_mb", str(d.memory_mb), lambda n, s: n.memory_mb >= d.memory_mb,
            lambda n: f"has {n.memory_mb} MiB, needs {d.memory_mb}", mem,
            ("", f"with {d.memory_mb} MiB"), memory_explain))
    return dims


def _gpu_dims(d: Demand) -> list[_Dim]:
    dims: list[_Dim] = []
    need = gpus_needed(d)
    if d.gpus:
        def gpu_explain(ns, p):
            b = _best(ns, lambda n: len(n.gpus))
            return f"the {p} with most GPUs is {b.name} with {len(b.gpus)}" if b.gpus else f"no {p} has a GPU"
        dims.append(_Dim(
            "requirements.gpu", str(d.gpus), lambda n, s: len(n.gpus) >= d.gpus,
            lambda n: f"has {_plural(len(n.gpus), 'GPU')}, needs {d.gpus}" if n.gpus else _NO_GPU,
            lambda n: len(n.gpus), ("", f"with {_plural(d.gpus, 'GPU')}"), gpu_explain))
    if d.gpu_model:
        def model_count(n):
            return sum(d.gpu_model.lower() in g.model.lower() for g in n.gpus)

        def model_explain(ns, p):
            models = (g.model for n in ns for g in n.gpus)
            return f"no {p} has {_plural(need, d.gpu_model + ' GPU')} ({_here(models, 'GPUs', f'no {p} has a GPU')})"
        dims.append(_Dim(
            _MODEL, _q(d.gpu_model), lambda n, s: model_count(n) >= need,
            lambda n: f"has {model_count(n)} {d.gpu_model} GPUs, needs {need}" if n.gpus else _NO_GPU,
            model_count, ("", f"with {d.gpu_model} GPUs"), model_explain))
    if d.gpu_memory_mb:
        def big(n, strict=True):
            # When no node has the GPU model asked for (reported already), judge the memory alone.
            return sum(_gpu_ok(g, d, model=strict) for g in n.gpus)

        def largest(n):
            return max((g.memory_mb for g in n.gpus), default=0)

        def mem_why(n):
            if not n.gpus:
                return _NO_GPU
            if largest(n) < d.gpu_memory_mb:
                return f"largest GPU has {largest(n)} MiB, needs {d.gpu_memory_mb}"
            return f"has {big(n)} GPUs with {d.gpu_memory_mb} MiB, needs {need}"

        def mem_explain(ns, p):
            b = _best(ns, largest)
            if not b.gpus:
                return f"no {p} has a GPU"
            if largest(b) < d.gpu_memory_mb:
                g = max(b.gpus, key=lambda g: g.memory_mb)
                return f"largest GPU on a {p} has {g.memory_mb} MiB ({g.model or 'GPU'} on {b.name})"
            b = _best(ns, lambda n: big(n, False))
            return f"no {p} has {need} GPUs with {d.gpu_memory_mb} MiB; {b.name} has {big(b, False)}"
        dims.append(_Dim(
            "requirements.gpu_memory_mb", str(d.gpu_memory_mb), lambda n, s: big(n, s) >= need,
            mem_why, largest, ("", f"with {d.gpu_memory_mb} MiB GPUs"), mem_explain))
    return dims


def unmet(n: NodeView, d: Demand) -> list[str]:
    """Why node `n` (by its total capacity) cannot run a replica of `d`; [] if it can."""
    return _whys(n, _dims(d))


def _whys(n: NodeView, dims: list[_Dim]) -> list[str]:
    return list(dict.fromkeys(x.why(n) for x in dims if not x.meets(n, True)))  # "has no GPU" once


def _phrase(scopes: list[tuple[str, str]]) -> str:
    """'aarch64 edge node in zone north', from the dimensions applied so far."""
    adj = [a for a, _ in reversed(scopes) if a]
    return " ".join(adj + ["node"] + [p for _, p in scopes if p])


def _names(nodes: list[NodeView], most: int = 6) -> str:
    names = [n.name for n in nodes]
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def _closest(avail: list[NodeView], dims: list[_Dim], dim: _Dim, scope: list[NodeView]) -> tuple:
    """The 3 nodes nearest to fitting: those the earlier filters kept first, then by how many
    requirements they meet, then by headroom on the failing dimension, then by name."""
    kept = {n.id for n in scope}
    met = {n.id: sum(x.meets(n, True) for x in dims) for n in avail}
    ranked = sorted(avail, key=lambda n: (n.id not in kept, -met[n.id], -dim.size(n), n.name, n.id))
    return tuple((n.name, "; ".join(_whys(n, dims))) for n in ranked[:3])


# -- the analysis --------------------------------------------------------------------------------

def analyse(needs: ServiceNeeds, nodes: list[NodeView], used: dict[str, Used] | None = None,
            pool_vms: dict[str, int] | None = None) -> list[Violation]:
    """Every way `needs` cannot be met by the ready nodes and cloud pools in `nodes`; [] if it can.
    `used`: what *other* services hold per node id (leave this service's own replicas out).
    `pool_vms`: how many more VMs each pool (by name) may start; a pool not named is unbounded."""
    d, name = needs.demand, needs.name
    out: list[Violation] = []
    avail = available(nodes)
    dims = _dims(d)
    if not avail:
        down = sorted(nodes, key=lambda n: (n.name, n.id))
        drained = [n for n in down if n.drained]
        gone = [n for n in down if not n.drained]
        why = "; ".join(x for x in (
            f"{_names(gone)} {'is' if len(gone) == 1 else 'are'} down" if gone else "",
            f"{_names(drained)} {'is' if len(drained) == 1 else 'are'} drained" if drained else "") if x) \
            or "none has enrolled"
        out.append(Violation("requirements", "", f"requirements: no ready node or cloud pool to run on ({why}); "
                             "start one with `stratum node` or declare a stratum_cloud_pool",
                             tuple((n.name, "is drained" if n.drained else "is down") for n in down[:3]), name))
    scope, scopes, failed = avail, [], set()
    for dim in dims if avail else ():
        kept = [n for n in scope if dim.meets(n, _MODEL not in failed)]
        if kept:
            scope = kept
            scopes.append(dim.scope)
            continue
        failed.add(dim.path)
        out.append(Violation(dim.path, dim.asked, f"{dim.path} = {dim.asked}: {dim.explain(scope, _phrase(scopes))}",
                             _closest(avail, dims, dim, scope), name))
    if needs.memory_explicit and 0 < d.memory_mb < needs.model_memory_mb:
        out.append(Violation("requirements.memory_mb", str(d.memory_mb),
                             f"requirements.memory_mb = {d.memory_mb}: the model needs {needs.model_memory_mb} MiB "
                             "per replica (measured when packaged)", (), name))
    if 0 < needs.slo_p95_ms < needs.model_p95_ms:
        out.append(Violation("slo.p95_latency_ms", _n(needs.slo_p95_ms),
                             f"slo.p95_latency_ms = {_n(needs.slo_p95_ms)}: the model answers in "
                             f"{_n(needs.model_p95_ms)} ms at p95 (measured when packaged)", (), name))
    ports = _ports(needs, scope, used or {}) if avail and not failed and d.ports else []
    out += ports
    if avail and not failed and not ports and needs.replicas > 0:
        out += _replicas(needs, scope, used or {}, pool_vms)
    return out


def _ports(needs: ServiceNeeds, eligible: list[NodeView], used: dict[str, Used]) -> list[Violation]:
    """Fixed ports taken on every node that meets the requirements (pool VMs start empty)."""
    if any(n.pool for n in eligible):
        return []
    return port_violations(needs, eligible, lambda n, port: (used.get(n.id) or Used()).ports.get(port))


def port_violations(needs: ServiceNeeds, nodes: list[NodeView], holder) -> list[Violation]:
    """A `ports["<name>"]` violation for each fixed port that `holder(node, port)` (who listens on
    it there, or None) says is taken on every one of `nodes`."""
    names = dict(needs.port_names)
    out = []
    for port in needs.demand.ports:
        holders = {n.name: holder(n, port) for n in nodes}
        if not holders or any(h is None for h in holders.values()):
            continue
        where = ("the only node that meets the requirements" if len(nodes) == 1
                 else f"every node that meets the requirements ({_names(nodes)})")
        by = "; ".join(f"{node} by {who or 'another instance'}" for node, who in sorted(holders.items()))
        path = f'ports["{names[port]}"]' if port in names else "ports"
        out.append(Violation(path, str(port), f"{path} = {port}: port {port} is taken on {where}: {by}",
                             tuple((node, f"port {port} taken by {who or 'another instance'}")
                                   for node, who in sorted(holders.items())[:3]), needs.name))
    return out


def _replicas(needs: ServiceNeeds, eligible: list[NodeView], used: dict[str, Used],
              pool_vms: dict[str, int] | None) -> list[Violation]:
    """More replicas than fit on the eligible nodes: even empty, or beside what others hold."""
    d, r = needs.demand, needs.replicas
    empty = {n.id: fits(n, d, None, pool_vms) for n in eligible}
    now = {n.id: fits(n, d, used.get(n.id), pool_vms) for n in eligible}
    total_empty, total_now = sum(empty.values()), sum(now.values())
    if r <= total_now:
        return []
    each = ", ".join(x for x in (d.cpu and f"{_n(d.cpu)} cores", d.memory_mb and f"{d.memory_mb} MiB",
                                 gpus_needed(d) and _plural(gpus_needed(d), "GPU")) if x)
    if r > total_empty:
        why = f"at most {_n(total_empty)} fit on the eligible nodes {_names(eligible)} even when empty ({each} each)"
    else:
        why = (f"{_n(total_now)} fit beside what other services hold on the eligible nodes {_names(eligible)} "
               f"({_n(total_empty)} when empty; {each} each)")
    ranked = sorted(eligible, key=lambda n: (-now[n.id], -empty[n.id], n.name, n.id))
    cands = tuple((n.name, f"fits {_n(empty[n.id])} when empty, {_n(now[n.id])} beside other services")
                  for n in ranked[:3])
    return [Violation("replicas", str(r), f"replicas = {r}: {why}", cands, needs.name)]
