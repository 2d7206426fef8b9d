"""Measure a built bento once, at packaging time: load time and memory, stored with the version.

    profile = profile_bento("congestion:v3", bentoml_home, run_dir, instances=[{...}])
    profile.load_time_s    # `bentoml serve` spawn -> first 200 from GET /healthz
    profile.rss_bytes      # resident memory of the whole process tree after `requests` predictions
    profile.p95_ms         # one small request at a time
    profile.capacity_rps   # small requests from `concurrency` clients at once: what one replica sustains
    profile.ms_per_kib     # extra service time per KiB of request body: the slope between two batch sizes
    profile.sizes          # per replica size (cpu quota, workers): capacity_rps, p95_ms under load, memory_mb

It runs the bento with the node daemon's own ReplicaRunner (stratum/runtime/runner.py),
so the numbers are what a node will see for one replica with `workers` workers; the placement
and autoscaling code read them as the replica's memory need and cold-start time.

Sizes (vertical scaling, control_plane/autoscale/vertical.py): the same replica is measured again
under cgroup cpu quotas of 1, 0.5 and 0.25 cores (changed live, no restart), and a second replica
with 2 workers under 2 cores when the host has them. Each size's memory limit is its measured RSS
plus half again (a replica grows with traffic). Without writable cgroups the 1-worker replica is
measured unlimited as the 1-core size, and the sizes say `"limited": false`.
"""

from __future__ import annotations

import json
import os
import statistics
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from stratum.runtime.cgroups import Cgroups
from stratum.runtime.runner import Replica, ReplicaRunner

QUOTAS = (1.0, 0.5, 0.25)  # cores, for the 1-worker replica


