"""Dashboard benchmark: the overview's server time with a large cluster against an empty one, and
what the dashboard costs an idle control plane, in one run.

    python -m bench.ui.run [--nodes 1000] [--services 500] [--apps 100] [--renders 20] [--cpu-window 60]

1. A real control plane (SQLite) serving the dashboard. The empty cluster: the overview (GET /,
   logged in) rendered --renders times; the server time of each is its Server-Timing header
   (from the request's arrival to its answer, API calls and template included).
2. CPU of the idle control plane over --cpu-window seconds with the dashboard listening and no
   browser, then with one open overview page refreshing itself as ui.js does (at the interval the
   page asks for), then the same control plane's CPU with nobody polling: the added share is
   (with page - without) / window, in % of one core.
3. The large cluster: --nodes simulated nodes (bench/heartbeats' agents: real enrollment, mTLS
   sessions, heartbeats every 5 s) split over cloud, fog and edge; one trained model; --services
   services and --apps apps (each connecting to two services) placed over them. The overview,
   /nodes and /services rendered --renders times each; step 2 again with the fleet.

Targets: the large overview's server time <= 1 s (its first render, which builds the picture, and
the median), the median <= 5x the empty one's; one open
page adds <= 5 % of a core to the idle control plane. Progress on stderr; a table and one JSON
line on stdout; exit 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import json
import re
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx  # noqa: E402
import psutil  # noqa: E402

from bench.heartbeats import sim  # noqa: E402
from bench.heartbeats.run import Workers  # noqa: E402
from stratum.v1 import apps_pb2 as a, control_plane_pb2 as cp, datasets_pb2 as ds, models_pb2 as m  # noqa: E402
from tests.harness import REPO, ControlPlane, wait_for  # noqa: E402
from tests.lifecycle import upload  # noqa: E402

TIERS = (("edge", 0.5), ("fog", 0.3), ("cloud", 0.2))  # share of the nodes
TRAFFIC_CSV = Path(REPO) / "modules" / "examples" / "smart-traffic" / "data" / "traffic.csv"


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def cpu_s(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


class Browser:
    """A logged-in dashboard client (HTTP/1.1 keep-alive, as a browser tab)."""

    def __init__(self, plane: ControlPlane):
        self.picture_build_ms = 0.0  # the overview's last picture build, as the page reports it
        self.c = httpx.Client(base_url=plane.ui_url, verify=ssl.create_default_context(cafile=plane.ca_pem_path), timeout=60)
        r = self.c.post("/login", data={"token": plane.admin_token})
        if r.status_code != 303:
            raise RuntimeError(f"login failed: {r.status_code} {r.text[:200]}")

    def get(self, path: str) -> tuple[float, float, str]:
        """(server ms, client ms, body)."""
        t0 = time.perf_counter()
        r = self.c.get(path)
        client_ms = (time.perf_counter() - t0) * 1000
        if r.status_code != 200:
            raise RuntimeError(f"GET {path}: {r.status_code} {r.text[:300]}")
        server_ms = float(re.search(r"dur=([\d.]+)", r.headers["server-timing"]).group(1))
        if "x-picture-build-ms" in r.headers:
            self.picture_build_ms = float(r.headers["x-picture-build-ms"])
        return server_ms, client_ms, r.text

    def renders(self, path: str, n: int) -> dict:
        first = self.get(path)[0]  # the first look: templates compiled, channels open, the overview's picture built
        server, client, size = [], [], 0
        for _ in range(n):
            s, c, body = self.get(path)
            server.append(s)
            client.append(c)
            size = len(body)
        server.sort()
        return {"first_ms": round(first, 1), "server_ms_median": round(statistics.median(server), 1),
                "server_ms_p95": round(server[min(len(server) - 1, int(0.95 * len(server)))], 1),
                "client_ms_median": round(statistics.median(client), 1), "bytes": size, "renders": n}

    def close(self) -> None:
        self.c.close()


def live_interval(body: str) -> float:
    return float(re.search(r'data-live-s="([\d.]+)"', body).group(1))


def cpu_cost(plane: ControlPlane, browser: Browser, window: float) -> dict:
    """The control plane's CPU over `window` s with nobody looking, then with the overview open."""
    proc = psutil.Process(plane.proc.pid)
    c0, t0 = cpu_s(proc), time.monotonic()
    time.sleep(window)
    idle = (cpu_s(proc) - c0) / (time.monotonic() - t0)
    _, _, body = browser.get("/")
    every = live_interval(body)
    c0, t0, polls = cpu_s(proc), time.monotonic(), 0
    while time.monotonic() - t0 < window:  # what ui.js does on an open overview
        nxt = t0 + polls * every
        time.sleep(max(0.0, nxt - time.monotonic()))
        browser.get("/api/overview")
        polls += 1
    looked = (cpu_s(proc) - c0) / (time.monotonic() - t0)
    return {"idle_cores": round(idle, 4), "with_page_cores": round(looked, 4), "page_every_s": every, "polls": polls,
            "added_percent_of_a_core": round(100 * max(0.0, looked - idle), 2)}


