"""Autoscaling benchmark: a trace-replay simulator (per minute, discrete events) of five policies.

    python -m bench.autoscale.run [--days 28] [--trace FILE] [--profile FILE] [--rows 400000]
        [--quantile 0.995] [--cooldown 5] [--max-util 0.9] [--net-on-miss 1] [--bound q | z=3 | h=100]
        [--only daily]

Policies, over the same trace and the same sites, in one run:

* predictive: this one (control_plane/autoscale): each minute, `decide.Decider` (the forecaster's
  upper bound over the lead time, the agent's cool-down and reactive safety net) and
  `decide.choose` (count, size and sites at the least cost), exactly as the live Autoscaler;
* reactive: HPA-like, the same Decider in mode reactive: the last minute's arrivals at 70 %
  utilisation, scale in only to the highest target of the last 5 minutes;
* static peak: provision for the trace's peak, all the time;
* oracle: perfect foresight of the arrivals over the lead time, 100 % utilisation;
* bound: a perfect forecaster with the same headroom. It knows the trace's true rate over the lead
  (the generated trace's bursts only once they run) and adds z x sqrt(rate), z the normal quantile
  of `--quantile` (the predictive policy's bound), or `--bound z=<z>` / `h=<req/min>`, or
  `--bound spread`, the predictive forecaster's own headroom minute by minute. A file
  trace's true rate is unknown: its centred moving average over 15 minutes stands in, hindsight
  no forecaster has.

Each policy goes through the same `decide.choose` and the same rules for VMs: new ones are ready
after `--vm-boot` minutes plus a minute to start the replica, and a VM stops only at the end of a
paid period of `--billing` minutes. Replicas on owned nodes (free of charge, limited) start in a
minute. A minute violates the objective when its arrivals exceed the capacity then ready
(capacity is per replica at the latency objective).

Profiles are measured in this run, unless `--profile` gives them: the bench/serving model is
packaged and served by real `bentoml serve` replicas with 1 and 2 workers, and
control_plane/packaging/profile.py measures the requests per minute each serves (4 concurrent
clients) when a request carries `--rows` rows.

Traces: (a) generated, per minute, daily and weekly seasonality, bursts, 100-400 requests/min;
(b) real: half-hourly electricity demand of England and Wales (Taylor, 2003; shipped in the PyPI
package pmdarima), interpolated to minutes and scaled to 100-400 requests/min; (c) daily: hourly
counts with strong daily peaks, quiet nights and steep morning ramps, 10-360 requests/min,
interpolated to minutes (generated). Poisson arrivals on all three. `--trace FILE` replays a CSV
with header `timestamp,requests`, one row per minute, instead.

Prints a table per trace, then, as the last line, one JSON object with every policy's figures.
Targets, on every trace: predictive cost <= 1.05x bound and <= 1.20x oracle, >= 25 % cheaper than
static peak, and violating minutes <= reactive's + 0.01 % of the minutes. Exit status 0 when met.
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
from statistics import NormalDist

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from control_plane.autoscale.agent import FORECAST_QUANTILE, AgentConfig, Hold, vm_changes  # noqa: E402
from control_plane.autoscale.decide import Choice, Decider, choose  # noqa: E402
from control_plane.autoscale.forecast import DAY, Forecaster, mape  # noqa: E402
from control_plane.autoscale.optimiser import Config, Site, per_unit  # noqa: E402

POLICIES = ("predictive", "reactive", "static_peak", "oracle", "bound")
TRACES = ("generated", "taylor", "daily")
RATE_MIN, RATE_MAX = 100, 400  # requests/min of the generated and taylor traces
DAILY_MIN, DAILY_MAX = 10, 360  # requests/min of the daily trace
FILE_SMOOTH_MIN = 15  # a file trace's "true rate" for the bound: its centred moving average


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


# Share of the day's peak in each hour of a weekday and of a weekend day: nights near nothing, a
# steep morning ramp to the day's first peak, a midday dip, an evening peak (a weekend's later and lower).
WEEKDAY = (0, 0, 0, 0, 0, 0.02, 0.12, 0.55, 1.0, 0.85, 0.62, 0.58, 0.66, 0.6, 0.56, 0.62, 0.78, 0.95,
           0.8, 0.55, 0.36, 0.2, 0.08, 0.02)
WEEKEND = (0.02, 0, 0, 0, 0, 0, 0, 0.04, 0.15, 0.4, 0.55, 0.6, 0.62, 0.6, 0.58, 0.56, 0.6, 0.66,
           0.6, 0.45, 0.3, 0.16, 0.07, 0.03)


def daily_rates(days: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Hourly counts with strong daily peaks and quiet nights (10-360 requests/min), each day's peak
    and each hour drawn around the profile, interpolated per minute; and the Poisson counts."""
    rng = np.random.default_rng(seed + 1)  # not the generated trace's draws
    hours = np.arange(days * 24 + 1)
    shape = np.array([(WEEKEND if (h // 24) % 7 >= 5 else WEEKDAY)[h % 24] for h in hours])
    level = rng.uniform(0.8, 1.0, days + 1)[hours // 24]  # the day's peak
    noise = rng.lognormal(0.0, 0.08, len(hours))  # the hour's own wobble
    hourly = np.clip(DAILY_MIN + (DAILY_MAX - DAILY_MIN) * shape * level * noise, DAILY_MIN, DAILY_MAX)
    rate = np.interp(np.arange(days * DAY) / 60.0, hours, hourly)
    return rate, np.random.default_rng(seed).poisson(rate).astype(float)


def daily_trace(days: int, seed: int = 0) -> np.ndarray:
    return daily_rates(days, seed)[1]


def file_trace(path: str) -> np.ndarray:
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise SystemExit(f"{path}: {e.strerror}") from None
    if not rows or "requests" not in rows[0]:
        raise SystemExit(f"{path}: expected a CSV with header timestamp,requests")
    out = []
    for i, r in enumerate(rows, start=2):
        try:
            v = float(r["requests"])
        except (TypeError, ValueError):
            v = math.nan
        if not math.isfinite(v) or v < 0:
            raise SystemExit(f"{path}: line {i}: requests {r['requests']!r} is not a count (a number >= 0)")
        out.append(v)
    return np.array(out)


def smoothed(counts: np.ndarray, window: int = FILE_SMOOTH_MIN) -> np.ndarray:
    """The centred moving average over `window` minutes (fewer at the ends): a file's stand-in rate."""
    half = window // 2
    cum = np.concatenate([[0.0], np.cumsum(counts)])
    i = np.arange(len(counts))
    lo, hi = np.maximum(i - half, 0), np.minimum(i + half + 1, len(counts))
    return (cum[hi] - cum[lo]) / (hi - lo)


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
    """What runs: replicas on owned sites (ready minute each) and each pool's VMs ([start, ready])."""

    def __init__(self, configs: list[Config], sites: list[Site], *, vm_boot: int, billing: int, replica_start: int = 1):
        self.configs, self.sites = configs, sites
        self.cfg = {c.name: c for c in configs}
        self.vm_boot, self.billing, self.replica_start = vm_boot, billing, replica_start
        self.owned: dict = {}  # (site, config) -> list of ready minutes
        self.vms: dict = {s.name: [] for s in sites if s.pool}  # pool -> list of [start, ready]
        self.vm_cap: dict = {}  # pool -> requests/min one VM serves (filled with the chosen size)
        self.cost = 0.0
        self.vm_starts = 0
        self.capacity_sum = 0.0
        self.agent = AgentConfig(billing_min=billing)

    def capacity(self, t: int) -> float:
        cap = sum(self.cfg[c].capacity_rpm * sum(1 for r in ready if r <= t) for (_, c), ready in self.owned.items())
        for pool, vms in self.vms.items():
            cap += self.vm_cap.get(pool, 0.0) * sum(1 for _, r in vms if r <= t)
        return cap

    def apply(self, t: int, choice: Choice, *, instant: bool = False) -> None:
        """Run what `choice` says from minute t: owned replicas start in a minute, new VMs after their
        boot; a VM no longer wanted stops only at the end of its paid period."""
        c = choice.config
        want = {(s.name, c.name): choice.sites.get(s.name, 0) for s in self.sites if not s.pool} if c else {}
        for key in set(self.owned) | set(want):
            have = self.owned.get(key, [])
            n = want.get(key, 0)
            if n > len(have):
                have = have + [t if instant else t + self.replica_start] * (n - len(have))
            elif n < len(have):
                have = sorted(have)[:n]
            self.owned[key] = have
        for s in (s for s in self.sites if s.pool):
            if c is not None and choice.vms.get(s.name):  # a VM serves what it holds of the chosen size
                self.vm_cap[s.name] = per_unit(c, s.cpu, s.memory_mb) * c.capacity_rpm
            start, stop = vm_changes([v[0] for v in self.vms[s.name]], choice.vms.get(s.name, 0), t, self.agent)
            for i in sorted(stop, reverse=True):
                del self.vms[s.name][i]
            ready = t if instant else t + self.vm_boot + self.replica_start
            self.vms[s.name] += [[t, ready] for _ in range(start)]
            self.vm_starts += start

    def bill(self) -> None:
        for s in self.sites:
            if s.pool:
                self.cost += s.price_per_hour / 60 * len(self.vms[s.name])


def bound_z(args) -> tuple[float | None, float | None]:
    """The bound policy's headroom: (z, None) or (None, h) (`spread`: see simulate)."""
    spec = args.bound or "q"
    if spec == "q":
        return NormalDist().inv_cdf(args.quantile), None
    kind, _, value = spec.partition("=")
    return (float(value), None) if kind == "z" else (None, float(value))


def simulate(policy: str, arrivals: np.ndarray, configs, sites, args, record: list | None = None,
             known: tuple | None = None, decisions: list | None = None, lo: int = 0, hi: int = 10**6,
             start_rpm: float = 0.0) -> dict:
    """One policy over one trace. `record`, when given, collects (minute, arrivals, capacity) of each
    violating minute; `decisions` each minute's Decision (predictive and reactive); `known` (the
    bound policy): the trace's true rate, and the bursts it learns of only once they run (or None).
    `args.lead` (else vm_boot + 2) is the lead time the deciders provision over; lo and hi bound the
    replica count as a service's scaling.min and max do; `start_rpm` is the capacity provisioned
    before the first minute (a live service's first replicas; the simulator itself starts empty)."""
    sim = Sim(configs, sites, vm_boot=args.vm_boot, billing=args.billing)
    lead = getattr(args, "lead", None) or args.vm_boot + 2  # until capacity ordered now is ready, and the minute it serves
    agent = AgentConfig(billing_min=args.billing, cooldown_min=args.cooldown, max_utilisation=args.max_util,
                        net_on_miss=bool(args.net_on_miss))
    decider = Decider(policy, lead, agent, quantile=args.quantile) if policy in ("predictive", "reactive") else None
    hold = Hold(1)
    if policy == "bound":
        rate_known, bursts = known
        z, h = bound_z(args) if args.bound != "spread" else (None, None)
        # `spread`: the predictive policy's own headroom (its forecaster's upper bound less its mean)
        spread = Forecaster(horizon=lead, quantile=args.quantile) if args.bound == "spread" else None
    violations = safety_net = 0
    preds, acts, truth = [], [], []
    if known is not None:  # the true rate each minute, to score the forecast's level without the Poisson draw
        true_rate = known[0] if known[1] is None else np.clip(known[0] + known[1], RATE_MIN, RATE_MAX)
    provisioned = start_rpm  # capacity of the last decision (the safety net's reference, as live)
    t0 = time.perf_counter()
    if policy == "static_peak":
        sim.apply(0, choose(float(arrivals.max()), configs, sites, lo, hi), instant=True)
    for t, a in enumerate(arrivals):
        cap = sim.capacity(t)
        sim.capacity_sum += cap
        violations += a > cap + 1e-9
        if record is not None and a > cap + 1e-9:
            record.append((t, int(a), round(cap)))
        sim.bill()
        if policy == "static_peak":
            continue
        if decider is not None:  # minute t is over: decide in minute t + 1, as the live loop does
            decider.observe(t, a)
            d = decider.decide(t + 1, provisioned, configs, sites, lo, hi)
            choice = d.choice
            if decisions is not None:
                decisions.append(d)
            safety_net += d.why.endswith("reactive")
            if decider.mean is not None and t + lead < len(arrivals) and t >= DAY:
                preds.append(decider.mean[lead - 1])
                acts.append(arrivals[t + lead])
                if known is not None:
                    truth.append(true_rate[t + lead])
        else:
            if policy == "bound":  # the true rate over the lead, a burst once it runs, plus headroom
                rate = rate_known[t + 1:t + 1 + lead]
                if bursts is not None:
                    rate = np.clip(rate + bursts[t], RATE_MIN, RATE_MAX)
                if spread is not None:
                    spread.observe(t, a)
                    fc = spread.forecast()
                    room = (fc.upper - fc.mean)[:len(rate)]
                else:
                    room = z * np.sqrt(rate) if z is not None else h
                need = float((rate + room).max()) if len(rate) else 0.0
            else:  # oracle: exactly the arrivals of the minutes its orders can serve
                need = float(arrivals[t + 1:t + 1 + lead].max()) if t + 1 < len(arrivals) else 0.0
            choice = choose(hold.add(t, need), configs, sites, lo, hi)
        provisioned = choice.capacity_rpm
        sim.apply(t, choice)
    minutes = len(arrivals)
    return {"cost": round(sim.cost, 4), "violating_minutes": int(violations), "vm_starts": sim.vm_starts,
            "safety_net_minutes": safety_net if policy == "predictive" else None,
            "mean_capacity_over_arrivals": round(sim.capacity_sum / max(float(arrivals.sum()), 1.0), 3),
            "violating_pct": round(float(100 * violations / minutes), 3),
            "forecast_mape_pct": round(mape(acts, preds), 2) if preds else None,
            # standard deviation of the forecast's error against the true rate, `lead` minutes ahead
            "forecast_level_sd": round(float(np.std(np.subtract(truth, preds))), 2) if truth else None,
            "seconds": round(time.perf_counter() - t0, 1),
            "decide_ms_per_minute": round((time.perf_counter() - t0) / minutes * 1000, 3) if decider else None}


TARGETS = {"bound": 1.05, "oracle": 1.20, "static_peak": 0.75, "extra_violating_share": 0.0001}


def judge(r: dict, minutes: int) -> dict:
    p, o, s, re_, b = r["predictive"], r["oracle"], r["static_peak"], r["reactive"], r["bound"]
    allowed = re_["violating_minutes"] + TARGETS["extra_violating_share"] * minutes
    ratio = lambda x: round(p["cost"] / x["cost"], 3) if x["cost"] else None  # noqa: E731
    checks = {"vs_bound": bool(b["cost"]) and p["cost"] <= TARGETS["bound"] * b["cost"],
              "vs_oracle": bool(o["cost"]) and p["cost"] <= TARGETS["oracle"] * o["cost"],
              "vs_static_peak": bool(s["cost"]) and p["cost"] <= TARGETS["static_peak"] * s["cost"],
              "violations": p["violating_minutes"] <= allowed}
    return {"cost_vs_bound": ratio(b), "cost_vs_oracle": ratio(o), "cost_vs_static_peak": ratio(s),
            "violating_allowed": round(allowed, 2), "checks": checks, "met": all(checks.values())}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench.autoscale.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=28, help="days of each built-in trace to replay")
    ap.add_argument("--trace", help="CSV with header timestamp,requests (one row per minute) instead of the built-in traces")
    ap.add_argument("--profile", help="JSON list of {name, cpu, memory_mb, workers, capacity_rpm} instead of measuring")
    ap.add_argument("--rows", type=int, default=400_000, help="rows per request when measuring profiles")
    ap.add_argument("--vm-boot", type=int, default=3, help="minutes from a VM request to a booted VM")
    ap.add_argument("--billing", type=int, default=60, help="minimum billing period of a VM, minutes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quantile", type=float, default=FORECAST_QUANTILE, help="predictive: the forecast's upper quantile")
    ap.add_argument("--cooldown", type=int, default=AgentConfig.cooldown_min, help="predictive: minutes a lower "
                    "target must hold")
    ap.add_argument("--max-util", type=float, default=AgentConfig.max_utilisation, help="predictive: the reactive "
                    "safety net's threshold")
    ap.add_argument("--net-on-miss", type=int, choices=(0, 1), default=int(AgentConfig.net_on_miss),
                    help="predictive: 1 fires the safety net only when live arrivals beat the forecast's bound, "
                    "0 whenever they pass --max-util of capacity")
    ap.add_argument("--only", choices=TRACES, help="replay one of the built-in traces")
    ap.add_argument("--bound", default="q", help="the bound policy's headroom over the true rate: q (default: z at "
                    "--quantile), z=<z> (z x sqrt(rate)), h=<req/min>, or spread (the predictive forecaster's own "
                    "upper bound less its mean, minute by minute)")
    return ap


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    if not re.fullmatch(r"q|spread|[zh]=\d+(\.\d+)?", args.bound):
        raise SystemExit(f"--bound {args.bound!r}: give q, spread, z=<number> or h=<number>")
    if args.days < 1:
        raise SystemExit(f"--days {args.days}: give at least 1")
    if not 0.5 <= args.quantile < 1:
        raise SystemExit(f"--quantile {args.quantile}: give 0.5 <= q < 1")
    if args.trace and args.only:
        raise SystemExit("--only picks a built-in trace; it cannot go with --trace")

    if args.profile:
        configs = [Config(**c) for c in json.loads(Path(args.profile).read_text())]
    else:
        configs = measure_profiles(args.rows)
    # One edge box (2 cores, free), and two cloud pools priced like t3.large and c5.2xlarge.
    sites = [Site("edge", 2.0, 4096), Site("cloud-std", 2.0, 8192, price_per_hour=0.0832, max_vms=40),
             Site("cloud-big", 8.0, 16384, price_per_hour=0.34, max_vms=10)]
    if args.trace:
        counts = file_trace(args.trace)
        traces, known = {"file": counts}, {"file": (smoothed(counts), None)}
    else:
        names = (args.only,) if args.only else TRACES
        traces, known = {}, {}
        if "generated" in names:
            seasonal, bursts, traces["generated"] = generated_rates(args.days, args.seed)
            known["generated"] = (seasonal, bursts)
        if "taylor" in names:
            rate, traces["taylor"] = taylor_rates(args.days, args.seed)
            known["taylor"] = (rate, None)
        if "daily" in names:
            rate, traces["daily"] = daily_rates(args.days, args.seed)
            known["daily"] = (rate, None)
    results, verdicts = {}, {}
    for name, arrivals in traces.items():
        results[name] = {}
        for policy in POLICIES:
            results[name][policy] = simulate(policy, arrivals, configs, sites, args, known=known[name])
            print(f"{name} {policy}: {results[name][policy]}", file=sys.stderr)
        verdicts[name] = v = judge(results[name], len(arrivals))
        r = results[name]
        print(f"\n{name}: {len(arrivals)} minutes, {arrivals.min():.0f}-{arrivals.max():.0f} requests/min")
        print(f"  {'policy':12} {'cost':>9} {'violating min':>14} {'%':>7} {'forecast MAPE %':>16} {'level sd':>9}")
        for policy in POLICIES:
            x = r[policy]
            m = f"{x['forecast_mape_pct']:.2f}" if x["forecast_mape_pct"] is not None else "-"
            sd = f"{x['forecast_level_sd']:.2f}" if x["forecast_level_sd"] is not None else "-"
            print(f"  {policy:12} {x['cost']:9.2f} {x['violating_minutes']:14d} {x['violating_pct']:7.3f} {m:>16} {sd:>9}")
        missed = [k for k, ok in v["checks"].items() if not ok]
        print(f"  predictive cost = {v['cost_vs_bound']}x bound, {v['cost_vs_oracle']}x oracle, "
              f"{v['cost_vs_static_peak']}x static peak; violating minutes {r['predictive']['violating_minutes']} "
              f"(at most {v['violating_allowed']}): " + ("met" if v["met"] else "NOT met: " + ", ".join(missed)))
    out = {"bench": "autoscale", "args": vars(args), "configs": [c.__dict__ for c in configs],
           "sites": [s.__dict__ for s in sites], "results": results, "verdicts": verdicts,
           "target_met": all(v["met"] for v in verdicts.values())}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    sys.exit(0 if main()["target_met"] else 1)
