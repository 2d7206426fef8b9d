"""Stored history: the series the dashboard plots, kept in the store for a retention window, so a
control-plane restart loses none of them (the in-memory ServiceSeries starts over; this does not).

    history = History(store, retention_s=7 * 86400)
    history.sample(nodes, services, autoscaler)     # once a maintenance tick; writes at most once
                                                    # per minute and series (scaling at each change)
    history.drift("congestion", report, threshold)  # at each drift check (control_plane/retraining.py)
    history.get("service", "congestion", since=0, limit=1440)  -> stratum.v1.History

Series (GetHistory):
    node     per minute: cpu_percent, memory_percent, load1 (the latest heartbeat's)
    service  per minute: requests, failures, p50_ms, p95_ms, slo_ms; with autoscaling also
             forecast_rpm, capacity_rpm, replicas (the autoscaler's last decision)
    scaling  one point per change of a service's replica count or size: replicas, cpu; its reason
    drift    one point per drift check of a model: score (the largest PSI of any feature), threshold

`points()` and `changes()` are pure: what to write, from plain values.
"""

from __future__ import annotations

import logging
import math
import time

from control_plane.errors import InvalidArgument
from stratum.clock import MINUTE_S, minute_of
from stratum.durations import format_duration
from stratum.timestamps import set_timestamp
from stratum.validation import check_name, check_number, shown
from stratum.v1 import history_pb2 as h

log = logging.getLogger("stratum.history")

SERIES = ("node", "service", "scaling", "drift")
DEFAULT_LIMIT = 1440
MAX_LIMIT = 100_000
RECENT_MINUTES = 5  # service minutes rewritten at each sample: nodes report a minute once it has ended


def _finite(values: dict) -> dict[str, float]:
    """JSON and protobuf both take these: NaN and infinities are left out (a percentile of nothing)."""
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(float(v))}


def node_points(nodes, minute: int) -> list[tuple[str, str, float, dict]]:
    """One row per node that has reported utilisation: (series, key, time, doc)."""
    out = []
    for n in nodes:
        u = n.utilisation
        # A node between its session's start and its first heartbeat has no reading yet: zeros stored
        # for it would hold the whole minute (the first point of a minute is the one kept).
        if not n.HasField("last_heartbeat") or not n.HasField("utilisation"):
            continue
        out.append(("node", n.name, minute * MINUTE_S, {"values": _finite(
            {"cpu_percent": u.cpu_percent, "memory_percent": u.memory_percent, "load1": u.load1}),
            "notes": {"state": n.state}}))
    return out


def service_points(name: str, points: list[dict], slo_ms: float, decision: dict | None) -> list[tuple[str, str, float, dict]]:
    """The recent minutes of one service, with the autoscaler's view on the minute it decided for."""
    out = []
    for p in points[-RECENT_MINUTES:]:
        values = {"requests": p["requests"], "failures": p["failures"], "p50_ms": p["p50_ms"], "p95_ms": p["p95_ms"]}
        if slo_ms:
            values["slo_ms"] = slo_ms
        out.append(["service", name, p["minute"] * MINUTE_S, {"values": values, "notes": {}}])
    if decision is not None:
        at = int(decision["minute"]) * MINUTE_S
        row = next((r for r in out if r[2] == at), None)
        if row is None:
            row = ["service", name, at, {"values": {"requests": 0, "failures": 0}, "notes": {}}]
            if slo_ms:
                row[3]["values"]["slo_ms"] = slo_ms
            out.append(row)
        row[3]["values"].update(forecast_rpm=decision.get("forecast_rpm"), capacity_rpm=decision.get("capacity_rpm"),
                                replicas=decision.get("replicas"))
        row[3]["notes"]["reason"] = decision.get("reason", "")
    return [(s, k, at, {"values": _finite(d["values"]), "notes": d["notes"]}) for s, k, at, d in sorted(out, key=lambda r: r[2])]