@dataclass(frozen=True)
class BentoProfile:
    load_time_s: float
    rss_bytes: int
    requests: int
    p50_ms: float | None
    workers: int
    p95_ms: float | None = None
    capacity_rps: float | None = None
    ms_per_kib: float | None = None
    sizes: list | None = None  # [{cpu, workers, memory_mb, capacity_rps, p95_ms, limited}]

    @property
    def rss_mib(self) -> int:
        return -(-self.rss_bytes // (1 << 20))

    def to_dict(self) -> dict:
        return {**asdict(self), "rss_mib": self.rss_mib}


def example_instances(metadata: dict) -> list[dict]:
    """One made-up row from metadata.json's features (0 for numbers, "" for strings), or metadata["example"]."""
    if isinstance(metadata.get("example"), dict):
        return [metadata["example"]]
    row = {}
    for f in metadata.get("features", []):
        kind = str(f.get("type", "")).lower()
        row[f["name"]] = 0.0 if kind in ("float", "double", "number", "numeric", "int", "integer") else ""
    return [row] if row else []


def _post(url: str, body: bytes | None) -> float:
    """One request; its latency in ms."""
    t0 = time.perf_counter()
    if body is not None:
        req = urllib.request.Request(url + "/predict", data=body, headers={"Content-Type": "application/json"},
                                     method="POST")
    else:
        req = urllib.request.Request(url + "/healthz")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:  # a 400 still exercised the model path
        exc.read()
    return (time.perf_counter() - t0) * 1000


def _load(url: str, body: bytes, requests: int, concurrency: int) -> tuple[float, float]:
    """`requests` POSTs from `concurrency` clients at once: (requests/s, p95 ms)."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        lat = sorted(pool.map(lambda _: _post(url, body), range(requests)))
    return round(requests / (time.perf_counter() - t0), 1), round(lat[int(0.95 * (len(lat) - 1))], 3)


def _memory_mb(rss: int) -> int:
    return -(-int(rss * 1.5) // (64 << 20)) * 64


def _sizes(runner: ReplicaRunner, replica: Replica, bento: str, body: bytes, requests: int, concurrency: int,
           ready_timeout: float) -> list[dict]:
    """One after the other, on an otherwise idle host: a replica booting beside the one measured
    takes a third off its figures (tried)."""
    limited = runner.cgroups is not None
    out = []
    for cpu in QUOTAS if limited else (1.0,):
        if limited:
            runner.set_limits(replica, cpu, None)
        # a warm replica under a quota settles at once; half the requests do
        rps, p95 = _load(replica.url, body, max(16, requests // 2), concurrency)
        out.append({"cpu": cpu, "workers": 1, "memory_mb": _memory_mb(replica.rss_bytes()), "capacity_rps": rps,
                    "p95_ms": p95, "limited": limited})
    if limited:
        runner.set_limits(replica, None, None)
    if (os.cpu_count() or 1) >= 2:
        two = runner.start(bento, workers=2, ready_timeout=ready_timeout, limits=(2.0, None) if limited else None)
        try:
            _post(two.url, body)
            rps, p95 = _load(two.url, body, requests, 2 * concurrency)
            out.append({"cpu": 2.0, "workers": 2, "memory_mb": _memory_mb(two.rss_bytes()), "capacity_rps": rps,
                        "p95_ms": p95, "limited": limited})
        finally:
            runner.stop(two)
    return out


def sweep_stale_groups(cgroups: Cgroups) -> list[str]:
    """Remove the empty profile groups of processes that are gone: a control plane killed while it
    profiled (kill -9 leaves no `finally`) leaves `stratum/profile-<its pid>` behind. A live pid's
    groups are left alone, and a group still holding processes cannot be removed (rmdir refuses)."""
    removed = []
    parents = [cgroups.root / "stratum"] if cgroups.mode == "v2" else [cgroups.root / c / "stratum" for c in ("cpu", "memory")]
    for parent in parents:
        for d in parent.glob("profile-*"):
            pid = d.name.removeprefix("profile-")
            if not pid.isdigit() or int(pid) == os.getpid() or os.path.exists(f"/proc/{pid}"):
                continue
            Cgroups(cgroups.mode, cgroups.root, f"stratum/{d.name}").close()
            if not d.exists():
                removed.append(d.name)
    return sorted(set(removed))


def profile_bento(bento: str, bentoml_home: str | os.PathLike, run_dir: str | os.PathLike, *,
                  instances: list[dict] | None = None, requests: int = 40, workers: int = 1,
                  ready_timeout: float = 120.0, concurrency: int = 4, batch_rows: int = 4096,
                  sizes: bool = True) -> BentoProfile:
    """Serve `bento` (a tag in bentoml_home) once, send `requests` POST /predict (GET /healthz when no
    instances are given), then `requests` more from `concurrency` clients at once, then batches of
    `batch_rows` / 8 and `batch_rows` rows; read the RSS of its process tree, stop it. Request placement
    works from these numbers (control_plane/placement/forms.py)."""
    cgroups = Cgroups.usable(prefix=f"stratum/profile-{os.getpid()}") if sizes and instances else None
    if cgroups is not None:
        sweep_stale_groups(cgroups)
    runner = ReplicaRunner(bentoml_home, run_dir, cgroups=cgroups)
    replica = runner.start(bento, workers=workers, ready_timeout=ready_timeout)
    measured = None
    try:
        load_time = replica.load_time_s or 0.0
        body = json.dumps({"instances": instances}).encode() if instances else None
        latencies = [_post(replica.url, body) for _ in range(requests)]
        capacity = ms_per_kib = None
        if body is not None:
            capacity = _load(replica.url, body, requests, concurrency)[0]
            # The slope between two batch sizes: the fixed cost of a request (HTTP, parsing, dispatch)
            # cancels out, so what is left is the time per byte of input.
            body_sizes, times = [], []
            for rows in (batch_rows // 8, batch_rows):
                b = json.dumps({"instances": (instances * rows)[:rows]}).encode()
                _post(replica.url, b)  # warm the path for this size
                body_sizes.append(len(b))
                times.append(statistics.median(_post(replica.url, b) for _ in range(5)))
            ms_per_kib = round(max(times[1] - times[0], 0.0) / ((body_sizes[1] - body_sizes[0]) / 1024), 5)
        rss = replica.rss_bytes()
        if sizes and body is not None and workers == 1:
            measured = _sizes(runner, replica, bento, body, requests, concurrency, ready_timeout)
    finally:
        runner.stop(replica)
        if cgroups is not None:
            cgroups.close()
    return BentoProfile(load_time_s=round(load_time, 3), rss_bytes=rss, requests=requests,
                        p50_ms=round(statistics.median(latencies), 3) if latencies else None, workers=workers,
                        p95_ms=round(sorted(latencies)[int(0.95 * (len(latencies) - 1))], 3) if latencies else None,
                        capacity_rps=capacity, ms_per_kib=ms_per_kib, sizes=measured)


def profile_artifact(artifact_dir: str | os.PathLike, bento: str, bentoml_home: str | os.PathLike,
                     run_dir: str | os.PathLike, **kwargs) -> BentoProfile:
    """profile_bento with example rows made from the artifact's metadata.json."""
    meta_path = Path(artifact_dir) / "metadata.json"
    metadata = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    kwargs.setdefault("instances", example_instances(metadata) or None)
    return profile_bento(bento, bentoml_home, run_dir, **kwargs)
