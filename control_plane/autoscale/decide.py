"""One scaling decision per service and minute: pure, and the same code in the live `Autoscaler`
(loop.py) and in bench/autoscale's simulator, so what the bench measures is what runs.

    d = Decider("predictive", lead=5)
    d.observe(minute, requests)                         # every finished minute, oldest first
    decision = d.decide(minute + 1, capacity_rpm, configs, sites, lo=1, hi=8)
    decision.choice.config, decision.choice.replicas    # the size and the count
    decision.choice.sites, decision.choice.vms          # where: owned nodes' room, then pool VMs

The demand (`Decider.need`): predictive, the forecast's upper bound over the lead time with the
agent's reactive safety net and cool-down (agent.py); reactive, the last minute at 70 %, scale-in
held for 5 minutes (as Kubernetes' HPA). A minute missing from the series had no requests.

The count, size and sites (`ranked`, `choose`): for each size, the optimiser's `cheapest`
replicas of that size over the sites (owned nodes' free room first, then pool VMs by price per
request); one size per service, as a service's replicas all run one size. Sizes that take the
demand within [lo, hi] come first, cheapest first; on equal cost, the fewest cores reserved (the
scheduler packs other work into the rest), then more replicas (adding one, or changing a quota,
restarts nothing), then fewer workers. Then, for when none takes it, the sizes at their most
replicas that fit, most capacity first. Without sites (`sites=None`) there is no room to model: the fewest
replicas of each size that take the demand, at no cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from control_plane.autoscale.agent import FORECAST_QUANTILE, AgentConfig, Hold, demand_to_serve
from control_plane.autoscale.forecast import Forecaster
from control_plane.autoscale.optimiser import Config, Site, cheapest

MODES = ("predictive", "reactive")
REACTIVE_UTILISATION = 0.7
REACTIVE_HOLD_MIN = 5


@dataclass(frozen=True)
class Choice:
    config: Config | None  # the size every replica gets (None: nothing to choose from)
    replicas: int
    capacity_rpm: float
    cost_per_hour: float = 0.0
    cores: float = 0.0
    sites: dict = field(default_factory=dict)  # site name -> replicas
    vms: dict = field(default_factory=dict)  # pool site -> VMs
    covers: bool = True  # takes the demand within the bounds and the sites' room


@dataclass(frozen=True)
class Decision:
    minute: int  # the minute decided in (the last finished one is minute - 1)
    need_rpm: float  # the demand provisioned for, held through the cool-down
    why: str
    choice: Choice


def _one_size(need: float, c: Config, sites: list[Site] | None, lo: int, hi: int) -> Choice:
    """The cheapest replicas of one size for `need`, at least lo and at most hi of them."""
    if sites is None:  # no room to model: the count alone
        n = math.ceil(max(need, 0.0) / c.capacity_rpm - 1e-9) if c.capacity_rpm > 0 else lo
        k = min(max(n, lo), hi)
        return Choice(c, k, k * c.capacity_rpm, 0.0, k * c.cpu, covers=n <= hi)
    a = cheapest(need, [c], sites)
    n = sum(a.replicas.values())
    covers = not a.short_rpm and n <= hi
    if n < lo or n > hi:  # the bounds decide the count; the optimiser still says where
        n = min(max(n, lo), hi)
        a = cheapest(n * c.capacity_rpm, [c], sites)
        covers = covers and not a.short_rpm
        n = max(sum(a.replicas.values()), lo)  # short of room: what fits (placement refuses more)
    return Choice(c, n, n * c.capacity_rpm, a.cost_per_hour, n * c.cpu,
                  {s: k for (s, _), k in sorted(a.replicas.items()) if k}, dict(sorted(a.vms.items())), covers)


def ranked(need: float, configs: list[Config], sites: list[Site] | None, lo: int = 0, hi: int = 10**6) -> list[Choice]:
    """Every size's cheapest choice for `need`, best first (see the module's doc)."""
    lo, hi = max(lo, 0), max(hi, lo)
    got = [_one_size(need, c, sites, lo, hi) for c in configs if c.capacity_rpm > 0]
    covering = sorted((x for x in got if x.covers),
                      key=lambda x: (round(x.cost_per_hour, 9), round(x.cores, 6), -x.replicas, x.config.workers,
                                     -x.capacity_rpm, x.config.name))
    short = sorted((x for x in got if not x.covers),
                   key=lambda x: (-round(x.capacity_rpm, 6), round(x.cost_per_hour, 9), round(x.cores, 6), x.config.name))
    return covering + short


def choose(need: float, configs: list[Config], sites: list[Site] | None, lo: int = 0, hi: int = 10**6) -> Choice:
    got = ranked(need, configs, sites, lo, hi)
    return got[0] if got else Choice(None, 0, 0.0, covers=need <= 0)


class Decider:
    """One service's demand, minute by minute. Feed it every finished minute (`observe`), then ask
    for the minute in progress (`need`, `decide`); asked again in the same minute, it answers the
    same without feeding the forecaster twice (the live loop ticks more often than minutes)."""

    def __init__(self, mode: str, lead: int, cfg: AgentConfig | None = None, quantile: float = FORECAST_QUANTILE,
                 **forecaster):
        if mode not in MODES:
            raise ValueError(f"unknown scaling mode {mode!r}; one of {', '.join(MODES)}")
        if lead < 1:
            raise ValueError(f"lead {lead}: give at least 1 minute")
        self.mode, self.lead = mode, lead
        self.cfg = cfg or AgentConfig()
        self.hold = Hold(self.cfg.cooldown_min if mode == "predictive" else REACTIVE_HOLD_MIN)
        self.forecaster = (Forecaster(horizon=lead, quantile=quantile, **forecaster) if mode == "predictive" else None)
        self.seen: int | None = None  # the last minute observed
        self.last = 0.0  # its requests
        self._asked: tuple | None = None  # (inputs, answer) of the last need()
        self._forecast_at: tuple | None = None
        self._upper = None
        self._expected = math.inf  # the previous forecast's bound on the minute just finished
        self.mean = None  # the latest forecast's expected arrivals over the lead (predictive)

    def observe(self, minute: int, requests: float) -> None:
        """Requests in a finished minute; minutes increase, and one skipped had none."""
        if self.seen is not None and minute <= self.seen:
            raise ValueError(f"minute {minute} is not after {self.seen}")
        if self.forecaster is not None:
            if self.seen is not None:
                for gap in range(self.seen + 1, minute):
                    self.forecaster.observe(gap, 0.0)
            self.forecaster.observe(minute, float(requests))
        self.seen, self.last = minute, float(requests)

    def observe_to(self, now: int, arrivals) -> None:
        """Every minute before `now` not yet observed, from (minute, requests) pairs; a missing one had
        none. The first call starts at the earliest minute given (or the last finished one)."""
        counts = dict(arrivals)
        if self.seen is not None:
            start = self.seen + 1
        else:
            start = min([m for m in counts if m < now] + [now - 1])
        for minute in range(start, now):
            self.observe(minute, counts.get(minute, 0.0))

    def need(self, now: int, capacity_rpm: float, p95_ms: float = 0.0, slo_ms: float = 0.0) -> tuple[float, str]:
        """Requests per minute to provision for in minute `now`, held through the cool-down, and why.
        `capacity_rpm`: what the last decision provisioned; `p95_ms`: the last minute's (the net)."""
        key = (now, self.seen, capacity_rpm, p95_ms, slo_ms)
        if self._asked is not None and self._asked[0] == key:
            return self._asked[1]
        live = self.last if self.seen == now - 1 else 0.0
        if self.mode == "reactive":
            raw, why = live / REACTIVE_UTILISATION, f"last minute {live:g} req at {REACTIVE_UTILISATION:.0%}"
        elif self.seen is None:
            raw, why = 0.0, "no minute seen yet"
        else:
            if self._forecast_at != (now, self.seen):  # once a minute: a forecast is scored later (Forecaster._made)
                self._expected = float(self._upper[0]) if self._upper is not None else math.inf
                fc = self.forecaster.forecast()
                self._forecast_at, self._upper, self.mean = (now, self.seen), fc.upper, fc.mean
            raw, why = demand_to_serve(self._upper, self.lead, live, capacity_rpm, self.cfg, live_p95_ms=p95_ms,
                                       slo_ms=slo_ms, expected_rpm=self._expected if self.cfg.net_on_miss else None)
        out = (float(self.hold.add(now, raw)), why)
        self._asked = (key, out)
        return out

    def decide(self, now: int, capacity_rpm: float, configs: list[Config], sites: list[Site] | None,
               lo: int = 0, hi: int = 10**6, p95_ms: float = 0.0, slo_ms: float = 0.0) -> Decision:
        need, why = self.need(now, capacity_rpm, p95_ms, slo_ms)
        c = choose(need, configs, sites, lo, hi)
        return Decision(now, need, why, c)


