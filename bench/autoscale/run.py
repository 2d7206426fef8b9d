"""Autoscaling benchmark: a trace-replay simulator (per minute, discrete events) of four policies.

    python -m bench.autoscale.run [--days 28] [--trace FILE] [--profile FILE] [--rows 100000]
        [--quantile 0.995] [--cooldown 10] [--max-util 0.9] [--lookahead 0] [--peak 0] [--surprise 0]
        [--bound z=3 | h=100]

Policies, over the same trace and the same sites, in one run:

* predictive: this one (control_plane/autoscale): the forecaster's upper bound over the lead time,
  the cost optimiser, the agent's cool-down and paid periods, and its reactive safety net;
* reactive: HPA-like: provision for the last minute's arrivals at 70 % utilisation, scale in only
  to the highest target of the last 5 minutes (HPA's stabilisation window);
* static peak: provision for the trace's peak, all the time;
* oracle: perfect foresight of the arrivals over the lead time, 100 % utilisation;
* bound (with `--bound`, built-in traces only): knows the true rate over the lead (a burst once it
  runs) and adds z x sqrt(rate) or h req/min: what a perfect forecaster would pay for that headroom.

Each policy goes through the same optimiser (control_plane/autoscale/optimiser.py) and the same
rules for VMs: new ones are ready after `--vm-boot` minutes plus a minute to start the replica,
and a VM stops only at the end of a paid period of `--billing` minutes. Replicas on owned nodes
(free of charge, limited) start in a minute. A minute violates the objective when its arrivals
exceed the capacity then ready (capacity is per replica at the latency objective).

Profiles are measured in this run, unless `--profile` gives them: the bench/serving model is
packaged and served by real `bentoml serve` replicas with 1 and 2 workers, and
control_plane/packaging/profile.py measures the requests per minute each serves (4 concurrent
clients) when a request carries `--rows` rows.

Traces: (a) generated, per minute, daily and weekly seasonality, bursts, 100–400 requests/min;
(b) real: half-hourly electricity demand of England and Wales (Taylor, 2003; shipped in the PyPI
package pmdarima), interpolated to minutes and scaled to 100–400 requests/min, Poisson arrivals.
`--trace FILE` replays a CSV with header `timestamp,requests`, one row per minute, instead.

Prints a table per trace, then, as the last line, one JSON object with every policy's figures.
Targets: predictive cost <= 1.15x oracle with <= 1 % violating minutes, and >= 25 % cheaper than
static peak with no more violating minutes than reactive. Exit status 0 when met on every trace.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from control_plane.autoscale.agent import FORECAST_QUANTILE, AgentConfig, Hold, demand_to_serve, vm_changes  # noqa: E402
from control_plane.autoscale.forecast import DAY, Forecaster, mape  # noqa: E402
from control_plane.autoscale.optimiser import Config, Site, cheapest, vm_capacity  # noqa: E402

POLICIES = ("predictive", "reactive", "static_peak", "oracle")
RATE_MIN, RATE_MAX = 100, 400  # requests/min of the built-in traces


# -- traces ---------------------------------------------------------------------------------------
def generated_rates(days: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The generated trace's seasonal rate, its bursts (requests/min added), and the Poisson counts."""
    rng = np.random.default_rng(seed)
    t = np.arange(days * DAY)
    day = (t % DAY) / DAY
    daily = np.clip(np.sin(math.pi * (day - 0.25) * 1.25), 0, None) ** 1.5  # quiet nights, a day hump
    weekend = np.where((t // DAY) % 7 >= 5, 0.6, 1.0)
    seasonal = 100 + 260 * daily * weekend
    bursts = np.zeros(len(t))
    for start in rng.choice(len(t) - 30, size=days * 3, replace=False):  # ~3 bursts a day, 5-20 min
        length = int(rng.integers(5, 21))
        bursts[start:start + length] += rng.uniform(40, 120)
    rate = np.clip(seasonal + bursts, RATE_MIN, RATE_MAX)
    return seasonal, bursts, rng.poisson(rate).astype(float)


def generated_trace(days: int, seed: int = 0) -> np.ndarray:
    return generated_rates(days, seed)[2]


def taylor_rates(days: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Taylor's per-minute rate (100-400 requests/min) and its Poisson counts."""
    import pmdarima.datasets

    y = pmdarima.datasets.load_taylor(as_series=False).astype(float)
    per_min = np.interp(np.arange(len(y) * 30) / 30.0, np.arange(len(y)), y)
    rate = RATE_MIN + (RATE_MAX - RATE_MIN) * (per_min - per_min.min()) / (per_min.max() - per_min.min())
    rate = rate[-days * DAY:] if days * DAY < len(rate) else rate
    return rate, np.random.default_rng(seed).poisson(rate).astype(float)


def taylor_trace(days: int, seed: int = 0) -> np.ndarray:
    return taylor_rates(days, seed)[1]


def file_trace(path: str) -> np.ndarray:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "requests" not in rows[0]:
        raise SystemExit(f"{path}: expected a CSV with header timestamp,requests")
    return np.array([float(r["requests"]) for r in rows])


# -- profiles -------------------------------------------------------------------------------------
def measure_profiles(rows: int) -> list[Config]:
    """Requests/min of the bench/serving model with 1 and 2 workers, `rows` rows per request."""
    from bench.serving.run import ROWS, make_artifact
    from control_plane.packaging.build import build_bento
    from control_plane.packaging.profile import profile_bento

    tmp = Path(tempfile.mkdtemp(prefix="stratum-bench-autoscale-"))
    try:
        art = build_bento(make_artifact(tmp / "artifact"), "bench-model", "v1", tmp / "bentoml", tmp / "work")
        instances = (ROWS * (rows // len(ROWS) + 1))[:rows]
        out = []
        for name, workers, cpu, mem in (("small", 1, 1.0, 1024), ("large", 2, 2.0, 2048)):
            prof = profile_bento(art.tag, tmp / "bentoml", tmp / f"run-{name}", instances=instances, requests=16,
                                 workers=workers, concurrency=2 * workers, batch_rows=8)
            out.append(Config(name, cpu, mem, workers, round(prof.capacity_rps * 60, 1)))
            print(f"profile {name}: {workers} worker(s), {rows} rows/request: {out[-1].capacity_rpm} req/min "
                  f"(p95 one at a time {prof.p95_ms} ms)", file=sys.stderr)
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- the simulator --------------------------------------------------------------------------------
class Sim:
    def __init__(self, configs: list[Config], sites: list[Site], *, vm_boot: int, billing: int, replica_start: int = 1):
        self.configs, self.sites = configs, sites
        self.cfg = {c.name: c for c in configs}
        self.vm_boot, self.billing, self.replica_start = vm_boot, billing, replica_start
        self.owned: dict = {}  # (site, config) -> list of ready minutes
        self.vms: dict = {s.name: [] for s in sites if s.pool}  # pool -> list of [start, ready]
        self.vm_cap: dict = {}  # pool -> requests/min one VM serves (the config the optimiser chose)
        self.cost = 0.0
        self.vm_starts = 0
        self.capacity_sum = 0.0
        self.agent = AgentConfig(billing_min=billing)

    def capacity(self, t: int) -> float:
        cap = sum(self.cfg[c].capacity_rpm * sum(1 for r in ready if r <= t) for (_, c), ready in self.owned.items())
        for pool, vms in self.vms.items():
            cap += self.vm_cap.get(pool, 0.0) * sum(1 for _, r in vms if r <= t)
        return cap

    def apply(self, t: int, need: float, *, instant: bool = False, keep_need: float = 0.0) -> None:
        """Provision for `need` now; a VM whose paid hour ends is renewed while `keep_need` (the
        policy's look-ahead, 0: none) still wants it."""
        alloc = cheapest(need, self.configs, self.sites)
        keep = cheapest(keep_need, self.configs, self.sites).vms if keep_need > need else {}
        want = {k: v for k, v in alloc.replicas.items() if not next(s for s in self.sites if s.name == k[0]).pool}
        for key in set(self.owned) | set(want):
            have = self.owned.get(key, [])
            n = want.get(key, 0)
            if n > len(have):
                have = have + [t if instant else t + self.replica_start] * (n - len(have))
            elif n < len(have):
                have = sorted(have)[:n]
            self.owned[key] = have
        for s in (s for s in self.sites if s.pool):
            if alloc.vms.get(s.name):  # a VM serves what its fullest pattern of replicas serves
                self.vm_cap[s.name] = vm_capacity(self.configs, s)
            start, stop = vm_changes([v[0] for v in self.vms[s.name]], alloc.vms.get(s.name, 0), t, self.agent,
                                     keep=keep.get(s.name, 0))
            for i in sorted(stop, reverse=True):
                del self.vms[s.name][i]
            ready = t if instant else t + self.vm_boot + self.replica_start
            self.vms[s.name] += [[t, ready] for _ in range(start)]
            self.vm_starts += start

    def bill(self) -> None:
        for s in self.sites:
            if s.pool:
                self.cost += s.price_per_hour / 60 * len(self.vms[s.name])


def simulate(policy: str, arrivals: np.ndarray, configs, sites, args, record: list | None = None,
             known: tuple | None = None) -> dict:
    """One policy over one trace; `record`, when given, collects (minute, arrivals, capacity) of
    each violating minute. `known` (the `bound` policy): the trace's seasonal rate and bursts."""
    sim = Sim(configs, sites, vm_boot=args.vm_boot, billing=args.billing)
    lead = args.vm_boot + 2  # minutes until capacity ordered now is ready, and the minute it serves
    agent = AgentConfig(billing_min=args.billing, cooldown_min=args.cooldown, max_utilisation=args.max_util)
    hold = Hold(agent.cooldown_min if policy == "predictive" else 5 if policy == "reactive" else 1)
    f = Forecaster(horizon=lead, quantile=args.quantile) if policy == "predictive" else None
    if policy == "bound":
        seasonal, bursts = known
        kind, _, value = args.bound.partition("=")
        z, h = (float(value), None) if kind == "z" else (None, float(value))
    violations = safety_net = 0
    keep_need, expected = 0.0, math.inf
    preds, acts = [], []
    t0 = time.perf_counter()
    if policy == "static_peak":
        sim.apply(0, float(arrivals.max()), instant=True)
    for t, a in enumerate(arrivals):
        cap = sim.capacity(t)
        sim.capacity_sum += cap
        violations += a > cap + 1e-9
        if record is not None and a > cap + 1e-9:
            record.append((t, int(a), round(cap)))
        sim.bill()
        if policy == "static_peak":
            continue
        if policy == "predictive":
            f.observe(t, a)
            fc = f.forecast()
            need, why = demand_to_serve(fc.upper, lead, a, cap, agent, peak=fc.peak if args.peak else None,
                                        expected_rpm=expected if args.surprise else None)
            expected = float(fc.upper[0])  # this forecast's bound on the next minute
            safety_net += why.endswith("reactive")
            if args.lookahead:  # renew a VM's hour while the next `lookahead` minutes want it
                keep_need = float(f.base_ahead(args.lookahead).max()) + float((fc.upper - fc.mean).max())
            if t + lead < len(arrivals) and t >= DAY:
                preds.append(fc.mean[lead - 1])
                acts.append(arrivals[t + lead])
        elif policy == "reactive":
            need = a / 0.7
        elif policy == "bound":  # the true rate over the lead, a burst once it runs, plus headroom
            rate = seasonal[t + 1:t + 1 + lead]
            if bursts is not None:
                rate = np.clip(rate + bursts[t], RATE_MIN, RATE_MAX)
            need = float((rate + (z * np.sqrt(rate) if z is not None else h)).max()) if len(rate) else 0.0
        else:  # oracle: exactly the arrivals of the minutes its orders can serve
            need = float(arrivals[t + 1:t + 1 + lead].max()) if t + 1 < len(arrivals) else 0.0
        sim.apply(t, hold.add(t, need), keep_need=keep_need)
    minutes = len(arrivals)
    return {"cost": round(sim.cost, 4), "violating_minutes": int(violations), "vm_starts": sim.vm_starts,
            "safety_net_minutes": safety_net if f else None,
            "mean_capacity_over_arrivals": round(sim.capacity_sum / max(float(arrivals.sum()), 1.0), 3),
            "violating_pct": round(float(100 * violations / minutes), 3),
            "forecast_mape_pct": round(mape(acts, preds), 2) if preds else None,
            "seconds": round(time.perf_counter() - t0, 1),
            "forecast_ms_per_minute": round((time.perf_counter() - t0) / minutes * 1000, 3) if f else None}


def judge(r: dict) -> dict:
    p, o, s, re = r["predictive"], r["oracle"], r["static_peak"], r["reactive"]
    return {"cost_vs_oracle": round(p["cost"] / o["cost"], 3) if o["cost"] else None,
            "cost_vs_static_peak": round(p["cost"] / s["cost"], 3) if s["cost"] else None,
            "met": bool(o["cost"] and p["cost"] <= 1.15 * o["cost"] and p["violating_pct"] <= 1.0
                        and s["cost"] and p["cost"] <= 0.75 * s["cost"]
                        and p["violating_minutes"] <= re["violating_minutes"])}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench.autoscale.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=28, help="days of each trace to replay")
    ap.add_argument("--trace", help="CSV with header timestamp,requests (one row per minute) instead of (a) and (b)")
    ap.add_argument("--profile", help="JSON list of {name, cpu, memory_mb, workers, capacity_rpm} instead of measuring")
    ap.add_argument("--rows", type=int, default=400_000, help="rows per request when measuring profiles")
    ap.add_argument("--vm-boot", type=int, default=3, help="minutes from a VM request to a booted VM")
    ap.add_argument("--billing", type=int, default=60, help="minimum billing period of a VM, minutes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quantile", type=float, default=FORECAST_QUANTILE, help="predictive: the forecast's upper quantile")
    ap.add_argument("--cooldown", type=int, default=10, help="predictive: minutes a lower target must hold")
    ap.add_argument("--max-util", type=float, default=0.9, help="predictive: the reactive safety net's threshold")
    ap.add_argument("--lookahead", type=int, default=0, help="predictive: minutes of seasonal look-ahead when "
                    "a VM's paid hour ends (0: none)")
    ap.add_argument("--peak", type=int, default=0, help="predictive: 1 to provision for the forecast's peak bound")
    ap.add_argument("--surprise", type=int, default=0, help="predictive: 1 to fire the safety net only when "
                    "live arrivals exceed the forecast's bound for the minute")
    ap.add_argument("--only", choices=("generated", "taylor"), help="replay one of the two traces")
    ap.add_argument("--bound", help="also run `bound`, a reference no forecaster can beat: it knows the trace's "
                    "true rate over the lead (and a burst's level once it runs, not before) and adds z=<z> x "
                    "sqrt(rate) or h=<req/min> of headroom")
    args = ap.parse_args(argv)

    if args.profile:
        configs = [Config(**c) for c in json.loads(Path(args.profile).read_text())]
    else:
        configs = measure_profiles(args.rows)
    # One edge box (2 cores, free), and two cloud pools priced like t3.large and c5.2xlarge.
    sites = [Site("edge", 2.0, 4096), Site("cloud-std", 2.0, 8192, price_per_hour=0.0832, max_vms=40),
             Site("cloud-big", 8.0, 16384, price_per_hour=0.34, max_vms=10)]
    known: dict = {}  # what the bound policy knows of each built-in trace
    if args.trace:
        traces = {"file": file_trace(args.trace)}
    else:
        seasonal, bursts, counts = generated_rates(args.days, args.seed)
        rate, taylor = taylor_rates(args.days, args.seed)
        traces = {"generated": counts, "taylor": taylor}
        known = {"generated": (seasonal, bursts), "taylor": (rate, None)}
    if args.only:
        traces = {args.only: traces[args.only]}
    if args.bound and (args.trace or not re.fullmatch(r"[zh]=\d+(\.\d+)?", args.bound)):
        raise SystemExit("--bound takes z=<number> or h=<number>, on the built-in traces only (a file has no known rate)")
    policies = POLICIES + (("bound",) if args.bound else ())
    results, verdicts = {}, {}
    for name, arrivals in traces.items():
        results[name] = {}
        for policy in policies:
            results[name][policy] = simulate(policy, arrivals, configs, sites, args, known=known.get(name))
            print(f"{name} {policy}: {results[name][policy]}", file=sys.stderr)
        verdicts[name] = judge(results[name])
        r = results[name]
        print(f"\n{name}: {len(arrivals)} minutes, {arrivals.min():.0f}-{arrivals.max():.0f} requests/min")
        print(f"  {'policy':12} {'cost':>9} {'violating min':>14} {'%':>7} {'forecast MAPE %':>16}")
        for policy in policies:
            x = r[policy]
            m = f"{x['forecast_mape_pct']:.2f}" if x["forecast_mape_pct"] is not None else "-"
            print(f"  {policy:12} {x['cost']:9.2f} {x['violating_minutes']:14d} {x['violating_pct']:7.3f} {m:>16}")
        v = verdicts[name]
        print(f"  predictive cost = {v['cost_vs_oracle']}x oracle, {v['cost_vs_static_peak']}x static peak: "
              f"{'met' if v['met'] else 'NOT met'}")
    out = {"bench": "autoscale", "args": vars(args), "configs": [c.__dict__ for c in configs],
           "sites": [s.__dict__ for s in sites], "results": results, "verdicts": verdicts,
           "target_met": all(v["met"] for v in verdicts.values())}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    sys.exit(0 if main()["target_met"] else 1)
