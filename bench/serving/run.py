"""Serving benchmark: the service endpoint (router) against plain `bentoml serve`, in one run.

    python -m bench.serving.run [--rounds 10] [--requests 1000] [--duration 2] [--concurrency 8] [--starts 3]

Everything is real and local (127.0.0.1): a small scikit-learn model is packaged with
control_plane/packaging (build, canonical archive, ArtifactStore), fetched by digest into a
node BentoCache and imported, then:

* latency: a sequential keep-alive client per path, p50/p99 of POST /predict, straight to a plain
  `bentoml serve` process vs through a ServiceRouter process in front of that same process, the
  two paths interleaved request by request so both see the same background load;
* throughput: `--concurrency` clients for `--duration` s, the same two paths in alternating
  rounds; the ratio is the median over back-to-back pairs;
* cold start: `bentoml serve <tag>` spawned by hand (time to the first 200 on /healthz) vs
  ReplicaRunner.start of the same cached bento, plus the one-off `bentoml import` from the cache.

Targets: latency ratio <= 1.10, throughput
ratio >= 0.90.  Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aiohttp  # noqa: E402

from control_plane.packaging.build import build_bento  # noqa: E402
from control_plane.packaging.store import ArtifactStore  # noqa: E402
from node_daemon.replicas.cache import BentoCache  # noqa: E402
from stratum.runtime.runner import PortAllocator, ReplicaRunner, bentoml_cli, bentoml_env, http_ok  # noqa: E402

ROWS = [{"speed": 20.0, "count": 80, "zone": "north"}, {"speed": 75.5, "count": 3, "zone": "south"}]
BODY = json.dumps({"instances": ROWS}).encode()
HEADERS = {"Content-Type": "application/json"}


def make_artifact(out: Path) -> Path:
    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    n = 2000
    df = pd.DataFrame({"speed": rng.normal(50, 15, n), "count": rng.integers(0, 100, n).astype("float64"),
                       "zone": rng.choice(["north", "south", "east"], n)})
    y = np.where(df["speed"] - 0.2 * df["count"] < 35, "congested", "free")
    model = Pipeline([("pre", ColumnTransformer([("num", StandardScaler(), ["speed", "count"]),
                                                 ("cat", OneHotEncoder(handle_unknown="ignore"), ["zone"])])),
                      ("clf", RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0, n_jobs=1))]).fit(df, y)
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out / "model.joblib", compress=3)
    (out / "metadata.json").write_text(json.dumps({
        "task": "classification", "target": "state", "classes": ["congested", "free"],
        "features": [{"name": "speed", "type": "float", "input_dtype": "float64"},
                     {"name": "count", "type": "integer", "input_dtype": "float64"},
                     {"name": "zone", "type": "string", "input_dtype": "str"}]}))
    return out


# -- processes ---------------------------------------------------------------------------------
def spawn_plain(tag: str, home: Path, port: int, log: Path) -> subprocess.Popen:
    """`bentoml serve` exactly as a user would run it (no runner)."""
    with open(log, "ab") as f:
        return subprocess.Popen([*bentoml_cli(), "serve", tag, "--port", str(port), "--host", "127.0.0.1"],
                                env=bentoml_env(home), stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 120) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args} exited with {proc.returncode}")
        if http_ok("127.0.0.1", port, "/healthz", timeout=2):
            return time.monotonic() - t0
        time.sleep(0.05)
    raise RuntimeError(f"port {port} not healthy after {timeout}s")


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)


def tree_cpu(pid: int) -> float:
    """user+system CPU seconds of a process and its descendants."""
    import psutil

    total = 0.0
    root = psutil.Process(pid)
    for p in [root, *root.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def spawn_router(backend_port: int, log: Path) -> tuple[subprocess.Popen, str]:
    f = open(log, "ab")
    proc = subprocess.Popen([sys.executable, "-m", "node_daemon.replicas.router", "--port", "0",
                             "--backend", f"127.0.0.1:{backend_port}"], stdout=subprocess.PIPE, stderr=f,
                            stdin=subprocess.DEVNULL, start_new_session=True,
                            cwd=str(Path(__file__).resolve().parents[2]))
    line = proc.stdout.readline()
    return proc, json.loads(line)["url"]


# -- load --------------------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


async def latency_interleaved(urls: dict[str, str], n: int, warmup: int = 30) -> dict[str, list[float]]:
    """`n` sequential requests per path, alternating path by path (A B B A A B ...), one keep-alive
    session per path: both paths see the same background load, request for request."""
    names = list(urls)
    out: dict[str, list[float]] = {k: [] for k in names}
    sessions = {k: aiohttp.ClientSession() for k in names}
    try:
        for k in names:
            for _ in range(warmup):
                async with sessions[k].post(urls[k] + "/predict", data=BODY, headers=HEADERS) as r:
                    await r.read()
        for i in range(n):
            for k in (names if i % 2 == 0 else names[::-1]):
                t0 = time.perf_counter()
                async with sessions[k].post(urls[k] + "/predict", data=BODY, headers=HEADERS) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"{urls[k]}: HTTP {r.status}")
                out[k].append((time.perf_counter() - t0) * 1000)
    finally:
        for s in sessions.values():
            await s.close()
    return out


async def throughput_round(url: str, concurrency: int, duration: float) -> tuple[float, int]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        for _ in range(concurrency):
            async with s.post(url + "/predict", data=BODY, headers=HEADERS) as r:
                await r.read()
        done = errors = 0
        end = time.perf_counter() + duration

        async def client():
            nonlocal done, errors
            while time.perf_counter() < end:
                async with s.post(url + "/predict", data=BODY, headers=HEADERS) as r:
                    await r.read()
                    if r.status == 200:
                        done += 1
                    else:
                        errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return done / (time.perf_counter() - t0), errors


# -- main --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.serving.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=10, help="throughput rounds per path (alternating)")
    p.add_argument("--requests", type=int, default=1000, help="sequential requests per path (interleaved)")
    p.add_argument("--duration", type=float, default=2.0, help="seconds per throughput round")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--starts", type=int, default=3, help="cold starts measured per path")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="stratum-bench-serving-"))
    procs: list[subprocess.Popen] = []
    runner = None
    try:
        t0 = time.monotonic()
        art_dir = make_artifact(tmp / "artifact")
        art = build_bento(art_dir, "bench-model", "v1", tmp / "cp" / "bentoml", tmp / "cp" / "work")
        store = ArtifactStore(tmp / "cp")
        digest = store.put(art.path)
        build_s = time.monotonic() - t0
        cache = BentoCache(tmp / "node" / "cache", max_bytes=1 << 30)
        t1 = time.monotonic()
        cache.fetch(digest, store.size(digest), lambda o, n: store.read(digest, o, n))
        fetch_s = time.monotonic() - t1
        t1 = time.monotonic()
        tag = cache.acquire(digest)
        import_s = time.monotonic() - t1
        home = cache.bentoml_home
        ports = PortAllocator()
        print(f"bento {tag} sha256:{digest[:12]} {art.size_bytes} B: build+store {build_s:.1f}s, "
              f"fetch {fetch_s * 1000:.0f}ms, bentoml import {import_s:.2f}s", file=sys.stderr)

        # Cold starts, alternating.
        plain_starts, runner_starts = [], []
        runner = ReplicaRunner(home, tmp / "node" / "run", ports=ports)
        def plain_start(i: int) -> None:
            port = ports.allocate()
            proc = spawn_plain(tag, home, port, tmp / f"plain-start-{i}.log")
            try:
                plain_starts.append(wait_healthy(port, proc))
            finally:
                kill_group(proc)
                ports.release(port)

        def runner_start(i: int) -> None:
            rep = runner.start(tag, replica_id=f"cold-{i}")
            runner_starts.append(rep.load_time_s)
            runner.stop(rep)

        for i in range(args.starts):
            for start in ((plain_start, runner_start) if i % 2 == 0 else (runner_start, plain_start)):
                start(i)

        # One plain server; the router in its own process in front of it.
        port = ports.allocate()
        plain = spawn_plain(tag, home, port, tmp / "plain.log")
        procs.append(plain)
        wait_healthy(port, plain)
        router, router_url = spawn_router(port, tmp / "router.log")
        procs.append(router)
        direct_url = f"http://127.0.0.1:{port}"
        urls = {"direct": direct_url, "router": router_url}
        cpu0 = {"backend": tree_cpu(plain.pid), "router": tree_cpu(router.pid)}
        lat = asyncio.run(latency_interleaved(urls, args.requests))
        cpu1 = {"backend": tree_cpu(plain.pid), "router": tree_cpu(router.pid)}
        # CPU per request does not depend on what else the machine runs: the router's cost next to BentoML's.
        backend_cpu_us = (cpu1["backend"] - cpu0["backend"]) / (2 * args.requests) * 1e6
        router_cpu_us = (cpu1["router"] - cpu0["router"]) / args.requests * 1e6
        thr = {"direct": [], "router": []}
        pair_ratios = []
        errors = 0
        for r in range(args.rounds):
            order = ["direct", "router"] if r % 2 == 0 else ["router", "direct"]
            for name in order:
                rps, err = asyncio.run(throughput_round(urls[name], args.concurrency, args.duration))
                thr[name].append(rps)
                errors += err
            pair_ratios.append(thr["router"][-1] / thr["direct"][-1])
        med = statistics.median
        res = {
            "direct_p50_ms": pct(lat["direct"], 0.50), "router_p50_ms": pct(lat["router"], 0.50),
            "direct_p99_ms": pct(lat["direct"], 0.99), "router_p99_ms": pct(lat["router"], 0.99),
            "direct_rps": med(thr["direct"]), "router_rps": med(thr["router"]),
            "plain_cold_start_s": med(plain_starts), "runner_cold_start_s": med(runner_starts),
            "import_from_cache_s": import_s, "fetch_s": fetch_s, "bento_bytes": art.size_bytes,
            "rounds": args.rounds, "requests_per_path": args.requests, "concurrency": args.concurrency,
            "duration_s": args.duration, "errors": errors, "cpus": os.cpu_count(),
            "load_avg_1m": os.getloadavg()[0],
            "backend_cpu_us_per_request": backend_cpu_us, "router_cpu_us_per_request": router_cpu_us,
        }
        res["p50_ratio"] = res["router_p50_ms"] / res["direct_p50_ms"]
        res["p99_ratio"] = res["router_p99_ms"] / res["direct_p99_ms"]
        res["throughput_ratio"] = med(pair_ratios)  # median of back-to-back pairs: robust to load drift
        res["cold_start_ratio"] = res["runner_cold_start_s"] / res["plain_cold_start_s"]
        res["latency_target_met"] = res["p50_ratio"] <= 1.10
        res["throughput_target_met"] = res["throughput_ratio"] >= 0.90
        res = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in res.items()}

        rows = [("p50 latency (ms)", res["direct_p50_ms"], res["router_p50_ms"], res["p50_ratio"], "<= 1.10"),
                ("p99 latency (ms)", res["direct_p99_ms"], res["router_p99_ms"], res["p99_ratio"], ""),
                (f"throughput (req/s, {args.concurrency} clients)", res["direct_rps"], res["router_rps"],
                 res["throughput_ratio"], ">= 0.90"),
                ("cold start (s): plain serve vs runner", res["plain_cold_start_s"], res["runner_cold_start_s"],
                 res["cold_start_ratio"], "")]
        print(f"{'':42} {'plain bentoml':>14} {'via router':>12} {'ratio':>7}  target")
        for label, a, b, ratio, target in rows:
            print(f"{label:42} {a:14.3f} {b:12.3f} {ratio:7.3f}  {target}")
        print(f"CPU per request: bentoml {backend_cpu_us:.0f} us, router {router_cpu_us:.0f} us "
              f"(+{router_cpu_us / backend_cpu_us * 100:.1f}%)")
        print(f"(one-off `bentoml import` of the cached bento: {import_s:.2f}s; throughput pairs router/direct "
              f"{[round(x, 3) for x in pair_ratios]}; {args.requests} interleaved sequential requests per path; "
              f"load average {res['load_avg_1m']:.1f} on {os.cpu_count()} CPUs)")
        print(json.dumps(res, sort_keys=True))
        return res
    finally:
        for proc in procs:
            kill_group(proc)
        if runner is not None:
            runner.stop_all()
        if not args.keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
