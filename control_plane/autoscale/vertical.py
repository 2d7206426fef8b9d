"""Replica sizes for vertical scaling: which size and how many replicas, and live refinement of a
size's capacity. Pure.

    sizes = sizes_of(version, slo_ms=200)            # measured at packaging (packaging/profile.py)
    for size, n in options(need_rpm, sizes, lo=1, hi=4):
        if place(size, n): break                     # the cheapest choice that fits somewhere
    cap = refine(size.capacity_rpm, observed, replicas=n, slo_ms=200, base=size.capacity_rpm)

A size is a cgroup cpu quota, a memory limit and a worker count, with the requests per minute one
replica takes within the latency objective. On shared nodes the cost of a choice is the cores it
reserves (replicas x cpu): the scheduler packs other services into what is left. Among choices
with the same cores, more replicas win: adding a replica, or changing a quota, needs no restart,
while a change of worker count rolls every replica.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Size:
    cpu: float  # cores (cgroup cpu quota)
    memory_mb: int  # cgroup memory limit
    workers: int
    capacity_rpm: float  # requests/min one replica takes within the objective

    def as_dict(self) -> dict:
        return {"cpu": self.cpu, "memory_mb": self.memory_mb, "workers": self.workers,
                "capacity_rpm": round(self.capacity_rpm, 3)}


def sizes_of(version: dict | None, slo_ms: float = 0.0, target_rpm: float = 0.0) -> list[Size]:
    """The sizes a model version was measured in (`version["sizes"]`: cpu, memory_mb, workers,
    capacity_rps and p95_ms under that load), at the objective: a size whose p95 under load is over
    `slo_ms` takes proportionally fewer requests (at saturation, latency grows with the queue, so
    throughput at the objective is about capacity x slo / p95). `target_rpm` rescales them so that
    the 1-core size (else the nearest) takes that many."""
    out = []
    for s in (version or {}).get("sizes") or []:
        rpm = float(s.get("capacity_rps") or 0.0) * 60
        p95 = float(s.get("p95_ms") or 0.0)
        if slo_ms > 0 and p95 > slo_ms:
            rpm *= slo_ms / p95
        if rpm > 0 and s.get("cpu", 0) > 0:
            out.append(Size(float(s["cpu"]), int(s.get("memory_mb") or 0), int(s.get("workers") or 1), rpm))
    if out and target_rpm > 0:
        ref = min(out, key=lambda z: (abs(z.cpu - 1.0), z.workers))
        k = target_rpm / ref.capacity_rpm
        out = [Size(z.cpu, z.memory_mb, z.workers, z.capacity_rpm * k) for z in out]
    return sorted(out, key=lambda z: (z.cpu, z.workers))


def options(need_rpm: float, sizes: list[Size], lo: int, hi: int) -> list[tuple[Size, int]]:
    """Every size with the fewest replicas in [lo, hi] that take `need_rpm`, cheapest first (fewest
    cores, then more replicas, then fewer workers); then, for when none of them fits anywhere or
    none takes the load, the sizes at `hi` replicas, largest capacity first."""
    lo, hi = max(lo, 1), max(hi, lo, 1)
    covering, short = [], []
    for z in sizes:
        n = max(lo, math.ceil(max(need_rpm, 0.0) / z.capacity_rpm - 1e-9))
        (covering if n <= hi else short).append((z, min(n, hi)))
    covering.sort(key=lambda c: (round(c[0].cpu * c[1], 6), -c[1], c[0].workers))
    short.sort(key=lambda c: (-c[0].capacity_rpm * c[1], c[0].cpu * c[1]))
    return covering + short


def refine(capacity_rpm: float, observed: list[tuple[float, float]], replicas: int, slo_ms: float, *,
           base: float, alpha: float = 0.3, band: float = 4.0) -> float:
    """A size's capacity, corrected by what its replicas did: `observed` holds (requests, p95 ms) of
    finished minutes served by `replicas` replicas of it. A minute over the objective at fewer
    requests per replica than believed lowers the estimate towards that rate; a minute within the
    objective at more raises it. Other minutes say nothing (light load within the objective is no
    evidence of the ceiling). Kept within [base / band, base x band] of the measured figure."""
    cap = capacity_rpm
    if replicas <= 0 or slo_ms <= 0:
        return cap
    for requests, p95 in observed:
        per = requests / replicas
        if (p95 > slo_ms and per < cap) or (p95 <= slo_ms and per > cap):
            cap += alpha * (per - cap)
    return min(max(cap, base / band), base * band)
