"""Pipeline benchmark: the smart-traffic apps deployed by Stratum against the same programs started
by hand, in one run.

    python -m bench.pipeline.run [--rounds 6] [--rate 19.7] [--window 20] [--ramp 25,50,100,...]
                                 [--starts 7] [--only latency,throughput,startup]

sensors -> mosquitto -> processor -> congestion model -> store, twice on this machine: one
pipeline deployed by a real control plane and node daemon (apps created through the gRPC API from
the apps artifact, the model trained and served as a stratum_service), one started by hand (the
same files and environment, a plain `bentoml serve` of the same bento). Only one pipeline's
sensors send at a time, in alternating order (A B, B A, ...), so both see the same machine.

* latency: `--rounds` windows per arm at `--rate` readings/s per intersection (8 intersections):
  sensor -> decision per decision (the newest reading of a window sent -> the decision received
  by a subscriber on the broker) and sensor -> store per reading, p50/p99 over all rounds;
* throughput: the sensor rate ramped (`--ramp`), each step in both arms; a step is sustained when
  the store takes in what was offered and the published-minus-stored lag does not grow;
* startup: CreateApp of the processor, artifact cached, until GetApp says ready, against
  `python3 processor.py` by hand until /healthz answers (the same check).

Targets: latency ratio <= 1.10 (p50 and p99), throughput ratio >= 0.90, start ratio <= 1.20.
Progress goes to stderr; a table, then one JSON line, to stdout. Exit status 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.pipeline import measure as ms  # noqa: E402
from bench.pipeline import startup  # noqa: E402
from bench.pipeline.arms import INTERSECTIONS, HandArm, StratumArm  # noqa: E402

DEFAULT_RAMP = "50,100,200,300,400,500,600,800"


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def stats(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as r:
        return json.loads(r.read())


def drain(arm, limit_s: float = 120) -> None:
    """Wait until what this arm's sensors published is stored (a saturated step leaves a backlog on
    its broker), so the next window of either arm starts from an idle machine."""
    deadline = time.monotonic() + limit_s
    files = arm.sensor_state_files()
    while time.monotonic() < deadline:
        if ms.published(files) - ms.last_observation_id(arm.db) <= 0:
            return
        time.sleep(0.25)
    say(f"{arm.name}: backlog not drained after {limit_s:.0f}s; measuring anyway")


def window(arm, decisions: ms.DecisionLog, rate: float, warmup: float, seconds: float) -> ms.Window:
    """Sensors of `arm` at `rate` per intersection, `warmup` s, then one measured window; idle after."""
    t = time.monotonic()
    arm.set_rate(rate)
    switch_s = time.monotonic() - t
    if switch_s > 5:
        say(f"{arm.name}: sensors took {switch_s:.1f}s to start at the new rate")
    time.sleep(warmup)
    files = arm.sensor_state_files()
    groups = arm.pid_groups()
    me = [os.getpid()]
    own = getattr(arm, "own_only", set())  # groups whose children are counted in other groups
    cpu0 = {g: ms.cpu_seconds(p, g not in own) for g, p in groups.items()}
    ours0, busy0 = ms.cpu_seconds(me), ms.machine_busy_seconds()
    t0 = time.time()
    id0, pub0 = ms.last_observation_id(arm.db), ms.published(files)
    time.sleep(seconds)
    id1, pub1 = ms.last_observation_id(arm.db), ms.published(files)
    t1 = time.time()
    cpu1 = {g: ms.cpu_seconds(p, g not in own) for g, p in groups.items()}
    ours1, busy1 = ms.cpu_seconds(me), ms.machine_busy_seconds()
    backlog = stats(arm.processor_port).get("backlog", 0)
    t = time.monotonic()
    arm.set_rate(None)
    if time.monotonic() - t > 5:
        say(f"{arm.name}: sensors took {time.monotonic() - t:.1f}s to stop")
    got = decisions.between(t0, t1)
    w = ms.Window(arm=arm.name, offered=rate * INTERSECTIONS, seconds=t1 - t0, published=pub1 - pub0,
                  stored=id1 - id0, lag_start=pub0 - id0, lag_end=pub1 - id1,
                  store_latency=ms.store_latencies(arm.db, id0, id1),
                  decision_latency=[r[0] - r[1] for r in got if r[3] == "model"],
                  after_close=[r[0] - r[2] for r in got if r[3] == "model"],
                  fallback_decisions=sum(1 for r in got if r[3] != "model"),
                  cpu={g: (cpu1[g] - cpu0.get(g, 0.0)) / (t1 - t0) for g in cpu1},
                  other_cores=max(0.0, ((busy1 - busy0) - (ours1 - ours0)) / (t1 - t0)), backlog_end=backlog)
    t = time.monotonic()
    drain(arm)
    if time.monotonic() - t > 5:
        say(f"{arm.name}: the backlog took {time.monotonic() - t:.1f}s to drain")
    return w


def ms_(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 2)


def summary(ws: list[ms.Window]) -> dict:
    dec = [x for w in ws for x in w.decision_latency]
    after = [x for w in ws for x in w.after_close]
    store = [x for w in ws for x in w.store_latency]
    stored = sum(w.stored for w in ws)
    cpu = {g: round(statistics.mean(w.cpu.get(g, 0.0) for w in ws), 3) for g in ws[0].cpu}
    return {"decision_p50_ms": ms_(ms.pct(dec, 0.5)), "decision_p99_ms": ms_(ms.pct(dec, 0.99)),
            "after_close_p50_ms": ms_(ms.pct(after, 0.5)), "after_close_p99_ms": ms_(ms.pct(after, 0.99)),
            "store_p50_ms": ms_(ms.pct(store, 0.5)), "store_p99_ms": ms_(ms.pct(store, 0.99)),
            "decisions": len(dec), "fallback_decisions": sum(w.fallback_decisions for w in ws), "readings": stored,
            "cpu_cores": cpu,
            "cpu_us_per_reading": round(sum(sum(w.cpu.values()) * w.seconds for w in ws) / max(stored, 1) * 1e6, 1),
            "other_cores_max": round(max(w.other_cores for w in ws), 2)}


def ratio(a, b) -> float | None:
    return None if not a or not b else round(a / b, 3)


def model_calls(urls: dict[str, str], n: int) -> dict[str, list[float]]:
    """`n` POST /predict per URL, interleaved, each on a new connection with the body of a window's
    8 intersections, as the processor sends them (urllib): the model hop on its own."""
    body = json.dumps({"instances": [{"intersection": f"i-0{i}", "hour": 8, "weekday": 1, "weather": "rain",
                                      "temperature_c": 6.0, "vehicles_per_min": 40.0 + i,
                                      "pedestrians_per_min": 12.0} for i in range(1, 9)]}).encode()
    out: dict[str, list[float]] = {k: [] for k in urls}
    for i in range(n):
        for k in (list(urls) if i % 2 == 0 else list(urls)[::-1]):
            req = urllib.request.Request(urls[k] + "/predict", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
            t0 = time.perf_counter()
            with urllib.request.urlopen(req, timeout=10) as r:
                r.read()
            out[k].append(time.perf_counter() - t0)
    return out


def pair(arms, logs, rate: float, seconds: float, args, k: int) -> dict[str, ms.Window]:
    """One window per arm, in the order of pair k (A B, then B A, ...)."""
    return {arm.name: window(arm, logs[arm.name], rate, args.warmup, seconds) for arm in (arms if k % 2 == 0 else arms[::-1])}


def quiet(p: dict[str, ms.Window], args) -> bool:
    """Neither window of the pair shared the machine with more than --max-other busy cores of others."""
    return all(w.other_cores <= args.max_other for w in p.values())


def latency_phase(arms, logs, args) -> dict:
    """Pairs of windows until `--rounds` quiet pairs (at most twice as many pairs in all); the
    figures come from the quiet pairs, or from every pair when fewer than half were quiet."""
    pairs: list[dict[str, ms.Window]] = []
    while sum(quiet(p, args) for p in pairs) < args.rounds and len(pairs) < 2 * args.rounds:
        p = pair(arms, logs, args.rate, args.window, args, len(pairs))
        pairs.append(p)
        for name, w in p.items():
            say(f"latency pair {len(pairs)} {name:8}: decision p50 {ms_(ms.pct(w.decision_latency, 0.5))} ms "
                f"p99 {ms_(ms.pct(w.decision_latency, 0.99))} ms, store p50 {ms_(ms.pct(w.store_latency, 0.5))} ms, "
                f"{w.stored_rate:.0f}/s, other load {w.other_cores:.2f} cores")
    calm = [p for p in pairs if quiet(p, args)]
    use = calm if len(calm) >= max(1, args.rounds // 2) else pairs
    per = {arm.name: [p[arm.name] for p in use] for arm in arms}
    out = {name: summary(ws) for name, ws in per.items()}
    for arm in arms:
        out[arm.name]["processor_model_ms_p50"] = stats(arm.processor_port).get("model_ms_p50")
    hand, stratum = {a.name: a for a in arms}["by hand"], {a.name: a for a in arms}["stratum"]
    calls = model_calls({"by hand": f"http://127.0.0.1:{hand.model_port}", "stratum": stratum.service_url}, 300)
    for name, xs in calls.items():
        out[name]["model_call_p50_ms"], out[name]["model_call_p99_ms"] = ms_(ms.pct(xs, 0.5)), ms_(ms.pct(xs, 0.99))
    s, h = out["stratum"], out["by hand"]
    out["ratios"] = {k: ratio(s[k], h[k]) for k in ("decision_p50_ms", "decision_p99_ms", "after_close_p50_ms",
                                                      "after_close_p99_ms", "store_p50_ms", "store_p99_ms",
                                                      "cpu_us_per_reading", "model_call_p50_ms",
                                                      "model_call_p99_ms")}
    # per pair: how much the p50 ratio moves from one pair to the next (machine noise)
    out["ratios"]["decision_p50_pairs"] = [ratio(ms.pct(a.decision_latency, 0.5), ms.pct(b.decision_latency, 0.5))
                                           for a, b in zip(per["stratum"], per["by hand"])]
    out["pairs_measured"], out["pairs_quiet"], out["pairs_used"] = len(pairs), len(calm), len(use)
    out["inconclusive"] = len(calm) < args.rounds
    return out


def throughput_phase(arms, logs, args) -> dict:
    """Each step of the ramp in both arms (alternating order); a disturbed pair is measured again,
    up to twice, keeping the least disturbed. Stops after the first step neither arm sustained."""
    steps = {arm.name: [] for arm in arms}
    failed: set[str] = set()
    disturbed = 0
    for k, rate in enumerate(args.ramp):
        tries = []
        for t in range(3):
            tries.append(pair(arms, logs, rate, args.ramp_window, args, k + t))
            if quiet(tries[-1], args):
                break
        p = min(tries, key=lambda p: max(w.other_cores for w in p.values()))
        disturbed += not quiet(p, args)
        for name, w in p.items():
            ok, why = ms.verdict(w)
            steps[name].append(w)
            if not ok:
                failed.add(name)
            say(f"ramp {rate * INTERSECTIONS:.0f}/s {name:8}: published {w.published_rate:.0f}/s stored "
                f"{w.stored_rate:.0f}/s lag {w.lag_growth:+.0f}/s backlog {w.backlog_end} "
                f"{'sustained' if ok else 'NOT sustained: ' + why}; decision p50 "
                f"{ms_(ms.pct(w.decision_latency, 0.5))} ms; cpu {sum(w.cpu.values()):.2f} cores, other "
                f"{w.other_cores:.2f}" + (f" ({len(tries)} tries)" if len(tries) > 1 else ""))
        if len(failed) == len(arms):
            break
    out = {}
    for name, ws in steps.items():
        out[name] = {"largest_sustained_per_s": ms.largest_sustained(ws),
                     "max_stored_per_s": round(max(w.stored_rate for w in ws), 1),
                     "steps": [{"offered": w.offered, "published_per_s": round(w.published_rate, 1),
                                "stored_per_s": round(w.stored_rate, 1), "lag_growth_per_s": round(w.lag_growth, 1),
                                "sustained": ms.verdict(w)[0], "why_not": ms.verdict(w)[1],
                                "decision_p50_ms": ms_(ms.pct(w.decision_latency, 0.5)),
                                "decision_p99_ms": ms_(ms.pct(w.decision_latency, 0.99)),
                                "cpu_cores": {g: round(v, 3) for g, v in w.cpu.items()},
                                "other_cores": round(w.other_cores, 2)} for w in ws]}
    out["steps_disturbed"] = disturbed
    s, h = out["stratum"], out["by hand"]
    out["ratios"] = {"largest_sustained": ratio(s["largest_sustained_per_s"], h["largest_sustained_per_s"]),
                     "max_stored": ratio(s["max_stored_per_s"], h["max_stored_per_s"])}
    if not failed:
        say("throughput: every step was sustained by both arms; raise --ramp to find the limit")
    return out


def startup_phase(stratum, hand, args) -> dict:
    ours0, busy0, t0 = ms.cpu_seconds([os.getpid()]), ms.machine_busy_seconds(), time.monotonic()
    runs = startup.measure(stratum, hand, args.starts, say)
    other = ((ms.machine_busy_seconds() - busy0) - (ms.cpu_seconds([os.getpid()]) - ours0)) / (time.monotonic() - t0)
    s = [r["ready_s"] for r in runs["stratum"]]
    h = [r["ready_s"] for r in runs["hand"]]
    healthy = [r["process_healthy_s"] for r in runs["stratum"] if r["process_healthy_s"]]
    pairs = [round(x / y, 3) for x, y in zip(s, h)]
    med = statistics.median
    return {"stratum_ready_s": round(med(s), 3), "hand_ready_s": round(med(h), 3),
            "stratum_process_healthy_s": round(med(healthy), 3) if healthy else None,
            "stratum_create_rpc_s": round(med(r["create_rpc_s"] for r in runs["stratum"]), 4),
            "ratio": round(med(pairs), 3), "ratio_of_medians": ratio(med(s), med(h)), "pairs": pairs,
            "stratum_runs_s": [round(x, 3) for x in s], "hand_runs_s": [round(x, 3) for x in h],
            "other_cores": round(max(0.0, other), 2)}


def table(res: dict) -> None:
    def row(label, a, b, r, target=""):
        fa = "-" if a is None else f"{a:.3f}" if isinstance(a, float) else str(a)
        fb = "-" if b is None else f"{b:.3f}" if isinstance(b, float) else str(b)
        print(f"{label:48} {fa:>12} {fb:>12} {('-' if r is None else f'{r:.3f}'):>7}  {target}")

    print(f"{'':48} {'by hand':>12} {'Stratum':>12} {'ratio':>7}  target")
    if "latency" in res:
        L = res["latency"]
        h, s, r = L["by hand"], L["stratum"], L["ratios"]
        row("sensor -> decision p50 (ms)", h["decision_p50_ms"], s["decision_p50_ms"], r["decision_p50_ms"], "<= 1.10")
        row("sensor -> decision p99 (ms)", h["decision_p99_ms"], s["decision_p99_ms"], r["decision_p99_ms"], "<= 1.10")
        row("window closed -> decision p50 (ms)", h["after_close_p50_ms"], s["after_close_p50_ms"],
            r["after_close_p50_ms"])
        row("window closed -> decision p99 (ms)", h["after_close_p99_ms"], s["after_close_p99_ms"],
            r["after_close_p99_ms"])
        row("sensor -> store p50 (ms, per reading)", h["store_p50_ms"], s["store_p50_ms"], r["store_p50_ms"])
        row("sensor -> store p99 (ms, per reading)", h["store_p99_ms"], s["store_p99_ms"], r["store_p99_ms"])
        row("model call alone p50 (ms; router vs direct)", h["model_call_p50_ms"], s["model_call_p50_ms"],
            r["model_call_p50_ms"])
        row("CPU per reading (us, pipeline + Stratum)", h["cpu_us_per_reading"], s["cpu_us_per_reading"],
            r["cpu_us_per_reading"])
    if "throughput" in res:
        T = res["throughput"]
        h, s, r = T["by hand"], T["stratum"], T["ratios"]
        row("largest sustained rate (readings/s)", h["largest_sustained_per_s"], s["largest_sustained_per_s"],
            r["largest_sustained"], ">= 0.90")
        row("most stored per second in a step", h["max_stored_per_s"], s["max_stored_per_s"], r["max_stored"])
    if "startup" in res:
        S = res["startup"]
        row("start to healthy, artifact cached (s)", S["hand_ready_s"], S["stratum_ready_s"], S["ratio"], "<= 1.20")
        row("  Stratum: process answering /healthz (s)", None, S["stratum_process_healthy_s"], None)
    notes = []
    if "latency" in res:
        L = res["latency"]
        notes.append(f"latency: {L['pairs_quiet']} of {L['pairs_measured']} pairs quiet, {L['pairs_used']} used"
                     + (" (INCONCLUSIVE: too few quiet pairs)" if L["inconclusive"] else ""))
    if "throughput" in res:
        notes.append(f"throughput: {res['throughput']['steps_disturbed']} step(s) disturbed")
    if "startup" in res:
        notes.append(f"startup: other processes used {res['startup']['other_cores']:.2f} cores meanwhile")
    print(f"({'; '.join(notes)}; quiet = other processes at most {res['max_other']} cores; load average "
          f"{res['load_avg_1m_start']} at the start, {res['load_avg_1m_end']} at the end, {res['cpus']} CPUs)")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.pipeline.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=8, help="quiet latency pairs wanted (one window per arm each)")
    p.add_argument("--rate", type=float, default=19.7,
                   help="readings/s per intersection in the latency rounds (not a divisor of the window: the "
                        "newest reading's offset from the window's end varies)")
    p.add_argument("--window", type=float, default=15.0, help="seconds per latency window")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds after the sensors start, before a window")
    p.add_argument("--ramp", default=DEFAULT_RAMP, help="readings/s per intersection, one throughput step each")
    p.add_argument("--ramp-window", type=float, default=12.0, help="seconds per throughput step")
    p.add_argument("--starts", type=int, default=7, help="app starts per arm (alternating)")
    p.add_argument("--sensors", type=int, default=4, choices=[1, 2, 4, 8],
                   help="sensor instances, sharing the 8 intersections (each fsyncs its state once a round)")
    p.add_argument("--processor-window", type=float, default=1.0, help="the processor's WINDOW_S")
    p.add_argument("--max-other", type=float, default=0.5,
                   help="busy cores of other processes above which a window counts as disturbed")
    p.add_argument("--only", default="latency,throughput,startup", help="phases to run, comma-separated")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args(argv)
    try:
        args.ramp = [float(x) for x in args.ramp.split(",") if x.strip()]
    except ValueError:
        p.error(f"--ramp takes numbers separated by commas, not {args.ramp!r}")
    phases = {x.strip() for x in args.only.split(",") if x.strip()}
    if not phases or phases - {"latency", "throughput", "startup"}:
        p.error(f"--only takes latency, throughput and/or startup, not {args.only!r}")

    tmp = Path(tempfile.mkdtemp(prefix="stratum-bench-pipeline-"))
    stratum = hand = None
    logs: dict[str, ms.DecisionLog] = {}
    res: dict = {"cpus": os.cpu_count(), "load_avg_1m_start": round(os.getloadavg()[0], 2),
                 "rate_per_intersection": args.rate, "intersections": INTERSECTIONS, "window_s": args.window,
                 "processor_window_s": args.processor_window, "rounds": args.rounds, "sensors": args.sensors,
                 "max_other": args.max_other}
    try:
        say(f"setting up in {tmp}")
        (tmp / "stratum").mkdir()
        (tmp / "hand").mkdir()
        stratum = StratumArm(tmp / "stratum", args.processor_window, args.sensors)
        stratum.start(say)
        hand = HandArm(tmp / "hand", args.processor_window, args.sensors, stratum.bento_home, stratum.bento_tag)
        hand.start(say)
        arms = [hand, stratum]
        logs = {arm.name: ms.DecisionLog(arm.broker_port, arm.name.replace(" ", "-")) for arm in arms}
        say("both pipelines up")
        if "latency" in phases:
            res["latency"] = latency_phase(arms, logs, args)
        if "throughput" in phases:
            res["throughput"] = throughput_phase(arms, logs, args)
        if "startup" in phases:
            res["startup"] = startup_phase(stratum, hand, args)
        res["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
        verdicts = {}
        if "latency" in res:
            r = res["latency"]["ratios"]
            verdicts["latency_target_met"] = bool(r["decision_p50_ms"] and r["decision_p99_ms"]
                                                  and r["decision_p50_ms"] <= 1.10 and r["decision_p99_ms"] <= 1.10)
        if "throughput" in res:
            r = res["throughput"]["ratios"]["largest_sustained"]
            verdicts["throughput_target_met"] = bool(r and r >= 0.90)
        if "startup" in res:
            verdicts["startup_target_met"] = res["startup"]["ratio"] <= 1.20
        res.update(verdicts)
        table(res)
        print(json.dumps(res, sort_keys=True))
        res["_ok"] = all(verdicts.values())
        return res
    finally:
        for log in logs.values():
            log.close()
        for arm in (hand, stratum):
            if arm is not None:
                try:
                    arm.close(say)
                except Exception as e:  # noqa: BLE001 - stop the other arm all the same
                    say(f"closing {arm.name}: {e}")
        if not args.keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        else:
            say(f"kept {tmp}")


if __name__ == "__main__":
    sys.exit(0 if main().get("_ok") else 1)
