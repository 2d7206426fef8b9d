"""How many replicas of one size a service should run now, from its per-minute arrivals: pure.

    s = ServiceScaler(mode="predictive", lo=1, hi=8, per_replica_rpm=300, lead=2)
    n, why = s.decide(now_minute, arrivals, current)   # arrivals: [(minute, requests)], oldest first

The demand is `decide.Decider`'s (the forecast's upper bound over the lead time with the agent's
safety net and cool-down, or reactive: the last minute at 70 %, held 5 minutes), and the count the
fewest replicas of `per_replica_rpm` that take it, within [lo, hi]. The live loop decides count,
size and site together (`decide.choose`); this is the count alone, for one size and no sites.
"""

from __future__ import annotations

from control_plane.autoscale.agent import AgentConfig
from control_plane.autoscale.decide import REACTIVE_UTILISATION, Decider, choose  # noqa: F401 - re-exported
from control_plane.autoscale.optimiser import Config

MODES = ("fixed", "predictive", "reactive")


class ServiceScaler:
    def __init__(self, mode: str, lo: int, hi: int, per_replica_rpm: float, lead: int = 2,
                 cfg: AgentConfig | None = None):
        if mode not in MODES:
            raise ValueError(f"unknown scaling mode {mode!r}; one of {', '.join(MODES)}")
        self.mode, self.lo, self.hi = mode, max(lo, 1), max(hi, lo, 1)
        self.per_replica_rpm, self.lead = per_replica_rpm, lead
        self.decider = Decider(mode, max(lead, 1), cfg) if mode != "fixed" else None
        self.forecaster = self.decider.forecaster if self.decider else None

    def need(self, now: int, arrivals: list[tuple[int, float]], capacity_rpm: float, *,
             p95_ms: float = 0.0, slo_ms: float = 0.0) -> tuple[float, str]:
        """Requests per minute to provision for, held through the cool-down, and why; `now` is the
        current (unfinished) minute, `arrivals` the finished minutes with requests (missing minutes
        had none), `capacity_rpm` what runs now, `p95_ms` the last minute's (the safety net)."""
        self.decider.observe_to(now, arrivals)
        return self.decider.need(now, capacity_rpm, p95_ms, slo_ms)

    def decide(self, now: int, arrivals: list[tuple[int, float]], current: int) -> tuple[int, str]:
        """Replicas of one size for the service."""
        if self.mode == "fixed":
            return current, "fixed"
        held, why = self.need(now, arrivals, current * self.per_replica_rpm)
        n = choose(held, [Config("one", 0.0, 0, 1, self.per_replica_rpm)], None, self.lo, self.hi).replicas
        return n, f"{why}: {held:.0f} req/min needs {n} x {self.per_replica_rpm:g}"
