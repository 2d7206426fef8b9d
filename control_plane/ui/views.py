"""What the dashboard's pages show, from the API's messages: pure functions, tested without a server.

    picture = overview(nodes, services, apps, pools)   # tiers -> node boxes -> what is placed there
    figure = demand_plot(history_points)                # a Plotly figure (data + layout) as plain dicts
"""

from __future__ import annotations

import datetime as dt
import json
import time

TIERS = ("cloud", "fog", "edge")
HEALTHY_APP = ("healthy", "running", "idle")


def ts(t) -> float:
    """A protobuf Timestamp as UNIX seconds (0 when unset)."""
    return t.seconds + t.nanos / 1e9 if t is not None and (t.seconds or t.nanos) else 0.0


def iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def ago(seconds: float, now: float | None = None) -> str:
    """'12s ago', '3m ago', '2h ago', '4d ago'; '-' for never."""
    if not seconds:
        return "-"
    d = max(0.0, (time.time() if now is None else now) - seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if d >= size:
            return f"{int(d // size)}{unit} ago"
    return f"{int(d)}s ago"


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s" if m < 60 else f"{m // 60}h{m % 60:02d}m"


def workload_key(kind: str, name: str) -> str:
    return f"{kind}/{name}"


def _target(name: str, apps: set[str], services: set[str]) -> str | None:
    """connects_to names an app or a service (one namespace for users)."""
    if name in apps:
        return workload_key("app", name)
    if name in services:
        return workload_key("service", name)
    return None


def overview(nodes, services, apps, pools) -> dict:
    """The application as a picture across tiers: each node with its capabilities, load and the
    replicas and app instances placed on it; links for connects_to; counts; cloud cost per hour."""
    boxes = {}
    for n in nodes:
        c, u = n.capabilities, n.utilisation
        boxes[n.id] = {"id": n.id, "name": n.name, "tier": n.tier, "state": "drained" if n.drain else n.state,
                       "cpu": c.cpu_cores, "memory_mb": c.memory_mb, "arch": c.arch, "gpus": len(c.gpus),
                       "cpu_percent": round(u.cpu_percent, 1), "memory_percent": round(u.memory_percent, 1),
                       "labels": dict(sorted(n.labels.items())), "items": []}
    counts = {"nodes": {}, "services": {}, "apps": {}, "replicas": {"healthy": 0, "failed": 0, "starting": 0},
              "instances": {"healthy": 0, "failed": 0, "starting": 0}}
    for b in boxes.values():
        counts["nodes"][b["state"]] = counts["nodes"].get(b["state"], 0) + 1
    unplaced = []
    for s in services:
        counts["services"][s.state] = counts["services"].get(s.state, 0) + 1
        for p in s.placements:
            failed = bool(p.error) and p.ready_replicas < p.replicas
            item = {"kind": "service", "name": s.spec.name, "key": workload_key("service", s.spec.name),
                    "state": "failed" if failed else "healthy" if p.ready_replicas >= p.replicas else "starting",
                    "label": f"{s.spec.name} ×{p.replicas}" if p.replicas != 1 else s.spec.name,
                    "detail": f"{p.ready_replicas}/{p.replicas} ready, version {p.version or s.version or '-'}"}
            counts["replicas"]["healthy"] += min(p.ready_replicas, p.replicas)
            counts["replicas"]["failed" if failed else "starting"] += max(0, p.replicas - p.ready_replicas)
            (boxes[p.node_id]["items"] if p.node_id in boxes else unplaced).append(item | {"node": p.node_name})
    for a in apps:
        counts["apps"][a.state] = counts["apps"].get(a.state, 0) + 1
        for i in a.instances:
            state = "healthy" if i.state in HEALTHY_APP else "failed" if i.state == "failed" else "starting"
            counts["instances"][state] += 1
            item = {"kind": "app", "name": a.spec.name, "key": workload_key("app", a.spec.name), "state": state,
                    "label": f"{a.spec.name}#{i.index}" if len(a.instances) > 1 else a.spec.name,
                    "detail": f"{a.spec.kind} app, {i.state}" + (f", {i.restarts} restarts" if i.restarts else "")}
            (boxes[i.node_id]["items"] if i.node_id in boxes else unplaced).append(item | {"node": i.node_name})
    app_names, service_names = {a.spec.name for a in apps}, {s.spec.name for s in services}
    links = []
    for kind, items in (("app", apps), ("service", services)):
        for w in items:
            for target in w.spec.connects_to:
                to = _target(target, app_names, service_names)
                if to:
                    links.append({"from": workload_key(kind, w.spec.name), "to": to})
    tiers = []
    for tier in TIERS + tuple(sorted({b["tier"] for b in boxes.values()} - set(TIERS))):
        in_tier = sorted((b for b in boxes.values() if b["tier"] == tier), key=lambda b: b["name"])
        tiers.append({"tier": tier, "nodes": in_tier})
    cost, pool_rows = 0.0, []
    for p in pools:
        running = sum(1 for v in p.vms if v.state in ("requested", "booting", "joined", "terminating"))  # billed
        per_hour = running * p.price_per_hour
        cost += per_hour
        pool_rows.append({"name": p.spec.name, "state": p.state, "vms": running, "joined": p.joined,
                          "price_per_hour": p.price_per_hour, "cost_per_hour": round(per_hour, 4), "size": p.spec.size})
    return {"tiers": tiers, "links": links, "counts": counts, "cost_per_hour": round(cost, 4), "pools": pool_rows,
            "unplaced": unplaced}


def runs_on(node_id: str, services, apps) -> list[dict]:
    """What a node runs: service replicas and app instances placed on it."""
    out = []
    for s in services:
        for p in s.placements:
            if p.node_id == node_id:
                out.append({"kind": "service", "name": s.spec.name, "what": f"{p.replicas} replica(s), {p.ready_replicas} ready",
                            "version": p.version or s.version, "endpoint": p.endpoint, "error": p.error})
    for a in apps:
        for i in a.instances:
            if i.node_id == node_id:
                out.append({"kind": "app", "name": a.spec.name, "what": f"instance {i.index}: {i.state}",
                            "version": f"spec {a.spec_version}", "endpoint": ", ".join(f"{k}={v}" for k, v in sorted(i.endpoints.items())),
                            "error": i.error})
    return sorted(out, key=lambda x: (x["kind"], x["name"]))


def filter_nodes(nodes, tier: str = "", label: str = "", state: str = "") -> list:
    """The node list's filters: tier, a label k=v (or a key alone), state (ready, down, drained)."""
    out = []
    key, _, value = label.partition("=")
    for n in nodes:
        shown_state = "drained" if n.drain else n.state
        if tier and n.tier != tier or state and shown_state != state:
            continue
        if key and (key not in n.labels or ("=" in label and n.labels[key] != value)):
            continue
        out.append(n)
    return out


# -- plots: Plotly figures as plain dicts (plotly.min.js draws them in the page) ------------------
def _layout(title: str, y: str, y2: str = "") -> dict:
    layout = {"title": {"text": title, "font": {"size": 14}}, "height": 300, "margin": {"l": 50, "r": 50, "t": 40, "b": 40},
              "xaxis": {"type": "date"}, "yaxis": {"title": {"text": y}, "rangemode": "tozero"},
              "legend": {"orientation": "h", "y": -0.25}}
    if y2:
        layout["yaxis2"] = {"title": {"text": y2}, "overlaying": "y", "side": "right", "rangemode": "tozero"}
    return layout


def _trace(points, field: str, name: str, **extra) -> dict | None:
    xs, ys = [], []
    for p in points:
        if field in p.values:
            xs.append(iso(ts(p.at)))
            ys.append(round(p.values[field], 4))
    return {"type": "scatter", "mode": "lines+markers", "name": name, "x": xs, "y": ys, **extra} if xs else None


def figure(title: str, y: str, traces: list, y2: str = "") -> dict:
    data = [t for t in traces if t is not None]
    return {"data": data, "layout": _layout(title, y, y2), "points": sum(len(t["x"]) for t in data)}


def node_plot(points) -> dict:
    return figure("CPU and memory", "%", [_trace(points, "cpu_percent", "cpu %"),
                                          _trace(points, "memory_percent", "memory %")])


def latency_plot(points) -> dict:
    return figure("Latency against the objective", "ms", [
        _trace(points, "p50_ms", "p50"), _trace(points, "p95_ms", "p95"),
        _trace(points, "slo_ms", "objective (p95)", line={"dash": "dash"}, mode="lines")])


def demand_plot(points) -> dict:
    """The autoscaler's view: requests per minute, the forecast it provisioned for, the capacity it
    provisioned, and the replica count on a second axis."""
    return figure("Requests per minute, forecast and capacity", "requests/min", [
        _trace(points, "requests", "requests/min"),
        _trace(points, "forecast_rpm", "forecast", line={"dash": "dot"}),
        _trace(points, "capacity_rpm", "provisioned capacity", line={"shape": "hv"}, mode="lines"),
        _trace(points, "replicas", "replicas", yaxis="y2", line={"shape": "hv", "width": 1}, mode="lines")],
        y2="replicas")


def drift_plot(points) -> dict:
    return figure("Input drift (largest PSI of any feature)", "PSI", [
        _trace(points, "score", "drift score"), _trace(points, "threshold", "threshold", line={"dash": "dash"}, mode="lines")])


def decisions(points) -> list[dict]:
    """Scaling decisions, newest first."""
    out = []
    for p in reversed(points):
        v = p.values
        out.append({"at": iso(ts(p.at)), "replicas_before": int(v.get("replicas_before", 0)), "replicas": int(v.get("replicas", 0)),
                    "cpu": v.get("cpu"), "reason": p.notes.get("reason", "")})
    return out


def leaderboard(version) -> list[dict]:
    return [{"algorithm": e.algorithm, "params": json.loads(e.params_json or "{}"),
             "score": round(e.score, 5) if e.HasField("score") else None, "std": round(e.std, 5), "error": e.error}
            for e in version.leaderboard]
