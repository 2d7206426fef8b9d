"""Failover: how long after the leader is killed does the cluster make a change again?

    python -m bench.ha.run [--kills 20] [--ttl 5s] [--planes 2]

Control planes (real processes) on one PostgreSQL 15 (initdb in a temp dir) and one node daemon
that runs apps. Each round: the leader is killed with SIGKILL (no lease given up, no goodbye to
the node); at that instant a client starts asking a surviving control plane to create an app
(every 50 ms until one is accepted: meanwhile the answer is UNAVAILABLE) and then watches for the
app's instance to be placed on the node. Failover time = kill -> that placement: the first change
reconciled after the kill. The killed control plane is started again (a follower now) before the
next round. Also measured: kill -> another control plane says it leads (GetStatus).

The baseline is the lease TTL itself, the time a follower must wait before it may take over: the
bench prints p50 and p99 of both times, and their ratio to the TTL. Progress on stderr; a table
and one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import grpc  # noqa: E402

from stratum.durations import parse_duration  # noqa: E402
from stratum.v1 import apps_pb2 as a, control_plane_pb2 as cp, models_pb2 as m  # noqa: E402
from tests.harness import ControlPlane, NodeDaemon, wait_for  # noqa: E402
from tests.postgres import PostgresCluster  # noqa: E402


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * len(s) + 0.5) - 1))]


class Planes:
    def __init__(self, root: str, url: str, n: int, ttl: str):
        self.root, self.url, self.ttl = root, url, ttl
        self.planes: list[ControlPlane] = []
        for i in range(n):
            self.planes.append(self._start(i))

    def _start(self, i: int, port: int | None = None, node_port: int | None = None) -> ControlPlane:
        d = os.path.join(self.root, f"cp-{i}")
        os.makedirs(d, exist_ok=True)
        extra = ["--lease-ttl", self.ttl, "--ui-listen", "off"]
        if i:
            extra += ["--cluster-key-file", os.path.join(self.planes[0].data_dir, "cluster.key")]
        return ControlPlane(d, store=self.url, extra=extra, port=port, node_port=node_port).start()

    def leading(self, plane: ControlPlane) -> bool:
        c = plane.client()
        try:
            return c.GetStatus(cp.GetStatusRequest(), timeout=2).leading
        except grpc.RpcError:
            return False
        finally:
            c.close()

    def leader(self) -> ControlPlane:
        return wait_for(lambda: next((p for p in self.planes if p.running and self.leading(p)), None), 60, interval=0.05,
                        what="a leader")

    def stop(self) -> None:
        for p in self.planes:
            p.stop()


def one_kill(planes: Planes, k: int) -> dict:
    lead = planes.leader()
    others = [p for p in planes.planes if p is not lead]
    asker = others[0].client()
    spec = a.AppSpec(name=f"probe-{k}", kind="service", command="sleep", args=["3600"],
                     requirements=m.Requirements(cpu=0.01, memory_mb=8), kill_timeout_s=1)
    lead.kill()
    t0 = time.monotonic()
    led_at = None
    while True:  # ask until a leader takes the change (UNAVAILABLE meanwhile)
        if led_at is None and any(planes.leading(p) for p in others):
            led_at = time.monotonic()
        try:
            asker.CreateApp(spec, timeout=2)
            break
        except grpc.RpcError as e:
            if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
        time.sleep(0.05)
        if time.monotonic() - t0 > 120:
            raise RuntimeError("no control plane took the change within 120 s")
    accepted = time.monotonic()
    wait_for(lambda: asker.GetApp(a.GetAppRequest(name=spec.name), timeout=2).instances, 60, interval=0.02,
             what=f"{spec.name} placed")
    placed = time.monotonic()
    if led_at is None:
        led_at = accepted
    asker.DeleteApp(a.DeleteAppRequest(name=spec.name))
    asker.close()
    i = planes.planes.index(lead)
    planes.planes[i] = planes._start(i, port=lead.port, node_port=lead.node_port)  # back, as a follower
    return {"leads_s": round(led_at - t0, 3), "accepted_s": round(accepted - t0, 3), "placed_s": round(placed - t0, 3)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.ha.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--ttl", default="5s", help="the leader's lease (--lease-ttl)")
    p.add_argument("--planes", type=int, default=2, choices=[2, 3])
    args = p.parse_args(argv)
    if args.kills < 1:
        p.error("--kills: at least 1")
    ttl = parse_duration(args.ttl)
    root = tempfile.mkdtemp(prefix="stratum-bench-ha-")
    pg = PostgresCluster().start()
    planes = node = None
    rounds = []
    try:
        url = pg.create_database("ha")
        planes = Planes(root, url, args.planes, args.ttl)
        node = NodeDaemon(root, "n1", ",".join(x.endpoint for x in planes.planes), planes.planes[0].join_token,
                          tier="edge").start()
        c = planes.leader().client()
        wait_for(lambda: c.nodes().get("n1") and c.nodes()["n1"].state == "ready", 60, what="the node ready")
        c.close()
        for k in range(args.kills):
            r = one_kill(planes, k)
            rounds.append(r)
            say(f"kill {k + 1}/{args.kills}: a new leader after {r['leads_s']:.2f}s, the change accepted after "
                f"{r['accepted_s']:.2f}s, placed after {r['placed_s']:.2f}s")
            time.sleep(1.0)  # the restarted one settles as a follower
    finally:
        if node is not None:
            node.stop()
        if planes is not None:
            planes.stop()
        pg.stop()
    placed = [r["placed_s"] for r in rounds]
    leads = [r["leads_s"] for r in rounds]
    res = {"kills": len(rounds), "ttl_s": ttl, "planes": args.planes, "rounds": rounds,
           "placed_p50_s": round(pct(placed, 0.5), 3), "placed_p99_s": round(pct(placed, 0.99), 3),
           "leads_p50_s": round(pct(leads, 0.5), 3), "leads_p99_s": round(pct(leads, 0.99), 3),
           "placed_mean_s": round(statistics.mean(placed), 3)}
    res["ratio_p50"] = round(res["placed_p50_s"] / ttl, 3)
    res["ratio_p99"] = round(res["placed_p99_s"] / ttl, 3)
    print(f"{'':40} {'p50 s':>8} {'p99 s':>8} {'/ TTL p50':>10} {'/ TTL p99':>10}")
    print(f"{'kill -> another leads':40} {res['leads_p50_s']:>8} {res['leads_p99_s']:>8} "
          f"{res['leads_p50_s'] / ttl:>10.3f} {res['leads_p99_s'] / ttl:>10.3f}")
    print(f"{'kill -> first reconciled change':40} {res['placed_p50_s']:>8} {res['placed_p99_s']:>8} "
          f"{res['ratio_p50']:>10.3f} {res['ratio_p99']:>10.3f}")
    print(f"({len(rounds)} kills, lease TTL {ttl:g}s, {args.planes} control planes)")
    print(json.dumps(res, sort_keys=True))
    return res


if __name__ == "__main__":
    main()
