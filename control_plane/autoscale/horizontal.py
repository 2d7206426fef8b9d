"""How many replicas a service should run now, from its per-minute arrivals: pure.

    s = ServiceScaler(mode="predictive", lo=1, hi=8, per_replica_rpm=300, lead=2)
    n, why = s.decide(now_minute, arrivals)      # arrivals: [(minute, requests)], oldest first

predictive: the forecaster's upper bound over the lead time (a replica starts from a cached bento
within a minute), with the agent's reactive safety net and cool-down (control_plane/autoscale/
agent.py); reactive: the last minute's arrivals at 70 % utilisation, scale-in held for 5 minutes
(as Kubernetes' HPA). Both stay within [lo, hi]. Cloud VMs follow from placement: replicas no
enrolled node can take go to pool slots (control_plane/provision).
"""

from __future__ import annotations

import math

from control_plane.autoscale.agent import FORECAST_QUANTILE, AgentConfig, Hold, demand_to_serve
from control_plane.autoscale.forecast import Forecaster

MODES = ("fixed", "predictive", "reactive")
REACTIVE_UTILISATION = 0.7


class ServiceScaler:
    def __init__(self, mode: str, lo: int, hi: int, per_replica_rpm: float, lead: int = 2,
                 cfg: AgentConfig | None = None):
        if mode not in MODES:
            raise ValueError(f"unknown scaling mode {mode!r}; one of {', '.join(MODES)}")
        self.mode, self.lo, self.hi = mode, max(lo, 1), max(hi, lo, 1)
        self.per_replica_rpm, self.lead = per_replica_rpm, lead
        self.cfg = cfg or AgentConfig()
        self.hold = Hold(self.cfg.cooldown_min if mode == "predictive" else 5)
        self.forecaster = Forecaster(horizon=max(lead, 1), quantile=FORECAST_QUANTILE) if mode == "predictive" else None
        self._seen = -1  # last minute fed to the forecaster

    def need(self, now: int, arrivals: list[tuple[int, float]], capacity_rpm: float, *,
             p95_ms: float = 0.0, slo_ms: float = 0.0) -> tuple[float, str]:
        """Requests per minute to provision for, held through the cool-down, and why; `now` is the
        current (unfinished) minute, `arrivals` the finished minutes with requests (missing minutes
        had none), `capacity_rpm` what runs now, `p95_ms` the last minute's (the safety net)."""
        counts = dict(arrivals)
        last = counts.get(now - 1, 0.0)
        if self.mode == "reactive":
            need, why = last / REACTIVE_UTILISATION, f"last minute {last:g} req at {REACTIVE_UTILISATION:.0%}"
        else:
            start = self._seen + 1 if self._seen >= 0 else (min(counts) if counts else now - 1)
            for minute in range(start, now):
                self.forecaster.observe(minute, counts.get(minute, 0.0))
                self._seen = minute
            need, why = demand_to_serve(self.forecaster.forecast().upper, self.lead, last, capacity_rpm, self.cfg,
                                        live_p95_ms=p95_ms, slo_ms=slo_ms)
        return self.hold.add(now, need), why

    def decide(self, now: int, arrivals: list[tuple[int, float]], current: int) -> tuple[int, str]:
        """Replicas of one size for the service."""
        if self.mode == "fixed":
            return current, "fixed"
        held, why = self.need(now, arrivals, current * self.per_replica_rpm)
        n = math.ceil(held / self.per_replica_rpm - 1e-9) if self.per_replica_rpm > 0 else current
        n = min(max(n, self.lo), self.hi)
        return n, f"{why}: {held:.0f} req/min needs {n} x {self.per_replica_rpm:g}"