def populate(plane: ControlPlane, args, workdir: str) -> tuple[list[Workers], dict]:
    c = plane.client()
    with open(plane.ca_pem_path, "rb") as f:
        ca_pem = f.read()
    from node_daemon.capabilities import collect

    base = collect(workdir).SerializeToString()
    workers, start, t0 = [], 0, time.monotonic()
    for tier, share in TIERS:
        n = round(args.nodes * share) if tier != TIERS[-1][0] else args.nodes - start
        token = c.CreateJoinToken(cp.JoinTokenSpec(name=f"bench-{tier}", tier=tier)).token
        w = Workers(1, {"base_capabilities": base, "join_token": token, "ca_pem": ca_pem, "endpoint": plane.endpoint,
                        "node_endpoint": f"127.0.0.1:{plane.node_port}", "interval": 5.0, "nice": 0})
        (r,) = w.call([{"op": "add", "indices": list(range(start, start + n))}], timeout=1800)
        if r["failed"]:
            raise RuntimeError(f"{r['failed']} {tier} nodes failed to join: {r['failures'][:3]}")
        workers.append(w)
        start += n
        say(f"{n} {tier} nodes enrolled and connected")
    wait_for(lambda: c.GetStatus(cp.GetStatusRequest()).nodes_by_state.get("ready", 0) == args.nodes, 120,
             what=f"{args.nodes} nodes ready")
    enrolled_s = time.monotonic() - t0

    blob = upload(c, TRAFFIC_CSV.read_bytes())
    c.CreateDataset(ds.DatasetSpec(name="traffic", source="file://traffic.csv", blob_sha256=blob, target="congestion"))
    spec = m.ModelSpec(name="congestion", dataset="traffic", task="classification", target="congestion",
                       candidates=["logistic_regression"], selection=m.Selection(metric="accuracy", cv_folds=2),
                       preprocessing=m.Preprocessing(impute="median", scale="standard", one_hot=["intersection", "weather"]))
    c.CreateModel(spec)
    wait_for(lambda: c.GetModel(m.GetModelRequest(name="congestion")).state == "ready", 600, interval=1,
             what="the model trained and packaged")
    say("model trained")
    t0 = time.monotonic()
    for i in range(args.services):
        tiers = [TIERS[i % 3][0]] if i % 4 else []
        c.CreateService(m.ServiceSpec(name=f"svc-{i:03d}", model="congestion", replicas=1 + (i % 3 == 0),
                                      requirements=m.Requirements(cpu=0.1, memory_mb=64, tiers=tiers)))
    for i in range(args.apps):
        c.CreateApp(a.AppSpec(name=f"app-{i:03d}", kind="service", command="sleep", args=["3600"],
                              connects_to=[f"svc-{(7 * i) % args.services:03d}", f"svc-{(7 * i + 3) % args.services:03d}"],
                              requirements=m.Requirements(cpu=0.05, memory_mb=32)))
    placed = wait_for(lambda: (lambda s: s if all(x.placements for x in s) else None)(
        c.ListServices(cp.ListServicesRequest(), timeout=60).services), 300, interval=2, what="every service placed")
    replicas = sum(p.replicas for s in placed for p in s.placements)
    say(f"{args.services} services ({replicas} replicas) and {args.apps} apps placed in {time.monotonic() - t0:.0f}s")
    c.close()
    return workers, {"nodes": args.nodes, "services": args.services, "replicas": replicas, "apps": args.apps,
                     "enrolled_s": round(enrolled_s, 1)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.ui.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--services", type=int, default=500)
    p.add_argument("--apps", type=int, default=100)
    p.add_argument("--renders", type=int, default=20)
    p.add_argument("--cpu-window", type=float, default=60.0)
    args = p.parse_args(argv)
    if args.nodes < 3 or args.services < 1 or args.renders < 1 or args.cpu_window <= 0:
        p.error("--nodes >= 3, --services >= 1, --renders >= 1, --cpu-window > 0")
    sim.raise_nofile()
    workdir = tempfile.mkdtemp(prefix="stratum-bench-ui-")
    plane = ControlPlane(workdir, ui=True, heartbeat_interval="5s", node_timeout="15s").start()
    workers: list[Workers] = []
    res: dict = {"cpus": psutil.cpu_count()}
    try:
        b = Browser(plane)
        res["empty"] = {"overview": b.renders("/", args.renders)}
        res["empty"]["picture_build_ms"] = b.picture_build_ms
        say(f"empty overview: {res['empty']['overview']}")
        res["empty"]["cpu"] = cpu_cost(plane, b, args.cpu_window)
        say(f"empty cluster CPU: {res['empty']['cpu']}")
        workers, res["cluster"] = populate(plane, args, workdir)
        res["large"] = {page: b.renders(path, args.renders) for page, path in
                        (("overview", "/"), ("nodes", "/nodes"), ("services", "/services"))}
        res["large"]["picture_build_ms"] = b.picture_build_ms
        for page, r in res["large"].items():
            say(f"large {page}: {r}")
        res["large"]["cpu"] = cpu_cost(plane, b, args.cpu_window)
        say(f"large cluster CPU: {res['large']['cpu']}")
        b.close()
    finally:
        for w in workers:
            w.stop()
        plane.stop()
    e, L = res["empty"]["overview"], res["large"]["overview"]
    res["ratio"] = round(L["server_ms_median"] / e["server_ms_median"], 2)
    res["targets"] = {"large_overview_le_1s": max(L["first_ms"], L["server_ms_median"]) <= 1000, "ratio_le_5": res["ratio"] <= 5,
                      "idle_cpu_le_5pct": res["empty"]["cpu"]["added_percent_of_a_core"] <= 5}
    print(f"{'':44} {'first ms':>9} {'median ms':>10} {'p95 ms':>8} {'client ms':>10} {'KiB':>7}")
    for label, r in (("overview, empty cluster", e), (f"overview, {args.nodes} nodes / {args.services} services", L),
                     ("/nodes, large", res["large"]["nodes"]), ("/services, large", res["large"]["services"])):
        print(f"{label:44} {r['first_ms']:>9} {r['server_ms_median']:>10} {r['server_ms_p95']:>8} {r['client_ms_median']:>10} "
              f"{r['bytes'] / 1024:>7.0f}")
    print(f"the overview's picture takes {res['empty']['picture_build_ms']} ms to build empty, "
          f"{res['large']['picture_build_ms']} ms large")
    print(f"ratio large/empty overview: {res['ratio']} (target <= 5); "
          f"one open overview adds {res['empty']['cpu']['added_percent_of_a_core']} % of a core to the idle control "
          f"plane (refreshing every {res['empty']['cpu']['page_every_s']} s; target <= 5), "
          f"{res['large']['cpu']['added_percent_of_a_core']} % with the large cluster "
          f"(every {res['large']['cpu']['page_every_s']} s)")
    print(json.dumps(res, sort_keys=True))
    res["_ok"] = all(res["targets"].values())
    return res


if __name__ == "__main__":
    sys.exit(0 if main().get("_ok") else 1)
