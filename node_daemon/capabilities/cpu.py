"""CPU: usable logical cores, physical cores, model, architecture, frequency."""

from __future__ import annotations

import os
import platform

import psutil

from stratum.v1 import types_pb2


def read_cpu_model(cpuinfo_path: str = "/proc/cpuinfo") -> str:
    """The first model string /proc/cpuinfo gives (x86: "model name"; some ARM kernels: "Model"/"Hardware")."""
    try:
        with open(cpuinfo_path) as f:
            lines = f.readlines()
    except OSError:
        lines = []
    for key in ("model name", "Model", "Hardware", "cpu model"):
        for line in lines:
            k, sep, v = line.partition(":")
            if sep and k.strip() == key and v.strip():
                return v.strip()
    return platform.processor()


class CpuProbe:
    name = "cpu"

    def probe(self, caps: types_pb2.Capabilities, ctx) -> None:
        # The affinity mask, not the machine's count: a daemon pinned to a cpuset (container,
        # taskset) can only give its replicas those cores.
        caps.cpu_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 0)
        caps.cpu_physical_cores = psutil.cpu_count(logical=False) or 0
        caps.cpu_model = read_cpu_model()
        caps.arch = platform.machine()
        freq = psutil.cpu_freq()
        if freq:
            # VMs without a cpufreq driver report max 0 and only the fixed nominal clock,
            # which is then also the highest the guest gets.
            caps.cpu_mhz = float(freq.max or freq.current or 0.0)