def scaling_change(before: tuple | None, doc: dict) -> tuple[tuple, dict | None]:
    """(the service's shape now, a scaling point if it differs from `before`). Shape: replicas, cpu."""
    size = doc.get("size") or {}
    # the autoscaler's count, else the spec's (control_plane/services.py: replicas_of)
    replicas = 0 if doc.get("zero") else int(doc.get("scaled") or doc.get("spec", {}).get("replicas") or 1)
    shape = (replicas, float(size.get("cpu") or 0.0))
    if before is None or before == shape:
        return shape, None
    values = {"replicas": replicas, "replicas_before": before[0]}
    if shape[1]:
        values["cpu"] = shape[1]
    return shape, {"values": values, "notes": {"reason": doc.get("scaling_reason") or ""}}


class History:
    def __init__(self, store, retention_s: float = 7 * 86400.0):
        self.store, self.retention_s = store, retention_s
        self._written: dict[str, int] = {}  # "node/<name>", "service/<name>" -> the last minute written
        self._shapes: dict[str, tuple] = {}  # service -> (replicas, cpu) last seen
        self._last_prune = 0.0

    # -- writing ------------------------------------------------------------------------------
    def sample(self, nodes, services, autoscaler=None, now: float | None = None) -> int:
        """Write what is due; returns the rows written. Blocking (store): call in a thread."""
        now = time.time() if now is None else now
        minute = minute_of(now)
        rows = []
        from stratum.v1 import control_plane_pb2 as cp

        due = [n for n in nodes.list(cp.ListNodesRequest()) if self._written.get(f"node/{n.name}") != minute]
        for row in node_points(due, minute):
            rows.append(row)
            self._written[f"node/{row[1]}"] = minute
        decisions = getattr(autoscaler, "decisions", None) or {}
        seen = set()
        for doc in services.docs():
            name = doc["name"]
            seen.add(name)
            if doc.get("deleting"):
                continue
            slo = float(doc.get("spec", {}).get("slo", {}).get("p95_latency_ms") or 0.0)
            if self._written.get(f"service/{name}") != minute:
                rows += service_points(name, services.series.points(name, RECENT_MINUTES), slo, decisions.get(name))
                self._written[f"service/{name}"] = minute
            shape, point = scaling_change(self._shapes.get(name), doc)
            if name not in self._shapes:  # first sight since this process started: the stored last point says
                last = self.store.history("scaling", name, 0.0, 1)
                if last:
                    v = last[-1][1]["values"]
                    _, point = scaling_change((int(v.get("replicas", 0)), float(v.get("cpu", 0.0))), doc)
            self._shapes[name] = shape
            if point is not None:
                rows.append(("scaling", name, now, point))
        for gone in set(self._shapes) - seen:
            del self._shapes[gone]
        self.store.add_history(rows)
        if now - self._last_prune >= 3600:
            self._last_prune = now
            pruned = self.store.prune_history(now - self.retention_s)
            if pruned:
                log.info("history pruned", extra={"rows": pruned})
        return len(rows)

    def drift(self, model: str, report: dict, threshold: float, now: float | None = None) -> None:
        """One drift check of a model: the largest PSI of any feature against the threshold."""
        scores = [f.get("psi") for f in (report.get("features") or {}).values() if f.get("psi") is not None]
        if not scores:
            return  # too few samples to judge: nothing to plot
        notes = {"reason": report.get("reason") or "", "drifted": "yes" if report.get("drifted") else "no"}
        self.store.add_history([("drift", model, time.time() if now is None else now, {
            "values": _finite({"score": max(scores), "threshold": threshold, "samples": report.get("samples")}),
            "notes": notes})])

    # -- reading ------------------------------------------------------------------------------
    def get(self, req: h.GetHistoryRequest) -> h.History:
        problems = []
        if req.series not in SERIES:
            problems.append(("series", f"unknown series {shown(req.series)}: expected {', '.join(SERIES)}"))
        problems += check_name(req.key, "key")
        problems += check_number(req.limit, "limit", 0, MAX_LIMIT, integer=True, hint="0 for 1440")
        if problems:
            raise InvalidArgument(problems)
        since = req.since.seconds + req.since.nanos / 1e9 if req.HasField("since") else 0.0
        out = h.History(retention=format_duration(self.retention_s))
        for at, doc in self.store.history(req.series, req.key, since, req.limit or DEFAULT_LIMIT):
            p = out.points.add(values=doc.get("values") or {}, notes=doc.get("notes") or {})
            set_timestamp(p.at, at)
        return out
