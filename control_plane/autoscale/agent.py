"""The scaling agent's decisions, as pure functions over forecasts, live numbers and what runs.

    need, why = demand_to_serve(fc.upper, lead=3, live_rpm=380, capacity_rpm=400, cfg=AgentConfig())
    alloc = cheapest(need, configs, sites)                   # control_plane/autoscale/optimiser.py
    hold.add(now, alloc.capacity_rpm)                        # scale in only when lower targets held
    start, stop = vm_changes(vms_started_at, want, now, cfg) # per pool, minding paid periods

What the agent provisions for, each minute:

- predictive: the forecast's upper bound (its quantile) over the lead time, because capacity
  ordered now is ready only then (a replica from a cached bento: a minute; a new VM: its boot);
- the reactive safety net: when live arrivals pass `max_utilisation` of what runs (and, with
  `net_on_miss`, the bound the forecast had put on that minute), or live p95 passes the objective,
  enough for the arrivals seen at `max_utilisation`, right away;
- a lower target is applied only after it has held for `cooldown_min` (no flapping), and a
  cloud VM is given back only at the end of a period already paid for (`billing_min`): stopping
  it earlier saves nothing.

Optional refinements, measured in bench/autoscale (README, "What was tried"): a bound on the
lead's highest minute instead of per-step bounds (`peak`), a safety net that fires only when the
forecast missed the live minute (`expected_rpm`), and renewing a VM's paid period while a longer
look-ahead still wants it (`vm_changes(keep=...)`).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


FORECAST_QUANTILE = 0.995  # the forecast's upper bound provisioned for (bench/autoscale README: what was tried)


@dataclass(frozen=True)
class AgentConfig:
    max_utilisation: float = 0.9  # 0.85 bought VM-hours on Poisson noise (bench/autoscale README)
    cooldown_min: int = 5  # 10 cost 1-2 % more on every trace for no fewer violations (bench/autoscale README)
    billing_min: int = 60  # minimum billing period of a VM, minutes (1 for per-second billing)
    # The safety net fires only when live arrivals also beat the bound the forecast put on that
    # minute: above 90 % of capacity alone, it fired on noise the bound had already provisioned for.
    net_on_miss: bool = True


def demand_to_serve(upper, lead: int, live_rpm: float, capacity_rpm: float, cfg: AgentConfig,
                    live_p95_ms: float = 0.0, slo_ms: float = 0.0, peak: float | None = None,
                    expected_rpm: float | None = None) -> tuple[float, str]:
    """Requests per minute to provision for, and why. `peak`, when given, is the forecast's bound on
    the highest minute of the lead (Forecast.peak) and is used instead of the per-step bounds.
    `expected_rpm`, when given, is the bound an earlier forecast put on the live minute: the
    utilisation net then fires only when the forecast missed (live arrivals above it), not on the
    noise it already provisioned for."""
    ahead = list(upper[:max(lead, 1)])
    need, why = (max(ahead), f"forecast upper bound over {len(ahead)} min") if ahead else (0.0, "no forecast")
    if peak is not None and math.isfinite(peak):
        need, why = peak, f"forecast peak bound over {lead} min"
    hot = capacity_rpm > 0 and live_rpm > cfg.max_utilisation * capacity_rpm
    if expected_rpm is not None:
        hot = hot and live_rpm > expected_rpm
    slow = slo_ms > 0 and live_p95_ms > slo_ms
    if hot or slow or capacity_rpm <= 0 and live_rpm > 0:
        react = live_rpm / cfg.max_utilisation
        if react > need:
            need, why = react, ("live p95 over the objective" if slow else "live arrivals over "
                                f"{cfg.max_utilisation:.0%} of capacity") + ": reactive"
    return need, why


class Hold:
    """Targets of the last `cooldown_min` minutes: scale out at once, scale in to the highest of them."""

    def __init__(self, cooldown_min: int):
        self.recent: deque = deque()
        self.cooldown = cooldown_min

    def add(self, now: int, target: float) -> float:
        self.recent.append((now, target))
        while self.recent and self.recent[0][0] <= now - self.cooldown:
            self.recent.popleft()
        return max(t for _, t in self.recent)


def vm_changes(started: list[int], want: int, now: int, cfg: AgentConfig, keep: int = 0) -> tuple[int, list[int]]:
    """For one pool: how many VMs to start, and which running ones (indexes into `started`, their
    start minutes) to stop now. Surplus VMs stop only in the last minute of a paid period. `keep`
    is how many a longer look-ahead (e.g. Forecaster.base_ahead over the next hour) still wants:
    that many are renewed for another period rather than stopped and soon restarted, which would
    pay a new period anyway and leave the boot time uncovered. It never starts a VM by itself."""
    if want >= len(started):
        return want - len(started), []
    surplus = len(started) - max(want, keep)
    if surplus <= 0:
        return 0, []
    at_end = [i for i, s in enumerate(started) if (now - s) % cfg.billing_min == cfg.billing_min - 1]
    at_end.sort(key=lambda i: -started[i])  # the newest first
    return 0, at_end[:surplus]


def replicas_for(capacity_rpm: float, per_replica_rpm: float) -> int:
    return math.ceil(max(capacity_rpm, 0.0) / per_replica_rpm) if per_replica_rpm > 0 else 0