def sites_for(probe, nodes, used: dict, prices: dict[str, float], pool_label: str) -> list[Site]:
    """The sites one service's replicas may go to, as the optimiser sees them: every ready enrolled
    node that meets its requirements but size (`probe`, a placement Demand), with the room other
    work leaves (`used`: what other workloads hold per node id); and each cloud pool, as VMs of its
    size at `prices[pool]` an hour, as many as it has eligible VMs (joined, booting or still to
    start: `NodeView.pool` or the node label `pool_label`). Names: node names, pool names."""
    from dataclasses import replace

    from control_plane.placement.first_fit import why_not
    from control_plane.placement.types import Used

    any_size = replace(probe, cpu=0.0, memory_mb=0)
    owned, pools = [], {}
    for v in sorted(nodes, key=lambda v: (v.name, v.id)):
        u = used.get(v.id, Used())
        if why_not(v, any_size, u) is not None:
            continue
        pool = v.pool or v.labels.get(pool_label, "")
        if pool and prices.get(pool, 0.0) > 0:
            p = pools.setdefault(pool, [v.cpu, v.memory_mb, 0])
            if v.pool:  # a template or a booting VM: the pool's own size
                p[0], p[1] = v.cpu, v.memory_mb
            p[2] += 1
        else:
            owned.append(Site(v.name, max(v.cpu - u.cpu, 0.0), max(v.memory_mb - u.memory_mb, 0)))
    return owned + [Site(name, cpu, mem, price_per_hour=prices[name], max_vms=k)
                    for name, (cpu, mem, k) in sorted(pools.items())]
