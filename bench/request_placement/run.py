"""Request placement benchmark: StraightLine placement against sending everything to one form.

    python -m bench.request_placement.run [--duration 30] [--rounds 1] [--slo-ms 100] [--hop-ms 5]

Everything is real and local (127.0.0.1). A small scikit-learn model (bench/serving's) is
packaged and profiled as the control plane does at packaging time (p95, requests/s per replica,
ms per KiB of input, load time). Then two "nodes" run in this process, each a LocalService with
its router and real `bentoml serve` replicas, exactly as node daemons run them:

* edge node: 1 replica with 1 worker (the `edge` form), and an on-demand pool of 1 replica that
  scales to zero after `--idle-stop` s (the `on_demand` form);
* fog node: `--fog-replicas` replicas (1 worker each, as on the edge) behind its own router,
  reached through a TCP proxy that delays every chunk by `--hop-ms` each way (the network hop;
  the `always_on` form).

Real edge and fog boxes do not share cores; here they would, and a replica on one "node" would
slow the other's. So with `--pin` (the default on 2+ cores) each node's replicas are pinned to
cores of their own (sched_setaffinity, inherited by BentoML's workers): the edge node gets core 0,
the fog node core 1. The client, the routers and the proxy run in this process, unpinned.

The edge router's plan comes from control_plane/placement/forms.py (`routing_plan`) and is
applied by node_daemon/services.py (`route`), the code the control plane and the node run.

The same generated trace (seeded) is replayed open-loop against the edge node's endpoint once
per policy and round, policies alternating: `straightline` (the rule), then `edge`, `always_on`
and `on_demand` (every request forced to that one form). The trace mixes

* steady: `--steady-rps` small requests per second (one stream);
* bursts: every `--burst-every` s, `--burst-size` small requests within 0.3 s (one stream);
* large: every `--large-every` s, one request of `--large-rows` rows (one stream);
* rare: a few small requests per run from streams seen once.

A request fails on a non-200 answer or no answer within `--timeout` s. Prints a table per policy
(p50/p95/p99, failures, per-stream p95, where requests went), then one JSON line. Exit status 0
when StraightLine's p95 is no worse than the best single form's (within 10 %) and its failure
rate no higher than the lowest single form's; 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aiohttp  # noqa: E402

from bench.serving.run import ROWS, make_artifact  # noqa: E402
from control_plane.packaging.build import build_bento  # noqa: E402
from control_plane.packaging.profile import profile_bento  # noqa: E402
from control_plane.packaging.store import ArtifactStore  # noqa: E402
from control_plane.placement.forms import routing_plan  # noqa: E402
from control_plane.services import plan_message  # noqa: E402
from node_daemon.replicas.cache import BentoCache  # noqa: E402
from stratum.runtime.runner import ReplicaRunner  # noqa: E402
from node_daemon.replicas.service import BentoRef, LocalService  # noqa: E402
from node_daemon.services import route  # noqa: E402

POLICIES = ("straightline", "edge", "always_on", "on_demand")


class PinnedRunner(ReplicaRunner):
    """A ReplicaRunner whose replicas run on given cores: pinned at spawn, before BentoML forks its
    workers, so they inherit it."""

    def __init__(self, *args, cpus: list[int] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.cpus = cpus

    def spawn(self, *args, **kwargs):
        replica = super().spawn(*args, **kwargs)
        if self.cpus:
            os.sched_setaffinity(replica.pid, self.cpus)
        return replica


# -- the network hop --------------------------------------------------------------------------
class DelayProxy:
    """TCP proxy that holds every chunk `delay_s` before passing it on, both ways (no netem here)."""

    def __init__(self, target_port: int, delay_s: float):
        self.target_port, self.delay_s = target_port, delay_s
        self.port = 0
        self._server = None

    async def start(self) -> "DelayProxy":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _pipe(self, reader, writer):
        # Each chunk is written delay_s after it was read, and reading goes on meanwhile: a delay,
        # not a bandwidth limit (a large body crosses in about the same delay as a small one).
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        async def send():
            while (item := await queue.get()) is not None:
                due, data = item
                await asyncio.sleep(max(0.0, due - loop.time()))
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(send())
        try:
            while data := await reader.read(65536):
                queue.put_nowait((loop.time() + self.delay_s, data))
            queue.put_nowait(None)
            await sender
        except (ConnectionError, asyncio.CancelledError):
            sender.cancel()
        finally:
            writer.close()

    async def _handle(self, reader, writer):
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, up_w), self._pipe(up_r, writer))

    async def stop(self):
        self._server.close()


# -- the trace --------------------------------------------------------------------------------
def make_trace(args, seed: int) -> list[tuple[float, str, bytes]]:
    rng = random.Random(seed)
    small = json.dumps({"instances": ROWS}).encode()
    big_rows = [dict(ROWS[i % 2], speed=20.0 + (i % 60)) for i in range(args.large_rows)]
    large = json.dumps({"instances": big_rows}).encode()
    events = []
    t = 0.0
    while t < args.duration:  # steady, Poisson arrivals
        t += rng.expovariate(args.steady_rps)
        events.append((t, "steady", small))
    b = 1.0
    while b < args.duration:
        events += [(b + rng.uniform(0, 0.3), "burst", small) for _ in range(args.burst_size)]
        b += args.burst_every
    t = 0.5
    while t < args.duration:
        events.append((t + rng.uniform(0, 0.5), "large", large))
        t += args.large_every
    events += [(rng.uniform(0, args.duration), f"rare-{i}", small) for i in range(args.rare)]
    return sorted(e for e in events if e[0] < args.duration)


async def replay(url: str, trace, timeout: float) -> list[dict]:
    out = []
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=timeout)) as s:
        loop = asyncio.get_running_loop()
        t0 = loop.time()

        async def one(at: float, stream: str, body: bytes):
            await asyncio.sleep(max(0.0, t0 + at - loop.time()))
            start = loop.time()
            rec = {"stream": stream.split("-")[0], "ok": False, "form": ""}
            try:
                async with s.post(url + "/predict", data=body, headers={"x-stratum-stream": stream,
                                                                          "Content-Type": "application/json"}) as r:
                    await r.read()
                    rec["ok"] = r.status == 200
                    rec["form"] = r.headers.get("x-stratum-form", "")
                    rec["status"] = r.status
            except (asyncio.TimeoutError, aiohttp.ClientError) as e:
                rec["status"] = type(e).__name__
            # a failure counts at the timeout: it is what the client waited
            rec["ms"] = (loop.time() - start) * 1000 if rec["ok"] else timeout * 1000
            out.append(rec)

        await asyncio.gather(*(one(*e) for e in trace))
    return out


def pct(values, q):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def summarise(recs: list[dict]) -> dict:
    ms = [r["ms"] for r in recs]
    streams = sorted({r["stream"] for r in recs})
    forms: dict[str, int] = {}
    for r in recs:
        if r["ok"]:
            forms[r["form"] or "?"] = forms.get(r["form"] or "?", 0) + 1
    return {"requests": len(recs), "p50_ms": round(pct(ms, 0.50), 2), "p95_ms": round(pct(ms, 0.95), 2),
            "p99_ms": round(pct(ms, 0.99), 2), "failure_rate": round(sum(not r["ok"] for r in recs) / len(recs), 4),
            "stream_p95_ms": {s: round(pct([r["ms"] for r in recs if r["stream"] == s], 0.95), 2) for s in streams},
            "forms": forms}


# -- the nodes --------------------------------------------------------------------------------
class Loop:
    """An event loop in a thread, for the nodes (the client runs its own)."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout=300):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.request_placement.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=30.0, help="seconds of trace per policy and round")
    p.add_argument("--rounds", type=int, default=2, help="replays per policy, policies alternating")
    p.add_argument("--slo-ms", type=float, default=100.0, help="the service's p95 objective")
    p.add_argument("--hop-ms", type=float, default=5.0, help="one-way delay to the fog node")
    p.add_argument("--fog-replicas", type=int, default=1)
    p.add_argument("--pin", action=argparse.BooleanOptionalAction, default=None,
                   help="pin each node's replicas to a core of its own (default: on with 2+ cores)")
    p.add_argument("--steady-rps", type=float, default=20.0)
    p.add_argument("--burst-every", type=float, default=6.0)
    p.add_argument("--burst-size", type=int, default=60)
    p.add_argument("--large-every", type=float, default=4.0)
    p.add_argument("--large-rows", type=int, default=40000)
    p.add_argument("--rare", type=int, default=5)
    p.add_argument("--idle-stop", type=float, default=10.0, help="on-demand replicas stop after this long idle")
    p.add_argument("--timeout", type=float, default=2.0, help="a request without an answer by then fails")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="stratum-bench-rp-"))
    nodes = Loop()
    services: list[LocalService] = []
    proxy = None
    try:
        # Package and profile, as the control plane does for a model version.
        art_dir = make_artifact(tmp / "artifact")
        art = build_bento(art_dir, "bench-model", "v1", tmp / "cp" / "bentoml", tmp / "cp" / "work")
        prof = profile_bento(art.tag, tmp / "cp" / "bentoml", tmp / "cp" / "profile", instances=ROWS)
        version = {"p95_ms": prof.p95_ms, "capacity_rps": prof.capacity_rps, "ms_per_kib": prof.ms_per_kib,
                   "load_time_s": prof.load_time_s}
        print(f"profile at packaging: {json.dumps(version)}", file=sys.stderr)
        store = ArtifactStore(tmp / "cp")
        digest = store.put(art.path)

        cores = sorted(os.sched_getaffinity(0))
        pin = args.pin if args.pin is not None else len(cores) >= 2

        def node(name: str) -> tuple[BentoCache, ReplicaRunner]:
            cache = BentoCache(tmp / name / "cache", max_bytes=1 << 30)
            cache.fetch(digest, store.size(digest), lambda o, n: store.read(digest, o, n))
            cpus = ([cores[0]] if name == "edge" else [cores[1]]) if pin else None
            return cache, PinnedRunner(cache.bentoml_home, tmp / name / "run", cpus=cpus)

        async def start_nodes():
            fog_cache, fog_runner = node("fog")
            fog = await LocalService("svc", fog_runner, cache=fog_cache, request_timeout=30).start()
            services.append(fog)
            edge_cache, edge_runner = node("edge")
            edge = await LocalService("svc", edge_runner, cache=edge_cache, request_timeout=30).start()
            services.append(edge)
            await asyncio.gather(fog.deploy(BentoRef(digest=digest), replicas=args.fog_replicas, workers=1),
                                 edge.deploy(BentoRef(digest=digest), replicas=1, workers=1))
            hop = await DelayProxy(fog.router.port, args.hop_ms / 1000).start()
            plan = routing_plan("edge", {"edge": 1, "fog": args.fog_replicas}, version,
                                {"mode": "straightline", "on_demand_replicas": 1, "idle_stop_s": args.idle_stop},
                                args.slo_ms, endpoints={"fog": f"http://127.0.0.1:{hop.port}"},
                                names={"edge": "edge-1", "fog": "fog-1"}, tiers={"edge": "edge", "fog": "fog"})
            route(edge, plan_message(plan))
            return edge, hop, plan

        edge, proxy, plan = nodes.run(start_nodes())
        print("forms: " + "; ".join(f"{f.form} p95 {f.p95_ms:g} ms, max input {f.max_input_bytes or 'any'} B, "
                                    f"capacity {f.capacity_rps:g} req/s, cold start {f.cold_start_s:g} s" for f in plan.forms),
              file=sys.stderr)
        trace = make_trace(args, args.seed)
        sizes = sorted({len(b) for _, _, b in trace})
        print(f"trace: {len(trace)} requests over {args.duration:g} s, bodies {sizes} B", file=sys.stderr)

        results: dict[str, list[dict]] = {k: [] for k in POLICIES}

        async def reset(policy: str):
            edge.router.placer.force = None if policy == "straightline" else policy
            edge.router.placer.stats = type(edge.router.placer.stats)(edge.router.placer.stats.half_life_s)
            edge.router.placer._cache.clear()
            await edge.scale(1)  # the pool idles out between policies: each starts from zero on-demand replicas
            for r in list(edge.pool):
                edge.pool.remove(r)
                await edge._retire(r)

        for rnd in range(args.rounds):
            for policy in POLICIES:
                nodes.run(reset(policy))
                time.sleep(1.0)
                recs = asyncio.run(replay(edge.endpoint, trace, args.timeout))
                results[policy] += recs
                s = summarise(recs)
                print(f"round {rnd + 1} {policy:>12}: p95 {s['p95_ms']:8.1f} ms  failures {s['failure_rate']:.2%}  "
                      f"forms {s['forms']}", file=sys.stderr)

        summary = {k: summarise(v) for k, v in results.items()}
        single = [k for k in POLICIES if k != "straightline"]
        best_p95 = min(summary[k]["p95_ms"] for k in single)
        best_fail = min(summary[k]["failure_rate"] for k in single)
        sl = summary["straightline"]
        ok = sl["p95_ms"] <= best_p95 * 1.10 and sl["failure_rate"] <= best_fail
        streams = sorted(sl["stream_p95_ms"])
        print(f"\n{'policy':>12} | {'p50 ms':>8} | {'p95 ms':>8} | {'p99 ms':>8} | {'failed':>7} | "
              + " | ".join(f"p95 {s:>6}" for s in streams) + " | where")
        for k in POLICIES:
            s = summary[k]
            print(f"{k:>12} | {s['p50_ms']:8.1f} | {s['p95_ms']:8.1f} | {s['p99_ms']:8.1f} | {s['failure_rate']:7.2%} | "
                  + " | ".join(f"{s['stream_p95_ms'].get(x, float('nan')):10.1f}" for x in streams) + f" | {s['forms']}")
        print(f"\nstraightline p95 / best single form p95 = {sl['p95_ms'] / best_p95:.3f}; failure rate "
              f"{sl['failure_rate']:.2%} vs lowest single form {best_fail:.2%}: {'met' if ok else 'NOT met'}")
        out = {"bench": "request_placement", "args": vars(args), "profile": version,
               "forms": [f.__dict__ for f in plan.forms], "policies": summary,
               "p95_ratio_vs_best_single": round(sl["p95_ms"] / best_p95, 3), "target_met": ok}
        print(json.dumps(out))
        return out
    finally:
        async def stop():
            for svc in services:
                await svc.destroy()
            if proxy is not None:
                await proxy.stop()
        try:
            nodes.run(stop(), timeout=120)
        finally:
            nodes.loop.call_soon_threadsafe(nodes.loop.stop)
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(0 if main()["target_met"] else 1)
